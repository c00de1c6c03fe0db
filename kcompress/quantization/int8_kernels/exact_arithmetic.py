"""float32 arithmetic that gives what the TFLite converter and LiteRT's
kernels compute, whatever rewrites the graph goes through.

Two places need more than plain float32 `keras.ops`:

- The converter computes a bias's int32 steps, `bias / (input scale *
  weight scale)`, in double precision. In float32 the quotient is off by up
  to a few thousandths of a step at DenseNet's bias sizes (tens of
  thousands of steps), so a bias that close to a half step rounded the
  other way than in the file.
- A weight scale is `magnitude / 127`, and the file holds the correctly
  rounded quotient. In a TensorFlow graph (`predict`, the exporter's
  trace), Grappler's constant folding turns a division by a constant into
  a multiplication by its reciprocal, one unit in the last place off for
  about 5% of values; an int8 kernel's requantization scale then differs,
  and an output at a rounding tie lands the other way.

Both use Dekker's exact products (`two_product`): sums and differences of
floats that cancel exactly, which no graph optimizer reorders.
"""

from keras import ops

__all__ = ["bias_steps", "quotient", "two_product"]


def quotient(x, divisor):
    """`x / divisor` (a Python float), correctly rounded in float32 even
    where the graph computes it as `x * (1 / divisor)`: the remainder
    `x - q * divisor`, exact, corrects the first quotient `q`."""
    x = ops.convert_to_tensor(x, "float32")
    q = ops.divide(x, divisor)
    product, error = two_product(q, divisor)
    remainder = ops.subtract(ops.subtract(x, product), error)
    return ops.add(q, ops.divide(remainder, divisor))


def bias_steps(bias, input_scale, weight_scale, scale):
    """`round(bias / (input_scale * weight_scale))`, with the product and
    the quotient as exact as the converter's double arithmetic.

    In float32 the quotient is off by up to a few thousandths of a step at
    DenseNet's bias sizes (tens of thousands of steps), so a bias within
    that of a half step rounded the other way than in the file: one int32
    step, enough to move an output at a rounding tie. Here `scale` (their
    float32 product) gives the nearest step, and the remainder `bias -
    steps * input_scale * weight_scale`, computed without rounding error
    (Dekker's products), moves it by one where it is over half a step.
    """
    bias = ops.convert_to_tensor(bias, "float32")
    steps = ops.stop_gradient(ops.round(ops.divide(bias, scale)))
    product, product_error = two_product(input_scale, weight_scale)
    high, low = two_product(steps, product)
    remainder = ops.subtract(ops.subtract(ops.subtract(bias, high), low),
                             ops.multiply(steps, product_error))
    half = ops.multiply(0.5, scale)
    up = ops.cast(ops.greater(remainder, half), steps.dtype)
    down = ops.cast(ops.less(remainder, ops.negative(half)), steps.dtype)
    return ops.subtract(ops.add(steps, up), down)


def _split(a):
    """`(high, low)`, `a` split into two halves of its significand
    (Veltkamp), each product of two halves exact in float32."""
    c = ops.multiply(a, 4097.0)
    high = ops.subtract(c, ops.subtract(c, a))
    return high, ops.subtract(a, high)


def two_product(a, b):
    """`(p, e)` with `p = a * b` in float32 and `p + e` exactly `a * b`
    (Dekker).

    The error terms are subtracted one by one, in Dekker's order: Grappler
    rewrites a chain of additions into one `AddN`, which sums in an order
    of its own and loses the exactness; it leaves subtractions alone.
    """
    a, b = ops.convert_to_tensor(a), ops.convert_to_tensor(b)
    p = ops.multiply(a, b)
    a_high, a_low = _split(a)
    b_high, b_low = _split(b)
    minus_a_low = ops.negative(a_low)
    e = ops.subtract(ops.multiply(a_high, b_high), p)
    e = ops.subtract(e, ops.multiply(a_high, ops.negative(b_low)))
    e = ops.subtract(e, ops.multiply(minus_a_low, b_high))
    e = ops.subtract(e, ops.multiply(minus_a_low, b_low))
    return p, e
