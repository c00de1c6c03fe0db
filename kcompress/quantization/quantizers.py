"""Pure fake-quantization functions for TFLite's int8 scheme.

Outside training all of them go through
`keras.quantizers.fake_quant_with_min_max_vars`, which lowers on TensorFlow
to the `FakeQuantWithMinMaxVars(PerChannel)` ops that the TFLite converter
folds into real int8 kernels. In training, activations and per-channel
weights use `fake_quant`: the same values from plain `keras.ops`, with a
plain straight-through gradient, which trains faster than the FakeQuant ops
and their range gradients (benchmarks/training_overhead.py).

TFLite's int8 spec:
- weights are symmetric and narrow-range (`[-127, 127]`, zero point 0):
  per output channel for convolutions, per tensor for fully connected layers;
- activations are asymmetric, per tensor (`[-128, 127]`), and their range
  always includes 0.
"""

import math

from keras import ops
from keras import quantizers

__all__ = ["fake_quant", "fake_quant_weight", "fake_quant_activation",
           "fake_quant_bias", "activation_scale", "grid_scale",
           "weight_magnitude", "update_range", "DEPTHWISE"]

# Marker for depthwise kernels `(h, w, in, multiplier)`: TFLite quantizes them
# per output channel, i.e. per `in * multiplier` entry.
DEPTHWISE = "depthwise"

_EPSILON = 1e-8


def fake_quant_weight(weight, axis=None, num_bits=8, training=False):
    """Symmetric narrow-range fake quantization of a weight.

    Args:
        weight: the float weight.
        axis: `None` for per-tensor, an int for per-channel along that axis,
            or `DEPTHWISE` for a `(h, w, in, multiplier)` depthwise kernel.
        num_bits: bit width.
        training: whether this is a training call (see `fake_quant`; a
            per-tensor weight always takes Keras's op, whose rounding of
            exact ties `fake_quant` does not reproduce on TensorFlow).

    Returns:
        The fake-quantized weight. The range is `[-m, m]` with `m` the largest
        magnitude (per channel), held constant for the gradient (a straight-
        through estimator on the weight).

    Example:

    >>> import numpy as np
    >>> w = np.array([[1.0, -0.4], [0.25, 0.3]], "float32")
    >>> q = ops.convert_to_numpy(fake_quant_weight(w))
    >>> bool(np.allclose(q, np.round(w * 127) / 127, atol=1e-6))
    True
    """
    if axis == DEPTHWISE:
        shape = tuple(weight.shape)
        flat = ops.reshape(weight, shape[:2] + (math.prod(shape[2:]),))
        return ops.reshape(fake_quant_weight(flat, -1, num_bits, training),
                           shape)
    magnitude = weight_magnitude(weight, axis)
    return fake_quant(weight, -magnitude, magnitude, num_bits=num_bits,
                      narrow_range=True, axis=axis,
                      training=training and axis is not None)


def fake_quant(x, low, high, num_bits=8, narrow_range=False, axis=None,
               training=False):
    """`keras.quantizers.fake_quant_with_min_max_vars`, cheaper in training.

    Outside training (inference, and the trace the TFLite converter reads)
    this is Keras's function, which lowers on TensorFlow to the FakeQuant
    ops the converter folds into int8 kernels. In training it is the same
    arithmetic written in `keras.ops` (TensorFlow's `Nudge`, then
    `floor(shifted * inverse scale - zero point + 0.5) * scale`), giving the
    same values, with a
    straight-through gradient for `x` inside the range and none for the
    range: kcompress sets ranges by moving average and holds weight ranges
    constant, so the FakeQuant op's range gradients go unused.

    Args:
        x: the float tensor.
        low, high: the range, scalars or (with `axis`) one per channel.
        num_bits: bit width.
        narrow_range: quantize to `[1, 2**bits - 1]` instead of from 0.
        axis: the channel axis for a per-channel range, or None.
        training: whether this is a training call.
    """
    if not training:
        return quantizers.fake_quant_with_min_max_vars(
            x, low, high, num_bits=num_bits, narrow_range=narrow_range,
            axis=axis)
    x = ops.convert_to_tensor(x)
    low = ops.stop_gradient(ops.convert_to_tensor(low, x.dtype))
    high = ops.stop_gradient(ops.convert_to_tensor(high, x.dtype))
    if axis is not None:  # ranges broadcast along the channel axis
        shape = [1] * len(x.shape)
        shape[axis % len(x.shape)] = -1
        low, high = ops.reshape(low, shape), ops.reshape(high, shape)
    quant_min = 1.0 if narrow_range else 0.0
    quant_max = float(2 ** num_bits - 1)
    width = ops.subtract(high, low)
    scale = ops.divide(width, quant_max - quant_min)
    inverse = ops.divide(quant_max - quant_min, width)
    zero_point = ops.clip(ops.floor(ops.add(ops.subtract(
        quant_min, ops.divide(low, scale)), 0.5)), quant_min, quant_max)
    nudged_min = ops.multiply(ops.subtract(quant_min, zero_point), scale)
    nudged_max = ops.multiply(ops.subtract(quant_max, zero_point), scale)
    quant_zero = ops.floor(ops.add(ops.multiply(ops.negative(nudged_min),
                                                inverse), 0.5))
    clipped = ops.clip(x, nudged_min, nudged_max)
    steps = ops.floor(ops.add(ops.subtract(ops.multiply(ops.subtract(
        clipped, nudged_min), inverse), quant_zero), 0.5))
    rounded = ops.stop_gradient(ops.multiply(steps, scale))
    # The op's gradient: 1 inside the range, ends included, else 0 (a
    # `clip` would halve it at an end on JAX).
    inside = ops.stop_gradient(ops.cast(ops.logical_and(
        ops.greater_equal(x, nudged_min), ops.less_equal(x, nudged_max)),
        x.dtype))
    return ops.add(rounded, ops.multiply(
        ops.subtract(x, ops.stop_gradient(x)), inside))


def weight_magnitude(weight, axis=None):
    """The largest magnitude of `weight` (per channel along `axis`), the
    end of its symmetric range, held constant for the gradient.

    `axis` is as for `fake_quant_weight`; for `DEPTHWISE` there is one
    magnitude per `in * multiplier` channel.
    """
    if axis == DEPTHWISE:
        shape = tuple(weight.shape)
        weight = ops.reshape(weight, shape[:2] + (math.prod(shape[2:]),))
        axis = -1
    overall = ops.max(ops.abs(weight))
    if axis is None:
        magnitude = overall
    else:
        axis = axis % len(weight.shape)
        reduce = tuple(i for i in range(len(weight.shape)) if i != axis)
        magnitude = ops.max(ops.abs(weight), axis=reduce)
        # An all-zero channel (common after pruning) quantizes to zero with
        # any range. A tiny range would make TFLite's int32 bias scale
        # (input scale * weight scale) overflow, so use the tensor's range.
        magnitude = ops.where(ops.greater(magnitude, 0.0), magnitude,
                              overall)
    return ops.stop_gradient(ops.where(
        ops.greater(magnitude, _EPSILON), magnitude, 1.0))


_INT32_MAX = float(2 ** 31 - 1)


def fake_quant_bias(bias, weight, axis, input_scale, num_bits=8):
    """A bias rounded to TFLite's int32 grid, `input scale * weight scale`.

    The converter stores the bias of CONV_2D, DEPTHWISE_CONV_2D,
    FULLY_CONNECTED and TRANSPOSE_CONV as int32 on that grid. Rounding it
    in training too removes a difference of up to half a bias step, enough
    to move an output that sits near a rounding boundary by one step.

    Args:
        bias: the float bias.
        weight: the float kernel it goes with (before fake quantization).
        axis: the kernel's quantization axis, as for `fake_quant_weight`.
        input_scale: scalar tensor, the scale of the input's int8 grid; 0
            while that range is unset, or None when it is unknown (the bias
            is then returned as it is).
        num_bits: bit width of the kernel.

    Returns:
        The rounded bias, with a straight-through gradient.
    """
    if input_scale is None:
        return bias
    input_scale = ops.convert_to_tensor(input_scale, "float32")
    bias = ops.convert_to_tensor(bias)  # A Variable does not go in jnp.where.
    levels = float(2 ** (num_bits - 1) - 1)
    weight_scale = weight_magnitude(weight, axis) / levels
    scale = ops.stop_gradient(ops.maximum(input_scale * weight_scale,
                                          1e-30))
    steps = ops.clip(ops.round(bias / scale), -_INT32_MAX, _INT32_MAX)
    rounded = bias + ops.stop_gradient(steps * scale - bias)
    return ops.where(ops.greater(input_scale, 0.0), rounded, bias)


# Significant bits kept in an activation scale (see `exact_range`).
SCALE_BITS = 12


def exact_range(min_value, max_value, num_bits=8):
    """The range `[min, max]` moved onto a grid every converter agrees on.

    The scale `(max - min) / (2**bits - 1)` is rounded to `SCALE_BITS`
    significant bits and the zero point to an integer, and both ends are
    recomputed from them. Each end is then exact in float32 and float64, so
    the TFLite converter, which derives a tensor's scale once from the
    FakeQuant attributes in float32 and once in float64, finds the same
    scale both times. (Otherwise an op that requires equal input and output
    scales, such as the RESHAPE inside a Dense applied to a 4-D tensor, can
    fail to convert because two scales differ in the last bit.) The range
    moves by less than 2**-SCALE_BITS of its width.
    """
    levels = float(2 ** num_bits - 1)
    width = ops.maximum(ops.subtract(max_value, min_value), 1e-12)
    scale = ops.divide(width, levels)
    exponent = ops.floor(ops.log2(scale)) - (SCALE_BITS - 1)
    step = ops.power(2.0, exponent)
    scale = ops.multiply(ops.round(ops.divide(scale, step)), step)
    zero_point = ops.clip(ops.round(ops.divide(ops.negative(min_value),
                                               scale)), 0.0, levels)
    low = ops.multiply(ops.negative(zero_point), scale)
    return low, ops.add(low, ops.multiply(levels, scale))


def activation_scale(min_value, max_value, num_bits=8):
    """The scale of the int8 grid `fake_quant_activation` rounds to."""
    low, high = exact_range(min_value, max_value, num_bits)
    return ops.divide(ops.subtract(high, low), float(2 ** num_bits - 1))


def grid_scale(bounds, num_bits=8):
    """The scale of the grid of `bounds = (min, max)`: 0 while unset
    (min > max), None for no bounds."""
    if bounds is None:
        return None
    low, high = bounds
    scale = activation_scale(low, high, num_bits)
    return ops.where(ops.less_equal(low, high), scale, 0.0)


def fake_quant_activation(x, min_value, max_value, num_bits=8,
                          training=False):
    """Asymmetric per-tensor fake quantization of an activation, on the
    range `exact_range` makes of `[min_value, max_value]` (`training`: see
    `fake_quant`)."""
    low, high = exact_range(min_value, max_value, num_bits)
    return fake_quant(x, low, high, num_bits=num_bits, narrow_range=False,
                      training=training)


def fake_quant_constant(value, num_bits=8):
    """A constant operand as an int8 tensor: fake-quantized on the range
    spanning 0 and its values, so the converter stores it in int8."""
    value = ops.convert_to_tensor(value, "float32")
    low = ops.minimum(ops.min(value), 0.0)
    high = ops.maximum(ops.max(value), 0.0)
    return fake_quant_activation(value, low, high, num_bits)


def update_range(current_min, current_max, x, initialized, decay, widen=0.0):
    """The new activation range after seeing the batch `x`.

    The first batch sets the range outright (so QAT starts calibrated, not at
    an arbitrary default); later batches move it by an exponential moving
    average. The range always includes 0, as TFLite requires.

    Args:
        current_min, current_max: scalar tensors, the current range.
        x: the batch of activations.
        initialized: scalar tensor, 1.0 once a range has been set.
        decay: EMA decay, e.g. 0.999.
        widen: scalar, 1.0 to widen a set range to cover the batch instead
            of averaging (the first training batch after a calibration).

    Returns:
        `(new_min, new_max)` scalar tensors.
    """
    batch_min = ops.minimum(ops.min(x), 0.0)
    batch_max = ops.maximum(ops.max(x), 0.0)
    seen = ops.greater(initialized, 0.5)
    widen = ops.greater(widen, 0.5)
    new_min = ops.where(
        widen, ops.minimum(current_min, batch_min),
        current_min * decay + batch_min * (1.0 - decay))
    new_max = ops.where(
        widen, ops.maximum(current_max, batch_max),
        current_max * decay + batch_max * (1.0 - decay))
    return (ops.where(seen, new_min, batch_min),
            ops.where(seen, new_max, batch_max))
