"""Layer patterns that TFLite fuses, found in a functional graph.

QAT must train what TFLite will run, so the rewrite in `quantize.py` needs to
know, before cloning (this module only analyses the graph and returns plain
layers; `quantize.py` wraps them):
- which Conv/DepthwiseConv + BatchNorm pairs fold into one convolution;
- which layers feed a ReLU/ReLU6 that TFLite fuses into them, or a
  Concatenate that rounds for them (their output is not fake-quantized);
- how a SeparableConv2D splits into the depthwise and pointwise convolutions
  TFLite runs.
"""

import keras

from kcompress import _keras_internals
from kcompress.quantization import fold_batchnorm
from kcompress.quantization.quantize_config import QuantizeConfig


def producer(layer):
    """The single operation feeding `layer`'s single call, or None."""
    nodes = _keras_internals.inbound_nodes(layer)
    if len(nodes) != 1:
        return None
    tensors = nodes[0].input_tensors
    if len(tensors) != 1:
        return None
    return _keras_internals.keras_history(tensors[0]).operation


def fold_pairs(model, resolve):
    """`{id(conv): bn, id(bn): conv}` for the foldable pairs of `model`.

    A pair is a BatchNormalization whose only input is a convolution that
    feeds nothing else, both to be quantized.
    """
    pairs = {}
    for layer in model.layers:
        if not isinstance(getattr(layer, "layer", layer),
                          keras.layers.BatchNormalization):
            continue
        bn, bn_config = resolve(layer)
        feeder = producer(layer)
        if (bn_config is None or feeder is None
                or len(_keras_internals.inbound_nodes(feeder)) != 1
                or len(_keras_internals.outbound_nodes(feeder)) != 1):
            continue
        conv, conv_config = resolve(feeder)
        if conv_config is not None and fold_batchnorm.can_fold(conv, bn):
            pairs[id(conv)] = bn
            pairs[id(bn)] = conv
    return pairs


_FUSING_PRODUCERS = (keras.layers.Conv1D, keras.layers.Conv2D,
                     keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D,
                     keras.layers.Dense, keras.layers.Add,
                     keras.layers.BatchNormalization)


def is_fusable_activation(layer):
    """Whether TFLite fuses `layer` into the int8 op before it."""
    layer = getattr(layer, "layer", layer)
    if isinstance(layer, keras.layers.ReLU):
        return (layer.max_value in (None, 6.0) and not layer.negative_slope
                and not layer.threshold)
    if isinstance(layer, keras.layers.Activation):
        return layer.get_config()["activation"] in ("relu", "relu6")
    return False


def fused_producers(model, resolve):
    """Ids of layers whose output is rounded by the layer it feeds.

    Two cases, each a layer whose output feeds one consumer only:
    - a ReLU/ReLU6 that TFLite fuses into it: TFLite rounds once, after the
      fused activation;
    - a `Concatenate`: TFLite's int8 CONCATENATION needs its inputs on its
      output's grid, and the converter has their producers write straight
      onto it (TFMOT's concat transform drops those quantizers too).

    Their output is not fake-quantized, so training rounds once as TFLite
    does. (A folded Conv+BatchNorm counts through its BatchNorm.)
    """
    fused = set()
    for layer in model.layers:
        outbound = _keras_internals.outbound_nodes(layer)
        if len(_keras_internals.inbound_nodes(layer)) != 1 or len(
                outbound) != 1:
            continue
        consumer = outbound[0].operation
        inner, config = resolve(layer)
        if (isinstance(inner, _FUSING_PRODUCERS) and config is not None
                and inner.get_config().get("activation") in (None, "linear")
                and is_fusable_activation(consumer)
                and resolve(consumer)[1] is not None):
            fused.add(id(inner))
        elif _writes_onto_concatenation(inner, config, consumer, resolve):
            fused.add(id(inner))
    return fused


def _writes_onto_concatenation(inner, config, consumer, resolve):
    """Whether `inner` quantizes its output with a learned range, in int8
    TFLite can write on the grid of `consumer`, a quantized Concatenate."""
    if not isinstance(getattr(consumer, "layer", consumer),
                      keras.layers.Concatenate):
        return False
    if not isinstance(config, QuantizeConfig) or not config.quantize_output:
        return False  # float, composite, separable or pass-through
    if config.output_range is not None:  # sigmoid, softmax, tanh grids
        return False
    if isinstance(inner, keras.layers.Activation):
        if not is_fusable_activation(inner):  # LOGISTIC, MUL, ...: their own
            return False
    elif inner.get_config().get("activation") not in FUSED_ACTIVATIONS:
        return False  # split off the layer, rounded on a grid of its own
    return isinstance(resolve(consumer)[1], QuantizeConfig)


# Activations TFLite fuses into the int8 op that computes them.
FUSED_ACTIVATIONS = (None, "linear", "relu", "relu6")


def split_activation(layer):
    """`(copy with a linear activation, Activation layer)`, built and
    holding `layer`'s weights, when `layer` has an activation TFLite runs as
    an op of its own (gelu, swish, sigmoid, ...); else None.

    TFLite requantizes between the two ops, so QAT learns a range for each.
    """
    if not layer.weights:  # Activation, ReLU, ...: the activation itself.
        return None
    config = layer.get_config()
    activation = config.get("activation")
    if isinstance(activation, dict):  # A serialized function.
        activation = activation.get("config", activation)
    if activation in FUSED_ACTIVATIONS or "activation" not in config:
        return None
    linear = layer.__class__.from_config({**config, "activation": "linear",
                                          "name": layer.name})
    build_config = layer.get_build_config()
    if build_config:
        linear.build_from_config(build_config)
    linear.set_weights(layer.get_weights())
    return linear, keras.layers.Activation(config["activation"],
                                           name=f"{layer.name}_activation")


def without_output(config):
    return QuantizeConfig(weights=config.weights, quantize_output=False,
                          num_bits=config.num_bits)


def split_separable(layer):
    """The DepthwiseConv2D and 1x1 Conv2D, built and holding `layer`'s
    weights, that together equal a SeparableConv2D (as TFLite runs it)."""
    cfg = layer.get_config()
    depthwise = keras.layers.DepthwiseConv2D(
        cfg["kernel_size"], strides=cfg["strides"], padding=cfg["padding"],
        depth_multiplier=cfg["depth_multiplier"],
        data_format=cfg["data_format"], dilation_rate=cfg["dilation_rate"],
        use_bias=False, name=f"{layer.name}_depthwise")
    pointwise = keras.layers.Conv2D(
        cfg["filters"], 1, activation=cfg["activation"],
        use_bias=cfg["use_bias"], data_format=cfg["data_format"],
        name=f"{layer.name}_pointwise")
    input_shape = layer.get_build_config()["input_shape"]
    depthwise.build(input_shape)
    pointwise.build(depthwise.compute_output_shape(input_shape))
    values = layer.get_weights()
    depthwise.set_weights(values[:1])
    pointwise.set_weights(values[1:])
    return depthwise, pointwise
