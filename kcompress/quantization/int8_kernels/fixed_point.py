"""LiteRT's int8 RSQRT, whose reciprocal square root is gemmlowp fixed
point: a table of its integer results, computed here in Python integers
once, as the kernel computes them.

The kernel (TFLite's own; XNNPACK leaves RSQRT to it) takes the input's
steps `v` (from its zero point), finds `1 / sqrt(v)` by five Newton
iterations in 32-bit fixed point (`GetInvSqrtQuantizedMultiplierExp`),
scales it to the integer `data = 2**20 / sqrt(v)`, and requantizes `data`
by the multiplier `1 / (sqrt(input scale) * output scale)`. `data` is
rounded twice on the way, so an output near a half step lands where the
float `1 / sqrt(x)` would not: on a layer norm's variance grid, 11 of
1,088 tokens were one step off. Matched value for value against the
kernel's outputs (`tests/quantization/test_composite.py`).
"""

__all__ = ["DATA_SHIFT", "INV_SQRT_DATA", "inv_sqrt_data"]

_INT32_MAX = 2 ** 31 - 1
_INT32_MIN = -2 ** 31
DATA_SHIFT = 20  # The kernel's `kShift`: `data` is 2**20 / sqrt(v).


def _doubling_high_mul(a, b):
    """gemmlowp's SaturatingRoundingDoublingHighMul."""
    if a == b == _INT32_MIN:
        return _INT32_MAX
    product = a * b
    nudged = product + ((1 << 30) if product >= 0 else 1 - (1 << 30))
    high = abs(nudged) >> 31  # C++ division truncates toward zero.
    return high if nudged >= 0 else -high


def _divide_by_power_of_two(x, exponent):
    """gemmlowp's RoundingDivideByPOT: half away from zero."""
    mask = (1 << exponent) - 1
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if (x & mask) > threshold else 0)


def _multiply_by_quantized_multiplier(x, multiplier, shift):
    left = max(shift, 0)
    return _divide_by_power_of_two(
        _doubling_high_mul(x * (1 << left), multiplier), max(-shift, 0))


def _rescale(x, source_bits, target_bits):
    """A fixed-point value moved from `source_bits` integer bits to
    `target_bits` (gemmlowp's Rescale)."""
    exponent = source_bits - target_bits
    if exponent >= 0:
        return max(min(x * (1 << exponent), _INT32_MAX), _INT32_MIN)
    return _divide_by_power_of_two(x, -exponent)


def _inv_sqrt_multiplier(value):
    """`(multiplier, left shift)` of `1 / sqrt(value)`, as
    `GetInvSqrtQuantizedMultiplierExp` gives it (with `reverse_shift`
    -1, as the RSQRT kernel calls it)."""
    if value <= 1:
        return _INT32_MAX, 0
    shift = 11
    while value >= 1 << 29:
        value //= 4
        shift += 1
    pairs = (32 - value.bit_length() - 1) // 2 - 1
    shift -= pairs
    value <<= 2 * pairs
    # Newton's iteration for 1/sqrt in fixed point with 3 integer bits.
    half_input = _divide_by_power_of_two(value >> 1, 1)
    half_three = (1 << 28) + (1 << 27)
    x = 1 << 28
    for _ in range(5):
        cube = _rescale(_doubling_high_mul(_doubling_high_mul(x, x), x), 9,
                        3)
        x = _rescale(_doubling_high_mul(half_three, x)
                     - _doubling_high_mul(half_input, cube), 6, 3)
    x = _doubling_high_mul(x, 1518500250)  # Times sqrt(2) / 2.
    if shift < 0:
        x <<= -shift
        shift = 0
    return x, -shift


def inv_sqrt_data(value):
    """The RSQRT kernel's integer `data` for an input `value` steps from
    its zero point: about `2**20 / sqrt(value)` (`value` 0 and 1 give
    2**20; the kernel returns the top of its range for 0 anyway)."""
    multiplier, shift = _inv_sqrt_multiplier(value)
    return _multiply_by_quantized_multiplier(1, multiplier,
                                             shift + DATA_SHIFT)


# Indexed by the input's steps from its zero point, 0 to 255.
INV_SQRT_DATA = tuple(inv_sqrt_data(v) for v in range(256))
