"""The kernels that sum over many int8 values in an int32 accumulator:
CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED (`requantized`), MEAN
(`mean_requantized`) and AVERAGE_POOL_2D over full windows
(`average_pooled`).

The file's CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED sum exact int32
products of the int8 input and weights, add the int32 bias, and requantize
once: LiteRT's XNNPACK kernels multiply the sum, as a float32, by the
float32 scale `input scale * weight scale / output scale` and round half to
even. A QAT layer that sums float32 products instead lands on the other
side of a rounding tie now and then, one output step off; squeeze-excite
gates and lone BatchNorms multiply that step, and through EfficientNetB0's
16 blocks it grew to 12 output steps.

Here each runs on integer-valued float32 tensors: the input and weights
divided by their scales (exact: both sit on their grids), the bias in int32
steps. Their sums are exact in float32 below 2**24, and the one
requantization is the kernel's.
"""

import math

from keras import ops

from kcompress.quantization.int8_kernels import exact_arithmetic as exact
from kcompress.quantization.int8_kernels import grid

__all__ = ["average_pooled", "mean_requantized", "requantized"]


def requantized(run, inputs, kernel, bias, magnitude, channel_shape,
                input_bounds, output_bounds, num_bits=8):
    """The layer's output on its output grid, as the int8 kernel gives it.

    Args:
        run: `run(inputs, kernel, bias)` computes the layer (linear, or with
            a ReLU) with the given input and weight values.
        inputs: the layer's input, on the grid of `input_bounds`.
        kernel: the fake-quantized kernel.
        bias: the bias on its int32 grid (`quantizers.fake_quant_bias`), or
            None.
        magnitude: `quantizers.weight_magnitude` of the kernel: a scalar, or
            one value per output channel.
        channel_shape: the shape that broadcasts `magnitude` over the
            kernel, or None for a scalar.
        input_bounds, output_bounds: `(min, max)` of the input's and the
            output's ranges.
        num_bits: bit width.

    Returns:
        `(values, ready)`: the output values, and a boolean scalar that is
        False while either range is unset (the values are then meaningless).
    """
    levels = float(2 ** (num_bits - 1) - 1)
    _, input_scale = grid.grid_of(input_bounds, num_bits)
    weight_scale = exact.quotient(magnitude, levels)
    shaped = (weight_scale if channel_shape is None
              else ops.reshape(weight_scale, channel_shape))
    x = ops.round(ops.divide(inputs, input_scale))
    k = ops.round(ops.divide(kernel, shaped))
    product_scale = ops.multiply(input_scale, weight_scale)
    b = None if bias is None else ops.round(ops.divide(bias, product_scale))
    total = run(x, k, b)
    low, output_scale = grid.grid_of(output_bounds, num_bits)
    return (grid.on_grid(ops.multiply(total, ops.divide(product_scale,
                                                    output_scale)),
                     low, output_scale, num_bits),
            grid.all_ready([input_bounds, output_bounds]))


def mean_requantized(inputs, axes, keepdims, input_bounds, output_bounds,
                     num_bits=8):
    """A MEAN over `axes` (global average pooling) on its output grid, as
    XNNPACK's int8 kernel gives it: the exact sum of the raw int8 inputs
    times the float32 scale `input scale / (output scale * count)`, plus a
    float32 bias that holds both zero points, rounded half to even. (Found
    by matching the kernel's outputs: summing zero-point-free steps, or
    folding the zero points elsewhere, lands a tie the other way now and
    then.) Returns `(values, ready)` as `requantized` does."""
    half = float(2 ** (num_bits - 1))
    in_low, input_scale = grid.grid_of(input_bounds, num_bits)
    low, output_scale = grid.grid_of(output_bounds, num_bits)
    count = 1
    for axis in axes:
        count *= int(inputs.shape[axis])
    input_zero = grid.int8_zero_point(in_low, input_scale, num_bits)
    output_zero = grid.int8_zero_point(low, output_scale, num_bits)
    raw = ops.add(ops.round(ops.divide(inputs, input_scale)), input_zero)
    total = ops.sum(raw, axis=axes, keepdims=keepdims)
    scale = ops.divide(input_scale, ops.multiply(output_scale,
                                                 float(count)))
    bias = ops.add(ops.multiply(ops.round(ops.multiply(
        input_zero, -float(count))), scale), output_zero)
    quantized = ops.round(ops.add(ops.multiply(total, scale), bias))
    steps = ops.subtract(ops.clip(quantized, -half, half - 1.0), output_zero)
    return (ops.multiply(steps, output_scale),
            grid.all_ready([input_bounds, output_bounds]))


def average_pooled(pool, inputs, input_bounds, pool_size, num_bits=8):
    """An AVERAGE_POOL_2D (or 1-D) over full windows as the int8 kernel
    computes it: the exact sum of the signed int8 inputs, divided by the
    window size in integers, rounding half away from zero, kept on the
    input's grid. (A float mean rounded afterwards lands a tie the other
    way under XLA, which computes the mean another way.)

    Args:
        pool: `pool(x)` averages `x` over the windows (the Keras layer).
        inputs: the pooled layer's input, on the grid of `input_bounds`.
        input_bounds: `(min, max)` of the input's range, set (min < max).
        pool_size: the window's shape.
        num_bits: bit width.

    Returns:
        The pooled values (no `ready` flag: the caller checks the range).
    """
    low, scale = grid.grid_of(input_bounds, num_bits)
    count = math.prod(pool_size)
    zero = grid.int8_zero_point(low, scale, num_bits)
    signed = ops.add(ops.round(ops.divide(inputs, scale)), zero)
    total = ops.cast(ops.round(ops.multiply(pool(signed), float(count))),
                     "int32")
    magnitude = ops.floor_divide(ops.add(ops.abs(total), count // 2), count)
    mean = ops.cast(ops.multiply(ops.sign(total), magnitude), "float32")
    return ops.multiply(ops.subtract(mean, zero), scale)
