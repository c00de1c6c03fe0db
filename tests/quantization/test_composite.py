"""The composite QAT layers compute what TFLite's int8 ops compute."""

import keras
import numpy as np
import pytest

from kcompress.quantization import composite
from kcompress.quantization import int8_kernels


def _calibrated_layer_norm():
    layer = composite.QuantizeLayerNormalization(
        keras.layers.LayerNormalization(epsilon=1e-3))
    spread = np.stack([np.linspace(-s, s, 8) for s in (100.0, 40.0, 10.0)])
    layer(spread[:, None, :].astype("float32"), training=True)  # Sets ranges.
    return layer


def test_layer_norm_saturates_rsqrt_at_the_top_of_its_range():
    # A token whose variance rounds to zero on the variance grid: TFLite's
    # int8 RSQRT returns the top of its output range for it, whatever else
    # is in the batch. Before, the batch's largest rsqrt stood in, so the
    # token's output depended on its neighbours.
    layer = _calibrated_layer_norm()
    flat = np.array([[[0.5, -0.5] * 4]], "float32")
    wide = np.linspace(-60, 60, 8, dtype="float32")[None, None, :]
    alone = keras.ops.convert_to_numpy(layer(flat, training=False))
    together = keras.ops.convert_to_numpy(
        layer(np.concatenate([flat, wide]), training=False))
    np.testing.assert_array_equal(alone[0], together[0])

    state = keras.ops.convert_to_numpy(layer.ranges["inverse"].range_state)
    _, top = int8_kernels.exact_range(state[0], state[1])
    centered = keras.ops.convert_to_numpy(layer.ranges["centered"](
        flat - flat.mean(), training=False))
    normalized = layer.ranges["normalized"](centered * float(top),
                                            training=False)
    # gamma = 1 and beta = 0 are exact on their grids.
    expected = keras.ops.convert_to_numpy(layer.ranges["output"](
        layer.ranges["scaled"](normalized, training=False), training=False))
    np.testing.assert_allclose(alone, expected, rtol=0, atol=1e-6)
    assert np.abs(alone).max() > 0  # The saturated rsqrt, not zero.


def test_layer_norm_file_normalizes_a_small_variance_as_keras():
    # A variance of about 4e-4 (KerasHub's text embeddings have 5e-4). The
    # saturating rsqrt's GREATER, traced into the file, compared it on the
    # int8 kernel's 1/256 steps: as zero, so every token took the top of
    # the rsqrt's range (49 output steps on DistilBERT's embeddings). The
    # file now has a plain RSQRT, which saturates at zero by itself.
    import kcompress as kc
    import tflite_export as te

    inputs = keras.Input((8, 16))
    model = keras.Model(inputs, keras.layers.LayerNormalization(
        epsilon=1e-12)(inputs))
    x = np.random.default_rng(0).normal(0, 0.02, (32, 8, 16)).astype(
        "float32")
    quantized = kc.quantize_model(model)
    kc.quantization.calibrate(quantized, x)
    tflite = te.convert(quantized, "qat")
    assert te.verify(tflite, quantized, x).max_steps <= 1
    names = [op.name for op in te.inspect(tflite).ops]
    assert "RSQRT" in names and "GREATER" not in names, names


def _layer_norm_then_dense(seed):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((17, 32))
    x = keras.layers.LayerNormalization(epsilon=1e-6)(inputs)
    return keras.Model(inputs, keras.layers.Dense(10)(x))


def _steps_off(quantized, tflite, x):
    """Per value, output steps between the file (XNNPACK, as `verify`
    runs it) and Keras: the larger of an eager call and `predict`."""
    import tflite_export as te

    outputs, scale = te.run_tflite(tflite, [x])
    eager = keras.ops.convert_to_numpy(quantized(x, training=False))
    graph = quantized.predict(x, batch_size=64, verbose=0)
    return np.maximum(np.abs(outputs - eager),
                      np.abs(outputs - graph)) / scale


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="converts in process")
def test_layer_norm_computes_as_the_files_int8_ops(monkeypatch):
    # In inference the layer norm computes the file's MEAN, SUB, MUL,
    # MEAN, ADD, RSQRT, MUL, MUL and ADD as LiteRT does, so a LayerNorm then
    # Dense gives the file's outputs exactly. The fake-quantized float steps
    # were 4 output steps off on these tokens: the int8 RSQRT's fixed-point
    # 1/sqrt rounds a near half step up (11 of 1,088 tokens a step off),
    # and the normalizing MUL, by each token's |d| / std, multiplies it.
    import kcompress as kc
    import tflite_export as te

    model = _layer_norm_then_dense(3)
    rng = np.random.default_rng(3)
    # Tokens of different spreads and offsets.
    x = (rng.normal(size=(64, 17, 32)) * rng.uniform(0.02, 0.5, (64, 17, 1))
         + rng.normal(0, 0.1, (64, 17, 1))).astype("float32")
    quantized = kc.quantize_model(model)
    kc.quantization.calibrate(quantized, x[:32])
    tflite = te.convert(quantized, "qat")
    assert _steps_off(quantized, tflite, x).max() < 0.01
    # The fake-quantized float steps, as before: steps off.
    monkeypatch.setattr(
        composite.QuantizeLayerNormalization, "_as_int8",
        lambda self, x, *args: (x, keras.ops.convert_to_tensor(False)))
    quantized.make_predict_function(force=True)
    assert _steps_off(quantized, tflite, x).max() >= 3.99


def test_rsqrt_table_is_the_kernels_fixed_point():
    # `data` is about 2**20 / sqrt(v), but the kernel's Newton iterations
    # and two roundings put it a unit off exact rounding on 3 of the 254 v:
    # the table holds the kernel's own integers.
    from kcompress.quantization.int8_kernels import fixed_point

    data = np.array(fixed_point.INV_SQRT_DATA[2:], "float64")
    exact = 2.0 ** 20 / np.sqrt(np.arange(2, 256))
    assert np.abs(data - exact).max() < 1.5
    assert np.sum(data != np.floor(exact + 0.5)) == 3
    assert fixed_point.INV_SQRT_DATA[:2] == (2 ** 20, 2 ** 20)
    assert fixed_point.INV_SQRT_DATA[4] == 2 ** 19  # 1 / sqrt(4), exact.
