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
