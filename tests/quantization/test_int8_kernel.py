"""In inference, QAT layers compute as the file's int8 kernels do
(`kcompress.quantization.int8_kernel`): a squeeze-excite residual block's
outputs match the converted file exactly, where float sums do not."""

import keras
import numpy as np
import pytest
from keras import ops

import tflite_export as te
from kcompress import quantization
from kcompress.quantization import int8_kernel

L = keras.layers

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="converts in process; other backends convert in a TensorFlow "
    "child process (tflite_export.backend_bridge)")


def _block():
    """A conv (K=576) + BatchNorm + swish, a squeeze-excite gate, a
    residual add with a 1x1 projection, global pooling and a Dense head:
    every op `int8_kernel` emulates."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 64))
    x = L.Conv2D(32, 3, padding="same", use_bias=False)(inputs)
    x = L.BatchNormalization()(x)
    x = L.Activation("swish")(x)
    gate = L.GlobalAveragePooling2D(keepdims=True)(x)
    gate = L.Conv2D(8, 1, activation="relu")(gate)
    gate = L.Conv2D(32, 1, activation="sigmoid")(gate)
    x = L.Multiply()([x, gate])
    x = L.Add()([x, L.Conv2D(32, 1)(inputs)])
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, L.Dense(10)(x))


def _steps_off(qat, tflite, x):
    """Per output value, how many output steps the file is from Keras."""
    outputs, scale = te.run_tflite(tflite, [x])
    expected = ops.convert_to_numpy(qat(x, training=False))
    return np.abs(outputs - expected) / scale


def _float_sums(monkeypatch):
    """Turns every emulation off: the float arithmetic of before."""
    for name in int8_kernel.__all__:
        original = getattr(int8_kernel, name)

        def off(*args, _original=original, **kwargs):
            values, ready = _original(*args, **kwargs)
            return values, ops.logical_and(ready, False)

        monkeypatch.setattr(int8_kernel, name, off)


def test_file_matches_keras(monkeypatch):
    """Every output value is the file's; the float arithmetic is a step
    off on some."""
    x = np.random.default_rng(0).normal(size=(256, 8, 8, 64)).astype(
        "float32")
    qat = quantization.quantize_model(_block(), calibration_data=x[:64])
    tflite = te.convert(qat, "qat")
    off = _steps_off(qat, tflite, x)
    assert off.max() < 0.01, off.max()
    _float_sums(monkeypatch)
    assert _steps_off(qat, tflite, x).max() >= 0.99


def test_unset_ranges_fall_back_to_the_float_sums(monkeypatch):
    """Before calibration or training the ranges are unset; inference then
    takes the float path, as before `int8_kernel`."""
    qat = quantization.quantize_model(_block())
    x = np.random.default_rng(1).normal(size=(4, 8, 8, 64)).astype(
        "float32")
    emulated = ops.convert_to_numpy(qat(x, training=False))
    _float_sums(monkeypatch)
    np.testing.assert_array_equal(
        emulated, ops.convert_to_numpy(qat(x, training=False)))
