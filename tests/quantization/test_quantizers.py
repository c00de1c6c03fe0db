import numpy as np
from keras import ops

from kcompress.quantization import quantizers


def _np(x):
    return ops.convert_to_numpy(x)


def test_per_tensor_weight_is_symmetric_narrow_range():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(16, 8)).astype("float32")
    q = _np(quantizers.fake_quant_weight(w))
    scale = np.abs(w).max() / 127
    levels = np.round(q / scale)
    np.testing.assert_allclose(q, levels * scale, atol=1e-6)
    assert levels.min() >= -127 and levels.max() <= 127
    assert np.abs(q - w).max() <= scale / 2 + 1e-6


def test_per_channel_uses_each_channels_range():
    w = np.stack([np.linspace(-1, 1, 9), np.linspace(-0.01, 0.01, 9)],
                 axis=-1).reshape(3, 3, 1, 2).astype("float32")
    q = _np(quantizers.fake_quant_weight(w, axis=-1))
    for channel in range(2):
        scale = np.abs(w[..., channel]).max() / 127
        assert np.abs(q[..., channel] - w[..., channel]).max() <= (
            scale / 2 + 1e-7)


def test_depthwise_is_per_output_channel():
    rng = np.random.default_rng(1)
    w = rng.normal(size=(3, 3, 4, 2)).astype("float32")
    w[..., 1, 0] *= 100  # one output channel with a much larger range
    q = _np(quantizers.fake_quant_weight(w, quantizers.DEPTHWISE))
    small = np.abs(w[..., 0, 0]).max() / 127
    assert np.abs(q[..., 0, 0] - w[..., 0, 0]).max() <= small / 2 + 1e-6


def test_all_zero_channel_stays_zero_with_a_sane_range():
    w = np.zeros((3, 3, 2, 2), "float32")
    w[..., 0] = 0.5
    q = _np(quantizers.fake_quant_weight(w, axis=-1))
    assert (q[..., 1] == 0).all()
    np.testing.assert_allclose(q[..., 0], 0.5, atol=1e-6)


def test_zero_weights_stay_exactly_zero():
    rng = np.random.default_rng(2)
    w = rng.normal(size=(8, 8)).astype("float32")
    w[w < 0.3] = 0
    q = _np(quantizers.fake_quant_weight(w))
    assert ((q == 0) == (w == 0)).all()


