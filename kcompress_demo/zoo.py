"""Real architectures at small inputs, with random weights, for conformance.

Each builder returns a built Keras 3 model with no downloaded weights:
`keras.applications` families at their smallest practical input, and models
written in their style (a ViT-style encoder, a Conv1D text classifier on an
`Embedding`, LSTM and GRU sequence classifiers). The tests and
`benchmarks/model_zoo.py` run every compression technique on them.

Example:

>>> import kcompress_demo.zoo as zoo
>>> sorted(zoo.MODELS)[:3]
['Conv1DText', 'ConvNeXtTiny', 'DenseNet121']
"""

import keras
from keras import layers
from keras import ops

CLASSES = 10


def _application(name, default_size, **kwargs):
    def build(size=None, classes=CLASSES, head="softmax"):
        factory = getattr(keras.applications, name)
        size = size or default_size
        return factory(input_shape=(size, size, 3), weights=None,
                       classes=classes, classifier_activation=head, **kwargs)
    return build


def vit_encoder(size=32, patch=8, dim=32, heads=2, depth=2,
                classes=CLASSES, head="softmax", name="vit_encoder",
                channels=3):
    """A small ViT-style encoder: patch-embedding conv, learned position
    embedding fed by `ops.arange`, pre-norm `MultiHeadAttention` blocks with
    GELU MLPs and residual adds, mean pooling and a classifier."""
    inputs = keras.Input((size, size, channels))
    x = layers.Conv2D(dim, patch, strides=patch, name="patch_embed")(inputs)
    tokens = (size // patch) ** 2
    x = layers.Reshape((tokens, dim))(x)
    positions = ops.arange(tokens)
    x = x + layers.Embedding(tokens, dim, name="position_embed")(positions)
    for i in range(depth):
        y = layers.LayerNormalization(epsilon=1e-6, name=f"ln1_{i}")(x)
        y = layers.MultiHeadAttention(heads, dim // heads,
                                      name=f"attention_{i}")(y, y)
        x = layers.Add(name=f"residual1_{i}")([x, y])
        y = layers.LayerNormalization(epsilon=1e-6, name=f"ln2_{i}")(x)
        y = layers.Dense(dim * 2, activation="gelu", name=f"mlp1_{i}")(y)
        y = layers.Dense(dim, name=f"mlp2_{i}")(y)
        x = x + y
    x = layers.LayerNormalization(epsilon=1e-6, name="ln_final")(x)
    x = ops.mean(x, axis=1)
    outputs = layers.Dense(classes, activation=head, name="head")(x)
    return keras.Model(inputs, outputs, name=name)


def conv1d_text(length=32, vocabulary=200, classes=CLASSES,
                name="conv1d_text"):
    """A Conv1D text classifier on an `Embedding`."""
    inputs = keras.Input((length,), dtype="int32")
    x = layers.Embedding(vocabulary, 16, name="embedding")(inputs)
    x = layers.Conv1D(32, 5, activation="relu", name="conv1")(x)
    x = layers.MaxPooling1D(2)(x)
    x = layers.Conv1D(32, 3, activation="relu", name="conv2")(x)
    x = layers.GlobalAveragePooling1D()(x)
    x = layers.Dropout(0.2)(x)
    outputs = layers.Dense(classes, activation="softmax", name="head")(x)
    return keras.Model(inputs, outputs, name=name)


def recurrent(cell="LSTM", length=16, features=8, units=32, classes=CLASSES):
    """An LSTM or GRU sequence classifier with a fixed batch size of 1, so
    the converter can emit TFLite's fused sequence kernels."""
    inputs = keras.Input((length, features), batch_size=1)
    x = getattr(layers, cell)(units, name=cell.lower())(inputs)
    x = layers.Dense(32, activation="relu", name="hidden")(x)
    outputs = layers.Dense(classes, activation="softmax", name="head")(x)
    return keras.Model(inputs, outputs, name=f"{cell.lower()}_classifier")


def resnet_mini(size=32, classes=CLASSES, head="softmax",
                name="resnet_mini"):
    """A ResNet built from ResNet50's own residual blocks (v1, bottleneck),
    one block per stage at a quarter of the width: the same graph pattern
    at a size a test can train."""
    from keras.src.applications import resnet

    def stack_fn(x):
        x = resnet.stack_residual_blocks_v1(x, 16, 1, stride1=1,
                                            name="conv2")
        x = resnet.stack_residual_blocks_v1(x, 32, 1, name="conv3")
        return resnet.stack_residual_blocks_v1(x, 64, 1, name="conv4")

    return resnet.ResNet(stack_fn, False, True, weights=None,
                         input_shape=(size, size, 3), classes=classes,
                         classifier_activation=head, name=name)


MODELS = {
    "MobileNetV2": _application("MobileNetV2", 96, alpha=0.35),
    "MobileNetV3Small": _application("MobileNetV3Small", 64),
    "MobileNetV3Large": _application("MobileNetV3Large", 64),
    "EfficientNetB0": _application("EfficientNetB0", 64),
    "EfficientNetV2B0": _application("EfficientNetV2B0", 64),
    "ResNet50": _application("ResNet50", 64),
    "ResNet50V2": _application("ResNet50V2", 64),
    "DenseNet121": _application("DenseNet121", 64),
    "NASNetMobile": _application("NASNetMobile", 64),
    "ConvNeXtTiny": _application("ConvNeXtTiny", 64),
    "ResNetMini": lambda size=None, classes=CLASSES, head="softmax": (
        resnet_mini(size or 32, classes=classes, head=head)),
    "ViTEncoder": lambda size=None, classes=CLASSES, head="softmax": (
        vit_encoder(size or 32, classes=classes, head=head)),
    "Conv1DText": lambda size=None, classes=CLASSES, head="softmax": (
        conv1d_text(classes=classes)),
    "LSTM": lambda size=None, classes=CLASSES, head="softmax": (
        recurrent("LSTM", classes=classes)),
    "GRU": lambda size=None, classes=CLASSES, head="softmax": (
        recurrent("GRU", classes=classes)),
}

# The smallest input each keras.applications family accepts.
SMALLEST = 32


def build(name, size=None, classes=CLASSES, head="softmax"):
    """The model called `name` in `MODELS`.

    Args:
        name: a key of `MODELS`.
        size: image side for the image models (their benchmark size when
            None; `SMALLEST` is the smallest all of them accept).
        classes: number of output classes.
        head: the classifier's activation; None for logits (the image
            models and the ViT encoder).
    """
    if name not in MODELS:
        raise ValueError(
            f"Received: name={name!r}. Expected one of {sorted(MODELS)}.")
    return MODELS[name](size, classes=classes, head=head)


def digits_images(size=SMALLEST):
    """scikit-learn's 1797 real 8x8 digits as `size`x`size` RGB images in
    [0, 255] (nearest upscaling), split 80/20 with a fixed seed:
    `(x_train, y_train, x_test, y_test)`."""
    import numpy as np
    from sklearn.datasets import load_digits

    digits = load_digits()
    factor = -(-size // 8)
    images = np.kron(digits.images, np.ones((factor, factor)))[
        :, :size, :size] * (255.0 / 16.0)
    images = np.repeat(images[..., None], 3, axis=-1).astype("float32")
    order = np.random.default_rng(0).permutation(len(images))
    cut = int(0.8 * len(images))
    train, test = order[:cut], order[cut:]
    labels = digits.target.astype("int32")
    return images[train], labels[train], images[test], labels[test]


def sample_inputs(model, count=8, seed=0):
    """Random inputs that suit `model` (token ids for integer inputs)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    spec = model.inputs[0]
    shape = (count,) + tuple(spec.shape[1:])
    if "int" in str(spec.dtype):
        return rng.integers(0, 100, size=shape).astype("int32")
    if spec.shape[0] is not None:
        shape = (spec.shape[0] * count,) + shape[1:]
    return rng.uniform(0, 1, size=shape).astype("float32")
