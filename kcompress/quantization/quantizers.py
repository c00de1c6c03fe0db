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

from kcompress.quantization import int8_kernels

__all__ = ["fake_quant", "fake_quant_weight", "fake_quant_activation",
           "fake_quant_in_training",
           "fake_quant_bias", "activation_scale", "grid_scale",
           "weight_magnitude", "DEPTHWISE"]

# Marker for depthwise kernels `(h, w, in, multiplier)`: TFLite quantizes them
# per output channel, i.e. per `in * multiplier` entry.
DEPTHWISE = "depthwise"

_EPSILON = 1e-8


def fake_quant_weight(weight, axis=None, num_bits=8, training=False,
                      magnitude=None):
    """Symmetric narrow-range fake quantization of a weight.

    Args:
        weight: the float weight.
        axis: `None` for per-tensor, an int for per-channel along that axis,
            or `DEPTHWISE` for a `(h, w, in, multiplier)` depthwise kernel.
        num_bits: bit width.
        training: whether this is a training call: the FakeQuant op's
            arithmetic in `keras.ops`, with the gradient passing straight
            through (on TensorFlow the op's kernel rounds an exact
            half-step tie the other way about once in 10**5 values; the
            exported file takes the op).
        magnitude: `weight_magnitude(weight, axis)`, when the caller has it
            already (it is computed otherwise).

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
        return ops.reshape(fake_quant_weight(flat, -1, num_bits, training,
                                             magnitude), shape)
    if magnitude is None:
        magnitude = weight_magnitude(weight, axis)
    if training:
        return _symmetric_in_training(weight, magnitude, axis, num_bits)
    return fake_quant(weight, -magnitude, magnitude, num_bits=num_bits,
                      narrow_range=True, axis=axis)


def _symmetric_in_training(weight, magnitude, axis, num_bits):
    """`fake_quant(weight, -magnitude, magnitude, narrow_range=True,
    training=True)` with the nudge worked out: a symmetric narrow range
    always has zero point `2**(bits - 1)`, so the nudged low end is
    `-(2**(bits - 1) - 1) * scale` (the same float). The weights lie in
    their own range, so the clip is left out (the largest magnitude, an ulp
    beyond the nudged end, still rounds to the last step) and the gradient
    passes everywhere."""
    half = float(2 ** (num_bits - 1) - 1)
    span = 2.0 * half  # quant_max - quant_min
    magnitude = _channel_shaped(ops.convert_to_tensor(magnitude),
                                len(weight.shape), axis)
    width = ops.add(magnitude, magnitude)
    scale = ops.divide(width, span)
    return _rounded(weight, ops.multiply(-half, scale), None,
                    ops.divide(span, width), half, scale)


def _channel_shaped(values, rank, axis):
    """Per-channel `values` shaped to broadcast along `axis` of a tensor of
    rank `rank` (unchanged for the last axis)."""
    if axis is None or axis % rank == rank - 1:
        return values
    shape = [1] * rank
    shape[axis % rank] = -1
    return ops.reshape(values, shape)


def _rounded(x, low, high, inverse, zero, scale):
    """The FakeQuant op's values, `floor((clip(x, low, high) - low) *
    inverse - zero + 0.5) * scale`, for a range already nudged onto the
    grid (`zero` is the integer zero point), with the op's gradient for
    `x`: 1 inside `[low, high]`, ends included, else 0. Nothing flows to
    the range. `high=None` leaves out the clip, for an `x` known to lie in
    the range (the gradient is then 1 everywhere).

    A custom gradient keeps this to a few elementwise ops each way, which
    is what a training step pays when TensorFlow runs it op by op (without
    XLA) and PyTorch always does."""

    @ops.custom_gradient
    def rounded(x):
        clipped = x if high is None else ops.clip(x, low, high)
        steps = ops.floor(ops.add(ops.subtract(ops.multiply(
            ops.subtract(clipped, low), inverse), zero), 0.5))

        def grad(*args, upstream=None):
            if upstream is None:
                (upstream,) = args
            if high is None:
                return upstream
            # A product, not `where`: TensorFlow's select on a large
            # tensor costs several times as much.
            return ops.multiply(upstream, ops.cast(ops.equal(clipped, x),
                                                   upstream.dtype))

        return ops.multiply(steps, scale), grad

    x = ops.convert_to_tensor(x)
    if hasattr(x, "assign"):
        # A variable (eager TensorFlow): read it first, or TensorFlow's
        # custom gradient wants a gradient for it besides the one for `x`.
        x = ops.copy(x)
    return rounded(x)


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
    low = _channel_shaped(low, len(x.shape), axis)
    high = _channel_shaped(high, len(x.shape), axis)
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
    return _rounded(x, nudged_min, nudged_max, inverse, quant_zero, scale)


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
    if axis is None:
        magnitude = ops.max(ops.abs(weight))
    else:
        axis = axis % len(weight.shape)
        reduce = tuple(i for i in range(len(weight.shape)) if i != axis)
        magnitude = ops.max(ops.abs(weight), axis=reduce)
        # An all-zero channel (common after pruning) quantizes to zero with
        # any range. A tiny range would make TFLite's int32 bias scale
        # (input scale * weight scale) overflow, so use the tensor's range.
        magnitude = ops.where(ops.greater(magnitude, 0.0), magnitude,
                              ops.max(magnitude))
    return ops.stop_gradient(ops.where(
        ops.greater(magnitude, _EPSILON), magnitude, 1.0))


_INT32_MAX = float(2 ** 31 - 1)


def fake_quant_bias(bias, weight, axis, input_scale, num_bits=8,
                    magnitude=None):
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
        magnitude: `weight_magnitude(weight, axis)`, when the caller has it
            already (it is computed otherwise).

    Returns:
        The rounded bias, with a straight-through gradient.
    """
    if input_scale is None:
        return bias
    input_scale = ops.convert_to_tensor(input_scale, "float32")
    bias = ops.convert_to_tensor(bias)  # A Variable does not go in jnp.where.
    levels = float(2 ** (num_bits - 1) - 1)
    if magnitude is None:
        magnitude = weight_magnitude(weight, axis)
    weight_scale = ops.stop_gradient(int8_kernels.quotient(magnitude, levels))
    scale = ops.maximum(input_scale * weight_scale, 1e-30)
    steps = ops.clip(
        int8_kernels.bias_steps(bias, input_scale, weight_scale, scale),
        -_INT32_MAX, _INT32_MAX)
    rounded = bias + ops.stop_gradient(steps * scale - bias)
    return ops.where(ops.greater(input_scale, 0.0), rounded, bias)


def activation_scale(min_value, max_value, num_bits=8):
    """The scale of the int8 grid `fake_quant_activation` rounds to."""
    return int8_kernels.exact_grid(min_value, max_value, num_bits)[1]


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
    range `int8_kernels.exact_range` makes of `[min_value, max_value]`
    (`training`: see `fake_quant`)."""
    low, high = int8_kernels.exact_range(min_value, max_value, num_bits)
    return fake_quant(x, low, high, num_bits=num_bits, training=training)


def fake_quant_in_training(x, min_value, max_value, num_bits=8):
    """An activation's fake quantization in a training step: the
    FakeQuant op's values and input gradient on `[min_value, max_value]`
    as the op nudges it (TFMOT's scheme), without moving the range onto
    `int8_kernels.exact_range`'s grid first.

    The range moves every training step, and the grid differs from the
    exact one by less than `2**-int8_kernels.SCALE_BITS` of its width, so
    training loses nothing; the step skips two dozen small ops per
    quantized layer, which TensorFlow without XLA runs one by one.
    Inference, calibration and the exporter's trace use
    `fake_quant_activation`.

    Args:
        x: the activation.
        min_value, max_value: scalar tensors with `min <= 0 <= max` (a
            learned range always spans 0).
        num_bits: bit width.
    """
    levels = float(2 ** num_bits - 1)
    low = ops.stop_gradient(ops.convert_to_tensor(min_value))
    width = ops.stop_gradient(ops.maximum(ops.subtract(
        ops.convert_to_tensor(max_value), low), 1e-12))
    scale = ops.divide(width, levels)
    # TensorFlow's Nudge; `0 <= -low / scale <= levels` needs no clip.
    zero_point = ops.floor(ops.add(ops.divide(ops.negative(low), scale),
                                   0.5))
    # `floor(-nudged_min * inverse + 0.5)`, the op's `quant_zero`, is the
    # zero point again.
    return _rounded(ops.convert_to_tensor(x),
                    ops.multiply(ops.negative(zero_point), scale),
                    ops.multiply(ops.subtract(levels, zero_point), scale),
                    ops.divide(levels, width), zero_point, scale)


def fake_quant_constant(value, num_bits=8):
    """A constant operand as an int8 tensor: fake-quantized on the range
    spanning 0 and its values, so the converter stores it in int8."""
    value = ops.convert_to_tensor(value, "float32")
    low = ops.minimum(ops.min(value), 0.0)
    high = ops.maximum(ops.max(value), 0.0)
    return fake_quant_activation(value, low, high, num_bits)
