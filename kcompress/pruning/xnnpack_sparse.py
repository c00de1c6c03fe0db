"""Pruning for XNNPACK's sparse float inference, and why a model misses it.

XNNPACK (LiteRT's default CPU delegate) runs a float32 (or float16) graph in
NCHW layout with sparse 1x1 convolutions when, roughly:

- the graph starts with a 3x3 stride-2 convolution on 3 input channels
  with padding 1 on every side (the stem);
- between the stem and the end it holds only what the NCHW path runs: 1x1
  convolutions, 3x3 and 5x5 depthwise convolutions, BatchNorm (folded by
  the converter), element-wise activations and adds;
- it ends in a global average pool (TFLite's MEAN);
- at least 2/3 of the weights of a 1x1 convolution are zero, and the file
  stores them sparse (`tflite_export.convert(..., sparse_encoding=True)`).

TFMOT's `PruneForLatencyOnXNNPack` policy refuses a model that misses any
of these (`keras.applications` MobileNet among them). Here
`xnnpack_sparse_issues` says what a model misses, `xnnpack_sparse_layers`
names the 1x1 convolutions to prune (pass `prune_low_magnitude` a schedule
for each), and `xnnpack_sparse_padding` gives stride-2 convolutions padded
on one side (the stem, `keras.applications`' depthwise blocks) the
symmetric padding XNNPACK wants. `benchmarks/xnnpack_sparse.py` measures
what each step is worth.
"""

import keras

from kcompress import _keras_internals
from kcompress import _model_utils
from kcompress.pruning import masks

__all__ = ["xnnpack_sparse_issues", "xnnpack_sparse_layers",
           "xnnpack_sparse_padding"]

L = keras.layers
SPARSE_ENOUGH = 2.0 / 3.0

# What XNNPACK's NCHW path runs between the stem and the pool.
_NCHW_LAYERS = (L.BatchNormalization, L.ReLU, L.Activation, L.Add,
                L.Dropout, L.Identity, L.InputLayer, L.ZeroPadding2D)
# (a ZeroPadding2D is fused into the convolution after it)


def is_pointwise(layer):
    """Whether `layer` is a 1x1 stride-1 Conv2D, which XNNPACK runs sparse."""
    return (type(layer) is L.Conv2D and tuple(layer.kernel_size) == (1, 1)
            and tuple(layer.strides) == (1, 1)
            and tuple(layer.dilation_rate) == (1, 1)
            and layer.groups == 1)


def _is_stem(layer):
    return (type(layer) is L.Conv2D and tuple(layer.kernel_size) == (3, 3)
            and tuple(layer.strides) == (2, 2)
            and tuple(layer.dilation_rate) == (1, 1)
            and layer.input.shape[-1] == 3)


def _layers(model):
    return [layer for layer in _model_utils.iter_layers(model)
            if not isinstance(layer, keras.Model)]


def xnnpack_sparse_layers(model):
    """Names of the 1x1 convolutions XNNPACK can run sparse: prune these.

    Example:

    >>> model = keras.Sequential([keras.Input((8, 8, 4)),
    ...                           L.Conv2D(8, 1, name="pw"),
    ...                           L.Conv2D(8, 3, name="k3")])
    >>> xnnpack_sparse_layers(model)
    ['pw']
    """
    return [layer.name for layer in _layers(model) if is_pointwise(layer)]


def xnnpack_sparse_issues(model, min_sparsity=SPARSE_ENOUGH):
    """What keeps `model` off XNNPACK's sparse float path ([] if nothing).

    Args:
        model: a Keras model (pruned and stripped, to check the sparsity).
        min_sparsity: the zero fraction a 1x1 convolution needs.

    Returns:
        A list of sentences, each naming a layer and what to change.
    """
    layers = _layers(model)
    issues = []
    convs = [layer for layer in layers
             if isinstance(layer, (L.Conv2D, L.DepthwiseConv2D))]
    stem = convs[0] if convs else None
    if stem is None or not _is_stem(stem):
        issues.append(
            f"The first convolution ({stem.name if stem else 'none'}) is "
            "not a 3x3 stride-2 Conv2D on 3 input channels, which "
            "XNNPACK's NCHW path starts from.")
    elif stem.padding == "same":
        issues.append(
            f"The stem '{stem.name}' pads 'same' at stride 2, which pads "
            "one side only on an even input; XNNPACK's NCHW path wants "
            "padding 1 on every side: use xnnpack_sparse_padding(model).")
    pools = [layer for layer in layers
             if isinstance(layer, L.GlobalAveragePooling2D)]
    if not pools:
        issues.append("No GlobalAveragePooling2D: XNNPACK's NCHW path must "
                      "end in a global average pool (TFLite's MEAN).")
    dense = []  # 1x1 convs not sparse enough: (name, zero fraction)
    one_sided = []  # paddings of stride-2 convolutions on one side only
    for layer in layers:
        if layer is stem or isinstance(layer, (L.GlobalAveragePooling2D,
                                               L.Dense, L.Flatten)):
            continue
        if is_pointwise(layer):
            zeros = masks.sparsity_of(layer.kernel)
            if zeros < min_sparsity:
                dense.append(f"'{layer.name}' ({zeros:.0%})")
        elif _one_sided(layer):
            one_sided.append(f"'{layer.name}'")
        elif isinstance(layer, L.DepthwiseConv2D):
            if tuple(layer.kernel_size) not in ((3, 3), (5, 5)) or (
                    layer.depth_multiplier != 1):
                issues.append(
                    f"Depthwise conv '{layer.name}' is "
                    f"{layer.kernel_size} with multiplier "
                    f"{layer.depth_multiplier}; XNNPACK's NCHW path runs "
                    "3x3 and 5x5 with multiplier 1.")
        elif not isinstance(layer, _NCHW_LAYERS) and pools:
            issues.append(
                f"Layer '{layer.name}' ({type(layer).__name__}) is outside "
                "what XNNPACK's NCHW path runs (1x1 and depthwise "
                "convolutions, BatchNorm, activations, adds).")
    if one_sided:
        shown = ", ".join(one_sided[:3]) + (
            ", ..." if len(one_sided) > 3 else "")
        issues.append(
            f"{len(one_sided)} layers pad a stride-2 3x3 convolution on one "
            f"side only ({shown}); XNNPACK's NCHW path wants padding 1 on "
            "every side: use xnnpack_sparse_padding(model).")
    if dense:
        shown = ", ".join(dense[:3]) + (", ..." if len(dense) > 3 else "")
        issues.append(
            f"{len(dense)} 1x1 convs hold fewer than {min_sparsity:.0%} "
            f"zeros, from which XNNPACK runs them sparse: {shown}. Prune "
            "the layers xnnpack_sparse_layers(model) names.")
    return issues


def _strided_3x3(layer):
    return (isinstance(layer, (L.Conv2D, L.DepthwiseConv2D))
            and tuple(layer.kernel_size) == (3, 3)
            and tuple(layer.strides) == (2, 2))


def _one_sided(layer):
    """Whether `layer` pads a stride-2 3x3 convolution on one side only: a
    "same" padding (on an even input), or a ZeroPadding2D of
    ((0, 1), (0, 1)) before a "valid" one (keras.applications' blocks)."""
    if _strided_3x3(layer):
        return layer.padding == "same"
    if isinstance(layer, L.ZeroPadding2D) and tuple(
            map(tuple, layer.padding)) == ((0, 1), (0, 1)):
        return any(_strided_3x3(node.operation)
                   for node in _keras_internals.outbound_nodes(layer))
    return False


def _symmetric(layer):
    """The layers to put in place of a one-sided padding."""
    if isinstance(layer, L.ZeroPadding2D):
        return [L.ZeroPadding2D(1, name=layer.name)]
    new = type(layer).from_config({**layer.get_config(), "padding": "valid"})
    height, width, channels = layer.input.shape[1:]
    new.build((None, height + 2, width + 2, channels))
    new.set_weights(layer.get_weights())
    return [L.ZeroPadding2D(1, name=f"{layer.name}_pad"), new]


def xnnpack_sparse_padding(model):
    """A copy of `model` whose stride-2 3x3 convolutions pad 1 on every
    side, as XNNPACK's NCHW path needs.

    TensorFlow's "same" padding at stride 2 on an even input, and the
    ZeroPadding2D(((0, 1), (0, 1))) that `keras.applications` puts before
    its stride-2 depthwise convolutions, pad the bottom and right only.
    This copy pads 1 on every side instead (a ZeroPadding2D(1) and a
    "valid" convolution with the same weights). The output shapes are the
    same; the values move by one pixel at the edges of those layers, so
    fine-tune afterwards. The input model is not modified.

    Raises:
        ValueError: when no stride-2 3x3 convolution pads one side only.
    """
    one_sided = [layer.name for layer in _layers(model) if _one_sided(layer)]
    if not one_sided:
        raise ValueError(
            f"Received: model '{model.name}' with no stride-2 3x3 "
            "convolution padded on one side only. Expected a 'same'-padded "
            "one or a ZeroPadding2D(((0, 1), (0, 1))) before a 'valid' one.")
    return _model_utils.expand_layers(
        model, lambda layer: _symmetric(layer)
        if layer.name in one_sided else None)
