"""Activation ranges: calibration, then training-mode batches."""

import keras
import numpy as np

from kcompress import quantization as q
from kcompress.quantization import activation_range

L = keras.layers


def _stale_batchnorm_model():
    """Conv -> BN -> Conv -> BN -> head, whose BN moving variances are 10^4
    times the batch's: inference-mode outputs are 100x narrower than the
    training-mode ones (a model trained briefly looks like this)."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(8, 3, padding="same", use_bias=False, name="conv1")(inputs)
    x = L.BatchNormalization(name="bn1")(x)
    x = L.Activation("swish", name="act1")(x)
    x = L.Conv2D(8, 3, padding="same", use_bias=False, name="conv2")(x)
    x = L.BatchNormalization(name="bn2")(x)
    x = L.Activation("swish", name="act2")(x)
    x = L.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, L.Dense(4, name="head")(x))
    data = np.random.default_rng(0).normal(size=(64, 8, 8, 3)).astype(
        "float32")
    for name in ("bn1", "bn2"):
        layer = model.get_layer(name)
        probe = keras.Model(inputs, layer.input)
        variance = np.var(keras.ops.convert_to_numpy(probe(data)),
                          axis=(0, 1, 2))
        layer.moving_variance.assign(variance * 1e4)
    return model, data


def _states(model):
    return {layer.name: keras.ops.convert_to_numpy(layer.range_state).copy()
            for layer in q.quantized_layers(model)
            if hasattr(layer, "range_state")}


def test_first_training_batch_widens_a_calibrated_range():
    model, x = _stale_batchnorm_model()
    qat = q.quantize_model(model, calibration_data=x)
    calibrated = _states(qat)
    assert all(s[2] == activation_range.CALIBRATED
               for s in calibrated.values())
    qat.compile(keras.optimizers.SGD(0.0), "mse")
    qat.fit(x, np.zeros((64, 4)), batch_size=64, epochs=1, verbose=0)
    trained = _states(qat)
    assert all(s[2] == activation_range.LIVE for s in trained.values())
    widths = {name: (trained[name][1] - trained[name][0])
              / (calibrated[name][1] - calibrated[name][0])
              for name in calibrated}
    # The folded conv+BN outputs are ~100x wider in training mode; the
    # range followed them in one batch instead of clipping them.
    assert max(widths.values()) > 20, widths
    assert min(widths.values()) >= 1.0 - 1e-6, widths


def test_training_mode_outputs_follow_the_float_model():
    model, x = _stale_batchnorm_model()
    qat = q.quantize_model(model, calibration_data=x)
    qat.compile(keras.optimizers.SGD(0.0), "mse")
    qat.fit(x, np.zeros((64, 4)), batch_size=64, epochs=1, verbose=0)
    expected = keras.ops.convert_to_numpy(model(x, training=True))
    got = keras.ops.convert_to_numpy(qat(x, training=True))
    error = np.abs(got - expected).max() / np.abs(expected).max()
    # Clipped to the calibrated ranges, the error would be close to 1.
    assert error < 0.1, error
    losses = qat.fit(x, np.ones((64, 4)), batch_size=16, epochs=2,
                     verbose=0).history["loss"]
    assert np.all(np.isfinite(losses)), losses


def test_calibration_keeps_a_frozen_range_frozen():
    model, x = _stale_batchnorm_model()
    qat = q.quantize_model(model, calibration_data=x)
    for layer in q.quantized_layers(qat):
        if hasattr(layer, "range_state"):
            layer.freeze_range()
    q.calibrate(qat, x * 2)
    assert all(s[2] == activation_range.FROZEN for s in _states(qat).values())
    before = _states(qat)
    qat.compile(keras.optimizers.SGD(0.0), "mse")
    qat.fit(x * 3, np.zeros((64, 4)), batch_size=64, verbose=0)
    for name, state in _states(qat).items():
        np.testing.assert_array_equal(state, before[name])
