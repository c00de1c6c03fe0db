"""`shrink`: remove the channels that channel pruning zeroed.

`prune_low_magnitude(..., structure="channels")` zeroes whole output channels
(kernel column and bias) during `fit`, so the model trains with them gone but
keeps their shapes. `shrink` rebuilds the model without them: each pruned
layer loses its zero channels, and what depends on them follows:
- the next Conv2D, DepthwiseConv2D or Dense loses the matching input rows
  (after a Flatten, every spatial position of each removed channel);
- BatchNormalization loses the channels' statistics, scale and shift;
- DepthwiseConv2D keeps each remaining input channel with all its
  multiplier outputs; when it zeroed channels of its own (multiplier 1), the
  producer before it drops them too, since nothing else reads them.

A removed channel is exactly zero in the masked model, so removing it changes
nothing, provided zero stays zero on the way to the next layer (ReLU-like
activations, pooling). A BatchNormalization turns a zero channel into its
constant shift; `shrink` folds that constant into the next Dense (or `valid`
Conv2D) bias, and refuses when it cannot be folded exactly. The shrunk
model's outputs equal the masked model's to float tolerance.

A model that is one chain of layers is rebuilt as such. A functional model
whose branches merge (Add, Concatenate, squeeze-excite Multiply, ...) goes
to `group_pruning.shrink_graph`, which keeps the topology and removes the
channels that `prune_channel_groups` zeroed by dependency group.
"""

from __future__ import annotations

import keras
import numpy as np

from kcompress import _keras_internals
from kcompress import _model_utils
from kcompress.pruning.group_pruning import shrink_graph
from kcompress.pruning.prune import pruning_wrappers
from kcompress.pruning.prune import strip_pruning

__all__ = ["shrink"]

_PRODUCERS = (keras.layers.Conv2D, keras.layers.Dense,
              keras.layers.DepthwiseConv2D)
# Layers that keep each channel where it is: activations map a constant
# channel to another constant, the others keep it as it is.
_ACTIVATIONS = (keras.layers.Activation, keras.layers.ReLU,
                keras.layers.LeakyReLU, keras.layers.ELU)
_PASS_THROUGH = _ACTIVATIONS + (
    keras.layers.MaxPooling2D, keras.layers.AveragePooling2D,
    keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D,
    keras.layers.Dropout, keras.layers.SpatialDropout2D,
    keras.layers.Identity)


def _chain(model):
    """The model's layers as one chain, or a ValueError naming the culprit."""
    if isinstance(model, keras.Sequential):
        layers = list(model.layers)
    else:
        layers = [layer for layer in model.layers
                  if not isinstance(layer, keras.layers.InputLayer)]
        if len(model.inputs) != 1 or len(model.outputs) != 1:
            raise ValueError(
                f"Received: model '{model.name}' with {len(model.inputs)} "
                f"inputs and {len(model.outputs)} outputs. Expected one "
                "input and one output: shrink rebuilds a single chain of "
                "layers."
            )
    previous = None
    for layer in layers:
        if isinstance(layer, keras.Model):
            raise ValueError(
                f"Received: a nested model '{layer.name}' inside "
                f"'{model.name}'. shrink works on a flat model; rebuild it "
                "without nesting first."
            )
        inputs = [] if isinstance(model, keras.Sequential) else [
            t for node in _keras_internals.inbound_nodes(layer)
            for t in node.input_tensors]
        if len(inputs) > 1:
            raise ValueError(
                f"Received: model '{model.name}', whose layer '{layer.name}' "
                f"({type(layer).__name__}) joins {len(inputs)} branches. "
                "shrink removes channels along a single chain; the branches "
                "of a merge must keep the same channels, which pruning each "
                "branch's layers does not ensure. Prune the layers outside "
                "residual blocks only (wrap them one by one with "
                "structure='channels'), or use unstructured pruning."
            )
        if inputs and previous is not None and (
                _keras_internals.keras_history(inputs[0]).operation
                is not previous):
            raise ValueError(
                f"Received: model '{model.name}', where layer '{layer.name}' "
                "does not read the output of the layer before it. shrink "
                "rebuilds a single chain of layers."
            )
        previous = layer
    return layers


def _zero_at_zero(activation):
    return float(keras.ops.convert_to_numpy(
        activation(keras.ops.zeros((1,))))[0]) == 0.0


def _dead_channels(layer, weights, last):
    """Output channels of `layer` that are zero: kernel, bias, activation."""
    if last or not _zero_at_zero(layer.activation):
        return np.zeros(0, int)
    kernel = weights[0]
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        if kernel.shape[-1] != 1:
            return np.zeros(0, int)
        columns = kernel.reshape(-1, kernel.shape[-2])
    else:
        columns = kernel.reshape(-1, kernel.shape[-1])
    zero = ~np.any(columns != 0, axis=0)
    if len(weights) > 1:
        zero &= weights[1] == 0
    return np.flatnonzero(zero)


def _dead_batchnorm_channels(layer, weights):
    """Channels whose gamma and beta are zero: they output zero."""
    if not layer.scale:
        return np.zeros(0, int)
    gamma = weights[0]
    beta = weights[1] if layer.center else np.zeros_like(gamma)
    return np.flatnonzero((gamma == 0) & (beta == 0))


def _fold_constants(layer, weights, constants):
    """Adds the contribution of constant removed inputs to the bias.

    Returns:
        The new weights, with a bias (created if the layer had none).
    """
    if not constants:
        return weights
    kernel = weights[0]
    config = layer.get_config()
    exact = isinstance(layer, keras.layers.Dense) or (
        isinstance(layer, keras.layers.Conv2D)
        and (config["padding"] == "valid"
             or tuple(config["kernel_size"]) == (1, 1)))
    if not exact:
        raise ValueError(
            f"Layer '{layer.name}' ({type(layer).__name__}) reads removed "
            "channels that are not zero but a constant (a BatchNormalization"
            " shift). shrink can fold that into the bias of a Dense, a 1x1 "
            "or a 'valid' Conv2D only: here, padding would make it "
            "position-dependent. Prune the BatchNormalization's channels "
            "(prune_low_magnitude on the model does), or put the pruned "
            "channels before a ReLU that zeroes the constant."
        )
    index = np.array(sorted(constants))
    values = np.array([constants[i] for i in index], kernel.dtype)
    rows = kernel[..., index, :]
    shift = np.tensordot(rows, values, axes=([rows.ndim - 2], [0]))
    shift = shift.reshape(-1, kernel.shape[-1]).sum(axis=0)
    bias = weights[1] if layer.use_bias else np.zeros(kernel.shape[-1],
                                                      kernel.dtype)
    return [kernel, bias + shift]


def _batchnorm(layer, weights, kept, constants):
    """BatchNorm weights for the `kept` channels, and the constants that the
    removed ones now hold (a removed channel enters as 0 or its constant)."""
    config = layer.get_config()
    names = [w.path.split("/")[-1] for w in layer.weights]
    values = dict(zip(names, weights))
    gamma = values.get("gamma", np.ones_like(values["moving_mean"]))
    beta = values.get("beta", np.zeros_like(values["moving_mean"]))
    scale = gamma / np.sqrt(values["moving_variance"] + config["epsilon"])

    def normalize(channel, value):
        return float((value - values["moving_mean"][channel]) * scale[channel]
                     + beta[channel])

    removed = np.setdiff1d(np.arange(len(scale)), kept)
    new_constants = {int(c): normalize(c, constants.get(c, 0.0))
                     for c in removed}
    new_constants = {c: v for c, v in new_constants.items() if v != 0.0}
    return [w[kept] for w in weights], new_constants


def shrink(model: keras.Model) -> keras.Model:
    """Rebuilds `model` without the channels that channel pruning zeroed.

    Args:
        model: a Sequential or functional model pruned with
            `prune_low_magnitude(..., structure="channels")`, wrapped or
            already stripped. It is not modified.

    Returns:
        A new model with smaller layers. `model.channels_kept` maps each
        layer that lost channels to `(kept, original)` channel counts. Its
        outputs equal those of the masked model to float tolerance.

    A functional model that is not one chain (residual adds,
    concatenations, squeeze-excite) keeps its topology: see
    `prune_channel_groups`, whose zeroed channels it removes.

    Raises:
        ValueError: for removed channels whose constant value cannot be
            folded exactly, in a chain.
    """
    _model_utils.check_model_argument(
        model, "model", "shrink",
        "rebuild it as a functional or Sequential model first.",
        accept_layers=False)
    per_layer = any(w.structure == "channels"
                    for w in pruning_wrappers(model))
    if pruning_wrappers(model):
        model = strip_pruning(model)
    try:
        layers = _chain(model)
    except ValueError as error:
        if isinstance(model, keras.Sequential) or per_layer:
            raise ValueError(
                f"{error} To prune a graph like this one, prune it by "
                "dependency group: prune_low_magnitude(model, ..., structure="
                "'channels') does on a model whose branches merge, and "
                "kc.pruning.prune_channel_groups(model, fraction) zeroes "
                "channels at once."
            ) from None
        return shrink_graph(model)
    all_weights = [[np.array(w) for w in layer.get_weights()]
                   for layer in layers]
    # Channels a DepthwiseConv2D (multiplier 1) or a BatchNormalization
    # zeroes after its producer are dropped by that producer: nothing reads
    # them.
    unused = [np.zeros(0, int) for _ in layers]
    for i, layer in enumerate(layers):
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            dead = _dead_channels(layer, all_weights[i], i == len(layers) - 1)
        elif isinstance(layer, keras.layers.BatchNormalization):
            dead = _dead_batchnorm_channels(layer, all_weights[i])
        else:
            continue
        j = i - 1
        while j >= 0 and isinstance(layers[j], _PASS_THROUGH):
            j -= 1
        if len(dead) and j >= 0 and isinstance(layers[j], _PRODUCERS):
            unused[j] = np.union1d(unused[j], dead)
    kept, constants = None, {}
    new_layers, new_weights, report = [], [], {}
    for i, (layer, weights) in enumerate(zip(layers, all_weights)):
        config = layer.get_config()
        last = i == len(layers) - 1
        if isinstance(layer, _PRODUCERS):
            if isinstance(layer, keras.layers.DepthwiseConv2D):
                if constants:
                    raise ValueError(
                        f"Layer '{layer.name}' (DepthwiseConv2D) reads "
                        "removed channels that hold a non-zero constant; "
                        "shrink cannot fold it exactly. Fold the "
                        "BatchNormalization before it first.")
                if kept is not None:
                    multiplier = weights[0].shape[-1]
                    weights = [weights[0][:, :, kept, :]] + [
                        w.reshape(-1, multiplier)[kept].reshape(-1)
                        for w in weights[1:]]
                    kept = np.array([c * multiplier + m for c in kept
                                     for m in range(multiplier)])
            else:
                if constants:
                    weights = _fold_constants(layer, weights, constants)
                    config["use_bias"] = True
                if kept is not None:
                    weights = [weights[0][..., kept, :]] + weights[1:]
                removed = np.union1d(_dead_channels(layer, weights, last),
                                     unused[i])
                channels = weights[0].shape[-1]
                if len(removed) == channels:
                    removed = removed[1:]  # keep one: a layer needs a channel
                kept_out = np.setdiff1d(np.arange(channels), removed)
                if len(removed):
                    weights = [weights[0][..., kept_out]] + [
                        w[kept_out] for w in weights[1:]]
                    key = "filters" if "filters" in config else "units"
                    config[key] = int(len(kept_out))
                    report[layer.name] = (int(len(kept_out)), channels)
                kept = kept_out if len(removed) else None
                constants = {}
        elif isinstance(layer, keras.layers.BatchNormalization):
            # Constants only ever stand for removed channels: with nothing
            # removed (kept is None) there are none.
            if kept is not None:
                weights, constants = _batchnorm(layer, weights, kept,
                                                constants)
        elif isinstance(layer, keras.layers.Flatten):
            shape = layer.get_build_config()["input_shape"]
            channels = shape[-1]
            positions = int(np.prod(shape[1:-1]))
            if kept is not None:
                kept = np.array([p * channels + c for p in range(positions)
                                 for c in kept])
            constants = {p * channels + c: v for p in range(positions)
                         for c, v in constants.items()}
        elif isinstance(layer, _PASS_THROUGH):
            act = getattr(layer, "activation", None) or layer
            if constants and isinstance(layer, _ACTIVATIONS):
                values = keras.ops.convert_to_numpy(act(keras.ops.array(
                    [list(constants.values())], "float32")))[0]
                constants = {c: float(v) for c, v in zip(constants, values)
                             if v != 0.0}
        elif kept is not None or constants:
            raise ValueError(
                f"Layer '{layer.name}' ({type(layer).__name__}) follows "
                "removed channels, and shrink does not know how to carry them"
                " through it. Supported between pruned layers: "
                "BatchNormalization, Flatten, activations, pooling and "
                "dropout."
            )
        new_layers.append(layer.__class__.from_config(config))
        new_weights.append(weights)
    if kept is not None or constants:
        raise ValueError(
            f"The last layer of '{model.name}' outputs pruned channels; "
            "shrink would change the model's output shape. Do not prune the "
            "output layer's channels."
        )
    new = keras.Sequential([keras.Input(model.input_shape[1:])] + new_layers,
                           name=model.name)
    for layer, weights in zip(new.layers, new_weights):
        layer.set_weights(weights)
    new.channels_kept = report
    return new
