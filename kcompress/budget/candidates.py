"""The channel plans that compete for one budget, and how one is picked.

`compress_to` prices each family of plans against the measured file:

- `"sensitivity"`: `allocate_channels` at a price, so each channel group
  gives what costs the least metric per parameter saved;
- `"uniform"`: the same fraction of every prunable group (what a user
  picks by hand, and what TFMOT-style structured pruning does).

Each family's cheapest plan that fits is shrunk, fine-tuned for a short
probe (`probe_epochs`) and scored on the validation data; the best goes on
to the full fine-tune. A sensitivity table measures each layer alone, and
layers do not add up exactly, so the probe keeps the search from ever
choosing a plan the uniform cut beats on held-out data. NetAdapt (Yang et
al. 2018) chooses among its proposals by a short fine-tune the same way.
"""

import keras
import numpy as np

from kcompress.budget.plan import allocate_channels
from kcompress.pruning.group_pruning import prune_channel_groups
from kcompress.pruning.shrinking import shrink

__all__ = ["FAMILIES", "Family", "family", "plan_key", "cheapest_fit",
           "probe"]

FAMILIES = ("sensitivity", "uniform")
UNIFORM_CAP = 0.95  # the largest uniform fraction of a group's channels


class Family:
    """A family of channel plans: `at(knob) -> {group: fraction}` (a
    larger knob removes more, 0 nothing) and `maxed(channels)`, whether a
    plan is the family's deepest cut."""

    def __init__(self, name, at, maxed):
        self.name, self.at, self.maxed = name, at, maxed


def family(name, table, savings, price_unit):
    """The `Family` called `name`, for the groups of `savings`."""
    if name == "sensitivity":
        deepest = {group: max(s for s, _ in table.curve(group, "channels"))
                   for group in savings}
        return Family(
            name, lambda knob: allocate_channels(table, savings,
                                                 knob * price_unit),
            lambda channels: all(channels.get(g) == deepest[g]
                                 for g in savings))
    if name == "uniform":
        def at(knob):
            fraction = round(min(UNIFORM_CAP, 1.0 - 0.5 ** knob), 4)
            return dict.fromkeys(savings, fraction) if fraction > 0 else {}
        return Family(name, at, lambda channels: all(
            channels.get(g) == UNIFORM_CAP for g in savings))
    raise ValueError(f"Received: plans=({name!r}, ...). Expected names among "
                     f"{FAMILIES}.")


def check_families(plans):
    if isinstance(plans, str) or not plans:
        raise ValueError(f"Received: plans={plans!r}. Expected a non-empty "
                         f"tuple of names among {FAMILIES}.")
    for name in plans:
        if name not in FAMILIES:
            raise ValueError(f"Received: plans={tuple(plans)!r}. Expected "
                             f"names among {FAMILIES}.")
    return tuple(dict.fromkeys(plans))


def plan_key(channels):
    """A hashable form of a plan `{group: fraction}`."""
    return tuple(sorted(channels.items()))


def cheapest_fit(plans, measure, fits, low=0.0, bisections=8):
    """The smallest knob whose plan fits, by doubling from `max(low, 1)`
    and then bisecting between the last knob that missed and the first
    that fits.

    Args:
        plans: a `Family`.
        measure: `{group: fraction} -> measurement dict` (the file).
        fits: `measurement -> bool`.
        low: a knob known to miss (a round's floor).

    Returns:
        `(knob, channels, measurement)`, or `(None, channels, measurement)`
        with the deepest cut tried when no knob fits.
    """
    knob, fitting = max(low, 1.0), None
    channels, result = None, None
    for _ in range(40):
        channels = plans.at(knob)
        result = measure(channels)
        if fits(result):
            fitting = (knob, channels, result)
            break
        if plans.maxed(channels):
            return None, channels, result
        low, knob = knob, knob * 2.0
    if fitting is None:
        return None, channels, result
    for _ in range(bisections):
        middle = (low + fitting[0]) / 2.0
        channels = plans.at(middle)
        result = measure(channels)
        if fits(result):
            fitting = (middle, channels, result)
        else:
            low = middle
    return fitting


def probe(model, channels, data, validation, score, loss, epochs,
          batch_size, learning_rate):
    """`(score, -loss)` on `validation` of `model` shrunk to `channels`
    after `epochs` of fine-tuning (the float Keras model; no file). The
    loss breaks ties of a coarse metric such as accuracy on a few hundred
    samples."""
    student = shrink(prune_channel_groups(model, channels))
    student.compile(keras.optimizers.Adam(learning_rate), loss=loss)
    if epochs:
        # One fixed order for every candidate, without touching the
        # global seed.
        order = np.random.default_rng(0).permutation(len(data[0]))
        student.fit(data[0][order], data[1][order], epochs=epochs,
                    batch_size=batch_size, shuffle=False, verbose=0)
    x_val, y_val = validation
    predictions = student.predict(x_val, verbose=0, batch_size=256)
    value = student.compute_loss(x=x_val, y=y_val, y_pred=predictions,
                                 training=False)
    return score(predictions), -float(keras.ops.convert_to_numpy(value))
