"""Channel pruning by dependency group, and `shrink` for any functional graph.

`prune_channel_groups` zeroes, in a copy of the model, the lowest-scoring
fraction of every prunable group's channels (see `channel_groups`): the
producers' output columns and biases, the BatchNorm and depthwise channels,
and the input rows of every Conv/Dense layer that reads them. With the
reading rows at zero, a removed channel changes nothing whatever value it
holds on the way (a BatchNorm shift, a sigmoid's 0.5), so `shrink_graph`
removes it exactly: the shrunk model's outputs equal the zeroed model's to
float tolerance, through residual adds, concatenations, squeeze-excite
gates and depthwise convolutions.
"""

import keras
import numpy as np

from kcompress import _flatten
from kcompress import _model_utils
from kcompress._arguments import as_int
from kcompress._arguments import as_real
from kcompress.pruning.dependency_groups import channel_groups

__all__ = ["prune_channel_groups", "shrink_graph", "removed_classes"]


def _check_fraction(fraction):
    if as_real(fraction) is None or not 0.0 <= fraction < 1.0:
        raise ValueError(
            f"Received: fraction={fraction!r}. Expected a float in [0, 1).")


def _check_round_to(round_to):
    if as_int(round_to) is None or as_int(round_to) < 1:
        raise ValueError(
            f"Received: round_to={round_to!r}. Expected an integer >= 1.")


def _protect(graph, protect):
    names = set(protect or ())
    unknown = names - {layer.name for layer in graph.model.layers}
    if unknown:
        raise ValueError(
            f"Received: protect={sorted(unknown)!r}, not layers of model "
            f"'{graph.model.name}'. Expected names of its layers.")
    for group in graph.groups:
        hit = names & set(group.name.split("+"))
        if group.reason is None and hit:
            group.reason = f"protected ({', '.join(sorted(hit))})"


def lowest(group, scores, fraction, round_to=1):
    """The lowest-scoring `fraction` of `group`'s classes, the kept count
    a multiple of `round_to` (at least `round_to`, or all when the group is
    smaller)."""
    size = len(group.classes)
    keep = size - int(np.floor(fraction * size + 1e-9))
    keep = min(size, max(round_to, -(-keep // round_to) * round_to))
    order = sorted(group.classes, key=lambda c: (scores.get(c, 0.0), c))
    return order[:size - keep]


def choose_removed(graph, fraction, protect=None, round_to=1):
    """The class ids to remove: `lowest` of each prunable group.

    `fraction` is one float for every group, or `{group name: fraction}`
    (a group not named keeps all its channels)."""
    per_group = fraction if isinstance(fraction, dict) else None
    if per_group is not None:
        names = {group.name for group in graph.groups}
        unknown = sorted(set(per_group) - names)
        if unknown:
            raise ValueError(
                f"Received: fraction for groups {unknown}. Expected names "
                f"of channel groups of model '{graph.model.name}': "
                f"{sorted(names)}.")
        for value in per_group.values():
            _check_fraction(value)
    else:
        _check_fraction(fraction)
    _check_round_to(round_to)
    _protect(graph, protect)
    scores = graph.importance()
    removed = set()
    for group in graph.groups:
        share = (fraction if per_group is None
                 else per_group.get(group.name, 0.0))
        if group.prunable and share:
            removed.update(lowest(group, scores, share, round_to))
    return removed


def slices(graph, name, removed):
    """`{role: keep mask}` for the channels of layer `name` by role."""
    return {role: ~np.isin(classes, list(removed))
            for (layer, role), classes in graph.members.items()
            if layer == name}


_PROJECTIONS = ("query", "key", "value")


def _head_axis(variable):
    """The heads axis of a MultiHeadAttention weight, or None (the output
    bias)."""
    owner, kind = variable.path.split("/")[-2:]
    if owner in _PROJECTIONS:
        return 1 if kind == "kernel" else 0
    if owner == "attention_output" and kind == "kernel":
        return 0
    return None


def _heads(layer, weights, keep, zero):
    """MultiHeadAttention weights with the heads outside `keep` zeroed
    (`zero`) or dropped."""
    result = []
    for variable, weight in zip(layer.weights, weights):
        axis = _head_axis(variable)
        if axis is not None:
            index = (slice(None),) * axis + (~keep if zero else keep,)
            if zero:
                weight[index] = 0
            else:
                weight = weight[index]
        result.append(weight)
    return result


def zeroed(layer, weights, keeps):
    """`weights` of `layer` (in `layer.weights` order) with the removed
    channels of `keeps = slices(...)` set to zero."""
    weights = [np.array(w) for w in weights]
    if "heads" in keeps:
        return _heads(layer, weights, keeps["heads"], zero=True)
    if "out" in keeps:
        weights[0][..., ~keeps["out"]] = 0
        if len(weights) > 1:
            weights[1][~keeps["out"]] = 0
    if "in" in keeps:
        weights[0][..., ~keeps["in"], :] = 0
    if "dw" in keeps:
        weights[0][..., ~keeps["dw"], :] = 0
        if len(weights) > 1:
            weights[1][~keeps["dw"]] = 0
    if "bn" in keeps:
        names = [w.path.split("/")[-1] for w in layer.weights]
        for i, weight_name in enumerate(names):
            if weight_name in ("gamma", "beta"):
                weights[i][~keeps["bn"]] = 0
    return weights


def prune_channel_groups(model, fraction, protect=None, round_to=1):
    """A copy of `model` with `fraction` of each group's channels zeroed.

    Args:
        model: a built functional or Sequential model. Not modified.
        fraction: float in [0, 1), the share of each prunable group's
            channels to zero, lowest score first (|gamma| of the group's
            BatchNorms, else the L2 norms of its producers' columns); or a
            dict `{group name: fraction}` for a share per group (the names
            of `channel_groups(model).groups`; a group not named is kept
            whole), as `kcompress.budget` plans.
        protect: names of layers whose groups are left whole.
        round_to: keep a multiple of this many channels in each group.

    Returns:
        The copy, one functional graph (composite layers and nested
        models flattened into it). `kcompress.pruning.shrink` then removes
        the channels.
    """
    _model_utils.check_model_argument(
        model, "model", "prune_channel_groups",
        "rebuild it as a functional or Sequential model first.",
        accept_layers=False)
    # Channels are followed across the whole graph: composite layers and
    # nested models (a backbone inside a classifier) are flattened into it.
    model, _ = _flatten.flatten_composites(model, models=True)
    graph = channel_groups(model)
    removed = choose_removed(graph, fraction, protect, round_to)
    new = _model_utils.clone(model, _model_utils.clone_layer)
    for layer in model.layers:
        if layer.weights:
            new.get_layer(layer.name).set_weights(zeroed(
                layer, layer.get_weights(),
                slices(graph, layer.name, removed)))
    return new


def removed_classes(graph):
    """The classes of prunable groups whose reading rows and producing
    columns are all zero: the channels that group pruning removed."""
    zero = {}
    for (name, role), classes in graph.members.items():
        if role not in ("in", "out", "heads"):
            continue
        layer = graph.layers[name]
        if role == "heads":
            kernel = keras.ops.convert_to_numpy(layer.output_dense.kernel)
            dead = ~np.any(kernel.reshape(len(classes), -1) != 0, axis=1)
            for c, is_dead in zip(classes, dead):
                zero[int(c)] = bool(is_dead)
            continue
        kernel = keras.ops.convert_to_numpy(layer.kernel)
        axis = -1 if role == "out" else -2
        moved = np.moveaxis(kernel, axis, -1).reshape(-1, kernel.shape[axis])
        dead = ~np.any(moved != 0, axis=0)
        for c, is_dead in zip(classes, dead):
            zero[int(c)] = zero.get(int(c), True) and bool(is_dead)
    removed = set()
    for group in graph.groups:
        if not group.prunable:
            continue
        gone = [c for c in group.classes if zero.get(c, False)]
        if len(gone) == len(group.classes):
            gone = gone[1:]  # a layer needs one channel
        removed.update(gone)
    return removed


def _sliced(layer, weights, keeps):
    if "heads" in keeps:
        return _heads(layer, weights, keeps["heads"], zero=False)
    if "out" in keeps or "in" in keeps:
        kernel = weights[0]
        if "in" in keeps:
            kernel = kernel[..., keeps["in"], :]
        rest = weights[1:]
        if "out" in keeps:
            kernel = kernel[..., keeps["out"]]
            rest = [w[keeps["out"]] for w in rest]
        return [kernel] + rest
    if "dw" in keeps:
        return [weights[0][..., keeps["dw"], :]] + [
            w[keeps["dw"]] for w in weights[1:]]
    if "bn" in keeps:
        return [w[keeps["bn"]] for w in weights]
    return weights


def shrink_graph(model):
    """Rebuilds a functional model without the channels group pruning
    removed (see `removed_classes`); the same topology, smaller layers.
    `model.channels_kept` maps each layer that lost channels to
    `(kept, original)`. The input model is not modified."""
    graph = channel_groups(model)
    removed = removed_classes(graph)
    report = {}

    def clone_function(layer):
        keeps = slices(graph, layer.name, removed)
        if not (keeps or isinstance(layer, keras.layers.Reshape)):
            # Unchanged: copied by the route that also takes layers whose
            # config does not round-trip (KerasHub's).
            return _model_utils.clone_layer(layer)
        config = layer.get_config()
        if "out" in keeps:
            key = "filters" if "filters" in config else "units"
            kept = int(keeps["out"].sum())
            if kept != config[key]:
                report[layer.name] = (kept, config[key])
            config[key] = kept
        elif "heads" in keeps:
            kept = int(keeps["heads"].sum())
            if kept != config["num_heads"]:
                report[layer.name] = (kept, config["num_heads"])
            config["num_heads"] = kept
        elif isinstance(layer, keras.layers.Reshape):
            classes = graph.space_classes[id(layer.output)]
            shape = list(config["target_shape"])
            shape[-1] = int((~np.isin(classes, list(removed))).sum())
            config["target_shape"] = tuple(shape)
        return layer.__class__.from_config(config)

    new = _model_utils.clone(model, clone_function)
    for layer in model.layers:
        if layer.weights:
            new.get_layer(layer.name).set_weights(_sliced(
                layer, [np.array(w) for w in layer.get_weights()],
                slices(graph, layer.name, removed)))
    new.channels_kept = report
    new.groups_left_whole = {group.name: group.reason
                             for group in graph.groups if not group.prunable}
    return new
