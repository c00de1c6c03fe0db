"""`verify` and `run_tflite`: the file against the Keras model."""

import keras
import numpy as np
import pytest

import tflite_export as te
from tflite_export.verification import quantize
from tflite_export.verification import run_tflite


@pytest.fixture(scope="module")
def model_and_file():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)])
    return model, te.convert(model, "float32")


def _x(n=150):
    return np.random.default_rng(0).normal(size=(n, 6)).astype("float32")


def test_float_file_agrees_with_keras(model_and_file):
    model, tflite = model_and_file
    x = _x()
    y = model.predict(x, verbose=0).argmax(-1)
    check = te.verify(tflite, model, x, y)
    assert check.samples == 150 and check.top1_agreement == 1.0
    assert check.max_abs_diff < 1e-5 and check.max_steps is None
    assert check.keras_accuracy == check.tflite_accuracy == 1.0


def test_run_tflite_batches_like_keras(model_and_file):
    model, tflite = model_and_file
    x = _x(130)  # more than one batch of 64, and a partial one
    outputs, scale = run_tflite(tflite, [x])
    np.testing.assert_allclose(outputs, model.predict(x, verbose=0),
                               atol=1e-5)
    assert scale is None


def test_quantize_rounds_and_clips():
    detail = {"quantization": (0.5, 10), "dtype": np.int8}
    got = quantize(np.array([0.0, 1.24, 1000.0, -1000.0]), detail)
    assert got.tolist() == [10, 12, 127, -128]


def test_api_errors_say_what_was_received(model_and_file):
    model, tflite = model_and_file
    x = _x(4)
    with pytest.raises(te.ModelFileError, match="of type Sequential"):
        te.verify(model, tflite, x)  # swapped
    with pytest.raises(te.ModelFileError, match="a path"):
        te.verify("model.tflite", model, x)
    other = keras.Sequential([keras.Input((6,)), keras.layers.Dense(5)])
    with pytest.raises(te.ConversionError, match="Pass the Keras model the "
                       "file was converted from"):
        te.verify(tflite, other, x)
    two = keras.Model(model.inputs, [model.outputs[0], model.outputs[0]])
    with pytest.raises(te.ConversionError, match="Cannot tell which"):
        te.verify(tflite, two, x)
    with pytest.raises(te.ConversionError, match="one integer label"):
        te.verify(tflite, model, x, y=np.array(["a"] * 4))
