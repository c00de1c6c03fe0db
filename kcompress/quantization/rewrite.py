"""The QAT rewrite of a functional graph: what `quantize_model` and
`quantize_apply` build.

The rewrite clones the model (the input is never modified) and follows what
TFLite runs, op by op:
- Conv/DepthwiseConv + BatchNorm pairs fold into one convolution, and a
  SeparableConv2D splits into a DepthwiseConv2D and a 1x1 Conv2D;
- a layer gets a `QuantizeWrapper` (its weights and output), a composite QAT
  layer (`composite.py`) or, with no int8 kernel, stays float with its
  output quantized for the layers after it;
- an activation TFLite cannot fuse is split off its Dense/Conv;
- `keras.ops` nodes get an output range, and their constant operands a
  `QuantizedConstant`;
- each float model input gets a `QuantizeLayer`.
"""

import keras

from kcompress import _keras_internals
from kcompress import _model_utils
from kcompress.quantization import affine
from kcompress.quantization import composite
from kcompress.quantization import fold_batchnorm
from kcompress.quantization import input_grid
from kcompress.quantization import patterns
from kcompress.quantization import pooling
from kcompress.quantization.quantize_annotate import QuantizeAnnotate
from kcompress.quantization.quantize_config import default_quantize_config
from kcompress.quantization.quantize_config import unsupported_layer_error
from kcompress.quantization.quantize_wrapper import QuantizedConstant
from kcompress.quantization.quantize_wrapper import QuantizeLayer
from kcompress.quantization.quantize_wrapper import QuantizeWrapper
from kcompress.quantization.quantize_wrapper_v2 import QuantizeWrapperV2
from kcompress.quantization.quantize_wrapper_v2 import uses_quantizers

__all__ = ["as_functional", "rewrite"]


def as_functional(model):
    """A functional copy of a Sequential model; other models as they are.

    The copy is built from fresh clones of the layers, so each layer has one
    inbound node (the graph analysis below relies on it).
    """
    def copy(layer):
        if isinstance(layer, keras.Model):
            return _model_utils.transform_model(layer,
                                                _model_utils.clone_layer)
        return _model_utils.clone_layer(layer)

    return _model_utils.sequential_as_functional(model, copy)


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
def _composite_for(layer):
    """The composite QAT class for `layer` (see `composite`), or None."""
    if isinstance(layer, keras.layers.BatchNormalization):
        return affine.QuantizeBatchNormalization
    return composite.composite_for(layer)


_FLOAT_INPUT_LAYERS = (keras.layers.Rescaling, keras.layers.Normalization)


def _feeds_preprocessing_only(layer):
    """Whether `layer` is input preprocessing whose output only feeds more
    input preprocessing (both run in float before the QUANTIZE op)."""
    layer = getattr(layer, "layer", layer)
    consumers = [node.operation
                 for node in _keras_internals.outbound_nodes(layer)]
    return isinstance(layer, _FLOAT_INPUT_LAYERS) and bool(consumers) and all(
        isinstance(getattr(c, "layer", c), _FLOAT_INPUT_LAYERS)
        for c in consumers)


def _quantizes_output(operation):
    """Whether a `keras.ops` node computes new values (its output is
    fake-quantized, as TFLite requantizes it)."""
    return type(operation).__name__ not in _MOVING_OPS


# Elementwise `keras.ops` nodes whose constant operands TFLite needs in int8.
_BINARY_OPS = frozenset(("Add", "Subtract", "Multiply", "Divide",
                         "TrueDivide", "Maximum", "Minimum"))


def _is_constant(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) or (
        hasattr(value, "dtype")
        and _keras_internals.keras_history(value) is None
        and "float" in str(value.dtype))


def _is_float(tensor):
    return "float" in str(getattr(tensor, "dtype", ""))


def rewrite(model, annotated_only, preserve, quantize_inputs=True,
             left_float=None):
    """The QAT clone of a functional `model`.

    `preserve` holds the keyword arguments `preserve_sparsity` and
    `preserve_clusters` of the weight-holding QAT layers.

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
        if annotated and uses_quantizers(layer.quantize_config):
            return inner, None  # opaque to the patterns (QuantizeWrapperV2)
        if not annotated and (annotated_only or isinstance(layer,
                                                           keras.Model)):
            return inner, None
        if annotated and layer.quantize_config is not None:
            return inner, layer.quantize_config
        if isinstance(inner, keras.layers.SeparableConv2D):
            return inner, "separable"
        if _composite_for(inner) is not None:
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
            new = rewrite(as_functional(layer), annotated_only,
                           preserve, quantize_inputs=False,
                           left_float=left_float)
            quantized.add(id(new))
            return new
        if isinstance(layer, QuantizeAnnotate) and uses_quantizers(
                layer.quantize_config):
            new = QuantizeWrapperV2(_model_utils.clone_layer(layer.layer),
                                    layer.quantize_config)
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
        elif _feeds_preprocessing_only(layer):
            # Rescaling then Normalization: TFLite runs both in float and
            # quantizes once, after the last.
            new = _model_utils.clone_layer(inner)
        elif id(inner) in pairs:
            new = fold_batchnorm.fold_pair(
                inner, pairs[id(inner)],
                output_quantized=id(pairs[id(inner)]) not in fused,
                **preserve)
        elif config == "composite" and isinstance(
                inner, keras.layers.BatchNormalization):
            new = affine.QuantizeBatchNormalization(
                _model_utils.clone_layer(inner),
                output_quantized=id(inner) not in fused)
        elif config == "composite":
            new = _composite_for(inner)(
                _model_utils.clone_layer(inner))
        elif isinstance(inner, pooling.AVERAGE_POOLS):
            new = pooling.QuantizeAveragePooling(
                _model_utils.clone_layer(inner))
        elif config == "separable":
            new, pointwise = (
                QuantizeWrapper(part, default_quantize_config(part),
                                **preserve)
                for part in patterns.split_separable(inner))
            followers[id(new)] = pointwise
        elif (id(inner) in fused
              and patterns.without_output(config).quantizes_anything):
            new = QuantizeWrapper(_model_utils.clone_layer(inner),
                                  patterns.without_output(config),
                                  **preserve)
        elif id(inner) in fused:
            new = _model_utils.clone_layer(inner)
        elif config.quantizes_anything and patterns.split_activation(inner):
            linear, activation = patterns.split_activation(inner)
            new = QuantizeWrapper(linear, config, **preserve)
            special = _composite_for(activation)
            followers[id(new)] = (special(activation) if special else
                                  QuantizeWrapper(activation,
                                                  default_quantize_config(
                                                      activation)))
        elif config.quantizes_anything or input_grid.pins_grid(layer):
            # (A layer that keeps its grid and fans out to a Concatenate is
            # wrapped to pin that grid at export.)
            new = QuantizeWrapper(_model_utils.clone_layer(inner), config,
                                  **preserve)
        else:
            new = _model_utils.clone_layer(inner)
        if not isinstance(inner, _FLOAT_INPUT_LAYERS):
            quantized.add(id(new))
        return new

    input_quantizers = {}
    # A layer called twice, or with several outputs, gets one range per
    # output tensor, each with a name of its own.
    taken = {layer.name for layer in model.layers}

    def output_quantized(tensor, node):
        if not _is_float(tensor):
            return tensor
        name, count = f"quantize_{node.name}", 0
        while name in taken:
            count += 1
            name = f"quantize_{node.name}_{count}"
        taken.add(name)
        return QuantizeLayer(name=name)(tensor)

    def quantized_input(tensor):
        history = _keras_internals.keras_history(tensor)
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
                           and _keras_internals.keras_history(a)
                           is not None), None)
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

