"""The training-time quantizer: `quantizers.fake_quant(..., training=True)`
is plain `keras.ops` with the FakeQuant op's values and input gradient; the
converter still sees the FakeQuant op."""

import keras
import numpy as np
import pytest
from keras import ops

import tflite_export as te
from kcompress import quantization
from kcompress.quantization import quantizers

L = keras.layers


def _pair(x, low, high, **kwargs):
    return (ops.convert_to_numpy(quantizers.fake_quant(x, low, high,
                                                       **kwargs)),
            ops.convert_to_numpy(quantizers.fake_quant(
                x, low, high, training=True, **kwargs)))


def test_same_values_as_the_fake_quant_op():
    """Identical on JAX and PyTorch (Keras's op is the same arithmetic).
    TensorFlow's kernel rounds a value that falls exactly half-way between
    two steps the other way about once in 100,000 values; never by more
    than that one step."""
    rng = np.random.default_rng(0)
    differ, total = 0, 0
    for _ in range(40):
        x = (rng.normal(size=(64, 48)) * rng.uniform(0.01, 10)).astype(
            "float32")
        low, high = quantizers.exact_range(
            np.float32(-abs(rng.normal()) * 3), np.float32(
                abs(rng.normal()) * 3))
        magnitude = np.abs(x).max(0)  # per-channel weights
        step = ops.convert_to_numpy(high - low) / 255
        for (op, ste), steps in ((_pair(x, low, high), step),
                                 (_pair(x, -magnitude, magnitude,
                                        narrow_range=True, axis=-1),
                                  magnitude / 127)):
            assert np.all(np.abs(op - ste) <= 1.001 * steps)
            differ += int(np.sum(op != ste))
            total += op.size
    if keras.backend.backend() == "tensorflow":
        assert differ <= 1e-4 * total, differ
    else:
        assert differ == 0


def test_gradient_passes_inside_the_range_only():
    x = keras.Variable(np.array([-3.0, -0.5, 0.2, 0.9, 2.5], "float32"))

    def loss():
        return ops.sum(quantizers.fake_quant(x, -1.0, 1.0, training=True)
                       * np.arange(1, 6, dtype="float32"))

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            value = loss()
        grad = tape.gradient(value, x)
    elif keras.backend.backend() == "jax":
        import jax

        grad = jax.grad(lambda v: ops.sum(quantizers.fake_quant(
            v, -1.0, 1.0, training=True) * np.arange(
                1, 6, dtype="float32")))(ops.convert_to_tensor(x))
    else:
        pytest.skip("checked on TensorFlow and JAX")
    np.testing.assert_array_equal(ops.convert_to_numpy(grad),
                                  [0, 2, 3, 4, 0])


def _trained(seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((8, 8, 1)), L.Conv2D(8, 3), L.BatchNormalization(),
        L.ReLU(), L.Conv2D(8, 3, activation="relu"), L.Flatten(),
        L.Dense(10)])
    qat = quantization.quantize_model(model)
    qat.compile(keras.optimizers.SGD(0.05), keras.losses.
                SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.default_rng(0).uniform(size=(64, 8, 8, 1)).astype(
        "float32")
    history = qat.fit(x, np.arange(64) % 10, batch_size=32, epochs=2,
                      verbose=0, shuffle=False)
    return qat, x, history.history["loss"]


def test_training_follows_the_fake_quant_op(monkeypatch):
    """The same QAT fit with the FakeQuant op in training gives the same
    losses (the weights may part at a rare rounding tie)."""
    _, _, losses = _trained()
    original = quantizers.fake_quant

    def op_only(*args, training=False, **kwargs):
        return original(*args, training=False, **kwargs)

    monkeypatch.setattr(quantizers, "fake_quant", op_only)
    _, _, op_losses = _trained()
    np.testing.assert_allclose(losses, op_losses, rtol=1e-3)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="other backends convert in a TensorFlow child "
                    "process (tflite_export.backend_bridge)")
def test_export_traces_the_fake_quant_op_only(monkeypatch):
    """`convert` never takes the training quantizer, so the converter sees
    the FakeQuant ops it folds into int8 kernels."""
    qat, x, _ = _trained()
    original = quantizers.fake_quant
    calls = []

    def watched(*args, training=False, **kwargs):
        calls.append(training)
        return original(*args, training=training, **kwargs)

    monkeypatch.setattr(quantizers, "fake_quant", watched)
    tflite = te.convert(qat, "qat")
    assert calls and not any(calls)
    outputs, _ = te.run_tflite(tflite, [x[:16]])
    expected = qat.predict(x[:16], verbose=0)
    step = np.ptp(expected) / 255
    assert np.max(np.abs(outputs - expected)) <= 1.01 * step
