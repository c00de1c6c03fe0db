"""A stem that pads with -inf before a max pool (KerasHub's CSPNet) gives
an int8 file that loads with and without XNNPACK and agrees with Keras."""

import keras
import numpy as np
import pytest
from keras import layers
from keras import ops

import tflite_export as te
from tflite_export import finite_ranges as finite_padding
from tflite_export.inspection import interpreter_for

_X = np.random.default_rng(0).uniform(size=(32, 16, 16, 3)).astype("float32")


def _padded_stem():
    inputs = keras.Input((16, 16, 3))
    x = layers.Conv2D(8, 3, strides=2, padding="same",
                      activation="leaky_relu")(inputs)
    x = ops.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]],
                constant_values=float("-inf"))
    x = layers.MaxPooling2D(3, strides=2)(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(4)(x), name="padded_stem")


def test_infinite_padding_is_found_and_made_finite_exactly():
    model = _padded_stem()
    (name,) = finite_padding.infinite_pads(model)
    assert name.startswith("pad")  # The op's name, numbered by Keras.
    finite, names = finite_padding.with_finite_padding(model, [_X])
    assert names == [name] and finite_padding.infinite_pads(finite) == []
    np.testing.assert_array_equal(finite.predict(_X, verbose=0),
                                  model.predict(_X, verbose=0))
    assert finite_padding.infinite_pads(model) == [name]  # Not modified.


def test_int8_file_of_an_infinite_pad_loads_both_ways_and_agrees():
    model = _padded_stem()
    tflite = te.convert(model, "int8", representative_data=_X)
    interpreter_for(tflite, delegates=True)
    interpreter_for(tflite, delegates=False)
    report = te.verify(tflite, model, _X)
    assert report.max_steps <= 2


def test_a_padded_stem_nested_in_a_classifier_is_reached():
    stem = _padded_stem()
    inputs = keras.Input((16, 16, 3))
    model = keras.Model(inputs, layers.Dense(2)(stem(inputs)))
    (name,) = finite_padding.infinite_pads(model)
    assert name.startswith("padded_stem/pad")
    tflite = te.convert(model, "int8", representative_data=_X)
    interpreter_for(tflite, delegates=True)
    interpreter_for(tflite, delegates=False)
    assert te.verify(tflite, model, _X).top1_agreement >= 0.9


def test_a_file_with_an_infinite_range_is_refused_naming_the_tensor(
        monkeypatch):
    # Without the padding fix, calibration meets -inf: convert refuses the
    # file instead of returning one XNNPACK cannot prepare.
    monkeypatch.setattr(finite_padding, "with_finite_padding",
                        lambda model, arrays: (model, []))
    with pytest.raises(ValueError, match="quantization scale of .*pad"):
        te.convert(_padded_stem(), "int8", representative_data=_X)
