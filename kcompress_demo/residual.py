"""Residual models in the style of MobileNetV2 and ResNet, sized for the
8x8 digits: the acceptance models of channel-group pruning.

Both are functional graphs with merges (residual `Add`s, a projection
shortcut), so channel pruning has to remove the same channels from every
branch of a merge (`kcompress.pruning.channel_groups`).
"""

import keras

from kcompress_demo import zoo

__all__ = ["mobilenet_v2_style", "resnet_style", "vit_style", "MODELS"]

L = keras.layers
# BatchNorm's moving statistics start at mean 0, variance 1, and these
# models train for a few hundred steps on 1,437 digits. At Keras's default
# momentum (0.99) the moving variance was still about 10x the batches' own
# after 270 steps, and inference (which uses it) scored at chance while
# training scored 98%. At 0.9 it settles within a few dozen steps.
_BN_MOMENTUM = 0.9


def _conv_bn(x, filters, name, kernel=3, strides=1, activation="relu"):
    x = L.Conv2D(filters, kernel, strides=strides, padding="same",
                 use_bias=False, name=f"{name}_conv")(x)
    x = L.BatchNormalization(momentum=_BN_MOMENTUM, name=f"{name}_bn")(x)
    if activation:
        x = L.Activation(activation, name=f"{name}_{activation}")(x)
    return x


def _inverted_residual(x, expansion, filters, strides, name):
    """MobileNetV2's block: 1x1 expand, 3x3 depthwise, 1x1 linear project,
    and a residual Add when the shape allows."""
    channels = x.shape[-1]
    y = _conv_bn(x, channels * expansion, f"{name}_expand", kernel=1,
                 activation="relu6")
    y = L.DepthwiseConv2D(3, strides=strides, padding="same", use_bias=False,
                          name=f"{name}_depthwise")(y)
    y = L.BatchNormalization(momentum=_BN_MOMENTUM,
                             name=f"{name}_depthwise_bn")(y)
    y = L.ReLU(6.0, name=f"{name}_depthwise_relu6")(y)
    y = _conv_bn(y, filters, f"{name}_project", kernel=1, activation=None)
    if strides == 1 and channels == filters:
        y = L.Add(name=f"{name}_add")([x, y])
    return y


def mobilenet_v2_style(input_shape=(8, 8, 1), classes=10, seed=0):
    """Stem, five inverted-residual blocks (two with residual Adds), a 1x1
    head conv, global pooling and logits."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(input_shape)
    x = _conv_bn(inputs, 32, "stem", activation="relu6")
    for i, (expansion, filters, strides) in enumerate(
            [(1, 16, 1), (6, 24, 2), (6, 24, 1), (6, 32, 2), (6, 32, 1)]):
        x = _inverted_residual(x, expansion, filters, strides, f"block{i}")
    x = _conv_bn(x, 128, "head", kernel=1, activation="relu6")
    x = L.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, L.Dense(classes, name="logits")(x),
                       name="mobilenet_v2_style")


def _basic_block(x, filters, strides, name):
    y = _conv_bn(x, filters, f"{name}_a", strides=strides)
    y = _conv_bn(y, filters, f"{name}_b", activation=None)
    if strides != 1 or x.shape[-1] != filters:
        x = _conv_bn(x, filters, f"{name}_shortcut", kernel=1,
                     strides=strides, activation=None)
    return L.ReLU(name=f"{name}_out")(L.Add(name=f"{name}_add")([x, y]))


def resnet_style(input_shape=(8, 8, 1), classes=10, seed=0):
    """Stem and four basic blocks (two with projection shortcuts), global
    pooling and logits."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(input_shape)
    x = _conv_bn(inputs, 32, "stem")
    for i, (filters, strides) in enumerate(
            [(32, 1), (32, 1), (64, 2), (64, 1)]):
        x = _basic_block(x, filters, strides, f"block{i}")
    x = L.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, L.Dense(classes, name="logits")(x),
                       name="resnet_style")


def vit_style(input_shape=(8, 8, 1), classes=10, seed=0):
    """The zoo's ViT-style encoder on 2x2 patches of the digits: pre-norm
    attention (4 heads) and GELU MLP blocks with residual adds. Channel-group
    pruning removes attention heads and MLP units; the residual stream
    passes LayerNormalizations and keeps its width."""
    keras.utils.set_random_seed(seed)
    return zoo.vit_encoder(size=input_shape[0], patch=2, dim=32, heads=4,
                           classes=classes, head=None, name="vit_style",
                           channels=input_shape[-1])


MODELS = {"MobileNetV2-style": mobilenet_v2_style,
          "ResNet-style": resnet_style}
