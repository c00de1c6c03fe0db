"""Freezing ranges and BatchNorm statistics at a training step."""

import keras
import numpy as np
import pytest

from kcompress import quantization as q

L = keras.layers


def _qat_model():
    inputs = keras.Input((6, 6, 2))
    x = L.Conv2D(4, 3, name="conv")(inputs)
    x = L.BatchNormalization(name="bn")(x)
    x = L.ReLU()(x)
    x = L.Flatten()(x)
    model = q.quantize_model(keras.Model(inputs, L.Dense(2, name="head")(x)))
    model.compile("adam", "mse")
    return model


def _data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(32, 6, 6, 2)).astype("float32"), np.zeros((32, 2))


def _ranges(model):
    # A conv fused into the ReLU after it has no output range of its own.
    return [keras.ops.convert_to_numpy(layer.range_state).copy()
            for layer in q.quantized_layers(model)
            if hasattr(layer, "range_state")]


def test_ranges_freeze_at_the_step_and_stay_frozen():
    keras.utils.set_random_seed(0)
    model, (x, y) = _qat_model(), _data()
    freeze = q.FreezeQuantizationRanges(after_step=2)
    model.fit(x[:16], y[:16], batch_size=8, verbose=0, callbacks=[freeze])
    assert all(state[2] == 0.0 for state in _ranges(model))  # steps 0, 1
    model.fit(x, y, batch_size=8, verbose=0, callbacks=[freeze])
    frozen = _ranges(model)
    assert len(frozen) >= 2  # the input quantizer and the head at least
    assert all(state[2] == 1.0 for state in frozen)
    model.fit(x * 10, y, batch_size=8, verbose=0, callbacks=[freeze])
    for before, after in zip(frozen, _ranges(model)):
        np.testing.assert_array_equal(before, after)


def test_batchnorm_statistics_freeze():
    keras.utils.set_random_seed(0)
    model, (x, y) = _qat_model(), _data()
    freeze = q.FreezeBatchNormStatistics(after_step=0)
    model.fit(x, y, batch_size=8, verbose=0, callbacks=[freeze])
    folded = [layer for layer in q.quantized_layers(model)
              if isinstance(layer, q.QuantizeConvBatchNorm)][0]
    before = [keras.ops.convert_to_numpy(v).copy()
              for v in (folded.batchnorm.moving_mean,
                        folded.batchnorm.moving_variance)]
    model.fit(x + 3.0, y, batch_size=8, verbose=0, callbacks=[freeze])
    after = [keras.ops.convert_to_numpy(v)
             for v in (folded.batchnorm.moving_mean,
                       folded.batchnorm.moving_variance)]
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3"])
def test_bad_steps_are_refused(bad):
    with pytest.raises(ValueError, match="after_step"):
        q.FreezeQuantizationRanges(bad)


def test_a_float_model_is_refused():
    model = keras.Sequential([keras.Input((3,)), L.Dense(1)], name="plain")
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match="'plain', which has no layers"):
        model.fit(np.ones((4, 3)), np.ones((4, 1)), verbose=0,
                  callbacks=[q.FreezeQuantizationRanges(0)])
