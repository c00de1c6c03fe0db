"""A quantized convolution or Dense layer in inference, computed as its int8
kernel computes it.

In the file, CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED sum exact int32
products of the int8 input and weights, add the int32 bias, and requantize
once: LiteRT's XNNPACK kernels multiply the sum, as a float32, by the
float32 scale `input scale * weight scale / output scale` and round half to
even. A QAT layer that sums float32 products instead lands on the other
side of a rounding tie now and then, one output step off. One step is
nothing on its own, but squeeze-excite gates (a step of a sigmoid's input
is several of its output) and lone BatchNorms multiply it, and through
EfficientNetB0's 16 blocks it grew to 12 output steps.

So in inference (not in training, and not in the exporter's trace, which
must stay the float graph the converter folds) a quantized kernel layer
whose input grid is known runs on integer-valued float32 tensors: the
input and weights divided by their scales (exact: both sit on their
grids), the bias in int32 steps. Their sums are exact in float32 below
2**24, and the one requantization is the kernel's. Measured on a trained
EfficientNetB0 file: the kernel outputs follow this to the last bit.
"""

from keras import ops

from kcompress.quantization import exact_arithmetic as exact
from kcompress.quantization import quantizers

__all__ = ["requantized", "mean_requantized", "multiply_requantized",
           "add_requantized", "quantize_requantized", "converted"]


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
    _, input_scale = _grid(input_bounds, num_bits)
    weight_scale = exact.quotient(magnitude, levels)
    shaped = (weight_scale if channel_shape is None
              else ops.reshape(weight_scale, channel_shape))
    x = ops.round(ops.divide(inputs, input_scale))
    k = ops.round(ops.divide(kernel, shaped))
    product_scale = ops.multiply(input_scale, weight_scale)
    b = None if bias is None else ops.round(ops.divide(bias, product_scale))
    total = run(x, k, b)
    low, output_scale = _grid(output_bounds, num_bits)
    return (_on_grid(ops.multiply(total, ops.divide(product_scale,
                                                    output_scale)),
                     low, output_scale, num_bits),
            _all_ready([input_bounds, output_bounds]))


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
    in_low, input_scale = _grid(input_bounds, num_bits)
    low, output_scale = _grid(output_bounds, num_bits)
    count = 1
    for axis in axes:
        count *= int(inputs.shape[axis])
    input_zero = int8_zero_point(in_low, input_scale, num_bits)
    output_zero = int8_zero_point(low, output_scale, num_bits)
    raw = ops.add(ops.round(ops.divide(inputs, input_scale)), input_zero)
    total = ops.sum(raw, axis=axes, keepdims=keepdims)
    scale = ops.divide(input_scale, ops.multiply(output_scale,
                                                 float(count)))
    bias = ops.add(ops.multiply(ops.round(ops.multiply(
        input_zero, -float(count))), scale), output_zero)
    quantized = ops.round(ops.add(ops.multiply(total, scale), bias))
    steps = ops.subtract(ops.clip(quantized, -half, half - 1.0), output_zero)
    return (ops.multiply(steps, output_scale),
            _all_ready([input_bounds, output_bounds]))


def _on_grid(steps, low, output_scale, num_bits):
    """`steps` (float, relative to the zero point) rounded half to even
    and clamped to the output grid `(low, output_scale)`, as values."""
    zero_point = _zero_point(low, output_scale)
    steps = ops.clip(ops.round(steps), ops.negative(zero_point),
                     float(2 ** num_bits - 1) - zero_point)
    return ops.multiply(steps, output_scale)


def _zero_point(low, scale):
    """The uint8 zero point of the grid that starts at `low`."""
    return ops.round(ops.divide(ops.negative(low), scale))


def int8_zero_point(low, scale, num_bits=8):
    """The signed (int8) zero point of the grid that starts at `low`: its
    uint8 zero point less 2**(bits - 1). (Also used by `pooling`; not in
    `__all__`, which lists the emulated ops, each returning `(values,
    ready)`.)"""
    return ops.subtract(_zero_point(low, scale),
                        float(2 ** (num_bits - 1)))


def _grid(bounds, num_bits):
    """`(low, scale)` of the exact grid of the range `bounds`."""
    return quantizers.exact_grid(*bounds, num_bits=num_bits)


def _all_ready(bounds):
    """Whether every range in `bounds` is set, a boolean scalar."""
    ready = None
    for low, high in bounds:
        set_ = ops.less(low, high)
        ready = set_ if ready is None else ops.logical_and(ready, set_)
    return ready


def _input_scales(bounds, num_bits):
    """The scale of each input grid in `bounds`: a range `(min, max)`, or
    a scale alone (a constant's symmetric grid, always set)."""
    return [_grid(b, num_bits)[1] if isinstance(b, (tuple, list)) else b
            for b in bounds]


def _ranges(bounds):
    return [b for b in bounds if isinstance(b, (tuple, list))]


def multiply_requantized(a, b, bounds, output_bounds, num_bits=8):
    """`a * b` on the output grid as the int8 MUL gives it: the exact
    product of the inputs' steps times the float32 scale `(scale a * scale
    b) / output scale`, rounded half to even. `bounds` are the inputs'
    ranges, or the scale of a constant's symmetric grid. Returns
    `(values, ready)`."""
    scale_a, scale_b = _input_scales(bounds, num_bits)
    # (The outer round changes no value: it keeps Grappler from
    # reassociating `a * b * scale`, a chain of multiplications of
    # different shapes, into `a * (b * scale)`.)
    product = ops.round(ops.multiply(ops.round(ops.divide(a, scale_a)),
                                     ops.round(ops.divide(b, scale_b))))
    low, output_scale = _grid(output_bounds, num_bits)
    values = _on_grid(
        ops.multiply(product, ops.divide(ops.multiply(scale_a, scale_b),
                                         output_scale)),
        low, output_scale, num_bits)
    return values, _all_ready(_ranges(bounds) + [output_bounds])


# XNNPACK's int8 ADD: each input's scale relative to the output's is a
# multiplier of this many bits, applied in int32 with a rounding shift.
_ADD_MULTIPLIER_BITS = 20


def add_requantized(a, b, bounds, output_bounds, num_bits=8):
    """`a + b` on the output grid as the int8 ADD gives it (XNNPACK):
    each input's steps times an integer multiplier, `round(scale ratio *
    2**shift)` with the larger ratio in `[2**19, 2**20)`, summed in int32
    and shifted right by `shift` with rounding half up. Returns
    `(values, ready)`. `bounds` as for `multiply_requantized`."""
    low, output_scale = _grid(output_bounds, num_bits)
    scales = _input_scales(bounds, num_bits)
    ratios = [ops.divide(scale, output_scale) for scale in scales]
    largest = ops.maximum(ratios[0], ratios[1])
    exponent = ops.floor(ops.log2(largest))
    # log2 may round across a power of two; correct the exponent exactly.
    exponent = ops.where(ops.greater(ops.power(2.0, exponent), largest),
                         exponent - 1.0, exponent)
    exponent = ops.where(ops.less_equal(ops.power(2.0, exponent + 1.0),
                                        largest), exponent + 1.0, exponent)
    shift = float(_ADD_MULTIPLIER_BITS) - exponent
    total = None
    for x, ratio, scale in zip((a, b), ratios, scales):
        multiplier = ops.cast(ops.round(ops.multiply(
            ratio, ops.power(2.0, shift))), "int32")
        steps = ops.cast(ops.round(ops.divide(x, scale)), "int32")
        term = ops.multiply(steps, multiplier)
        total = term if total is None else ops.add(total, term)
    half = ops.cast(ops.power(2.0, shift - 1.0), "int32")
    steps = ops.cast(ops.floor_divide(ops.add(total, half),
                                      ops.multiply(half, 2)), "float32")
    values = _on_grid(steps, low, output_scale, num_bits)
    return values, _all_ready(_ranges(bounds) + [output_bounds])


def quantize_requantized(x, output_bounds, num_bits=8):
    """A float model input on its int8 grid as the QUANTIZE op gives it:
    `x / scale` rounded half to even. Returns `(values, ready)`."""
    low, output_scale = _grid(output_bounds, num_bits)
    return (_on_grid(ops.divide(x, output_scale), low, output_scale,
                     num_bits), _all_ready([output_bounds]))


# XNNPACK's int8-to-int8 QUANTIZE: the scale ratio is a multiplier with
# this many fractional bits.
_CONVERT_FRACTION_BITS = 8


def converted(x, input_bounds, output_bounds, num_bits=8):
    """`x`, on the grid of `input_bounds`, moved onto the grid of
    `output_bounds` as XNNPACK's int8 QUANTIZE (the requantization the
    converter puts before a CONCATENATION's input) does it: the input's
    steps times `round(256 * input scale / output scale)`, shifted right by
    8 bits with rounding half up. The multiplier's 8 fractional bits are
    coarse: a step of 100 lands up to a fifth of a step from where exact
    rounding would. (XNNPACK takes ratios in [2**-8, 2**7]; outside them
    LiteRT's own kernel runs, which this does not follow.) Returns
    `(values, ready)`."""
    one = float(2 ** _CONVERT_FRACTION_BITS)
    _, input_scale = _grid(input_bounds, num_bits)
    low, output_scale = _grid(output_bounds, num_bits)
    multiplier = ops.round(ops.multiply(
        ops.divide(input_scale, output_scale), one))
    steps = ops.multiply(ops.round(ops.divide(x, input_scale)), multiplier)
    # Exact in float32: |steps| < 2**8 * 2**15.
    steps = ops.floor(ops.divide(ops.add(steps, one / 2.0), one))
    return (_on_grid(steps, low, output_scale, num_bits),
            _all_ready([input_bounds, output_bounds]))
