"""The composite QAT layers compute what TFLite's int8 ops compute."""

import keras
import numpy as np

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
