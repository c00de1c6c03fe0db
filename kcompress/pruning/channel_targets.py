"""Channel-pruning targets: from a parameter or MAC budget to a fraction.

Channel pruning takes its sparsity from the schedule, as the fraction of each
layer's channels to remove. `channel_fraction_for` turns a budget for the
shrunk model (parameters or MACs) into that fraction, and `channel_report`
prints what `shrink` kept per layer. For different fractions per layer, pass
`prune_low_magnitude` a dict of schedules keyed by layer name.
"""

import keras
import numpy as np

from kcompress import tables
from kcompress.pruning.group_pruning import prune_channel_groups
from kcompress.pruning.prune import prune_low_magnitude
from kcompress.pruning.prune import pruning_wrappers
from kcompress.pruning.pruning_schedule import ConstantSparsity
from kcompress.pruning.shrinking import shrink

__all__ = ["channel_fraction_for", "channel_report"]


def _cost(model, measure):
    if measure == "params":
        return model.count_params()
    from kcompress.profiling import layer_stats

    return sum(row.macs for row in layer_stats(model))


def channel_fraction_for(model, params=None, macs=None, tolerance=1e-3,
                         round_to=1):
    """The fraction of channels to prune so the shrunk model fits a budget.

    Every channel-pruned layer (every dependency group, in a graph with
    merges) loses the same fraction of its channels, lowest norm first, as
    `prune_low_magnitude(..., structure="channels")` would prune them now.
    The result is the smallest such fraction whose shrunk model has at most
    `params` parameters (or `macs` multiplies per sample). Use it as the
    schedule's final sparsity; training moves the norms, but not the
    shapes, so the budget holds after `shrink`.

    Args:
        model: a built Sequential or functional model (not pruned yet).
        params: the parameter budget of the shrunk model.
        macs: the MAC budget of the shrunk model, per sample.
        tolerance: precision of the fraction.
        round_to: the `round_to` the groups will be pruned with (graphs
            with merges): the kept counts are rounded up the same way.

    Returns:
        A float in [0, 1).

    Raises:
        ValueError: without exactly one budget, or when even removing
            (almost) every prunable channel does not meet it.
    """
    if (params is None) == (macs is None):
        raise ValueError(
            f"Received: params={params!r}, macs={macs!r}. Expected exactly "
            "one budget."
        )
    measure, budget = ("params", params) if params is not None else (
        "macs", macs)
    if not isinstance(budget, (int, float)) or budget <= 0:
        raise ValueError(
            f"Received: {measure}={budget!r}. Expected a positive number."
        )
    wrapped = prune_low_magnitude(model, ConstantSparsity(0.5, 0),
                                  structure="channels")
    wrappers = pruning_wrappers(wrapped)

    def cost(fraction):
        if any(w.structure == "groups" for w in wrappers):
            # A graph with merges is pruned by dependency group.
            return _cost(shrink(prune_channel_groups(
                model, fraction, round_to=round_to)), measure)
        for wrapper in wrappers:
            for mask in wrapper.masks:  # a trial starts from all channels
                mask.assign(keras.ops.ones(mask.shape, mask.dtype))
            for mask, value in zip(wrapper.masks,
                                   wrapper.compute_masks(fraction)):
                mask.assign(value)
        return _cost(shrink(wrapped), measure)

    if cost(0.0) <= budget:
        return 0.0
    high = 0.99
    smallest = cost(high)
    if smallest > budget:
        raise ValueError(
            f"Received: {measure}={budget:,}. Even removing 99% of the "
            f"channels of every prunable layer leaves {smallest:,} "
            f"{measure}: the layers that are not channel-pruned (the output "
            "layer, for one) take more than the budget."
        )
    low = 0.0
    while high - low > tolerance:
        middle = (low + high) / 2
        if cost(middle) <= budget:
            high = middle
        else:
            low = middle
    return float(np.round(high, 4))


def channel_report(shrunk, print_fn=print):
    """Prints the channels each layer kept in a `shrink`-ed model, and, for
    a graph pruned by dependency group, the groups left whole and why.

    Returns:
        The report as a string.
    """
    kept = getattr(shrunk, "channels_kept", None)
    if kept is None:
        raise ValueError(
            f"Received: model '{shrunk.name}' without `channels_kept`. "
            "Expected a model returned by kcompress.pruning.shrink."
        )
    text = tables.render(
        ["Layer", "Kept", "Of", "Fraction kept"],
        [(name, now, before, f"{now / before:.1%}")
         for name, (now, before) in kept.items()], style="text")
    whole = getattr(shrunk, "groups_left_whole", None)
    if whole:
        text += "\n\n" + tables.render(
            ["Group left whole", "Why"], sorted(whole.items()), style="text")
    print_fn(text)
    return text
