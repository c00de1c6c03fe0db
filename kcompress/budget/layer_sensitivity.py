"""Per-layer sensitivity: how much the metric drops when one layer alone is
pruned, loses channels, or goes to int8.

`sensitivity(model, data)` measures, without retraining, for every prunable
layer on its own:

- `"sparsity"`: its kernel pruned by magnitude to each of `sparsities`;
- `"channels"`: for every channel group (`kcompress.pruning.channel_groups`:
  a layer's output channels, or the channels a residual merge ties
  together), the lowest-scoring `channel_fractions` zeroed, as
  `prune_channel_groups` zeroes them;
- `"precision"`: its weights rounded to int8 (per channel for convolutions,
  per tensor for Dense, as the int8 kernels take them) and its output
  rounded to int8 (asymmetric, the range seen on the data) or to int16
  (`"int16x8"`: symmetric 16-bit activations, int8 weights).

Each entry is the score of the model with that one change, against the
untouched model's score: its `drop` (positive is worse). The measurements
are batched `predict` calls on a copy of the model; the user's model is not
modified. With `cache_dir`, the table is saved under a key of the weights,
the data and the settings, and a second call with the same ones reads it.
"""

import hashlib
import json
import os

import keras
import numpy as np

from kcompress import _model_utils
from kcompress.budget import scoring
from kcompress.budget.sensitivity_table import SensitivityTable
from kcompress.pruning import group_pruning
from kcompress.pruning import prunable_layer
from kcompress.pruning.dependency_groups import channel_groups
from kcompress.pruning.global_masks import lowest_mask

__all__ = ["sensitivity", "SensitivityTable"]

PRECISIONS = ("int8", "int16x8")
_BITS = {"int8": 8, "int16x8": 16}


def _check_fractions(values, argument, upper_open=True):
    values = tuple(values)
    if not values or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool)
            and 0.0 < v < 1.0 for v in values):
        raise ValueError(
            f"Received: {argument}={values!r}. Expected a non-empty sequence "
            "of floats in (0, 1).")
    return tuple(float(v) for v in values)


def _kernel_layers(model):
    """The top-level layers with a prunable kernel, in graph order."""
    return [layer for layer in model.layers
            if not isinstance(layer, keras.Model)
            and prunable_layer.is_prunable(layer) and layer.weights]


def _quantize_weight(value, per_channel, bits=8):
    """`value` rounded to symmetric `bits`-bit integers and back."""
    top = 2 ** (bits - 1) - 1
    axes = tuple(range(value.ndim - 1)) if per_channel else None
    scale = np.max(np.abs(value), axis=axes, keepdims=per_channel) / top
    scale = np.where(scale == 0, 1.0, scale)
    return (np.clip(np.round(value / scale), -top, top) * scale).astype(
        value.dtype)


class _QuantizedOutput(keras.layers.Layer):
    """Rounds its input to a fixed integer grid (the one measurement's
    activation quantizer; not saved)."""

    def __init__(self, low, high, bits, **kwargs):
        super().__init__(**kwargs)
        self.low, self.high, self.bits = float(low), float(high), bits

    def call(self, x):
        if self.bits == 16:  # symmetric, as LiteRT's int16 activations
            top = max(abs(self.low), abs(self.high), 1e-8)
            scale = top / 32767.0
            return keras.ops.round(x / scale) * scale
        low, high = min(self.low, 0.0), max(self.high, 0.0)
        scale = max(high - low, 1e-8) / 255.0
        zero = keras.ops.round(-low / scale)
        q = keras.ops.clip(keras.ops.round(x / scale) + zero, 0, 255)
        return (q - zero) * scale


def _fingerprint(model, x, y, settings):
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    for array in (x if isinstance(x, (list, tuple)) else [x]):
        digest.update(np.ascontiguousarray(array).tobytes())
    if y is not None:
        digest.update(np.ascontiguousarray(y).tobytes())
    return digest.hexdigest()[:24]


def sensitivity(model, data, *, metric="accuracy",
                sparsities=(0.5, 0.8, 0.9, 0.95),
                channel_fractions=(0.25, 0.5, 0.75),
                precisions=PRECISIONS, batch_size=256, cache_dir=None,
                verbose=1):
    """Measures each layer's sensitivity to pruning, channels and int8.

    Args:
        model: a built Sequential or functional Keras model. Not modified.
        data: `(x, y)`: inputs and the labels the metric reads (a few
            hundred held-out samples are plenty).
        metric: `"accuracy"`, `"loss"` (the compiled loss) or a callable
            `score(y_true, y_pred) -> float`, higher is better.
        sparsities: the sparsities each kernel is pruned to, alone.
        channel_fractions: the fractions of each channel group removed.
            An empty tuple skips channels.
        precisions: among `"int8"` and `"int16x8"`. Empty skips precision.
        batch_size: of the `predict` calls.
        cache_dir: a directory to keep the table in, keyed by the model's
            weights, the data and these settings.
        verbose: 1 for a progress bar, 0 for none.

    Returns:
        A `SensitivityTable`: `table.rows`, `table.drop(layer, kind,
        setting)`, `table.to_markdown()`, `table.plot()`.

    Example:

    >>> import keras, numpy as np
    >>> model = keras.Sequential([keras.Input((4,)),
    ...     keras.layers.Dense(8, name="hidden"),
    ...     keras.layers.Dense(3, name="logits")])
    >>> x = np.random.rand(32, 4).astype("float32")
    >>> y = np.arange(32) % 3
    >>> table = sensitivity(model, (x, y), channel_fractions=(),
    ...                     precisions=(), verbose=0)
    >>> sorted({row.layer for row in table.rows})
    ['hidden', 'logits']
    """
    _model_utils.check_model_argument(
        model, "model", "sensitivity",
        "rebuild it as a functional or Sequential model first.",
        accept_layers=False)
    x, y = scoring.check_data(data)
    sparsities = _check_fractions(sparsities, "sparsities")
    channel_fractions = (_check_fractions(channel_fractions,
                                          "channel_fractions")
                         if channel_fractions else ())
    unknown = [p for p in precisions if p not in PRECISIONS]
    if unknown:
        raise ValueError(
            f"Received: precisions={tuple(precisions)!r}. Expected values "
            f"among {PRECISIONS}.")
    settings = {"metric": metric if isinstance(metric, str) else getattr(
        metric, "__name__", "callable"), "sparsities": sparsities,
        "channels": channel_fractions, "precisions": list(precisions)}
    path = None
    if cache_dir is not None:
        key = _fingerprint(model, x, y, settings)
        path = os.path.join(os.fspath(cache_dir), f"sensitivity-{key}.json")
        if os.path.exists(path):
            with open(path) as f:
                return SensitivityTable.from_config(json.load(f))

    work = _model_utils.clone(model, _model_utils.clone_layer)

    def predict(m):
        return m.predict(x, batch_size=batch_size, verbose=0)

    base_out = predict(work)
    score = scoring.resolve_metric(metric, model, y, base_out)
    baseline = score(base_out)
    layers = _kernel_layers(work)
    graph = channel_groups(work) if channel_fractions else None
    groups = [g for g in graph.groups if g.prunable] if graph else []
    total = (len(layers) * (len(sparsities) + len(precisions))
             + len(groups) * len(channel_fractions))
    bar = keras.utils.Progbar(total, verbose=verbose, unit_name="trial")
    rows, originals = [], work.get_weights()

    def record(layer, kind, setting, params, value):
        rows.append((layer, kind, setting, params, value))
        bar.add(1)

    for layer in layers:
        kernels = prunable_layer.prunable_weights(layer)
        saved = layer.get_weights()
        size = sum(int(np.prod(k.shape)) for k in kernels)
        for sparsity in sparsities:
            for kernel in kernels:
                value = keras.ops.convert_to_numpy(kernel)
                count = int(round(sparsity * value.size))
                kernel.assign(value * lowest_mask(np.abs(value), count))
            record(layer.name, "sparsity", sparsity, size,
                   score(predict(work)))
            layer.set_weights(saved)
    if groups:
        for group in groups:
            for fraction in channel_fractions:
                removed = group_pruning.choose_removed(
                    graph, {group.name: fraction})
                for layer in work.layers:
                    keeps = group_pruning.slices(graph, layer.name, removed)
                    if keeps and layer.weights:
                        layer.set_weights(group_pruning.zeroed(
                            layer, layer.get_weights(), keeps))
                record(group.name, "channels", fraction, len(group.classes),
                       score(predict(work)))
                work.set_weights(originals)
    if precisions:
        outputs = keras.Model(work.inputs, [layer.output for layer in layers])
        seen = outputs.predict(x, batch_size=batch_size, verbose=0)
        seen = seen if isinstance(seen, list) else [seen]
        ranges = {layer.name: (float(np.min(v)), float(np.max(v)))
                  for layer, v in zip(layers, seen)}
        for layer in layers:
            per_channel = not isinstance(layer, keras.layers.Dense)
            quantized = [_quantize_weight(keras.ops.convert_to_numpy(k),
                                          per_channel)
                         for k in prunable_layer.prunable_weights(layer)]
            for precision in precisions:
                low, high = ranges[layer.name]

                def replace(candidate, name=layer.name, low=low, high=high,
                            bits=_BITS[precision]):
                    if candidate.name != name:
                        return None
                    return [_model_utils.clone_layer(candidate),
                            _QuantizedOutput(low, high, bits)]

                trial = _model_utils.expand_layers(work, replace)
                trial_layer = trial.get_layer(layer.name)
                for kernel, value in zip(
                        prunable_layer.prunable_weights(trial_layer),
                        quantized):
                    kernel.assign(value)
                record(layer.name, "precision", precision,
                       sum(v.size for v in quantized), score(predict(trial)))
    table = SensitivityTable(baseline, [
        (layer, kind, setting, params, value, baseline - value)
        for layer, kind, setting, params, value in rows], settings["metric"])
    if path is not None:
        from kcompress._atomic import write_text

        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_text(path, json.dumps(table.get_config()))
    return table
