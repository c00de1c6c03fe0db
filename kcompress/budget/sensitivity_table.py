"""`SensitivityTable`: what `sensitivity` measured, as rows, a table and a
plot."""

import collections

import keras
import numpy as np

from kcompress import tables

__all__ = ["SensitivityTable", "Row"]

Row = collections.namedtuple(
    "Row", ["layer", "kind", "setting", "params", "score", "drop"])
Row.__doc__ = """One measurement: `layer` (or channel group) changed alone.

`kind` is `"sparsity"`, `"channels"` or `"precision"`; `setting` the
sparsity, the fraction of channels removed, or `"int8"`/`"int16x8"`;
`params` the weights (or, for channels, the channels) concerned; `score`
the metric with the change; `drop` the baseline's score minus it."""


@keras.saving.register_keras_serializable(package="kcompress")
class SensitivityTable:
    """Per-layer sensitivities, from `kcompress.budget.sensitivity`.

    Args:
        baseline: the untouched model's score.
        rows: `Row`s or 6-tuples `(layer, kind, setting, params, score,
            drop)`.
        metric: the metric's name.
    """

    def __init__(self, baseline, rows, metric="accuracy"):
        self.baseline = float(baseline)
        self.rows = [Row(*row) for row in rows]
        self.metric = metric

    def layers(self, kind):
        """The layer (or group) names measured for `kind`, in order."""
        return list(dict.fromkeys(r.layer for r in self.rows
                                  if r.kind == kind))

    def curve(self, layer, kind):
        """`[(setting, drop)]` of `layer` for `kind`, settings ascending
        (with `(0.0, 0.0)` first for sparsity and channels)."""
        points = [(r.setting, r.drop) for r in self.rows
                  if r.layer == layer and r.kind == kind]
        if kind == "precision":
            return points
        return [(0.0, 0.0)] + sorted(points)

    def drop(self, layer, kind, setting):
        """The drop of `layer` at `setting`; linear between the measured
        sparsities or fractions, flat past the last."""
        points = self.curve(layer, kind)
        if not points:
            raise KeyError(f"No {kind} measurement for layer {layer!r}.")
        if kind == "precision":
            return dict(points)[setting]
        settings, drops = zip(*points)
        return float(np.interp(setting, settings, drops))

    def params(self, layer, kind):
        """The weights (or channels) of `layer` for `kind`."""
        return next(r.params for r in self.rows
                    if r.layer == layer and r.kind == kind)

    def to_markdown(self, style="markdown"):
        """The table: one row per layer and kind, a column per setting."""
        out = []
        for kind in ("sparsity", "channels", "precision"):
            names = self.layers(kind)
            if not names:
                continue
            settings = list(dict.fromkeys(r.setting for r in self.rows
                                          if r.kind == kind))
            label = {"sparsity": "sparsity {:.0%}",
                     "channels": "channels -{:.0%}"}.get(kind, "{}")
            rows = [[name, self.params(name, kind)] + [
                f"{100 * self.drop(name, kind, s):+.1f}" for s in settings]
                for name in names]
            out.append(tables.render(
                ["layer" if kind != "channels" else "channel group",
                 "weights" if kind != "channels" else "channels"]
                + [label.format(s) for s in settings], rows, style=style))
        return (f"Baseline {self.metric}: {self.baseline:.4f}; cells are "
                "the drop in points when that layer alone changes.\n\n"
                + "\n\n".join(out))

    def plot(self, ax=None):
        """Draws each layer's drop against sparsity (and channel fraction)
        with matplotlib; returns the axes."""
        import matplotlib.pyplot as plt

        kinds = [k for k in ("sparsity", "channels") if self.layers(k)]
        if ax is None:
            _, ax = plt.subplots(1, max(len(kinds), 1),
                                 figsize=(5.5 * max(len(kinds), 1), 3.5),
                                 squeeze=False)
            ax = ax[0]
        ax = np.atleast_1d(ax)
        for axis, kind in zip(ax, kinds):
            for name in self.layers(kind):
                settings, drops = zip(*self.curve(name, kind))
                axis.plot(settings, 100 * np.array(drops), marker="o",
                          label=name)
            axis.set_xlabel(kind if kind == "sparsity"
                            else "fraction of channels removed")
            axis.set_ylabel(f"{self.metric} drop (points)")
            axis.legend(fontsize="small")
        return ax

    def get_config(self):
        return {"baseline": self.baseline, "metric": self.metric,
                "rows": [list(r) for r in self.rows]}

    @classmethod
    def from_config(cls, config):
        return cls(config["baseline"], config["rows"], config.get(
            "metric", "accuracy"))

    def __eq__(self, other):
        return (isinstance(other, SensitivityTable)
                and self.get_config() == other.get_config())
