"""`CompressionPlan`: per-layer sparsity, channels and precision, and the
allocations that fill it from a `SensitivityTable`.

A plan is data: `compress_to` chooses one, `tflite_export report` prints
it, and a user can write one by hand. The allocations spend a budget where
it hurts least: each layer (or channel group) moves in small steps, the
cheapest step first, cheapest meaning the smallest measured drop per
weight (or per parameter saved).
"""

import heapq

import keras
import numpy as np

from kcompress import tables

__all__ = ["CompressionPlan", "allocate_sparsity", "allocate_channels"]

PRECISIONS = ("int8", "int16x8")


def _check_map(values, argument, check):
    values = dict(values or {})
    for name, value in values.items():
        if not isinstance(name, str) or not check(value):
            raise ValueError(
                f"Received: {argument}={{{name!r}: {value!r}}}. Expected a "
                "dict from layer (or channel group) name to "
                + ("a float in [0, 1)." if argument != "precision" else
                   f"one of {PRECISIONS}."))
    return values


def _fraction(value):
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and 0.0 <= value < 1.0)


@keras.saving.register_keras_serializable(package="kcompress")
class CompressionPlan:
    """What to do to each layer: sparsity, channels removed, precision.

    Args:
        sparsity: `{layer name: sparsity}` of magnitude pruning.
        channels: `{channel group name: fraction removed}` (group names as
            `kcompress.pruning.channel_groups` gives them).
        precision: `{layer name: "int8" | "int16x8"}`; a layer not named
            runs in `default_precision`.
        default_precision: `"int8"` or `"int16x8"`.

    Example:

    >>> plan = CompressionPlan(sparsity={"dense": 0.8},
    ...                        precision={"conv": "int16x8"})
    >>> CompressionPlan.from_config(plan.get_config()) == plan
    True
    """

    def __init__(self, sparsity=None, channels=None, precision=None,
                 default_precision="int8"):
        self.sparsity = _check_map(sparsity, "sparsity", _fraction)
        self.channels = _check_map(channels, "channels", _fraction)
        self.precision = _check_map(precision, "precision",
                                    lambda p: p in PRECISIONS)
        if default_precision not in PRECISIONS:
            raise ValueError(
                f"Received: default_precision={default_precision!r}. "
                f"Expected one of {PRECISIONS}.")
        self.default_precision = default_precision

    def pruning_schedules(self, begin_step, end_step, frequency=100):
        """`{layer name: PolynomialDecay(0, sparsity, ...)}` for the plan's
        sparsities: pass it to `prune_low_magnitude` as the schedule, and
        each named layer is pruned to its own target in `fit`."""
        from kcompress.pruning.pruning_schedule import PolynomialDecay

        return {name: PolynomialDecay(0.0, value, begin_step, end_step,
                                      frequency=frequency)
                for name, value in self.sparsity.items() if value}

    def precision_of(self, layer_name):
        return self.precision.get(layer_name, self.default_precision)

    @property
    def mixed(self):
        """Whether some layer runs at another precision than the rest."""
        return any(p != self.default_precision
                   for p in self.precision.values())

    def __eq__(self, other):
        return (isinstance(other, CompressionPlan)
                and self.get_config() == other.get_config())

    def __repr__(self):
        return (f"CompressionPlan(sparsity={self.sparsity}, channels="
                f"{self.channels}, precision={self.precision}, "
                f"default_precision={self.default_precision!r})")

    def to_markdown(self, style="markdown"):
        """One row per layer or group the plan names."""
        names = list(dict.fromkeys(
            list(self.channels) + list(self.sparsity) + list(self.precision)))
        rows = [[name,
                 f"{self.sparsity[name]:.0%}" if name in self.sparsity
                 else "",
                 f"-{self.channels[name]:.0%}" if name in self.channels
                 else "",
                 self.precision.get(name, "")] for name in names]
        rows.append(["(every other layer)", "", "", self.default_precision])
        return tables.render(["layer or channel group", "sparsity",
                              "channels", "precision"], rows, style=style)

    def get_config(self):
        return {"sparsity": dict(self.sparsity),
                "channels": dict(self.channels),
                "precision": dict(self.precision),
                "default_precision": self.default_precision}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _monotone(points):
    """Drops made non-decreasing and non-negative along the settings: a
    measured improvement at one sparsity is noise, not a free lunch."""
    settings, drops = zip(*points)
    return settings, np.maximum.accumulate(np.maximum(drops, 0.0))


def _interp(at, settings, drops):
    """Drops between the measured settings, convex in each segment (linear
    in the square of the setting): removing the least important weights or
    channels first, each further step costs more than the last. Linear
    interpolation would make every optimum a measured point, so plans
    would move only in the table's coarse steps."""
    return np.interp(np.square(at), np.square(settings), drops)


def allocate_sparsity(table, sparsity, max_sparsity=0.95, step=0.05,
                      layers=None):
    """Per-layer sparsities whose weighted mean is `sparsity`, spent where
    the table's measured drops per pruned weight are smallest.

    Args:
        table: a `SensitivityTable` with `"sparsity"` rows.
        sparsity: the overall sparsity of the layers planned.
        max_sparsity: no layer goes past it.
        step: the size of one move.
        layers: the names of the layers to plan, among those the table
            measured; None for all of them. (The table measures depthwise
            kernels too, which `prune_low_magnitude` leaves dense unless
            they are named.)

    Returns:
        `{layer name: sparsity}`.
    """
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"Received: sparsity={sparsity!r}. Expected a float"
                         " in [0, 1).")
    measured = table.layers("sparsity")
    if not measured:
        raise ValueError("Received: a table without sparsity rows. Expected "
                         "one from sensitivity(..., sparsities=...).")
    if layers is None:
        layers = measured
    else:
        layers = [layers] if isinstance(layers, str) else list(layers)
        unknown = [name for name in layers if name not in measured]
        if unknown or not layers:
            raise ValueError(
                f"Received: layers={layers!r}. Expected names among the "
                f"layers the table measured: {measured}.")
    sizes = {name: table.params(name, "sparsity") for name in layers}
    curves = {name: _monotone(table.curve(name, "sparsity"))
              for name in layers}
    total = sum(sizes.values())
    needed = sparsity * total
    current = dict.fromkeys(layers, 0.0)

    def cost(name):
        settings, drops = curves[name]
        now = current[name]
        after = min(now + step, max_sparsity)
        extra = (_interp(after, settings, drops)
                 - _interp(now, settings, drops))
        # A tiny term for the share already pruned spreads ties evenly.
        return (extra + 1e-6 * after) / (sizes[name] * (after - now))

    heap = [(cost(name), name) for name in layers]
    heapq.heapify(heap)
    pruned = 0.0
    while pruned < needed - 1e-9 and heap:
        _, name = heapq.heappop(heap)
        after = min(current[name] + step, max_sparsity)
        gain = (after - current[name]) * sizes[name]
        if gain > needed - pruned:  # the last move, cut to size
            after = current[name] + (needed - pruned) / sizes[name]
            gain = needed - pruned
        current[name] = after
        pruned += gain
        if after < max_sparsity - 1e-9:
            heapq.heappush(heap, (cost(name), name))
    return {name: round(float(s), 4) for name, s in current.items() if s}


def allocate_channels(table, savings, weight, step=0.05):
    """Per-group fractions of channels to remove, trading drop for saving.

    Each group takes the fraction (on a grid of `step`, up to its largest
    measured one, drops interpolated between the measured fractions,
    convex in each segment) that
    minimizes `drop - weight * saving`; a larger `weight` removes more.
    Search `weight` to meet a budget (`compress_to` does).

    Args:
        table: a `SensitivityTable` with `"channels"` rows.
        savings: `{group name: parameters saved per unit fraction}`.
        weight: the price of one parameter in metric points (>= 0).
        step: the grid of fractions.

    Returns:
        `{group name: fraction}`, groups left whole omitted.
    """
    plan = {}
    for name in table.layers("channels"):
        settings, drops = _monotone(table.curve(name, "channels"))
        grid = np.round(np.arange(0.0, max(settings) + 1e-9, step), 4)
        grid = np.union1d(grid, settings)
        values = (_interp(grid, settings, drops)
                  - weight * savings.get(name, 0.0) * grid)
        best = float(grid[int(np.argmin(values))])
        if best:
            plan[name] = best
    return plan
