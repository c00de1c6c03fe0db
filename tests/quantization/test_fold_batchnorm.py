"""Conv + BatchNorm folding for QAT, and back to one float conv."""

import keras
import numpy as np

from kcompress.quantization import fold_batchnorm

L = keras.layers


def _trained_pair(conv):
    x = np.random.default_rng(0).normal(size=(16, 6, 6, 3)).astype("float32")
    bn = L.BatchNormalization()
    y = conv(x)
    bn(y, training=True)  # build
    rng = np.random.default_rng(1)
    channels = y.shape[-1]
    bn.set_weights([rng.uniform(0.5, 2.0, channels).astype("float32"),
                    rng.normal(size=channels).astype("float32"),
                    rng.normal(size=channels).astype("float32"),
                    rng.uniform(0.5, 2.0, channels).astype("float32")])
    return x, bn


def test_which_pairs_fold():
    bn = L.BatchNormalization()
    conv = L.Conv2D(4, 3)
    conv.build((None, 6, 6, 3))
    assert fold_batchnorm.can_fold(conv, bn)
    relu_conv = L.Conv2D(4, 3, activation="relu")
    relu_conv.build((None, 6, 6, 3))
    assert not fold_batchnorm.can_fold(relu_conv, bn)  # BN after the ReLU
    transposed = L.Conv2DTranspose(4, 3)
    transposed.build((None, 6, 6, 3))
    assert not fold_batchnorm.can_fold(transposed, bn)
    assert not fold_batchnorm.can_fold(L.Dense(4), bn)


def test_folded_float_conv_equals_conv_then_batchnorm():
    keras.utils.set_random_seed(0)
    for conv in (L.Conv2D(4, 3), L.DepthwiseConv2D(3)):
        x, bn = _trained_pair(conv)
        expected = keras.ops.convert_to_numpy(bn(conv(x), training=False))
        folded = fold_batchnorm.fold_pair(conv, bn)
        folded(x)  # build
        got = keras.ops.convert_to_numpy(folded.to_float_conv()(x))
        np.testing.assert_allclose(got, expected, atol=1e-4)


def test_folded_qat_layer_is_within_int8_error():
    keras.utils.set_random_seed(0)
    conv = L.Conv2D(4, 3)
    x, bn = _trained_pair(conv)
    expected = keras.ops.convert_to_numpy(bn(conv(x), training=False))
    folded = fold_batchnorm.fold_pair(conv, bn, output_quantized=False)
    got = keras.ops.convert_to_numpy(folded(x, training=False))
    # Only the 8-bit per-channel kernel differs: a small relative error.
    assert np.max(np.abs(got - expected)) <= 0.02 * np.max(np.abs(expected))


def test_config_round_trips():
    conv = L.Conv2D(4, 3)
    _, bn = _trained_pair(conv)
    folded = fold_batchnorm.fold_pair(conv, bn)
    again = fold_batchnorm.QuantizeConvBatchNorm.from_config(
        folded.get_config())
    assert again.get_config() == folded.get_config()
