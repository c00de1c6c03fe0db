"""Entry points of QAT, with TFMOT's names.

- `quantize_model(model)` quantizes every layer.
- `quantize_annotate_layer` and `quantize_annotate_model` mark layers, and
  `quantize_apply` quantizes only the marked ones (the rest stay float).
- `strip_quantization` returns a plain float model.
- `calibrate` sets activation ranges from data before training.

The rewrite clones the model (the input is never modified). It folds
Conv/DepthwiseConv + BatchNorm pairs and splits SeparableConv2D into a
DepthwiseConv2D and a 1x1 Conv2D, as TFLite does, and it puts a
`QuantizeLayer` on each model input. A pruned model, wrapped or stripped, keeps
its zeros through QAT (`preserve_sparsity=True`).
"""

from __future__ import annotations

import warnings

import keras

from kcompress import _model_utils
from kcompress.inputs import check_inputs
from kcompress.pruning.prune import pruning_wrappers
from kcompress.pruning.prune import strip_pruning
from kcompress.quantization import composite
from kcompress.quantization import fold_batchnorm
from kcompress.quantization import patterns
from kcompress.quantization.activation_range import ActivationRange
from kcompress.quantization.quantize_annotate import QuantizeAnnotate
from kcompress.quantization.quantize_config import default_quantize_config
from kcompress.quantization.quantize_config import float_layer_warning
from kcompress.quantization.quantize_config import unsupported_layer_error
from kcompress.quantization.quantize_wrapper import QuantizedConstant
from kcompress.quantization.quantize_wrapper import QuantizeLayer
from kcompress.quantization.quantize_wrapper import QuantizeWrapper

__all__ = ["quantize_model", "quantize_annotate_layer",
           "quantize_annotate_model", "quantize_apply", "strip_quantization",
           "calibrate", "quantized_layers", "quantize_layers"]

_PER_LAYER_HINT = (
    "build the model functionally, or quantize its layers where the model "
    "creates them with kcompress.quantization.QuantizeWrapper(layer)."
)




def quantized_layers(model: keras.Model) -> list:
    """The QAT layers (wrappers, folded pairs, input quantizers) of `model`,
    and the ranges inside composite QAT layers (layer norm, attention)."""
    found = _model_utils.find_layers(model, ActivationRange)
    for layer in _model_utils.find_layers(model, composite._Composite):
        found.extend(layer.ranges.values())
    return found


def quantize_annotate_layer(to_annotate, quantize_config=None):
    """Marks a layer to be quantized by `quantize_apply`.

    Args:
        to_annotate: a Keras layer.
        quantize_config: a `QuantizeConfig`; required for layers with no
            default (custom layers).

    Returns:
        A `QuantizeAnnotate` layer wrapping `to_annotate`.
    """
    if not isinstance(to_annotate, keras.layers.Layer) or isinstance(
            to_annotate, keras.Model):
        raise ValueError(
            f"Received: to_annotate={to_annotate!r}. Expected a "
            "keras.layers.Layer (use quantize_annotate_model for a model)."
        )
    return QuantizeAnnotate(to_annotate, quantize_config=quantize_config)


def _check_model(model, verb):
    _model_utils.check_model_argument(model, "model", verb, _PER_LAYER_HINT,
                                      accept_layers=False)
    if not model.built or not _has_inputs(model):
        raise ValueError(
            f"Model '{model.name}' is not built and has no input shape. "
            "Give it a keras.Input (or call it on data) before quantizing."
        )
    if quantized_layers(model):
        raise ValueError(
            f"Model '{model.name}' is already quantized: it holds QAT layers. "
            "Quantizing twice is not supported; call strip_quantization "
            "first."
        )


def _has_inputs(model):
    try:
        return bool(model.inputs)
    except (AttributeError, ValueError):
        return False


def quantize_annotate_model(model):
    """Marks every layer of `model` for `quantize_apply` (returns a clone)."""
    _check_model(model, "quantize_annotate_model")

    def clone_function(layer):
        new = _model_utils.clone_layer(layer)
        if isinstance(layer, QuantizeAnnotate):
            return new
        return QuantizeAnnotate(new)

    return _model_utils.transform_model(model, clone_function)


def _as_functional(model):
    """A functional copy of a Sequential model; other models as they are.

    The copy is built from fresh clones of the layers, so each layer has one
    inbound node (the graph analysis below relies on it).
    """
    if not isinstance(model, keras.Sequential):
        return model
    spec = model.inputs[0]
    inputs = keras.Input(batch_shape=spec.shape, dtype=spec.dtype,
                         name=f"{model.name}_input")
    x = inputs
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            layer = _model_utils.transform_model(layer,
                                                 _model_utils.clone_layer)
        else:
            layer = _model_utils.clone_layer(layer)
        x = layer(x)
    return keras.Model(inputs, x, name=model.name)


# `keras.ops` nodes that only move values: TFLite gives their output the
# scale of their input, so no output range is learned for them.
_MOVING_OPS = frozenset((
    "Reshape", "Transpose", "ExpandDims", "Squeeze", "GetItem", "Slice",
    "Take", "TakeAlongAxis", "Flip", "Tile", "Repeat", "BroadcastTo",
    "Max", "Min", "Amax", "Amin", "Pad", "Split", "Stack", "Unstack"))


# Input preprocessing read in float: a model input feeding one of these is
# not quantized first. TFLite runs the affine map in float on the raw input
# and quantizes its result once, which loses less than rounding raw pixels
# (or per-channel-normalized values) to one int8 grid before the map.
_FLOAT_INPUT_LAYERS = (keras.layers.Rescaling, keras.layers.Normalization)


def _quantizes_output(operation):
    """Whether a `keras.ops` node computes new values (its output is
    fake-quantized, as TFLite requantizes it)."""
    return type(operation).__name__ not in _MOVING_OPS


# Elementwise `keras.ops` nodes whose constant operands TFLite needs in int8.
_BINARY_OPS = frozenset(("Add", "Subtract", "Multiply", "Divide",
                         "TrueDivide", "Maximum", "Minimum"))


def _is_constant(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) or (
        hasattr(value, "dtype") and not hasattr(value, "_keras_history")
        and "float" in str(value.dtype))


def _is_float(tensor):
    return "float" in str(getattr(tensor, "dtype", ""))


def _rewrite(model, annotated_only, preserve_sparsity, quantize_inputs=True,
             left_float=None):
    """The QAT clone of a functional `model`.

    `left_float` collects the names of layers with no int8 quantization,
    left in float (`quantize_model` only; `quantize_apply` leaves every
    unannotated layer in float on purpose).
    """
    left_float = [] if left_float is None else left_float
    float_layers = set()  # ids of original layers left in float

    def resolve(layer):
        """`(layer, QuantizeConfig, "separable", or None for float)`."""
        annotated = isinstance(layer, QuantizeAnnotate)
        inner = layer.layer if annotated else layer
        if not annotated and (annotated_only or isinstance(layer,
                                                           keras.Model)):
            return inner, None
        if annotated and layer.quantize_config is not None:
            return inner, layer.quantize_config
        if isinstance(inner, keras.layers.SeparableConv2D):
            return inner, "separable"
        if composite.composite_for(inner) is not None:
            return inner, "composite"
        config = default_quantize_config(inner)
        if config is None and annotated:
            raise unsupported_layer_error(inner)
        if config is None:
            float_layers.add(id(inner))
        return inner, config

    pairs = patterns.fold_pairs(model, resolve)
    fused = patterns.fused_producers(model, resolve)
    dropped = set()  # ids of the Identity stand-ins of folded BatchNorms
    # id(first part of a split layer) -> its second part: the pointwise half
    # of a SeparableConv2D, or the activation of a layer TFLite cannot fuse.
    followers = {}

    quantized = set()  # ids of new layers that take quantized inputs
    requantized = set()  # ids of new float layers whose output is quantized

    def clone_function(layer):
        if isinstance(layer, keras.Model):
            new = _rewrite(_as_functional(layer), annotated_only,
                           preserve_sparsity, quantize_inputs=False,
                           left_float=left_float)
            quantized.add(id(new))
            return new
        inner, config = resolve(layer)
        if config is None:
            new = _model_utils.clone_layer(inner)
            if id(inner) in float_layers:
                left_float.append(inner.name)
                requantized.add(id(new))
            return new
        if isinstance(inner, keras.layers.BatchNormalization) and (
                id(inner) in pairs):
            new = keras.layers.Identity(name=inner.name)
            dropped.add(id(new))
        elif id(inner) in pairs:
            new = fold_batchnorm.fold_pair(
                inner, pairs[id(inner)], preserve_sparsity,
                output_quantized=id(pairs[id(inner)]) not in fused)
        elif config == "composite":
            new = composite.composite_for(inner)(
                _model_utils.clone_layer(inner))
        elif config == "separable":
            new, pointwise = (
                QuantizeWrapper(part, default_quantize_config(part),
                                preserve_sparsity)
                for part in patterns.split_separable(inner))
            followers[id(new)] = pointwise
        elif (id(inner) in fused
              and patterns.without_output(config).quantizes_anything):
            new = QuantizeWrapper(_model_utils.clone_layer(inner),
                                  patterns.without_output(config),
                                  preserve_sparsity)
        elif id(inner) in fused:
            new = _model_utils.clone_layer(inner)
        elif config.quantizes_anything and patterns.split_activation(inner):
            linear, activation = patterns.split_activation(inner)
            new = QuantizeWrapper(linear, config, preserve_sparsity)
            special = composite.composite_for(activation)
            followers[id(new)] = (special(activation) if special else
                                  QuantizeWrapper(activation,
                                                  default_quantize_config(
                                                      activation)))
        elif config.quantizes_anything:
            new = QuantizeWrapper(_model_utils.clone_layer(inner), config,
                                  preserve_sparsity)
        else:
            new = _model_utils.clone_layer(inner)
        if not isinstance(inner, _FLOAT_INPUT_LAYERS):
            quantized.add(id(new))
        return new

    input_quantizers = {}

    def output_quantized(tensor, node):
        if not _is_float(tensor):
            return tensor
        return QuantizeLayer(name=f"quantize_{node.name}")(tensor)

    def quantized_input(tensor):
        history = getattr(tensor, "_keras_history", None)
        if history is None or not isinstance(history.operation,
                                             keras.layers.InputLayer):
            return tensor
        if not _is_float(tensor):  # Token ids and other integer inputs.
            return tensor
        if id(tensor) not in input_quantizers:
            layer = QuantizeLayer(name=f"quantize_{history.operation.name}")
            input_quantizers[id(tensor)] = layer(tensor)
        return input_quantizers[id(tensor)]

    def call_function(layer, *args, **kwargs):
        if id(layer) in dropped:
            return args[0]
        operation = _model_utils.is_operation_node(layer)
        if quantize_inputs and (id(layer) in quantized or (
                operation and not annotated_only)):
            args = keras.tree.map_structure(quantized_input, args)
        if (operation and not annotated_only
                and type(layer).__name__ in _BINARY_OPS):
            tensor = next((a for a in args if _is_float(a)
                           and hasattr(a, "_keras_history")), None)
            if tensor is not None:
                args = tuple(
                    QuantizedConstant(a, name=f"{layer.name}_constant{i}")(
                        tensor) if _is_constant(a) else a
                    for i, a in enumerate(args))
        outputs = layer(*args, **kwargs)
        if id(layer) in followers:
            outputs = followers[id(layer)](outputs)
        if id(layer) in requantized or (
                operation and not annotated_only
                and _quantizes_output(layer)):
            outputs = keras.tree.map_structure(
                lambda t: output_quantized(t, layer), outputs)
        return outputs

    return _model_utils.clone(model, clone_function, call_function)


def quantize_apply(model: keras.Model, preserve_sparsity: bool = True,
                   calibration_data=None) -> keras.Model:
    """Quantizes the layers of `model` marked by the annotate functions.

    Args:
        model: a model from `quantize_annotate_model`, or one with layers from
            `quantize_annotate_layer`. It is not modified.
        preserve_sparsity: keep exactly-zero weights at zero through QAT.
        calibration_data: optional array of inputs; if given, activation
            ranges are set from it (see `calibrate`).

    Returns:
        The QAT model, ready to compile and `fit`.
    """
    return _quantize(model, True, preserve_sparsity, calibration_data,
                     "quantize_apply")


def quantize_model(model: keras.Model, preserve_sparsity: bool = True,
                   calibration_data=None) -> keras.Model:
    """Quantizes every layer of `model` for QAT with TFLite's int8 scheme.

    Args:
        model: a built Sequential or functional model, nested models
            included. A model pruned with `prune_low_magnitude` (wrapped or
            stripped) keeps its zeros. The model is not modified.
        preserve_sparsity: keep exactly-zero weights at zero through QAT (a
            dense model has no exact zeros, so this costs nothing there).
        calibration_data: optional array of inputs; if given, activation
            ranges are set from it before training (see `calibrate`).
            Otherwise the first training batch sets them.

    Returns:
        The QAT model, ready to compile and `fit`. Convert it with
        `tflite_export.convert(model, "qat")`.

    Example:

    >>> import keras
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> qat = quantize_model(model)
    >>> [type(layer).__name__ for layer in qat.layers]
    ['InputLayer', 'QuantizeLayer', 'QuantizeWrapper']
    """
    return _quantize(model, False, preserve_sparsity, calibration_data,
                     "quantize_model")


def _quantize(model, annotated_only, preserve_sparsity, calibration_data,
              verb):
    if isinstance(model, keras.layers.Layer) and not isinstance(
            model, keras.Model):
        raise ValueError(
            f"Received: model={model.name!r}, a {type(model).__name__} layer. "
            f"Expected a Sequential or functional keras.Model; {verb} "
            "rewrites whole models. Use QuantizeWrapper(layer) for one layer."
        )
    _check_model(model, verb)
    channel_pruned = [w.name for w in pruning_wrappers(model)
                      if getattr(w, "structure", None)]
    if channel_pruned:
        raise ValueError(
            f"Received: model '{model.name}' with channel-pruned layers "
            f"{channel_pruned}. Expected a shrunk model: call "
            "kcompress.pruning.shrink(model) first, then quantize the "
            "smaller model. QAT of the masked model would not keep the "
            "removed channels at zero."
        )
    if pruning_wrappers(model):
        model = strip_pruning(model)
    left_float = []
    quantized = _rewrite(_as_functional(model), annotated_only,
                         preserve_sparsity, left_float=left_float)
    if left_float:
        warnings.warn(float_layer_warning(left_float), stacklevel=3)
    if calibration_data is not None:
        calibrate(quantized, calibration_data)
    return quantized


def calibrate(model: keras.Model, data, batch_size: int = 32) -> None:
    """Sets every activation range of a QAT model to cover `data`.

    Runs the model eagerly in inference mode over `data` in batches; each
    range becomes the min/max it saw (including 0). Training then refines the
    ranges by moving average.

    Args:
        model: a QAT model.
        data: array of model inputs (or a list of arrays for several inputs).
        batch_size: batch size of the calibration passes.
    """
    layers = [layer for layer in quantized_layers(model)
              if isinstance(layer, ActivationRange) and layer.built]
    if not layers:
        raise ValueError(
            f"Model '{model.name}' has no QAT layers to calibrate. Pass the "
            "model returned by quantize_model or quantize_apply."
        )
    arrays = check_inputs(data, model, argument="calibration data")
    size = len(arrays[0])
    for layer in layers:
        layer.calibrating = True
    try:
        for start in range(0, size, batch_size):
            batch = [a[start:start + batch_size] for a in arrays]
            model(batch if len(batch) > 1 else batch[0], training=False)
    finally:
        for layer in layers:
            layer.calibrating = False


def strip_quantization(model: keras.Model) -> keras.Model:
    """A plain float copy of a QAT model.

    QAT wrappers become their float layers (with preserved zeros applied),
    folded Conv+BatchNorm pairs become one convolution holding the folded
    weights, SeparableConv2D stays split, and input quantizers are removed.
    The input model is not modified.
    """
    _model_utils.check_model_argument(model, "model", "strip_quantization",
                                      _PER_LAYER_HINT)
    dropped = set()
    constants = {}  # id(stand-in of a QuantizedConstant) -> its number

    def clone_function(layer):
        if isinstance(layer, keras.Model):
            return strip_quantization(layer)
        if isinstance(layer, QuantizeLayer):
            new = keras.layers.Identity(name=layer.name)
            dropped.add(id(new))
            return new
        if isinstance(layer, QuantizedConstant):
            new = keras.layers.Identity(name=layer.name)
            constants[id(new)] = layer.value
            return new
        if isinstance(layer, fold_batchnorm.QuantizeConvBatchNorm):
            return layer.to_float_conv()
        if isinstance(layer, QuantizeWrapper):
            weights = _model_utils.values_with(layer.layer.weights,
                                               layer.effective_weights())
            return _model_utils.clone_layer(layer.layer, weights=weights)
        if isinstance(layer, (QuantizeAnnotate, composite._Composite)):
            return _model_utils.clone_layer(layer.layer)
        return _model_utils.clone_layer(layer)

    def call_function(layer, *args, **kwargs):
        if id(layer) in dropped:
            return args[0]
        if id(layer) in constants:
            return keras.ops.convert_to_numpy(constants[id(layer)])
        return layer(*args, **kwargs)

    if isinstance(model, keras.Sequential):
        return _model_utils.transform_model(model, clone_function)
    return _model_utils.clone(model, clone_function, call_function)


# The earlier name, which read as a verb; kept for code that uses it.
quantize_layers = quantized_layers
