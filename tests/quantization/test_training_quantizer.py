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


def _training_pairs(rng):
    """`(op, training path, step)` for an activation on a learned range
    and for weights per channel and per tensor."""
    x = (rng.normal(size=(64, 48)) * rng.uniform(0.01, 10)).astype(
        "float32")
    low = np.float32(-abs(rng.normal()) * 3)
    high = np.float32(abs(rng.normal()) * 3)
    activation = (
        ops.convert_to_numpy(quantizers.fake_quant(x, low, high)),
        ops.convert_to_numpy(quantizers.fake_quant_in_training(
            x, low, high)), (high - low) / 255)
    pairs = [activation]
    for axis, magnitude in ((-1, np.abs(x).max(0)), (None, np.abs(x).max())):
        pairs.append((
            ops.convert_to_numpy(quantizers.fake_quant(
                x, -magnitude, magnitude, narrow_range=True, axis=axis)),
            ops.convert_to_numpy(quantizers.fake_quant_weight(
                x, axis, training=True)), magnitude / 127))
    return pairs


def test_same_values_as_the_fake_quant_op():
    """Identical on JAX and PyTorch (Keras's op is the same arithmetic).
    TensorFlow's kernel rounds a value that falls exactly half-way between
    two steps the other way about once in 100,000 values; never by more
    than that one step."""
    rng = np.random.default_rng(0)
    differ, total = 0, 0
    for _ in range(40):
        for op, ste, step in _training_pairs(rng):
            assert np.all(np.abs(op - ste) <= 1.001 * step)
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


def _op_in_training(monkeypatch):
    """Makes training steps take Keras's FakeQuant op instead."""

    def activation(x, low, high, num_bits=8):
        return quantizers.fake_quant(x, ops.stop_gradient(low),
                                     ops.stop_gradient(high), num_bits)

    weight = quantizers.fake_quant_weight

    def weight_by_op(value, axis=None, num_bits=8, training=False,
                     magnitude=None):
        return weight(value, axis, num_bits, False, magnitude)

    monkeypatch.setattr(quantizers, "fake_quant_in_training", activation)
    monkeypatch.setattr(quantizers, "fake_quant_weight", weight_by_op)


def test_training_follows_the_fake_quant_op(monkeypatch):
    """The same QAT fit with the FakeQuant op in training gives the same
    losses (the weights may part at a rare rounding tie)."""
    _, _, losses = _trained()
    rounded = quantizers._rounded
    calls = []
    monkeypatch.setattr(quantizers, "_rounded",
                        lambda *a: calls.append(1) or rounded(*a))
    _op_in_training(monkeypatch)
    _, _, op_losses = _trained()
    assert not calls  # the second fit really took the op
    np.testing.assert_allclose(losses, op_losses, rtol=1e-3)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="other backends convert in a TensorFlow child "
                    "process (tflite_export.backend_bridge)")
def test_export_traces_the_fake_quant_op_only(monkeypatch):
    """`convert` never takes the training arithmetic, so the converter sees
    the FakeQuant ops it folds into int8 kernels."""
    qat, x, _ = _trained()
    rounded = quantizers._rounded
    calls = []
    monkeypatch.setattr(quantizers, "_rounded",
                        lambda *a: calls.append(1) or rounded(*a))
    tflite = te.convert(qat, "qat")
    assert not calls
    outputs, _ = te.run_tflite(tflite, [x[:16]])
    expected = qat.predict(x[:16], verbose=0)
    step = np.ptp(expected) / 255
    assert np.max(np.abs(outputs - expected)) <= 1.01 * step


def test_a_training_step_uses_the_training_arithmetic(monkeypatch):
    """Guards the two tests above: a fit does reach `_rounded`."""
    rounded = quantizers._rounded
    calls = []
    monkeypatch.setattr(quantizers, "_rounded",
                        lambda *a: calls.append(1) or rounded(*a))
    _trained()
    assert calls


def _state(values):
    return ops.convert_to_numpy(values).tolist()


@pytest.mark.parametrize("state, expected", [
    ([1.0, -1.0, 0.0], [-1.0, 3.0, 0.0]),  # unset: the batch sets it
    ([-0.5, 0.25, 0.0], [-0.55, 0.525, 0.0]),  # live: moving average
    ([-0.5, 0.25, 2.0], [-1.0, 3.0, 0.0]),  # calibrated: widened
    ([-0.5, 0.25, 1.0], [-0.5, 0.25, 1.0]),  # frozen: held
])
def test_next_state_in_every_mode(state, expected):
    from kcompress.quantization import activation_range as ar

    y = ops.convert_to_tensor([[-1.0, 3.0], [0.5, 2.0]])
    new = _state(ar.next_state(ops.convert_to_tensor(state), y, 0.9))
    np.testing.assert_allclose(new, expected, rtol=1e-6)


def test_next_state_range_always_contains_zero():
    from kcompress.quantization import activation_range as ar

    new = _state(ar.next_state(ops.convert_to_tensor([1.0, -1.0, 0.0]),
                               np.array([2.0, 5.0], "float32")))
    assert new[:2] == [0.0, 5.0]
    new = _state(ar.next_state(ops.convert_to_tensor([1.0, -1.0, 0.0]),
                               np.array([-2.0, -5.0], "float32")))
    assert new[:2] == [-5.0, 0.0]


def test_a_training_call_updates_the_layers_range():
    wrapped = quantization.QuantizeWrapper(L.Dense(4))
    x = np.random.default_rng(0).normal(size=(8, 3)).astype("float32")
    wrapped(x, training=True)
    low, high, mode = _state(wrapped.range_state)
    assert low < 0.0 < high and mode == 0.0
    y = ops.convert_to_numpy(wrapped(x, training=False))
    step = (high - low) / 255  # the grid may sit half a step off
    assert low - step <= y.min() and y.max() <= high + step


def test_bias_is_rounded_outside_training_only(monkeypatch):
    """The int32 bias grid is applied at inference and in the export trace,
    where it matches the file; a training step keeps the float bias."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), L.Dense(5), L.Dense(3)])
    qat = quantization.quantize_model(model)
    x = np.random.default_rng(0).normal(size=(16, 6)).astype("float32")
    qat(x, training=True)  # sets the ranges
    original = quantizers.fake_quant_bias
    rounded = []
    monkeypatch.setattr(quantizers, "fake_quant_bias",
                        lambda *a, **k: rounded.append(1) or original(*a, **k))
    qat(x, training=True)
    assert not rounded
    qat(x, training=False)
    assert rounded
