"""In inference, QAT layers compute as the file's int8 kernels do
(`kcompress.quantization.int8_kernels`): a squeeze-excite residual block's
and DenseNet-style blocks' outputs match the converted file exactly, where
float sums do not."""

import keras
import numpy as np
import pytest
from keras import ops

import tflite_export as te
from kcompress import quantization
from kcompress.quantization import int8_kernels
from kcompress.quantization.int8_kernels import grid

L = keras.layers

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="converts in process; other backends convert in a TensorFlow "
    "child process (tflite_export.backend_bridge)")


def _block():
    """A conv (K=576) + BatchNorm + swish, a squeeze-excite gate, a
    residual add with a 1x1 projection, global pooling and a Dense head:
    every op `int8_kernels` emulates."""
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
    """Per output value, how many output steps the file is from Keras, the
    larger of an eager call and `predict` (a TensorFlow graph, which
    Grappler rewrites)."""
    outputs, scale = te.run_tflite(tflite, [x])
    eager = ops.convert_to_numpy(qat(x, training=False))
    graph = qat.predict(x, batch_size=64, verbose=0)
    return np.maximum(np.abs(outputs - eager), np.abs(outputs - graph)) / (
        scale)


def _float_sums(monkeypatch):
    """Turns every emulation off: the float arithmetic of before."""
    for name in int8_kernels.KERNELS:
        original = getattr(int8_kernels, name)

        def off(*args, _original=original, **kwargs):
            values, ready = _original(*args, **kwargs)
            return values, ops.logical_and(ready, False)

        monkeypatch.setattr(int8_kernels, name, off)


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
    takes the float path, as before `int8_kernels`."""
    qat = quantization.quantize_model(_block())
    x = np.random.default_rng(1).normal(size=(4, 8, 8, 64)).astype(
        "float32")
    emulated = ops.convert_to_numpy(qat(x, training=False))
    _float_sums(monkeypatch)
    np.testing.assert_array_equal(
        emulated, ops.convert_to_numpy(qat(x, training=False)))


def _dense_blocks():
    """DenseNet's pattern in small: lone BatchNorms before fused ReLUs,
    1x1 conv + BatchNorm + ReLU, 3x3 convs written onto a concatenation's
    grid, a chain of concatenations (each input requantized onto the
    next), a transition with average pooling. The BatchNorms hold random
    statistics, so the folded biases are far from zero."""
    keras.utils.set_random_seed(2)
    inputs = keras.Input((16, 16, 3))
    x = L.Conv2D(16, 3, strides=2, padding="same", use_bias=False)(inputs)
    x = L.ReLU()(L.BatchNormalization()(x))
    for block in range(4):
        y = L.ReLU()(L.BatchNormalization()(x))
        y = L.Conv2D(24, 1, use_bias=False)(y)
        y = L.ReLU()(L.BatchNormalization()(y))
        y = L.Conv2D(8, 3, padding="same", use_bias=False)(y)
        x = L.Concatenate()([x, y])
        if block == 1:
            x = L.ReLU()(L.BatchNormalization()(x))
            x = L.AveragePooling2D(2)(L.Conv2D(16, 1, use_bias=False)(x))
    x = L.GlobalAveragePooling2D()(L.ReLU()(L.BatchNormalization()(x)))
    model = keras.Model(inputs, L.Dense(10)(x))
    rng = np.random.default_rng(3)
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, n), rng.normal(0, .5, n),
                               rng.normal(0, .5, n), rng.uniform(.5, 2, n)])
    return model


def test_dense_blocks_match_the_file(monkeypatch):
    """Every output value is the file's, in an eager call and in `predict`
    (where Grappler turns divisions by constants into multiplications);
    the float arithmetic is a step off on some."""
    x = np.random.default_rng(4).normal(size=(256, 16, 16, 3)).astype(
        "float32")
    qat = quantization.quantize_model(_dense_blocks(),
                                      calibration_data=x[:64])
    kinds = {type(layer).__name__ for layer in qat.layers}
    assert {"QuantizeBatchNormalization", "QuantizeConvBatchNorm"} <= kinds
    tflite = te.convert(qat, "qat")
    assert _steps_off(qat, tflite, x).max() < 0.01
    _float_sums(monkeypatch)
    assert _steps_off(qat, tflite, x).max() >= 0.99


def test_multiply_in_a_graph_keeps_the_kernels_order():
    """MUL as XNNPACK computes it, `rint(steps a * steps b * scale)`, in
    eager execution and in a TensorFlow graph. (Unguarded, Grappler
    reassociates the chain of multiplications of different shapes, and
    some products land a tie the other way.)"""
    import tensorflow as tf

    rng = np.random.default_rng(5)
    bounds = [(np.float32(-2.0), np.float32(6.0)),
              (np.float32(0.0), np.float32(255 / 256))]
    output_bounds = (np.float32(-1.5), np.float32(5.0))
    scales = [grid.grid_of(b, 8)[1] for b in bounds + [output_bounds]]
    scale_a, scale_b, scale_out = (np.float32(ops.convert_to_numpy(s))
                                   for s in scales)
    steps_a = rng.integers(-60, 190, (64, 8, 8, 32)).astype("float32")
    steps_b = rng.integers(0, 256, (64, 1, 1, 32)).astype("float32")
    a, b = steps_a * scale_a, steps_b * scale_b
    ratio = np.float32(scale_a * scale_b) / scale_out
    zero_point = np.rint(1.5 / scale_out)
    expected = np.clip(np.rint(steps_a * steps_b * ratio), -zero_point,
                       255 - zero_point) * scale_out

    def mul(u, v):
        return int8_kernels.multiply_requantized(u, v, bounds, output_bounds)[0]

    for result in (mul(a, b), tf.function(mul)(a, b)):
        np.testing.assert_array_equal(ops.convert_to_numpy(result), expected)
