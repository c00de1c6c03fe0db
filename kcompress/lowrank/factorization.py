"""`factorize`: low-rank factorization of Dense and Conv2D layers.

A Dense kernel `W` (in x out) becomes two Dense layers, `in -> r` and
`r -> out`, from the truncated SVD `W ~ (U_r sqrt(S_r)) (sqrt(S_r) V_r^T)`,
with `r` the smallest rank that keeps `energy` of the sum of squared singular
values.

Given `data`, the factorization is data-aware instead:
- **Rank.** The energy is measured on the part of the kernel that the data
  uses: the rows of inputs that are ever non-zero and the columns of units
  whose activated output is ever non-zero. A unit that ReLU keeps at zero on
  every sample (a dead unit) feeds nothing forward, and neither does an input
  that is always zero, so their weights do not count.
- **Factors.** With `X` the layer's inputs on the data (mean `m`, covariance
  `C`), the factors keep the directions that carry the variance of the
  layer's *outputs*, `W ~ (W V_r) V_r^T` with `V_r` the top eigenvectors of
  `W^T C W`, and the dropped part of the mean output, `m W (I - V_r V_r^T)`,
  moves into the bias. For a given rank this minimizes the output error
  `||X W - X W_r||` on the data. A dead unit keeps only its mean
  pre-activation, which is below zero, so it stays dead.

A Conv2D kernel (k x k x in x out), seen as a (k*k*in) x out matrix, becomes
a k x k Conv2D with `r` filters and a 1x1 Conv2D with `out` filters. The second
layer keeps the bias and the activation, the first has neither. The result is
made of plain Keras layers, so it trains, prunes, quantizes and converts like
any model.
"""

from __future__ import annotations

import dataclasses
import logging

import keras
import numpy as np

from kcompress import _keras_internals
from kcompress import _model_utils
from kcompress.inputs import check_inputs

_logger = logging.getLogger(__name__)

__all__ = ["factorize", "rank_for_energy", "factorized_parameters"]

SUFFIXES = ("_lowrank_1", "_lowrank_2")


@dataclasses.dataclass
class _Statistics:
    """What the data says about one layer's inputs and outputs."""

    covariance: np.ndarray  # of the inputs (rows of the kernel matrix)
    mean: np.ndarray
    live_rows: np.ndarray  # bool: input ever non-zero
    live_columns: np.ndarray  # bool: activated output ever non-zero


def rank_for_energy(singular_values, energy):
    """The smallest rank keeping `energy` of the sum of squared singular values.

    Example:

    >>> rank_for_energy(np.array([3.0, 2.0, 1.0]), 0.9)
    2
    """
    squared = np.asarray(singular_values, np.float64) ** 2
    kept = np.cumsum(squared) / max(squared.sum(), 1e-30)
    return int(np.searchsorted(kept, energy - 1e-12) + 1)


def _check_arguments(rank, energy):
    if (rank is None) == (energy is None):
        raise ValueError(
            f"Received: rank={rank!r}, energy={energy!r}. Expected exactly "
            "one of them: a fixed `rank`, or the `energy` (fraction of the "
            "sum of squared singular values) to keep."
        )
    if rank is not None and (isinstance(rank, bool) or not isinstance(
            rank, int) or rank < 1):
        raise ValueError(
            f"Received: rank={rank!r}. Expected an integer >= 1."
        )
    if energy is not None and (isinstance(energy, bool) or not isinstance(
            energy, (int, float)) or not 0.0 < energy <= 1.0):
        raise ValueError(
            f"Received: energy={energy!r}. Expected a float in (0, 1]."
        )


def _matrix(layer):
    kernel = keras.ops.convert_to_numpy(layer.kernel)
    return kernel.reshape(-1, kernel.shape[-1]), kernel.shape


def factorized_parameters(layer, rank):
    """`(before, after)` parameter counts of `layer` factorized at `rank`."""
    matrix, _ = _matrix(layer)
    rows, cols = matrix.shape
    bias = cols if layer.use_bias else 0
    return rows * cols + bias, rank * (rows + cols) + bias


def _is_candidate(layer):
    if isinstance(layer, keras.layers.Dense):
        return True
    return (type(layer) is keras.layers.Conv2D
            and layer.get_config().get("groups", 1) == 1)


def _factors(matrix, statistics, rank):
    """`(first, second, bias shift)` with `first @ second ~ matrix`.

    Data-aware factors keep the top directions of the output covariance; the
    part of the mean input they drop is added to the bias instead.
    """
    matrix = matrix.astype(np.float64)
    if statistics is None:
        u, s, vt = np.linalg.svd(matrix, full_matrices=False)
        root = np.sqrt(s[:rank])
        return u[:, :rank] * root, root[:, None] * vt[:rank], 0.0
    live = statistics.live_columns
    _, vectors = _output_spectrum(matrix[:, live], statistics.covariance)
    top = np.zeros((matrix.shape[1], rank))
    kept = vectors[:, :rank]  # fewer when fewer units are live
    top[np.flatnonzero(live)[:, None], np.arange(kept.shape[1])] = kept
    # Dead units get only their mean pre-activation (the shift below).
    first, second = matrix @ top, top.T
    shift = statistics.mean @ matrix - (statistics.mean @ first) @ second
    return first, second, shift


def _output_spectrum(matrix, covariance):
    """Eigenvalues (descending) and eigenvectors of `W^T C W`."""
    values, vectors = np.linalg.eigh(matrix.T @ covariance @ matrix)
    order = np.argsort(values)[::-1]
    return np.clip(values[order], 0, None), vectors[:, order]


def _split(layer, rank, statistics=None):
    """The two plain layers that replace `layer`, weights set."""
    matrix, shape = _matrix(layer)
    first_kernel, second_kernel, shift = _factors(matrix, statistics, rank)
    first_kernel = first_kernel.astype(np.float32)
    second_kernel = second_kernel.astype(np.float32)
    config = layer.get_config()
    name = layer.name
    # The data-aware mean correction needs a bias even if the layer had none.
    use_bias = config["use_bias"] or bool(np.any(shift))
    if isinstance(layer, keras.layers.Dense):
        first = keras.layers.Dense(rank, use_bias=False,
                                   dtype=config["dtype"],
                                   name=name + SUFFIXES[0])
        second = keras.layers.Dense(
            config["units"], activation=config["activation"],
            use_bias=use_bias, dtype=config["dtype"],
            name=name + SUFFIXES[1])
        first_shape = (shape[0], rank)
        second_shape = (rank, shape[1])
        input_shape = (None, shape[0])
    else:
        first = keras.layers.Conv2D(
            rank, config["kernel_size"], strides=config["strides"],
            padding=config["padding"], data_format=config["data_format"],
            dilation_rate=config["dilation_rate"], use_bias=False,
            dtype=config["dtype"], name=name + SUFFIXES[0])
        second = keras.layers.Conv2D(
            config["filters"], 1, activation=config["activation"],
            use_bias=use_bias, data_format=config["data_format"],
            dtype=config["dtype"], name=name + SUFFIXES[1])
        first_shape = tuple(shape[:-1]) + (rank,)
        second_shape = (1, 1, rank, shape[-1])
        input_shape = layer.get_build_config()["input_shape"]
    first.build(input_shape)
    second.build(first.compute_output_shape(input_shape))
    first.set_weights([first_kernel.reshape(first_shape)])
    values = [second_kernel.reshape(second_shape)]
    if use_bias:
        bias = keras.ops.convert_to_numpy(layer.bias) if layer.use_bias else 0
        values.append((bias + shift).astype(np.float32))
    second.set_weights(values)
    return first, second


def _choose_rank(layer, rank, energy, statistics=None):
    matrix, _ = _matrix(layer)
    if energy is not None:
        used = matrix.astype(np.float64)
        if statistics is not None:
            used = used[statistics.live_rows][:, statistics.live_columns]
        s = np.linalg.svd(used, compute_uv=False) if used.size else []
        rank = rank_for_energy(s, energy) if len(s) else 1
    rank = min(rank, min(matrix.shape))
    before, after = factorized_parameters(layer, rank)
    return rank if after < before else None


def _layer_inputs(model, probes, batch):
    """The inputs of each probe layer when `model` runs on `batch`."""
    if isinstance(model, keras.Sequential):
        found, x = {}, batch
        for layer in model.layers:
            if layer in probes:
                found[id(layer)] = x
            x = layer(x, training=False)
        return [found[id(layer)] for layer in probes]
    extractor = keras.Model(model.inputs, [layer.input for layer in probes])
    inputs = extractor([batch], training=False)
    return inputs if len(probes) > 1 else [inputs]


def _input_grams(model, candidates, data, batch_size=256):
    """`{layer name: _Statistics}` of each candidate on `data`."""
    probes = [layer for layer in candidates
              if isinstance(model, keras.Sequential)
              or len(_keras_internals.inbound_nodes(layer)) == 1]
    skipped = [layer.name for layer in candidates if layer not in probes]
    if skipped:
        _logger.warning("factorize: no data-aware statistics for shared "
                        "layers %s; they use the plain SVD.", skipped)
    if not probes:
        return {}
    sums = {layer.name: [0.0, 0.0, 0, False, False] for layer in probes}
    for start in range(0, len(data), batch_size):
        batch = data[start:start + batch_size]
        for layer, x in zip(probes, _layer_inputs(model, probes, batch)):
            if isinstance(layer, keras.layers.Conv2D):
                config = layer.get_config()
                x = keras.ops.image.extract_patches(
                    x, config["kernel_size"], strides=config["strides"],
                    dilation_rate=config["dilation_rate"],
                    padding=config["padding"])
            rows = keras.ops.convert_to_numpy(x).astype(np.float64)
            rows = rows.reshape(-1, rows.shape[-1])
            matrix, _ = _matrix(layer)
            outputs = rows @ matrix
            if layer.use_bias:
                outputs = outputs + keras.ops.convert_to_numpy(layer.bias)
            activated = keras.ops.convert_to_numpy(
                layer.activation(outputs.astype(np.float32)))
            total = sums[layer.name]
            total[0] = total[0] + rows.T @ rows
            total[1] = total[1] + rows.sum(axis=0)
            total[2] += len(rows)
            total[3] = total[3] | np.any(rows != 0, axis=0)
            total[4] = total[4] | np.any(activated != 0, axis=0)
    statistics = {}
    for name, (gram, row_sum, count, live_rows, live_columns) in sums.items():
        mean = row_sum / count
        statistics[name] = _Statistics(gram / count - np.outer(mean, mean),
                                       mean, live_rows, live_columns)
    return statistics


def _check_data(data, model):
    """`data` as a float array that fits the model's (single) input."""
    if len(model.inputs) != 1:
        raise ValueError(f"Received: data for model '{model.name}', which "
                         f"has {len(model.inputs)} inputs. Data-aware "
                         "factorization supports single-input models; call "
                         "factorize without data.")
    return check_inputs(data, model)[0].astype("float32")


def factorize(model: keras.Model, rank: int | None = None,
              energy: float | None = None, layers: list | None = None,
              data=None) -> keras.Model:
    """Replaces Dense and Conv2D layers with low-rank factorized pairs.

    Args:
        model: a built Sequential or functional model, nested models
            included. It is not modified.
        rank: a fixed rank for every factorized layer.
        energy: in (0, 1]: each layer gets the smallest rank that keeps this
            fraction of the sum of its squared singular values.
        layers: names (or layer objects) of the layers to factorize; all Dense
            and Conv2D layers when None.
        data: optional array of model inputs (a few hundred samples or
            more) for a data-aware factorization: `energy` then counts only
            the weights that the data uses (inputs that are ever non-zero,
            units whose activated output is ever non-zero), and the factors
            minimize the layer's output error on the data. Used for the
            layers of `model` itself (not those of nested models), which
            fall back to the plain SVD.

    Returns:
        A new model. A layer is left as it is when factorizing would not
        reduce its parameters. The factorized pair is named
        `<name>_lowrank_1` and `<name>_lowrank_2`; `model.factorized_ranks`
        on the result maps each factorized layer name to its rank.

    Example:

    >>> model = keras.Sequential([keras.Input((64,)),
    ...                           keras.layers.Dense(64, name="d")])
    >>> small = factorize(model, rank=8)
    >>> [layer.name for layer in small.layers]
    ['d_lowrank_1', 'd_lowrank_2']
    """
    _check_arguments(rank, energy)
    _model_utils.check_model_argument(
        model, "model", "factorize",
        "factorize the layers yourself with kcompress.lowrank.factorize on "
        "a functional copy of the model.", accept_layers=False)
    wanted = None
    if layers is not None:
        wanted = {getattr(item, "name", item) for item in layers}
        known = {layer.name for layer in _model_utils.iter_layers(model)}
        missing = sorted(wanted - known)
        if missing:
            raise ValueError(
                f"Received: layers={sorted(wanted)}. Model '{model.name}' has "
                f"no layers named {missing}."
            )
    ranks = {}

    def selected(layer):
        return _is_candidate(layer) and (wanted is None
                                         or layer.name in wanted)

    grams = {}
    if data is not None:
        grams = _input_grams(model, [layer for layer in model.layers
                                     if selected(layer)],
                             _check_data(data, model))

    def replace(layer):
        if not selected(layer):
            return None
        statistics = grams.get(layer.name)
        chosen = _choose_rank(layer, rank, energy, statistics)
        if chosen is None:
            return None
        ranks[layer.name] = chosen
        return _split(layer, chosen, statistics)

    new = _model_utils.expand_layers(model, replace)
    new.factorized_ranks = dict(ranks)
    return new
