"""LiteRT's int8 kernels, emulated in `keras.ops`, so that a QAT model's
predictions equal its int8 file's to the bit.

Why. A QAT model trains with fake quantization: float32 arithmetic on
values that sit on int8 grids. The file computes with integers and
requantizes the way LiteRT's XNNPACK kernels do. The two agree within a
step, but a step is enough: a squeeze-excite gate or a lone BatchNorm
multiplies it, and through EfficientNetB0's 16 blocks it grew to 12 output
steps. So in inference (not in training, and not in the exporter's trace,
which must stay the float graph with FakeQuant ops that the converter
folds), QAT layers compute as the kernels below do. BUILD.md ("Real
architectures") has the measurements that found each formula.

What is emulated, and the arithmetic of each. Every kernel was found by
feeding the op of a trained file its own int8 inputs and matching its
outputs value for value (millions of values, no mismatch):

- CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED (`requantized`): the exact
  int32 sum of int8 products plus the int32 bias, as a float32, times the
  float32 scale `input scale * weight scale / output scale`, rounded half
  to even. Here on integer-valued float32 tensors, exact below 2**24.
- MEAN, global average pooling (`mean_requantized`): the sum of the raw
  int8 values times `input scale / (output scale * count)`, plus a float32
  bias holding both zero points, rounded half to even.
- AVERAGE_POOL_2D over full windows (`average_pooled`): the signed int8
  sum divided by the window size in integers, half away from zero, on the
  input's grid.
- MUL (`multiply_requantized`): the exact product of the steps times one
  float32 scale, rounded half to even.
- RSQRT (`rsqrt_requantized`, TFLite's kernel: XNNPACK leaves it): a
  gemmlowp fixed-point `2**20 / sqrt(steps)`, a table of the kernel's own
  integers (`fixed_point`), times the multiplier `1 / (sqrt(input scale) *
  output scale)`, rounded twice, half up. The float `1 / sqrt` rounds a
  near half step the other way on about 1% of a layer norm's tokens.
  (`QuantizeLayerNormalization` computes its whole chain with these.)
- ADD (`add_requantized`): each input's steps times a 20-bit integer
  multiplier, summed in int32, shifted right with rounding half up. SUB
  is an ADD of the negated input.
- QUANTIZE of the float model input (`quantize_requantized`): `x / scale`
  rounded half to even.
- QUANTIZE before a CONCATENATION's input, XNNPACK's 8-bit convert
  (`converted`): the steps times `round(256 * input scale / output
  scale)`, shifted right by 8, half up. Its multiplier is coarse: a step
  of 100 lands up to a fifth of a step from exact rounding.

The converter's own arithmetic (`exact_arithmetic`, `grid`):

- a tensor's scale is the one the file holds (`exact_grid`: the scale
  rounded to `SCALE_BITS` significant bits, so float32 and float64 agree);
- a bias's int32 steps are rounded as the converter's double arithmetic
  rounds them (`bias_steps`): float32's quotient is a few thousandths of a
  step off at DenseNet's bias sizes;
- a weight scale `magnitude / 127` is correctly rounded (`quotient`).

Why the exact-arithmetic guards. `predict` and the exporter's trace run as
TensorFlow graphs, which Grappler rewrites: constant folding turns `x /
127` into `x * (1/127)` (one ulp off for 5% of weight scales), the AddN
rewrite reorders a chain of sums, and broadcast minimization reassociates
`a * b * scale`. So `quotient` corrects a quotient with its exact
remainder, Dekker's products (`two_product`) subtract their error terms in
order (subtractions are left alone), MUL guards its integer product with a
`round`, and scales are read from `exact_grid` instead of being divided
again. The same values then come out of an eager call, `predict`, XLA on
JAX and the file.

The contract. Each kernel takes its inputs (float tensors on their grids)
and the grids' ranges `(min, max)`, and returns `(values, ready)`:
`ready` is False while a range is unset (min > max), and the caller then
keeps its fake-quantized float output. This package depends on `keras.ops`
alone; the training side calls it (`quantization.emulated` picks the
kernel for a `QuantizeWrapper`; `input_grid` finds the input grids in the
graph), never the other way.

How to add a kernel. Convert a small model holding the op, feed the op its
own int8 inputs (`ai_edge_litert`'s interpreter with
`experimental_preserve_all_tensors=True`), and find the formula that
matches every value. Write it here in `keras.ops`, returning `(values,
ready)`, in `accumulating` (a sum over many values) or `elementwise`. Then
have the layer call it in inference, through `emulated.in_inference` and
`emulated.chosen`, and test that the layer's outputs equal its file's in an
eager call and in `predict` (tests/quantization/int8_kernels/).

Example: the model input's QUANTIZE, on the grid of the range [-1, 1];
the file rounds 1.5 steps and 2.5 steps half to even, to 2 and 2:

>>> import numpy as np
>>> from kcompress.quantization import int8_kernels
>>> low, scale = int8_kernels.exact_grid(-1.0, 1.0)
>>> x = np.array([1.5, 2.5, 1000.0], "float32") * float(scale)
>>> values, ready = int8_kernels.quantize_requantized(x, (-1.0, 1.0))
>>> np.round(np.asarray(values) / float(scale)).tolist(), bool(ready)
([2.0, 2.0, 127.0], True)
"""

from kcompress.quantization.int8_kernels.accumulating import average_pooled
from kcompress.quantization.int8_kernels.accumulating import mean_requantized
from kcompress.quantization.int8_kernels.accumulating import requantized
from kcompress.quantization.int8_kernels.elementwise import add_requantized
from kcompress.quantization.int8_kernels.elementwise import converted
from kcompress.quantization.int8_kernels.elementwise import multiply_requantized
from kcompress.quantization.int8_kernels.elementwise import quantize_requantized
from kcompress.quantization.int8_kernels.elementwise import rsqrt_requantized
from kcompress.quantization.int8_kernels.exact_arithmetic import bias_steps
from kcompress.quantization.int8_kernels.exact_arithmetic import quotient
from kcompress.quantization.int8_kernels.exact_arithmetic import two_product
from kcompress.quantization.int8_kernels.grid import SCALE_BITS
from kcompress.quantization.int8_kernels.grid import exact_grid
from kcompress.quantization.int8_kernels.grid import exact_range
from kcompress.quantization.int8_kernels.grid import int8_zero_point

# The emulated ops: each returns `(values, ready)`.
KERNELS = ("add_requantized", "converted", "mean_requantized",
           "multiply_requantized", "quantize_requantized", "requantized",
           "rsqrt_requantized")

__all__ = ["KERNELS", "SCALE_BITS", "add_requantized", "average_pooled",
           "bias_steps", "converted", "exact_grid", "exact_range",
           "int8_zero_point", "mean_requantized", "multiply_requantized",
           "quantize_requantized", "quotient", "requantized",
           "rsqrt_requantized", "two_product"]
