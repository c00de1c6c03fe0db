"""Which weights of which layers can be pruned.

Built-in layers are listed in a table. A custom layer opts in by implementing
the `PrunableLayer` protocol: a `get_prunable_weights()` method that returns
the variables to prune. A layer that owns such layers (MultiHeadAttention,
TimeDistributed, a composite layer that cannot be flattened into the graph)
prunes their weights: the wrapper masks them while the layer runs.
"""

from keras import layers

from kcompress import _keras_internals

__all__ = ["PrunableLayer", "is_prunable", "prunable_weights", "group_axis"]


class PrunableLayer:
    """Mixin (or duck-typed protocol) for custom layers that can be pruned.

    Implement `get_prunable_weights()` to return the variables to prune. The
    wrapper masks each of them in the forward pass. For `sparsity_m_by_n`, the
    groups run along the second-to-last axis (Keras's `(..., in, out)`
    convention); override `get_m_by_n_axis(weight)` to choose another axis.

    Example:

    >>> import keras
    >>> class Scale(keras.layers.Layer, PrunableLayer):
    ...     def build(self, input_shape):
    ...         self.w = self.add_weight(shape=(input_shape[-1], 4))
    ...     def call(self, x):
    ...         return x @ self.w
    ...     def get_prunable_weights(self):
    ...         return [self.w]
    >>> is_prunable(Scale())
    True
    """

    def get_prunable_weights(self):
        raise NotImplementedError(
            f"{type(self).__name__} must implement get_prunable_weights()."
        )


# (layer classes, ((weight attribute, m_by_n group axis or None), ...)).
# Order matters: subclasses come before their bases.
_BUILTIN = (
    ((layers.SeparableConv1D, layers.SeparableConv2D),
     (("depthwise_kernel", None), ("pointwise_kernel", -2))),
    ((layers.DepthwiseConv1D, layers.DepthwiseConv2D), (("kernel", None),)),
    ((layers.Conv1DTranspose, layers.Conv2DTranspose, layers.Conv3DTranspose),
     (("kernel", -1),)),
    ((layers.Conv1D, layers.Conv2D, layers.Conv3D), (("kernel", -2),)),
    ((layers.Dense,), (("kernel", 0),)),
    ((layers.EinsumDense,), (("kernel", None),)),
    ((layers.Embedding,), (("embeddings", None),)),
)

SUPPORTED_LAYERS = tuple(
    cls.__name__ for classes, _ in _BUILTIN for cls in classes
)

# Left dense when a whole model is pruned, as TFMOT does (its registry gives
# them no prunable weights): a depthwise kernel holds only k*k weights per
# channel, so magnitude pruning at high sparsity zeroes whole channels
# (benchmarks/pruning_parity.py measured it). Wrapping one explicitly, or
# naming it in a dict of schedules, still prunes it.
DENSE_BY_DEFAULT = (layers.DepthwiseConv1D, layers.DepthwiseConv2D)


def _builtin_entry(layer):
    for classes, weights in _BUILTIN:
        if isinstance(layer, classes):
            return weights
    return None


def _inner_entries(layer):
    """`[(sublayer, weight attribute, axis)]` of the prunable built-in
    layers `layer` holds at any depth (depthwise kernels left dense, as in
    a model), each weight once."""
    found, seen = [], set()
    if type(layer).__module__.startswith("kcompress."):
        return found  # Our wrappers (QAT, clustering) are not pruned inside.
    for inner in _keras_internals.descendants(layer):
        entry = _builtin_entry(inner)
        if entry is None or isinstance(inner, DENSE_BY_DEFAULT):
            continue
        for attribute, axis in entry:
            weight = getattr(inner, attribute, None)
            if weight is not None and id(weight) not in seen:
                seen.add(id(weight))
                found.append((weight, axis))
    return found


def is_prunable(layer):
    """Whether `layer` has weights that `prune_low_magnitude` can prune."""
    return (
        hasattr(layer, "get_prunable_weights")
        or _builtin_entry(layer) is not None
        or bool(_inner_entries(layer))
    )


def _check_plain(layer):
    mode = getattr(layer, "quantization_mode", None)
    if mode is not None:
        raise ValueError(
            f"Layer '{layer.name}' ({type(layer).__name__}) is already "
            f"quantized by Keras (quantization_mode={mode!r}). Prune the float "
            "layer before quantizing it."
        )
    if getattr(layer, "lora_enabled", False):
        raise ValueError(
            f"Layer '{layer.name}' ({type(layer).__name__}) has LoRA enabled. "
            "Merge or disable LoRA before pruning."
        )


def prunable_weights(layer):
    """The variables of a built `layer` that are pruned.

    Returns:
        A list of `keras.Variable`.

    Raises:
        ValueError: if the layer is not prunable.
    """
    if hasattr(layer, "get_prunable_weights"):
        return list(layer.get_prunable_weights())
    entry = _builtin_entry(layer)
    inner = _inner_entries(layer) if entry is None else []
    if inner:
        return [weight for weight, _ in inner]
    if entry is None:
        raise ValueError(
            f"Layer '{layer.name}' of type {type(layer).__name__} cannot be "
            f"pruned. Prunable layers: {', '.join(SUPPORTED_LAYERS)}, or any "
            "layer implementing kcompress.pruning.PrunableLayer "
            "(get_prunable_weights())."
        )
    _check_plain(layer)
    return [getattr(layer, attribute) for attribute, _ in entry]


def group_axis(layer, weight):
    """The axis that M:N groups run along for `weight` of `layer`.

    Returns:
        An int, or None when the weight has no input-channel axis to group
        along (depthwise kernels, embeddings, einsum kernels).
    """
    if hasattr(layer, "get_m_by_n_axis"):
        return layer.get_m_by_n_axis(weight)
    entry = _builtin_entry(layer)
    if entry is None:
        for inner_weight, axis in _inner_entries(layer):
            if inner_weight is weight:
                return axis
        return -2 if len(weight.shape) >= 2 else None
    for attribute, axis in entry:
        if getattr(layer, attribute) is weight:
            return axis
    return None
