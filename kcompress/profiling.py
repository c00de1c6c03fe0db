"""`kcompress.summary`: the per-layer compression table.

Modelled on `larq.models.summary`: for each layer with weights, the parameter
count, the zeros, the sparsity, the distinct values of its kernel (what
clustering limits), and the bytes the weights take at float32 and at int8.
Pruned and clustered layers are counted as they will be exported (masks
applied, weights on their centroids).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import keras
import numpy as np

from kcompress import _coverage
from kcompress import _macs
from kcompress import _model_utils
from kcompress import tables

__all__ = ["LayerStats", "layer_stats", "summary"]


@dataclasses.dataclass(frozen=True)
class LayerStats:
    """One row of the compression table."""

    name: str
    type: str
    params: int
    zeros: int
    float32_bytes: int
    int8_bytes: int
    macs: int = 0
    unique: int = 0  # distinct values of the largest kernel (clustering)
    # How it is compressed: "pruned", "clustered", "QAT", or "none" for a
    # layer holding a kernel that no technique wraps (left out, and named
    # in the technique's warning); "" for a layer without a kernel.
    compression: str = ""

    @property
    def sparsity(self):
        return self.zeros / self.params if self.params else 0.0


def _effective_weights(layer):
    """`(variable, values)` for each weight, pruning masks applied and
    clustered weights on their centroids."""
    if hasattr(layer, "masked_weights"):
        variables = layer.layer.weights
        substitutes = layer.masked_weights()
    elif hasattr(layer, "clustered_value"):  # clustering.ClusterWeights
        variables = layer.layer.weights
        substitutes = [(w, layer.clustered_value(i))
                       for i, w in enumerate(layer.clustered)]
    else:
        variables, substitutes = layer.weights, ()
    return list(zip(variables,
                    _model_utils.values_with(variables, substitutes)))


def _int8_bytes(variable, values):
    # TFLite's int8 scheme: multi-dimensional weights become int8, biases and
    # other vectors int32 (BatchNorm vectors fold away; counted as int32).
    return values.size * (1 if values.ndim >= 2 else 4)


def _unique(weights):
    """Distinct values of the largest multi-dimensional weight, or 0."""
    kernels = [v for _, v in weights if v.ndim >= 2]
    if not kernels:
        return 0
    return int(len(np.unique(max(kernels, key=lambda v: v.size))))


def _compression(layer):
    if getattr(layer, _model_utils.QUANTIZED_MARKER, False):
        return "QAT"
    if hasattr(layer, "clustered_value"):
        return "clustered"
    if hasattr(layer, "pruning_schedule"):
        return "pruned"
    return "none" if _coverage.holds_kernel(layer) else ""


def layer_stats(model):
    """Per-layer statistics of `model` as a list of `LayerStats`.

    Nested models are flattened, with `outer/inner` names. Layers without
    weights are left out.
    """
    rows = []

    def visit(container, prefix):
        for layer in container.layers:
            if isinstance(layer, keras.Model):
                visit(layer, f"{prefix}{layer.name}/")
                continue
            weights = _effective_weights(layer)
            if not weights:
                continue
            inner = getattr(layer, "layer", layer)
            compression = _compression(layer)
            rows.append(LayerStats(
                name=prefix + layer.name,
                type=type(inner).__name__ + (
                    f" ({compression})" if inner is not layer else ""),
                params=sum(int(v.size) for _, v in weights),
                zeros=sum(int(np.count_nonzero(v == 0)) for _, v in weights),
                float32_bytes=sum(int(v.size) * 4 for _, v in weights),
                int8_bytes=sum(_int8_bytes(w, v) for w, v in weights),
                macs=_macs.layer_macs(layer),
                unique=_unique(weights),
                compression=compression,
            ))

    if not isinstance(model, keras.Model):
        raise ValueError(
            f"Received: model={model!r}. Expected a keras.Model."
        )
    visit(model, "")
    return rows


def _format_table(rows):
    header = ("Layer", "Type", "Compressed", "Params", "Zeros", "Sparsity",
              "Unique", "MACs", "Float32 B", "Int8 B")
    body = [(r.name, r.type, r.compression or "-", f"{r.params:,}",
             f"{r.zeros:,}",
             f"{r.sparsity:.1%}", f"{r.unique:,}" if r.unique else "-",
             f"{r.macs:,}", f"{r.float32_bytes:,}", f"{r.int8_bytes:,}")
            for r in rows]
    params = sum(r.params for r in rows)
    zeros = sum(r.zeros for r in rows)
    total = LayerStats("Total", "", params, zeros,
                       sum(r.float32_bytes for r in rows),
                       sum(r.int8_bytes for r in rows),
                       sum(r.macs for r in rows))
    footer = [(total.name, "", "", f"{params:,}", f"{zeros:,}",
               f"{total.sparsity:.1%}", "", f"{total.macs:,}",
               f"{total.float32_bytes:,}", f"{total.int8_bytes:,}")]
    ratio = total.float32_bytes / max(total.int8_bytes, 1)
    left = [r for r in rows if r.compression == "none"]
    note = "" if not left or len(left) == len(rows) else (
        f"\nLeft uncompressed ('none'): {', '.join(r.name for r in left)}, "
        f"{sum(r.params for r in left) / max(params, 1):.1%} of the "
        "parameters.")
    return (tables.render(header, body, style="text", footer=footer,
                          left_columns=3)
            + f"\nInt8 weights are {ratio:.2f}x smaller than float32; "
            f"{total.sparsity:.1%} of all parameters are zero." + note)


_PREFIXES = ("prune_low_magnitude_", "quant_")
_SUFFIXES = ("_lowrank_1", "_lowrank_2")


def base_name(name):
    """The original layer name behind wrapper prefixes and low-rank suffixes."""
    prefix, _, leaf = name.rpartition("/")
    for start in _PREFIXES:
        if leaf.startswith(start):
            leaf = leaf[len(start):]
    for end in _SUFFIXES:
        if leaf.endswith(end):
            leaf = leaf[:-len(end)]
    return f"{prefix}/{leaf}" if prefix else leaf


def _grouped(rows):
    groups = {}
    for row in rows:
        params, macs = groups.get(base_name(row.name), (0, 0))
        groups[base_name(row.name)] = (params + row.params, macs + row.macs)
    return groups


def _format_reduction(rows, baseline_rows):
    before, after = _grouped(baseline_rows), _grouped(rows)
    header = ("Layer", "Params before", "Params after", "Params x",
              "MACs before", "MACs after", "MACs x")
    body = []
    for name, (params, macs) in before.items():
        new_params, new_macs = after.get(name, (0, 0))
        body.append((name, f"{params:,}", f"{new_params:,}",
                     f"{new_params / params:.2f}" if params else "-",
                     f"{macs:,}", f"{new_macs:,}",
                     f"{new_macs / macs:.2f}" if macs else "-"))
    widths = [max(len(str(r[i])) for r in [header] + body)
              for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                       for i, (c, w) in enumerate(zip(r, widths)))
             for r in [header] + body]
    lines.insert(1, "-" * len(lines[0]))
    return "Against the baseline model:\n" + "\n".join(lines)


def summary(model: keras.Model, print_fn: Callable[[str], None] = print,
            baseline: keras.Model | None = None) -> list:
    """Prints the per-layer compression table of `model`.

    Args:
        model: a Keras model, pruned, quantized, factorized or plain.
        print_fn: called with the table as one string.
        baseline: optional original model; a second table then gives, per
            original layer, the parameters and MACs before and after (the two
            layers of a low-rank pair, and wrappers, count under the original
            layer's name).

    Returns:
        The list of `LayerStats` rows that were printed.

    Example:

    >>> import keras
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> rows = summary(model, print_fn=lambda text: None)
    >>> rows[0].params
    10
    """
    rows = layer_stats(model)
    print_fn(_format_table(rows))
    if baseline is not None:
        print_fn(_format_reduction(rows, layer_stats(baseline)))
    return rows
