"""The Pareto view: metric against size (or latency), plans against the
uniform settings.

A point is a dict with a `label`, a `kind` (`"uniform"`, `"searched"`,
...), the metric and the costs (`size_bytes`, `latency_ms`). A point is on
the front when no other point is at least as good on the metric and at
least as cheap, and strictly better on one.
"""

from kcompress import tables

__all__ = ["pareto_front", "pareto_table", "plot_pareto"]


def pareto_front(points, cost="size_bytes", metric="metric"):
    """The points no other point dominates, cheapest first."""
    front = []
    for p in points:
        dominated = any(
            q[cost] <= p[cost] and q[metric] >= p[metric]
            and (q[cost] < p[cost] or q[metric] > p[metric])
            for q in points)
        if not dominated:
            front.append(p)
    return sorted(front, key=lambda p: p[cost])


def pareto_table(points, cost="size_bytes", metric="metric",
                 style="markdown"):
    """Every point, cheapest first, with whether it is on the front."""
    front = {id(p) for p in pareto_front(points, cost, metric)}
    rows = [[p["label"], p.get("kind", ""), f"{p[cost]:,.2f}"
             if isinstance(p[cost], float) else f"{p[cost]:,}",
             f"{p[metric]:.4f}", "yes" if id(p) in front else ""]
            for p in sorted(points, key=lambda p: p[cost])]
    return tables.render(["setting", "kind", cost, metric, "on the front"],
                         rows, style=style)


def plot_pareto(points, cost="size_bytes", metric="metric", ax=None):
    """Draws the points by kind, and the front as a line; returns the
    axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    for kind in dict.fromkeys(p.get("kind", "") for p in points):
        chosen = [p for p in points if p.get("kind", "") == kind]
        ax.scatter([p[cost] for p in chosen], [p[metric] for p in chosen],
                   label=kind or None)
        for p in chosen:
            ax.annotate(p["label"], (p[cost], p[metric]), fontsize=7)
    front = pareto_front(points, cost, metric)
    ax.plot([p[cost] for p in front], [p[metric] for p in front], "k--",
            linewidth=0.8, label="front")
    ax.set_xlabel(cost)
    ax.set_ylabel(metric)
    ax.legend(fontsize="small")
    return ax
