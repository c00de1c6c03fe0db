"""Composite (subclassed) layers as users write them, for the tests.

A conv block of Conv2D, BatchNormalization and ReLU6 with and without a
`build()` of its own (Keras warns about the second but runs it), a
squeeze-and-excite block whose `call` uses `keras.ops`, a ViT-style patch
embedding that owns a class token and a position table, a block that
keeps a variable of its own in a list (a layer scale), which cannot be
flattened, and a custom layer with a kernel of its own.
"""

import keras
from keras import layers
from keras import ops


class ConvBlock(layers.Layer):
    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.conv = layers.Conv2D(filters, 3, padding="same", use_bias=False)
        self.bn = layers.BatchNormalization()
        self.act = layers.ReLU(6.0)

    def build(self, input_shape):
        self.conv.build(input_shape)
        self.bn.build(self.conv.compute_output_shape(input_shape))

    def call(self, x, training=None):
        return self.act(self.bn(self.conv(x), training=training))

    def compute_output_shape(self, input_shape):
        return self.conv.compute_output_shape(input_shape)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}


class ConvBlockNoBuild(ConvBlock):
    """The same block, built only when Keras first runs it."""

    build = layers.Layer.build


class SqueezeExcite(layers.Layer):
    def __init__(self, channels, ratio=4, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.ratio = ratio
        self.squeeze = layers.Dense(channels // ratio, activation="relu")
        self.excite = layers.Dense(channels, activation="sigmoid")

    def call(self, x):
        gate = self.excite(self.squeeze(ops.mean(x, axis=(1, 2))))
        return x * ops.reshape(gate, (-1, 1, 1, self.channels))

    def get_config(self):
        return {**super().get_config(), "channels": self.channels,
                "ratio": self.ratio}


class ScaledDense(layers.Layer):
    """A Dense sublayer times a trained scale the block owns itself and
    keeps in a list: no attribute holds it, so it cannot be flattened."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.dense = layers.Dense(units)
        self.scales = [self.add_weight(shape=(units,), initializer="ones",
                                       name="scale")]

    def call(self, x):
        return self.dense(x) * self.scales[0]

    def get_config(self):
        return {**super().get_config(), "units": self.units}


class TokenEmbedding(layers.Layer):
    """ViT's patch embedding as a user writes it: a Conv2D over patches, a
    class token the block owns, tiled to the batch size read with
    `ops.shape` and put in front, and a position table it owns added."""

    def __init__(self, dim, patch, **kwargs):
        super().__init__(**kwargs)
        self.dim = dim
        self.patch = patch
        self.conv = layers.Conv2D(dim, patch, strides=patch, name="patches")

    def build(self, input_shape):
        self.conv.build(input_shape)
        patches = (input_shape[1] // self.patch) * (input_shape[2]
                                                   // self.patch)
        self.token = self.add_weight(shape=(1, 1, self.dim),
                                     initializer="random_normal",
                                     name="token")
        self.position = self.add_weight(shape=(1, patches + 1, self.dim),
                                        initializer="random_normal",
                                        name="position")

    def call(self, x):
        x = self.conv(x)
        shape = ops.shape(x)
        x = ops.reshape(x, (shape[0], -1, self.dim))
        token = ops.tile(self.token, (shape[0], 1, 1))
        return ops.concatenate([token, x], axis=1) + self.position

    def get_config(self):
        return {**super().get_config(), "dim": self.dim,
                "patch": self.patch}


class OwnKernel(layers.Layer):
    """A custom layer with a kernel of its own and no sublayers."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units),
                                      name="kernel")

    def call(self, x):
        return ops.matmul(x, self.kernel)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def blocks_model(no_build=False, size=16):
    """Three conv blocks and a squeeze-and-excite block, then a head."""
    block = ConvBlockNoBuild if no_build else ConvBlock
    inputs = keras.Input((size, size, 3))
    x = block(8, name="block1")(inputs)
    x = block(16, name="block2")(x)
    x = SqueezeExcite(16, name="se")(x)
    x = block(16, name="block3")(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(10, name="head")(x)
    return keras.Model(inputs, outputs, name="blocks")


def scaled_model(middle=ScaledDense):
    """A model whose one composite cannot be flattened (or, with
    `middle=OwnKernel`, whose custom layer has its own kernel)."""
    inputs = keras.Input((8,))
    x = layers.Dense(16, name="first")(inputs)
    x = middle(16, name="scaled")(x)
    outputs = layers.Dense(4, name="last")(x)
    return keras.Model(inputs, outputs, name="scaled_model")


def token_model(size=16):
    """A ViT-style model: the patch embedding above, a layer norm and a
    Dense per token, pooled, then a head."""
    inputs = keras.Input((size, size, 3))
    x = TokenEmbedding(16, 4, name="embed")(inputs)
    x = layers.LayerNormalization(name="norm")(x)
    x = layers.Dense(16, activation="relu", name="mlp")(x)
    x = layers.GlobalAveragePooling1D()(x)
    outputs = layers.Dense(10, name="head")(x)
    return keras.Model(inputs, outputs, name="tokens")
