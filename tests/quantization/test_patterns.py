"""Graph patterns TFLite fuses: fold pairs, fused activations, separables."""

import keras
import numpy as np

from kcompress.quantization import patterns
from kcompress.quantization.quantize_config import default_quantize_config

L = keras.layers


def resolve(layer):
    return layer, default_quantize_config(layer)


def _conv_bn_relu(shared_conv=False):
    inputs = keras.Input((8, 8, 3))
    conv = L.Conv2D(4, 3, name="conv")(inputs)
    bn = L.BatchNormalization(name="bn")(conv)
    x = L.ReLU(name="relu")(bn)
    if shared_conv:  # the conv also feeds another branch
        x = L.Add(name="add")([x, conv])
    return keras.Model(inputs, x)


def test_producer_is_the_single_feeding_layer():
    model = _conv_bn_relu()
    assert patterns.producer(model.get_layer("bn")) is model.get_layer("conv")


def test_conv_batchnorm_pair_found_only_when_the_conv_feeds_nothing_else():
    model = _conv_bn_relu()
    pairs = patterns.fold_pairs(model, resolve)
    conv, bn = model.get_layer("conv"), model.get_layer("bn")
    assert pairs[id(conv)] is bn and pairs[id(bn)] is conv
    assert patterns.fold_pairs(_conv_bn_relu(shared_conv=True), resolve) == {}


def test_relu_after_batchnorm_is_fused():
    model = _conv_bn_relu()
    assert id(model.get_layer("bn")) in patterns.fused_producers(model,
                                                                 resolve)


def test_which_activations_tflite_fuses():
    assert patterns.is_fusable_activation(L.ReLU())
    assert patterns.is_fusable_activation(L.ReLU(max_value=6.0))
    assert patterns.is_fusable_activation(L.Activation("relu6"))
    assert not patterns.is_fusable_activation(L.ReLU(negative_slope=0.1))
    assert not patterns.is_fusable_activation(L.ReLU(max_value=4.0))
    assert not patterns.is_fusable_activation(L.Activation("sigmoid"))


def test_without_output_keeps_the_weights():
    config = default_quantize_config(L.Conv2D(2, 3))
    stripped = patterns.without_output(config)
    assert stripped.weights == config.weights
    assert not stripped.quantize_output


def test_separable_split_equals_the_separable_conv():
    keras.utils.set_random_seed(0)
    separable = L.SeparableConv2D(5, 3, padding="same", depth_multiplier=2,
                                  activation="relu")
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 3)).astype("float32")
    expected = keras.ops.convert_to_numpy(separable(x))
    depthwise, pointwise = patterns.split_separable(separable)
    assert isinstance(depthwise, L.DepthwiseConv2D)
    assert isinstance(pointwise, L.Conv2D) and pointwise.kernel_size == (1, 1)
    got = keras.ops.convert_to_numpy(pointwise(depthwise(x)))
    np.testing.assert_allclose(got, expected, atol=1e-5)
