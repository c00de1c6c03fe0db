"""`kcompress.summary`: the per-layer compression table.

Modelled on `larq.models.summary`: for each layer with weights, the parameter
count, the zeros, the sparsity, and the bytes the weights take at float32 and
at int8. Pruned layers are counted as they will be exported (masks applied).
"""

import dataclasses

import keras
import numpy as np

from kcompress import _model_utils

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

    @property
    def sparsity(self):
        return self.zeros / self.params if self.params else 0.0


def _effective_weights(layer):
    """`(variable, values)` for each weight, pruning masks applied."""
    masked = {}
    if hasattr(layer, "masked_weights"):
        masked = {id(w): keras.ops.convert_to_numpy(v)
                  for w, v in layer.masked_weights()}
        variables = layer.layer.weights
    else:
        variables = layer.weights
    return [(v, masked.get(id(v), keras.ops.convert_to_numpy(v)))
            for v in variables]


def _int8_bytes(variable, values):
    # TFLite's int8 scheme: multi-dimensional weights become int8, biases and
    # other vectors int32 (BatchNorm vectors fold away; counted as int32).
    return values.size * (1 if values.ndim >= 2 else 4)


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
            rows.append(LayerStats(
                name=prefix + layer.name,
                type=type(inner).__name__
                + (" (pruned)" if inner is not layer else ""),
                params=sum(int(v.size) for _, v in weights),
                zeros=sum(int(np.count_nonzero(v == 0)) for _, v in weights),
                float32_bytes=sum(int(v.size) * 4 for _, v in weights),
                int8_bytes=sum(_int8_bytes(w, v) for w, v in weights),
            ))

    if not isinstance(model, keras.Model):
        raise ValueError(
            f"Received: model={model!r}. Expected a keras.Model."
        )
    visit(model, "")
    return rows


def _format_table(rows):
    header = ("Layer", "Type", "Params", "Zeros", "Sparsity", "Float32 B",
              "Int8 B")
    body = [(r.name, r.type, f"{r.params:,}", f"{r.zeros:,}",
             f"{r.sparsity:.1%}", f"{r.float32_bytes:,}", f"{r.int8_bytes:,}")
            for r in rows]
    params = sum(r.params for r in rows)
    zeros = sum(r.zeros for r in rows)
    total = LayerStats("Total", "", params, zeros,
                       sum(r.float32_bytes for r in rows),
                       sum(r.int8_bytes for r in rows))
    body.append((total.name, "", f"{params:,}", f"{zeros:,}",
                 f"{total.sparsity:.1%}", f"{total.float32_bytes:,}",
                 f"{total.int8_bytes:,}"))
    widths = [max(len(str(row[i])) for row in [header] + body)
              for i in range(len(header))]

    def line(row):
        return "  ".join(
            str(cell).ljust(w) if i < 2 else str(cell).rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths)))

    rule = "-" * len(line(header))
    lines = [line(header), rule] + [line(r) for r in body[:-1]]
    lines += [rule, line(body[-1])]
    ratio = total.float32_bytes / max(total.int8_bytes, 1)
    lines.append(
        f"Int8 weights are {ratio:.2f}x smaller than float32; "
        f"{total.sparsity:.1%} of all parameters are zero."
    )
    return "\n".join(lines)


def summary(model, print_fn=print):
    """Prints the per-layer compression table of `model`.

    Args:
        model: a Keras model, pruned or not.
        print_fn: called with the table as one string.

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
    return rows
