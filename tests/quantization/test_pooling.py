"""Average pooling rounds its mean onto the input's grid, as TFLite does."""

import keras
import numpy as np
from keras import layers as L
from keras import ops

import kcompress as kc
from kcompress.quantization import int8_kernels
from kcompress.quantization import pooling


def _qat_model():
    inputs = keras.Input((4, 4, 2))
    x = L.AveragePooling2D(2, name="pool")(inputs)
    outputs = L.Dense(3, name="dense")(L.Flatten()(x))
    model = keras.Model(inputs, outputs)
    data = np.random.default_rng(0).normal(size=(32, 4, 4, 2)).astype(
        "float32")
    return kc.quantization.quantize_model(model, calibration_data=data), data


def test_mean_lands_on_the_input_grid_rounding_ties_away_from_zero():
    qat, data = _qat_model()
    pool = qat.get_layer("quant_pool")
    assert isinstance(pool, pooling.QuantizeAveragePooling)
    quantize = qat.layers[1]
    low, high = (ops.convert_to_numpy(v) for v in int8_kernels.exact_range(
        *quantize.output_bounds()))
    scale = (high - low) / 255.0
    zero = -128 - low / scale  # TFLite's signed zero point.
    inputs = ops.convert_to_numpy(quantize(data, training=False))
    pooled = ops.convert_to_numpy(pool(inputs))
    # TFLite: the mean of the signed int8 values, ties away from zero.
    q = np.round(inputs / scale + zero).reshape(32, 2, 2, 2, 2, 2)
    mean = q.sum(axis=(2, 4)) / 4.0
    expected = np.sign(mean) * np.floor(np.abs(mean) + 0.5)
    np.testing.assert_allclose(pooled / scale + zero, expected, atol=1e-3)
    ties = np.abs(mean - np.trunc(mean)) == 0.5
    assert np.any(ties & (mean < 0)) and np.any(ties & (mean > 0))


def test_pooled_model_file_matches_keras():
    import tflite_export

    qat, data = _qat_model()
    tflite = tflite_export.convert(qat, "qat")
    ops_ = tflite_export.inspect(tflite).ops
    assert [op.kind for op in ops_ if op.name == "AVERAGE_POOL_2D"] == [
        "integer"]
    assert tflite_export.verify(tflite, qat, data).max_steps <= 1.0 + 1e-3


def test_round_trips_and_strips_to_the_plain_layer(tmp_path):
    qat, data = _qat_model()
    path = tmp_path / "pooled.keras"
    qat.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(loaded.predict(data, verbose=0),
                                  qat.predict(data, verbose=0))
    plain = kc.quantization.strip_quantization(qat)
    assert type(plain.get_layer("pool")) is L.AveragePooling2D
