"""Small random-weight keras-hub backbones, for conformance and tracing.

Each builder constructs a keras-hub backbone class directly with a tiny
config (no presets, no downloads): vision models take 32x32 RGB images,
text models take 16 token ids (vocabulary 100, 2 layers, hidden size 32).
keras-hub is an optional dependency (the `hub` extra); it is imported on
first use, so importing this module costs nothing.

`model(name)` adds a small classifier head in two shapes:

- flat (`nested=False`): a functional model built on the backbone's own
  graph tensors, so the backbone's layers appear at the top level;
- nested (`nested=True`): `keras.Model(inputs, head(backbone(inputs)))`,
  with the whole backbone as one layer.

Example:

>>> import kcompress_demo.hub_zoo as hub_zoo
>>> hub_zoo.NAMES["text"]
['BertBackbone', 'DistilBertBackbone', 'RobertaBackbone']
"""

import keras
import numpy as np
from keras import layers

VISION = ["MobileNetBackbone", "EfficientNetBackbone", "ResNetBackbone",
          "CSPNetBackbone", "HGNetV2Backbone", "ViTBackbone", "DeiTBackbone",
          "MiTBackbone"]
TEXT = ["BertBackbone", "DistilBertBackbone", "RobertaBackbone"]
NAMES = {"vision": VISION, "text": TEXT}
# keras-hub 0.32 has no MobileNetV3Backbone: `MobileNetBackbone` builds V1 to
# V3 from its config, and the config below is a MobileNetV3-style one.
ALIASES = {"MobileNetV3Backbone": "MobileNetBackbone"}

IMAGE_SIZE = 32
VOCABULARY = 100
SEQUENCE_LENGTH = 16
VISION_CLASSES = 10
TEXT_CLASSES = 3

_TEXT = dict(vocabulary_size=VOCABULARY, num_layers=2, num_heads=2,
             hidden_dim=32, intermediate_dim=64,
             max_sequence_length=SEQUENCE_LENGTH)


def _mobilenet(size):
    # Two V3 stacks: a ReLU one without squeeze-excite, a hard-swish one with.
    return dict(
        stackwise_expansion=[[32, 48], [64, 64]],
        stackwise_num_blocks=[2, 2],
        stackwise_num_filters=[[16, 16], [24, 24]],
        stackwise_kernel_size=[[3, 3], [5, 5]],
        stackwise_num_strides=[[2, 1], [2, 1]],
        stackwise_se_ratio=[[None, None], [0.25, 0.25]],
        stackwise_activation=[["relu", "relu"], ["hard_swish", "hard_swish"]],
        stackwise_padding=[[1, 1], [2, 2]],
        output_num_filters=64, depthwise_filters=16, depthwise_stride=1,
        depthwise_residual=False, last_layer_filter=64,
        squeeze_and_excite=0.5, image_shape=(size, size, 3))


def _efficientnet(size):
    # One stack of each block class: CBABlock, FusedMBConvBlock, MBConvBlock.
    return dict(
        width_coefficient=1.0, depth_coefficient=1.0,
        stackwise_kernel_sizes=[3, 3, 3],
        stackwise_num_repeats=[1, 2, 2],
        stackwise_input_filters=[16, 16, 24],
        stackwise_output_filters=[16, 24, 32],
        stackwise_expansion_ratios=[1, 4, 4],
        stackwise_squeeze_and_excite_ratios=[0.0, 0.0, 0.25],
        stackwise_strides=[1, 2, 2],
        stackwise_block_types=["cba", "fused", "unfused"],
        stackwise_force_input_filters=[0, 0, 0],
        stackwise_nores_option=[False, False, False],
        input_shape=(size, size, 3))
    # `num_features` (the top conv's width) stays at its default of 1280:
    # keras-hub 0.32's get_config() omits it, so a smaller value would not
    # survive from_config (clone_model, saving) of the nested model.


def _resnet(size):
    # keras-hub requires 64 filters in the first stack, and its first basic
    # block (stride 1, no projection) needs a 64-channel stem to add to.
    return dict(input_conv_filters=[64], input_conv_kernel_sizes=[3],
                stackwise_num_filters=[64, 32], stackwise_num_blocks=[1, 1],
                stackwise_num_strides=[1, 2], block_type="basic_block",
                use_pre_activation=False, image_shape=(size, size, 3))


def _cspnet(size):
    # The max-pooled stem of the CSPDarkNet presets: it pads with -inf.
    return dict(stem_filters=16, stem_kernel_size=3, stem_strides=4,
                stem_pooling="max",
                stackwise_depth=[1, 1], stackwise_strides=[1, 2],
                stackwise_num_filters=[16, 32], block_type="bottleneck_block",
                stage_type="csp", expand_ratio=2.0,
                image_shape=(size, size, 3))


def _hgnetv2(size):
    # Stage tuples: (in, mid, out, blocks, layers per block, kernel size).
    return dict(depths=[1, 1], embedding_size=16, hidden_sizes=[32, 48],
                stem_channels=[3, 8, 16], hidden_act="relu",
                use_learnable_affine_block=True,
                stackwise_stage_filters=[(16, 8, 32, 1, 2, 3),
                                         (32, 16, 48, 1, 2, 3)],
                apply_downsample=[False, True],
                use_lightweight_conv_block=[False, True],
                image_shape=(size, size, 3))


def _vit(size):
    return dict(image_shape=(size, size, 3), patch_size=8, num_layers=2,
                num_heads=2, hidden_dim=32, mlp_dim=64)


def _deit(size):
    return dict(image_shape=(size, size, 3), patch_size=8, num_layers=2,
                num_heads=2, hidden_dim=32, intermediate_dim=64)


def _mit(size):
    return dict(layerwise_depths=[1, 1], num_layers=2,
                layerwise_num_heads=[1, 2], layerwise_sr_ratios=[2, 1],
                max_drop_path_rate=0.1, layerwise_patch_sizes=[7, 3],
                layerwise_strides=[4, 2], hidden_dims=[16, 32],
                image_shape=(size, size, 3))


_CONFIGS = {
    "MobileNetBackbone": _mobilenet,
    "EfficientNetBackbone": _efficientnet,
    "ResNetBackbone": _resnet,
    "CSPNetBackbone": _cspnet,
    "HGNetV2Backbone": _hgnetv2,
    "ViTBackbone": _vit,
    "DeiTBackbone": _deit,
    "MiTBackbone": _mit,
    "BertBackbone": lambda size: dict(_TEXT),
    "DistilBertBackbone": lambda size: dict(_TEXT),
    "RobertaBackbone": lambda size: dict(_TEXT),
}


def _canonical(name):
    name = ALIASES.get(name, name)
    if name not in _CONFIGS:
        raise KeyError(f"unknown backbone {name!r}; one of {VISION + TEXT}")
    return name


def backbone(name, image_size=IMAGE_SIZE):
    """A `keras_hub.models.<name>` with a small config and random weights.

    `image_size` sets vision models' square input (text models ignore it).
    """
    import keras_hub

    name = _canonical(name)
    return getattr(keras_hub.models, name)(**_CONFIGS[name](image_size))


def _features(outputs):
    """The one tensor a head reads from a backbone's output structure:
    BERT's `pooled_output` (its first token through a tanh Dense, so every
    backbone layer is in the flat graph), else a dict's last entry (the
    deepest feature map of HGNetV2's stages)."""
    if isinstance(outputs, dict):
        if "pooled_output" in outputs:
            return outputs["pooled_output"]
        return outputs[list(outputs)[-1]]
    return outputs


def _head(features, classes):
    """Global average pooling over space or tokens (none for a pooled
    vector), then a softmax Dense layer."""
    x = features
    if len(x.shape) == 4:
        x = layers.GlobalAveragePooling2D(name="head_pool")(x)
    elif len(x.shape) == 3:
        x = layers.GlobalAveragePooling1D(name="head_pool")(x)
    return layers.Dense(classes, activation="softmax", name="head")(x)


def model(name, nested=False, image_size=IMAGE_SIZE):
    """A classifier on a fresh `backbone(name)`: flat or nested (see the
    module docstring). Vision models have 10 classes, text models 3."""
    name = _canonical(name)
    net = backbone(name, image_size)
    classes = TEXT_CLASSES if name in TEXT else VISION_CLASSES
    if not nested:
        outputs = _head(_features(net.output), classes)
        return keras.Model(net.input, outputs, name=f"{name}_flat")
    spec = net.input
    if isinstance(spec, dict):
        inputs = {key: keras.Input(tensor.shape[1:], dtype=tensor.dtype,
                                   name=key) for key, tensor in spec.items()}
    else:
        inputs = keras.Input(spec.shape[1:], dtype=spec.dtype,
                             name=spec.name)
    outputs = _head(_features(net(inputs)), classes)
    return keras.Model(inputs, outputs, name=f"{name}_nested")


def sample_inputs(name, n=4, seed=0, image_size=IMAGE_SIZE):
    """`n` random inputs for `model(name)` / `backbone(name)` as numpy:
    float32 images in [0, 1], or for text a dict keyed by the model's input
    names of int32 token ids in [1, VOCABULARY) and a padding mask whose
    rows have 4 to 16 real tokens (BERT also gets all-zero segment ids)."""
    name = _canonical(name)
    rng = np.random.default_rng(seed)
    if name in VISION:
        shape = (n, image_size, image_size, 3)
        return rng.uniform(0.0, 1.0, shape).astype("float32")
    lengths = rng.integers(4, SEQUENCE_LENGTH + 1, size=(n, 1))
    mask = (np.arange(SEQUENCE_LENGTH)[None, :] < lengths).astype("int32")
    ids = rng.integers(1, VOCABULARY, size=(n, SEQUENCE_LENGTH))
    inputs = {"token_ids": (ids * mask).astype("int32"), "padding_mask": mask}
    if name == "BertBackbone":
        inputs["segment_ids"] = np.zeros_like(mask)
    return inputs
