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
for each), and `xnnpack_sparse_stem` gives a "same"-padded stem the
symmetric padding XNNPACK wants. `benchmarks/xnnpack_sparse.py` measures
what each step is worth.
"""

import keras

from kcompress import _model_utils

__all__ = ["xnnpack_sparse_issues", "xnnpack_sparse_layers",
           "xnnpack_sparse_stem"]

L = keras.layers
SPARSE_ENOUGH = 2.0 / 3.0

# What XNNPACK's NCHW path runs between the stem and the pool.
_NCHW_LAYERS = (L.BatchNormalization, L.ReLU, L.Activation, L.Add,
                L.Dropout, L.Identity, L.InputLayer, L.ZeroPadding2D)


def _is_pointwise(layer):
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
    return [layer.name for layer in _layers(model) if _is_pointwise(layer)]


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
            "padding 1 on every side: use xnnpack_sparse_stem(model).")
    pools = [layer for layer in layers
             if isinstance(layer, L.GlobalAveragePooling2D)]
    if not pools:
        issues.append("No GlobalAveragePooling2D: XNNPACK's NCHW path must "
                      "end in a global average pool (TFLite's MEAN).")
    dense = []  # 1x1 convs not sparse enough: (name, zero fraction)
    for layer in layers:
        if layer is stem or isinstance(layer, (L.GlobalAveragePooling2D,
                                               L.Dense, L.Flatten)):
            continue
        if _is_pointwise(layer):
            zeros = float(keras.ops.mean(keras.ops.cast(
                keras.ops.equal(layer.kernel, 0), "float32")))
            if zeros < min_sparsity:
                dense.append(f"'{layer.name}' ({zeros:.0%})")
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
    if dense:
        shown = ", ".join(dense[:3]) + (", ..." if len(dense) > 3 else "")
        issues.append(
            f"{len(dense)} 1x1 convs hold fewer than {min_sparsity:.0%} "
            f"zeros, from which XNNPACK runs them sparse: {shown}. Prune "
            "the layers xnnpack_sparse_layers(model) names.")
    return issues


def xnnpack_sparse_stem(model):
    """A copy of `model` whose "same"-padded 3x3 stride-2 stem is
    ZeroPadding2D(1) and a "valid" convolution with the same weights.

    The output has the same shape; values at the bottom and right edges
    change (the padding moves by one pixel), so fine-tune afterwards. The
    input model is not modified.
    """
    convs = [layer for layer in _layers(model)
             if isinstance(layer, (L.Conv2D, L.DepthwiseConv2D))]
    stem = convs[0] if convs else None
    if stem is None or not _is_stem(stem) or stem.padding != "same":
        raise ValueError(
            f"Received: model '{model.name}' whose first convolution is "
            f"{stem.name if stem else 'missing'!r}. Expected a 3x3 stride-2 "
            "Conv2D with padding='same' on 3 input channels.")

    def replace(layer):
        if layer is not stem:
            return None
        conv = L.Conv2D.from_config({**layer.get_config(),
                                     "padding": "valid"})
        height, width, channels = layer.input.shape[1:]
        conv.build((None, height + 2, width + 2, channels))
        conv.set_weights(layer.get_weights())
        return [L.ZeroPadding2D(1, name=f"{layer.name}_pad"), conv]

    return _model_utils.expand_layers(model, replace)
