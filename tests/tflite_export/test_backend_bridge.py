"""The TensorFlow-backend child that converts JAX and PyTorch models.

`convert` takes this route only off the TensorFlow backend (the JAX pass of
`make test` and `tests/test_backends.py` run it that way); here it is called
directly, so that its protocol is tested on every backend.
"""

import keras
import numpy as np
import pytest

import kcompress as kc
import tflite_export as te
from tflite_export import backend_bridge


def _model():
    keras.utils.set_random_seed(0)
    return keras.Sequential([
        keras.Input((6, 6, 1)),
        keras.layers.Conv2D(4, 3, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(3),
    ], name="small")


def _x(count=16):
    return np.random.default_rng(0).normal(size=(count, 6, 6, 1)).astype(
        "float32")


def test_child_gives_the_file_the_tensorflow_backend_gives():
    qat = kc.quantize_model(_model(), calibration_data=_x())
    through_child = backend_bridge.convert_in_tensorflow(qat, "qat")
    ops = {op.name for op in te.inspect(through_child).ops}
    assert {"CONV_2D", "FULLY_CONNECTED", "QUANTIZE"} <= ops
    assert te.verify(through_child, qat, _x()).max_steps <= 1.0 + 1e-3
    if keras.backend.backend() == "tensorflow":
        assert through_child == te.convert(qat, "qat")


def test_child_calibrates_with_the_data_it_is_given():
    model = _model()
    tflite = backend_bridge.convert_in_tensorflow(
        model, "int8", [_x(32)], float_io=True)
    assert te.inspect(tflite).int8_coverage > 0.5
    assert te.verify(tflite, model, _x()).top1_agreement >= 0.9


def test_child_refusal_is_raised_word_for_word():
    with pytest.raises(te.ConversionError,
                       match="Mode 'qat' needs a QAT model, and model 'small'"):
        backend_bridge.convert_in_tensorflow(_model(), "qat")


class _Unregistered(keras.layers.Layer):
    def call(self, inputs):
        return inputs * 2.0


def test_a_layer_the_child_cannot_load_is_named():
    model = keras.Sequential([keras.Input((3,)), _Unregistered(),
                              keras.layers.Dense(2)])
    with pytest.raises(te.ConversionError,
                       match="TensorFlow backend cannot load the model"):
        backend_bridge.convert_in_tensorflow(model, "float32")


def test_child_environment_forces_tensorflow(monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    assert backend_bridge.child_environment()["KERAS_BACKEND"] == \
        "tensorflow"
