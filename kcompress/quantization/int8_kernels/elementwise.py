"""The elementwise kernels, which requantize each value on its own: MUL,
ADD (and SUB, an ADD of the negated input), RSQRT, the model input's
QUANTIZE and the int8-to-int8 QUANTIZE the converter puts before a
CONCATENATION's input (`converted`).

Each follows LiteRT's XNNPACK kernel (RSQRT, which XNNPACK leaves to
TFLite, TFLite's), found by matching its outputs value for value: MUL
multiplies exact integer products by one float32 scale; ADD and the 8-bit
convert use fixed-point multipliers with a rounding shift, coarse enough
that exact rounding lands elsewhere on some values; RSQRT computes 1/sqrt
in gemmlowp fixed point (`fixed_point`).
"""

from keras import ops

from kcompress.quantization.int8_kernels import exact_arithmetic as exact
from kcompress.quantization.int8_kernels import fixed_point
from kcompress.quantization.int8_kernels import grid

__all__ = ["add_requantized", "converted", "multiply_requantized",
           "quantize_requantized", "rsqrt_requantized"]


def multiply_requantized(a, b, bounds, output_bounds, num_bits=8):
    """`a * b` on the output grid as the int8 MUL gives it: the exact
    product of the inputs' steps times the float32 scale `(scale a * scale
    b) / output scale`, rounded half to even. `bounds` are the inputs'
    ranges, or the scale of a constant's symmetric grid. Returns
    `(values, ready)`."""
    scale_a, scale_b = grid.input_scales(bounds, num_bits)
    # (The outer round changes no value: it keeps Grappler from
    # reassociating `a * b * scale`, a chain of multiplications of
    # different shapes, into `a * (b * scale)`.)
    product = ops.round(ops.multiply(ops.round(ops.divide(a, scale_a)),
                                     ops.round(ops.divide(b, scale_b))))
    low, output_scale = grid.grid_of(output_bounds, num_bits)
    values = grid.on_grid(
        ops.multiply(product, ops.divide(ops.multiply(scale_a, scale_b),
                                         output_scale)),
        low, output_scale, num_bits)
    return values, grid.all_ready(grid.ranges(bounds) + [output_bounds])


# XNNPACK's int8 ADD: each input's scale relative to the output's is a
# multiplier of this many bits, applied in int32 with a rounding shift.
_ADD_MULTIPLIER_BITS = 20


def add_requantized(a, b, bounds, output_bounds, num_bits=8):
    """`a + b` on the output grid as the int8 ADD gives it (XNNPACK):
    each input's steps times an integer multiplier, `round(scale ratio *
    2**shift)` with the larger ratio in `[2**19, 2**20)`, summed in int32
    and shifted right by `shift` with rounding half up. Returns
    `(values, ready)`. `bounds` as for `multiply_requantized`."""
    low, output_scale = grid.grid_of(output_bounds, num_bits)
    scales = grid.input_scales(bounds, num_bits)
    ratios = [ops.divide(scale, output_scale) for scale in scales]
    largest = ops.maximum(ratios[0], ratios[1])
    exponent = ops.floor(ops.log2(largest))
    # log2 may round across a power of two; correct the exponent exactly.
    exponent = ops.where(ops.greater(ops.power(2.0, exponent), largest),
                         exponent - 1.0, exponent)
    exponent = ops.where(ops.less_equal(ops.power(2.0, exponent + 1.0),
                                        largest), exponent + 1.0, exponent)
    # Clipped to what int32 holds: a set range gives a shift in [13, 30]
    # (XNNPACK takes scale ratios in [2**-10, 2**8)); an unset one (values
    # discarded) would otherwise divide by zero.
    shift = ops.clip(float(_ADD_MULTIPLIER_BITS) - exponent, 1.0, 30.0)
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
    values = grid.on_grid(steps, low, output_scale, num_bits)
    return values, grid.all_ready(grid.ranges(bounds) + [output_bounds])


def quantize_requantized(x, output_bounds, num_bits=8):
    """A float model input on its int8 grid as the QUANTIZE op gives it:
    `x / scale` rounded half to even. Returns `(values, ready)`."""
    low, output_scale = grid.grid_of(output_bounds, num_bits)
    return (grid.on_grid(ops.divide(x, output_scale), low, output_scale,
                     num_bits), grid.all_ready([output_bounds]))


def rsqrt_requantized(x, input_bounds, output_bounds, num_bits=8):
    """`1 / sqrt(x)` on the output grid as LiteRT's int8 RSQRT gives it
    (TFLite's kernel: XNNPACK does not take the op). For the input's steps
    `v` from its zero point, the kernel's fixed-point `data`, about
    `2**20 / sqrt(v)` (`fixed_point.INV_SQRT_DATA`), times the multiplier
    `1 / (sqrt(input scale) * output scale)`, as gemmlowp's
    `MultiplyByQuantizedMultiplier`: a rounding high multiplication, then a
    rounding right shift, half up. `v = 0` (a variance that rounded to
    zero) gives the top of the output grid. Returns `(values, ready)`.

    The multiplier is float32 here, the kernel's a 31-bit fraction of a
    double: an output within about 1e-7 of its value from a half step may
    round the other way.
    """
    _, input_scale = grid.grid_of(input_bounds, num_bits)
    low, output_scale = grid.grid_of(output_bounds, num_bits)
    steps = ops.round(ops.divide(x, input_scale))
    # (Below zero the kernel takes 1/sqrt as of 1, as `data` of 1 is.)
    index = ops.cast(ops.clip(steps, 1.0, 255.0), "int32")
    data = ops.take(ops.convert_to_tensor(fixed_point.INV_SQRT_DATA,
                                          "float32"), index)
    multiplier = ops.divide(1.0, ops.multiply(ops.sqrt(input_scale),
                                              output_scale))
    # `multiplier = fraction * 2**exponent`, fraction in [1/2, 1), exact.
    exponent = ops.floor(ops.log2(multiplier)) + 1.0
    exponent = ops.where(ops.greater(ops.power(2.0, exponent - 1.0),
                                     multiplier), exponent - 1.0, exponent)
    exponent = ops.where(ops.less_equal(ops.power(2.0, exponent),
                                        multiplier), exponent + 1.0,
                         exponent)
    fraction = ops.divide(multiplier, ops.power(2.0, exponent))
    # The high multiplication `round(data * fraction)`, half up, from the
    # exact product (below 2**21: `high + 0.5` and `high + 0.5 - whole`
    # are exact).
    high, error = exact.two_product(data, fraction)
    whole = ops.floor(ops.add(high, 0.5))
    whole = ops.where(ops.less(ops.subtract(ops.add(high, 0.5), whole),
                               ops.negative(error)), whole - 1.0, whole)
    # The right shift by `20 - exponent`, half up.
    divisor = ops.power(2.0, float(fixed_point.DATA_SHIFT) - exponent)
    out = ops.floor(ops.divide(ops.add(whole, ops.multiply(divisor, 0.5)),
                               divisor))
    top = float(2 ** num_bits)  # Above any grid: clamped to the top.
    out = ops.where(ops.equal(steps, 0.0), top, out)
    return (grid.on_grid(out, low, output_scale, num_bits),
            grid.all_ready([input_bounds, output_bounds]))


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
    _, input_scale = grid.grid_of(input_bounds, num_bits)
    low, output_scale = grid.grid_of(output_bounds, num_bits)
    multiplier = ops.round(ops.multiply(
        ops.divide(input_scale, output_scale), one))
    steps = ops.multiply(ops.round(ops.divide(x, input_scale)), multiplier)
    # Exact in float32: |steps| < 2**8 * 2**15.
    steps = ops.floor(ops.divide(ops.add(steps, one / 2.0), one))
    return (grid.on_grid(steps, low, output_scale, num_bits),
            grid.all_ready([input_bounds, output_bounds]))
