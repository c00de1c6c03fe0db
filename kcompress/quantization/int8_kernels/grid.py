"""The int8 grid a tensor sits on in the file: its scale, its zero point,
and values rounded and clamped onto it.

A range `(min, max)` learned in training becomes, in the file, a scale and
a zero point. `exact_grid` finds the scale the file holds, exactly, so
that training, the exporter's trace and every kernel here agree on it to
the last bit. The kernels return their values with a `ready` flag
(`all_ready`): False while a range is unset (min > max), when the values
mean nothing and the caller keeps its float path.
"""

from keras import ops

__all__ = ["SCALE_BITS", "all_ready", "exact_grid", "exact_range",
           "int8_zero_point", "on_grid", "zero_point"]

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

    Example:

    >>> low, high = exact_range(-1.0, 1.0)
    >>> float(low), float(high)
    (-1.00390625, 0.996063232421875)
    """
    low, scale = exact_grid(min_value, max_value, num_bits)
    return low, ops.add(low, ops.multiply(float(2 ** num_bits - 1), scale))


def exact_grid(min_value, max_value, num_bits=8):
    """`(low, scale)` of the grid of `exact_range(min_value, max_value)`.

    The scale is the one the file holds, exactly. (Dividing the range's
    width by 255 again gives it too, in eager execution; but TensorFlow's
    graph optimizer may turn that division into a multiplication by 1/255,
    one unit in the last place off, and an int8 kernel's requantization
    then lands a tie the other way now and then.)
    """
    levels = float(2 ** num_bits - 1)
    width = ops.maximum(ops.subtract(max_value, min_value), 1e-12)
    scale = ops.divide(width, levels)
    exponent = ops.floor(ops.log2(scale)) - (SCALE_BITS - 1)
    step = ops.power(2.0, exponent)
    scale = ops.multiply(ops.round(ops.divide(scale, step)), step)
    zero = ops.clip(ops.round(ops.divide(ops.negative(min_value), scale)),
                    0.0, levels)
    return ops.multiply(ops.negative(zero), scale), scale


def grid_of(bounds, num_bits):
    """`(low, scale)` of the exact grid of the range `bounds`."""
    return exact_grid(*bounds, num_bits=num_bits)


def zero_point(low, scale):
    """The uint8 zero point of the grid that starts at `low`."""
    return ops.round(ops.divide(ops.negative(low), scale))


def int8_zero_point(low, scale, num_bits=8):
    """The signed (int8) zero point of the grid that starts at `low`: its
    uint8 zero point less 2**(bits - 1)."""
    return ops.subtract(zero_point(low, scale), float(2 ** (num_bits - 1)))


def on_grid(steps, low, output_scale, num_bits):
    """`steps` (float, relative to the zero point) rounded half to even
    and clamped to the output grid `(low, output_scale)`, as values."""
    zero = zero_point(low, output_scale)
    steps = ops.clip(ops.round(steps), ops.negative(zero),
                     float(2 ** num_bits - 1) - zero)
    return ops.multiply(steps, output_scale)


def all_ready(bounds):
    """Whether every range in `bounds` is set, a boolean scalar."""
    ready = None
    for low, high in bounds:
        set_ = ops.less(low, high)
        ready = set_ if ready is None else ops.logical_and(ready, set_)
    return ready


def input_scales(bounds, num_bits):
    """The scale of each input grid in `bounds`: a range `(min, max)`, or
    a scale alone (a constant's symmetric grid, always set)."""
    return [grid_of(b, num_bits)[1] if isinstance(b, (tuple, list)) else b
            for b in bounds]


def ranges(bounds):
    """The ranges among `bounds` (leaving out constants' scales)."""
    return [b for b in bounds if isinstance(b, (tuple, list))]
