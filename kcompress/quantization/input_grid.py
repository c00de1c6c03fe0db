"""The int8 grid a QAT layer's input sits on, found in the functional graph.

TFLite stores the bias of a convolution or fully connected layer as int32
on the grid `input scale * weight scale`. To round the bias there during
training, a layer needs the scale of its input, which the layer that
produced the input holds: a `QuantizeWrapper`, `QuantizeLayer`,
`QuantizeConvBatchNorm` or composite, each with an `output_bounds()`.
Between the two there may be layers that move int8 values without
requantizing them (reshapes, padding, max pooling, dropout); the search
walks back through those. A layer that leaves its output unrounded for
the one layer it feeds (a convolution into a fused ReLU, or into a
`Concatenate`) writes in the file straight onto that layer's grid
(`rounding_consumer`). Anything else, or a layer called at more than one
place in the graph, gives None: the bias then stays float, as before.
"""

import keras

from kcompress import _keras_internals
from kcompress.quantization import quantizers
from kcompress.quantization.quantize_config import default_quantize_config

__all__ = ["input_bounds", "input_scale", "merged_input_bounds", "pinned",
           "pins_grid", "rounding_consumer", "written_grid"]

# Far enough for any chain of reshapes and paddings.
_MAX_HOPS = 64


def _keeps_grid(operation):
    """Whether `operation`'s output is on its input's int8 grid."""
    if not isinstance(operation, keras.layers.Layer) or isinstance(
            operation, keras.layers.InputLayer):
        return False
    config = getattr(operation, "quantize_config", None)
    if config is None and not getattr(operation, "_kcompress_quantized",
                                      False):
        config = default_quantize_config(operation)
    return (config is not None and not config.weights
            and not config.quantize_output)


def _single_input(operation):
    """The operation feeding `operation`'s only call, or None."""
    nodes = _keras_internals.inbound_nodes_if_any(operation)
    if len(nodes) != 1 or len(nodes[0].input_tensors) != 1:
        return None
    return _keras_internals.keras_history(nodes[0].input_tensors[0]).operation


def input_bounds(layer, position=0):
    """The range `(min, max)` of the int8 grid of `layer`'s positional
    input `position` (min > max while unset), or None when unknown.

    Args:
        layer: a layer of a functional (or Sequential) model.
        position: index of the input among the call's positional arguments.
    """
    nodes = _keras_internals.inbound_nodes_if_any(layer)
    if len(nodes) != 1:
        return None
    args = _keras_internals.call_args(nodes[0])
    if position >= len(args) or not isinstance(args[position],
                                               keras.KerasTensor):
        return None
    return _grid_of(args[position])


def merged_input_bounds(layer):
    """The grid ranges of the inputs of a merge layer called on a list
    (`Add()([a, b])`), or None when any is unknown."""
    nodes = _keras_internals.inbound_nodes_if_any(layer)
    if len(nodes) != 1:
        return None
    args = _keras_internals.call_args(nodes[0])
    if len(args) != 1 or not isinstance(args[0], (list, tuple)):
        return None
    bounds = [_grid_of(t) if isinstance(t, keras.KerasTensor) else None
              for t in args[0]]
    return None if any(b is None for b in bounds) else bounds


def pins_grid(layer):
    """Whether `layer` keeps its input's grid and its output feeds a
    `Concatenate` and other layers too: its file needs the grid pinned.

    TFLite's CONCATENATION needs its inputs on its output's grid. Where an
    input reaches it through layers that keep the grid (padding, pooling),
    the converter moves that whole chain onto the concatenation's grid,
    requantizing before the padding and pooling, so the chain's other
    consumers (DenseNet's next BatchNorm) read values QAT never saw. A
    FakeQuant on the chain's own grid where it fans out (the same values)
    makes the converter requantize on the concatenation's edge only, where
    QAT rounds.
    """
    consumers = [getattr(node.operation, "layer", node.operation)
                 for node in _keras_internals.outbound_nodes_if_any(layer)]
    return len(consumers) >= 2 and any(
        isinstance(c, keras.layers.Concatenate) for c in consumers)


def pinned(layer, outputs, num_bits=8):
    """`outputs` of `layer`, a layer that keeps its input's grid, for the
    exporter's trace: fake-quantized on that grid again (the same values)
    where `pins_grid(layer)` and the grid is known, else unchanged."""
    bounds = input_bounds(layer) if pins_grid(layer) else None
    if bounds is None:
        return outputs
    return quantizers.fake_quant_activation(outputs, bounds[0], bounds[1],
                                            num_bits)


def _grid_of(tensor):
    """The grid range of the layer that rounded `tensor`, or None."""
    operation = _keras_internals.keras_history(tensor).operation
    for _ in range(_MAX_HOPS):
        if operation is None:
            return None
        bounds = _output_bounds(operation)
        if bounds is not None:
            return bounds
        if not _keeps_grid(operation):
            return written_grid(operation)
        operation = _single_input(operation)
    return None


def _output_bounds(operation):
    bounds = getattr(operation, "output_bounds", None)
    return bounds() if callable(bounds) else None


def rounding_consumer(layer):
    """The layer that rounds the output of `layer`, a QAT layer that leaves
    its output unrounded (a convolution with a fused ReLU after it, one
    that feeds a `Concatenate`), or None.

    It is `layer`'s only consumer, called once, with an output range; the
    converter has `layer` write straight onto that range's grid.
    """
    inbound = _keras_internals.inbound_nodes_if_any(layer)
    outbound = _keras_internals.outbound_nodes_if_any(layer)
    if (len(inbound) != 1 or len(outbound) != 1
            or not callable(getattr(layer, "output_bounds", None))
            or layer.output_bounds() is not None):
        return None
    consumer = outbound[0].operation
    if (len(_keras_internals.inbound_nodes_if_any(consumer)) != 1
            or not hasattr(consumer, "export_mode")
            or _output_bounds(consumer) is None):
        return None
    return consumer


def written_grid(layer):
    """The range of the grid `layer` writes its unrounded output onto: its
    `rounding_consumer`'s output range, or None."""
    consumer = rounding_consumer(layer)
    return None if consumer is None else consumer.output_bounds()


def input_scale(layer, position=0):
    """The scale of the int8 grid of `layer`'s positional input `position`:
    a scalar tensor (0 while the producer's range is unset), or None when
    the grid is unknown. See `input_bounds`."""
    return quantizers.grid_scale(input_bounds(layer, position))
