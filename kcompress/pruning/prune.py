"""Entry points: `prune_low_magnitude` and `strip_pruning`."""

from __future__ import annotations

import logging
from typing import Union

import keras
import numpy as np

from kcompress import _coverage
from kcompress import _flatten
from kcompress import _keras_internals
from kcompress import _model_utils
from kcompress.pruning import prunable_layer
from kcompress.pruning.dependency_groups import channel_groups
from kcompress.pruning.pruning_schedule import ScheduleFn
from kcompress.pruning.pruning_wrapper import CHANNEL_LAYERS
from kcompress.pruning.pruning_wrapper import PruneLowMagnitude

__all__ = ["prune_low_magnitude", "strip_pruning", "pruning_wrappers"]

logger = logging.getLogger(__name__)

_PER_LAYER_HINT = (
    "wrap the prunable layers where your model creates them, e.g. "
    "`self.dense = kcompress.pruning.prune_low_magnitude(keras.layers.Dense("
    "64), pruning_schedule=...)` in `__init__`, and train with "
    "`kcompress.pruning.UpdatePruningStep()`."
)


def pruning_wrappers(model):
    """All `PruneLowMagnitude` layers in `model`, nested models included."""
    return _model_utils.find_layers(model, PruneLowMagnitude)


def prune_low_magnitude(
        to_prune: Union[keras.layers.Layer, list, keras.Model],
        pruning_schedule: Union[ScheduleFn, dict, None] = None,
        block_size: tuple[int, int] = (1, 1),
        block_pooling_type: str = "AVG",
        sparsity_m_by_n: Union[tuple[int, int], None] = None,
        structure: Union[str, None] = None,
        round_to: int = 1,
        protect: Union[tuple, list, None] = None,
        pruning_policy=None,
        scope: str = "layer",
        max_sparsity: float = 0.95,
        ranking: str = "magnitude",
        strict: bool = False,
        **kwargs) -> Union[keras.layers.Layer, list, keras.Model]:
    """Makes a layer or model prune its weights by magnitude during `fit`.

    Accepts what TFMOT's function of the same name accepts:

    - a layer: returns it wrapped in `PruneLowMagnitude` (for building models);
    - a list of layers: returns the list, each wrapped;
    - a Sequential or functional model, nested models included: returns a
      clone in which every prunable layer (Dense, EinsumDense, Conv1D/2D/3D,
      the transposed convs, DepthwiseConv1D/2D, SeparableConv1D/2D, Embedding
      and `PrunableLayer`s) is wrapped, with the trained weights copied. Other
      layers are copied unchanged. The input model is not modified.

    Layers of a model that hold kernels but cannot be pruned are named in a
    warning (`strict=True` makes it an error). Composite layers (subclassed
    layers that own Conv2D, Dense, ... sublayers) are flattened into the
    graph, so their sublayers are pruned like any other.

    Train the result with `UpdatePruningStep()` in the callbacks of `fit`,
    then call `strip_pruning` before export.

    Args:
        to_prune: a layer, a list of layers, or a Sequential or functional
            model.
        pruning_schedule: a `PruningSchedule` or a callable
            `step -> (should_update, sparsity)`. Defaults to
            `ConstantSparsity(0.5, begin_step=0)` (a new one per layer). On
            a model, a dict `{layer name: schedule}` prunes only the named
            layers, each on its own schedule (for example a different
            fraction of channels per layer).
        block_size: `(rows, cols)` of blocks pruned together.
        block_pooling_type: `"AVG"` or `"MAX"`.
        sparsity_m_by_n: `(m, n)`, e.g. `(2, 4)`, for M:N sparsity along the
            input-channel axis. On a model, layers whose weights have no such
            axis (depthwise, embedding, einsum) are left dense with a warning.
        structure: `"channels"` to prune whole output channels instead of
            single weights, for `kcompress.pruning.shrink` to remove after
            training. On a model, Conv2D and Dense layers are wrapped,
            except the layer that produces the model's output (its channels
            are the model's outputs); a DepthwiseConv2D keeps the channels
            of the layer before it, with all their multiplier outputs, and
            is pruned only when wrapped on its own. Where a layer feeds
            a BatchNormalization, the BatchNormalization is wrapped instead
            (its |gamma| scores the channels), so that a pruned channel is
            zero after the normalization too. Other layers stay as they
            are. On a functional model whose branches merge (residual
            `Add`, `Concatenate`, squeeze-excite), `"channels"` means
            `"groups"`: whole channel dependency groups (see
            `channel_groups`) are ranked and masked together, every layer
            that produces or reads them is wrapped, and `shrink` keeps the
            topology. `"groups"` can also be asked for on any model.
        round_to: with channel groups, keep a multiple of this many
            channels in each group (XNNPACK's kernels like 4, 8 or 16).
        protect: on a model, names of layers to leave unwrapped; with
            channel groups, every group they produce or read stays whole
            (the stem, say).
        pruning_policy: on a model, a `PruningPolicy` (TFMOT's argument):
            it may refuse the model (`ensure_model_supports_pruning`), and
            only the layers it allows are pruned. For example
            `PruneForLatencyOnXNNPack()` prunes the 1x1 convolutions that
            XNNPACK runs sparse.
        scope: `"layer"` (TFMOT's way: every layer reaches the schedule's
            sparsity) or `"global"`: the weights of all wrapped layers are
            ranked together by magnitude and the schedule's sparsity is the
            model's overall sparsity, so layers that tolerate pruning give
            more (see `global_masks`). Needs one schedule, not a dict.
        max_sparsity: with `scope="global"`, the most of any one layer's
            weights that may be zeroed (so no layer is emptied); what a layer
            at its ceiling cannot give, the others give.
        ranking: with `scope="global"`, how weights of different layers
            compare: `"magnitude"` (|w|) or `"lamp"` (LAMP scores, scale-free
            per layer; see `global_masks`).
        strict: on a model, raise instead of warning when a layer holding
            a kernel is left unpruned (a custom layer without the
            `PrunableLayer` interface, a composite layer that cannot be
            flattened).
        **kwargs: passed to each `PruneLowMagnitude` (a layer argument only).

    Returns:
        The wrapped layer, list of layers, or a new model.

    Example:

    >>> import keras
    >>> from kcompress.pruning import PolynomialDecay
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8),
    ...                           keras.layers.Dense(2)])
    >>> pruned = prune_low_magnitude(
    ...     model, PolynomialDecay(0.0, 0.8, begin_step=0, end_step=100))
    >>> [type(layer).__name__ for layer in pruned.layers]
    ['PruneLowMagnitude', 'PruneLowMagnitude']
    """
    _model_utils.check_model_argument(to_prune, "to_prune",
                                      "prune_low_magnitude", _PER_LAYER_HINT)
    if (structure == "channels" and isinstance(to_prune, keras.Model)
            and _has_merges(to_prune)):
        structure = "groups"
    options = dict(block_size=block_size,
                   block_pooling_type=block_pooling_type,
                   sparsity_m_by_n=sparsity_m_by_n, structure=structure,
                   scope=scope, max_sparsity=max_sparsity, ranking=ranking)
    if structure == "groups":
        options["round_to"] = round_to

    def wrap(layer):
        return PruneLowMagnitude(layer, pruning_schedule=pruning_schedule,
                                 **options, **kwargs)

    if pruning_policy is not None and not isinstance(to_prune, keras.Model):
        raise ValueError(
            f"Received: pruning_policy={pruning_policy!r} with a "
            f"{type(to_prune).__name__}. Expected a model: a policy picks "
            "the layers of a model to prune.")
    if isinstance(to_prune, (list, tuple)):
        return [wrap(layer) for layer in to_prune]
    if not isinstance(to_prune, keras.Model):
        return wrap(to_prune)

    model = to_prune
    if kwargs:
        raise ValueError(
            f"Received: {sorted(kwargs)} with a model. Expected only the "
            "pruning arguments; layer arguments such as `name` apply to a "
            "single layer."
        )
    if pruning_wrappers(model):
        raise ValueError(
            f"Model '{model.name}' is already pruned: it holds "
            "PruneLowMagnitude layers. Call strip_pruning(model) first to "
            "prune it again with another schedule."
        )
    if not model.built:
        raise ValueError(
            f"Model '{model.name}' is not built. Build it (give it an Input "
            "or call it on data) before pruning, so its weights exist."
        )
    # Channel structures are followed across the whole graph, nested
    # models included.
    model, left = _flatten.flatten_composites(model,
                                              models=bool(structure))
    if pruning_policy is not None:
        pruning_policy.ensure_model_supports_pruning(model)
    wrapped, skipped, left_dense = [], [], []
    schedules = pruning_schedule if isinstance(pruning_schedule, dict) and (
        "class_name" not in pruning_schedule) else None  # not a serialized one
    if schedules is not None and scope == "global":
        raise ValueError(
            "Received: a dict of per-layer schedules with scope='global'. "
            "Expected one schedule: global pruning ranks all layers against "
            "one target. To choose the layers, pass protect=[...]; for "
            "per-layer sparsities, use scope='layer' with the dict.")
    if schedules is not None:
        known = {layer.name for layer in _model_utils.iter_layers(model)}
        missing = sorted(set(schedules) - known)
        if missing:
            raise ValueError(
                f"Received: pruning_schedule for layers {missing}. Model "
                f"'{model.name}' has no layers of those names."
            )
    channel_layers = set()
    if structure == "groups":
        channel_layers = _group_layers(model)
    elif structure and schedules is None:
        channel_layers = _channel_layers(model)

    protected = set(protect or ())
    unknown = protected - {layer.name for layer in
                           _model_utils.iter_layers(model)}
    if unknown:
        raise ValueError(
            f"Received: protect={sorted(unknown)!r}, not layers of model "
            f"'{model.name}'. Expected names of its layers.")

    def clone_function(layer):
        new = _model_utils.clone_layer(layer)
        if layer.name in protected or (
                pruning_policy is not None
                and not pruning_policy.allow_pruning(layer)):
            return new
        if schedules is not None:
            if layer.name not in schedules or (
                    structure == "groups" and id(layer) not in channel_layers):
                return new
        elif structure:
            if id(layer) not in channel_layers:
                return new
        elif not prunable_layer.is_prunable(layer):
            if _coverage.holds_kernel(layer):
                left.setdefault(layer.name, (
                    f"kcompress cannot prune a {type(layer).__name__}; give "
                    "it the kcompress.pruning.PrunableLayer interface"))
            return new
        elif isinstance(layer, prunable_layer.DENSE_BY_DEFAULT):
            left_dense.append(layer.name)
            return new
        if sparsity_m_by_n and not _supports_m_by_n(new):
            skipped.append(layer.name)
            return new
        wrapped.append(layer.name)
        left.pop(layer.name, None)  # A composite pruned as one layer.
        schedule = (pruning_schedule if schedules is None
                    else schedules[layer.name])
        return PruneLowMagnitude(new, pruning_schedule=schedule,
                                 name=f"prune_low_magnitude_{layer.name}",
                                 **options)

    pruned = _model_utils.transform_model(model, clone_function)
    _coverage.report_left_out(logger, "prune_low_magnitude", model, left,
                              strict)
    if left_dense:
        logger.info(
            "Depthwise convolutions left dense, as TFMOT does (wrap one "
            "explicitly to prune it): %s", ", ".join(left_dense))
    if skipped:
        logger.warning(
            "sparsity_m_by_n=%s left these layers dense, having no "
            "input-channel axis to group along: %s", sparsity_m_by_n,
            ", ".join(skipped))
    if not wrapped:
        quantized = _model_utils.quantized_layer_names(model)
        if quantized:
            raise ValueError(
                f"Model '{model.name}' is already quantized (QAT layers "
                f"{quantized[:3]}{'...' if len(quantized) > 3 else ''}). "
                "Prune first, then run QAT: prune_low_magnitude the float "
                "model, train, then kcompress.quantization.quantize_model "
                "(it keeps the zeros), or strip_quantization this model.")
        raise ValueError(
            f"Model '{model.name}' has no prunable layers. Prunable layers: "
            f"{', '.join(prunable_layer.SUPPORTED_LAYERS)}, or any layer "
            "implementing kcompress.pruning.PrunableLayer."
        )
    return pruned


def _has_merges(model):
    """Whether a node of `model` reads several tensors, or a tensor feeds
    several nodes: the graph is not one chain."""
    if isinstance(model, keras.Sequential):
        return False
    for layer in _model_utils.iter_layers(model):
        for node in _keras_internals.inbound_nodes(layer):
            if len(node.input_tensors) > 1:
                return True
        if len(_keras_internals.outbound_nodes(layer)) > 1:
            return True
    return False


def _group_layers(model):
    """`id`s of the layers channel-group pruning wraps: the Conv2D, Dense,
    DepthwiseConv2D, BatchNormalization (with scale) and MultiHeadAttention
    layers that touch a prunable group."""
    graph = channel_groups(model)
    prunable = [c for group in graph.groups if group.prunable
                for c in group.classes]
    chosen = set()
    for (name, _), classes in graph.members.items():
        layer = graph.layers[name]
        if type(layer) not in CHANNEL_LAYERS + (
                keras.layers.MultiHeadAttention,) or not np.isin(
                classes, prunable).any():
            continue
        if isinstance(layer, keras.layers.BatchNormalization) and (
                not layer.scale):
            continue
        chosen.add(id(layer))
    return chosen


def _channel_layers(model):
    """`id`s of the layers that channel pruning wraps in `model`."""
    producers = (keras.layers.Conv2D, keras.layers.Dense)
    outputs = {id(_keras_internals.keras_history(t).operation)
               for t in model.outputs}
    chosen = set()
    for layer in _model_utils.iter_layers(model):
        if type(layer) not in CHANNEL_LAYERS or id(layer) in outputs:
            continue
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            continue  # its channels follow those of the layer before it
        if isinstance(layer, keras.layers.BatchNormalization):
            sources = [_keras_internals.keras_history(t).operation
                       for node in _keras_internals.inbound_nodes(layer)
                       for t in node.input_tensors]
            if layer.scale and sources and all(
                    type(source) in producers for source in sources):
                chosen.add(id(layer))
                chosen.difference_update(id(source) for source in sources)
            continue
        consumers = [node.operation for node in
                     _keras_internals.outbound_nodes(layer)]
        if not (consumers and all(isinstance(
                c, keras.layers.BatchNormalization) for c in consumers)):
            chosen.add(id(layer))
    return chosen


def _supports_m_by_n(layer):
    return all(prunable_layer.group_axis(layer, w) is not None
               for w in prunable_layer.prunable_weights(layer))


def _strip_wrapper(wrapper):
    """A plain copy of the wrapped layer with `weight * mask` baked in."""
    inner = wrapper.layer
    values = _model_utils.values_with(inner.weights, wrapper.masked_weights())
    return _model_utils.clone_layer(inner, weights=values)


def strip_pruning(
        model: Union[keras.Model, keras.layers.Layer],
) -> Union[keras.Model, keras.layers.Layer]:
    """Removes the pruning wrappers, keeping the zeros they made.

    Args:
        model: a model (or a single `PruneLowMagnitude` layer) from
            `prune_low_magnitude`. It is not modified.

    Returns:
        A new model with the original architecture and plain Keras layers,
        whose pruned weights are exactly zero. In inference it gives the
        outputs the wrapped model gives. A model without wrappers is returned
        as a clone.

    Example:

    >>> import keras
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> stripped = strip_pruning(prune_low_magnitude(model))
    >>> type(stripped.layers[0]).__name__
    'Dense'
    """
    if isinstance(model, PruneLowMagnitude):
        return _strip_wrapper(model)
    _model_utils.check_model_argument(model, "model", "strip_pruning",
                                      "call strip_pruning on each pruned "
                                      "layer (it accepts a PruneLowMagnitude "
                                      "layer) and rebuild the model.")
    if not isinstance(model, keras.Model):
        raise ValueError(
            f"Received: model={model!r}. Expected a keras.Model or a "
            "PruneLowMagnitude layer."
        )

    def clone_function(layer):
        if isinstance(layer, PruneLowMagnitude):
            return _strip_wrapper(layer)
        return _model_utils.clone_layer(layer)

    return _model_utils.transform_model(model, clone_function)
