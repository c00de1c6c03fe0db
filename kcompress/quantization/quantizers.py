"""Pure fake-quantization functions for TFLite's int8 scheme.

All of them go through `keras.quantizers.fake_quant_with_min_max_vars`, which
lowers on TensorFlow to the `FakeQuantWithMinMaxVars(PerChannel)` ops that the
TFLite converter folds into real int8 kernels. Nothing here re-implements
fake quantization.

TFLite's int8 spec:
- weights are symmetric and narrow-range (`[-127, 127]`, zero point 0):
  per output channel for convolutions, per tensor for fully connected layers;
- activations are asymmetric, per tensor (`[-128, 127]`), and their range
  always includes 0.
"""

import math

from keras import ops
from keras import quantizers

__all__ = ["fake_quant_weight", "fake_quant_activation", "update_range",
           "DEPTHWISE"]

# Marker for depthwise kernels `(h, w, in, multiplier)`: TFLite quantizes them
# per output channel, i.e. per `in * multiplier` entry.
DEPTHWISE = "depthwise"

_EPSILON = 1e-8


def fake_quant_weight(weight, axis=None, num_bits=8):
    """Symmetric narrow-range fake quantization of a weight.

    Args:
        weight: the float weight.
        axis: `None` for per-tensor, an int for per-channel along that axis,
            or `DEPTHWISE` for a `(h, w, in, multiplier)` depthwise kernel.
        num_bits: bit width.

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
        return ops.reshape(fake_quant_weight(flat, -1, num_bits), shape)
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
    magnitude = ops.stop_gradient(ops.where(
        ops.greater(magnitude, _EPSILON), magnitude, 1.0))
    return quantizers.fake_quant_with_min_max_vars(
        weight, -magnitude, magnitude, num_bits=num_bits, narrow_range=True,
        axis=axis)


def fake_quant_activation(x, min_value, max_value, num_bits=8):
    """Asymmetric per-tensor fake quantization of an activation."""
    return quantizers.fake_quant_with_min_max_vars(
        x, min_value, max_value, num_bits=num_bits, narrow_range=False)


def update_range(current_min, current_max, x, initialized, decay):
    """The new activation range after seeing the batch `x`.

    The first batch sets the range outright (so QAT starts calibrated, not at
    an arbitrary default); later batches move it by an exponential moving
    average. The range always includes 0, as TFLite requires.

    Args:
        current_min, current_max: scalar tensors, the current range.
        x: the batch of activations.
        initialized: scalar tensor, 1.0 once a range has been set.
        decay: EMA decay, e.g. 0.999.

    Returns:
        `(new_min, new_max)` scalar tensors.
    """
    batch_min = ops.minimum(ops.min(x), 0.0)
    batch_max = ops.maximum(ops.max(x), 0.0)
    seen = ops.greater(initialized, 0.5)
    new_min = ops.where(
        seen, current_min * decay + batch_min * (1.0 - decay), batch_min)
    new_max = ops.where(
        seen, current_max * decay + batch_max * (1.0 - decay), batch_max)
    return new_min, new_max
