"""`QuantizeBatchNormalization`: a BatchNormalization that no convolution
absorbs, as TFLite runs it.

DenseNet's pre-activation BatchNorms, or one after a pooling or an add,
have no convolution to fold into. The converter turns each into a
per-channel affine map, `x * scale + offset`: an int8 MUL by a constant,
then an int8 ADD of a constant, with a following ReLU fused into the ADD.
Both constants are int8 tensors on a symmetric per-tensor grid.

In inference the two ops compute as XNNPACK's kernels do (`int8_kernels`):
DenseNet121 has 58 such layers in a row, one per block, and a step lost at
a rounding tie in each added up to several output steps.
"""

import keras
from keras import ops

from kcompress.quantization import emulated
from kcompress.quantization import input_grid
from kcompress.quantization import int8_kernels
from kcompress.quantization import quantizers
from kcompress.quantization.composite import _Composite

__all__ = ["QuantizeBatchNormalization"]


@keras.saving.register_keras_serializable(package="kcompress")
class QuantizeBatchNormalization(_Composite):
    """QAT of a `BatchNormalization` that no convolution absorbs, as TFLite
    runs it: a per-channel affine map, `x * scale + offset`, as int8 MUL
    and ADD.

    `scale = gamma / sqrt(moving_variance + epsilon)` and
    `offset = beta - moving_mean * scale` use the moving statistics in
    training too, so training sees the map the file runs; the statistics
    still update from each training batch.

    Args:
        layer: the `BatchNormalization`.
        num_bits: bit width.
        output_quantized: round the ADD's output to a grid of its own.
            False when a ReLU or ReLU6 that TFLite fuses into the ADD
            follows: the file then rounds once, on the ReLU's grid.
        **kwargs: passed to `keras.layers.Wrapper`.

    Example:

    >>> import keras
    >>> bn = QuantizeBatchNormalization(keras.layers.BatchNormalization())
    >>> tuple(bn(keras.ops.ones((2, 3))).shape)
    (2, 3)
    """

    WRAPS = keras.layers.BatchNormalization
    RANGES = ("scaled", "output")

    def __init__(self, layer, num_bits=8, output_quantized=True, **kwargs):
        super().__init__(layer, num_bits=num_bits, _range_keys=self.RANGES[
            :None if output_quantized else -1], **kwargs)
        self.output_quantized = bool(output_quantized)

    def output_bounds(self):
        return super().output_bounds() if self.output_quantized else None

    def get_config(self):
        return {**super().get_config(),
                "output_quantized": self.output_quantized}

    def _affine(self):
        """The float `(scale, offset)` of the map."""
        bn = self.layer
        scale = ops.rsqrt(ops.add(bn.moving_variance, bn.epsilon))
        if bn.scale:
            scale = ops.multiply(scale, bn.gamma)
        offset = ops.negative(ops.multiply(bn.moving_mean, scale))
        if bn.center:
            offset = ops.add(offset, bn.beta)
        return scale, offset

    def call(self, inputs, training=None, mask=None):
        del mask  # BatchNormalization ignores it for inference too.
        bn = self.layer
        if training:
            bn(inputs, training=True)  # Updates the moving statistics.
        axis = bn.axis if isinstance(bn.axis, (list, tuple)) else [bn.axis]
        shape = [1] * len(inputs.shape)
        for a in axis:
            shape[a % len(shape)] = inputs.shape[a]
        constants = []  # (fake-quantized value, scale of its grid)
        for value in self._affine():
            magnitude = quantizers.weight_magnitude(value)
            constants.append((ops.reshape(quantizers.fake_quant_weight(
                value, None, self.num_bits, magnitude=magnitude), shape),
                int8_kernels.quotient(magnitude,
                                      float(2 ** (self.num_bits - 1) - 1))))
        (scale, scale_grid), (offset, offset_grid) = constants
        x = ops.cast(inputs, "float32")
        y = self._q("scaled", x * scale, training) + offset
        if self.output_quantized:
            y = self._q("output", y, training)
            output_bounds = self.output_bounds()
        else:  # A fused ReLU rounds it: the file writes onto its grid.
            output_bounds = input_grid.written_grid(self)
        bounds = input_grid.input_bounds(self)
        scaled = self.ranges["scaled"]
        if (not emulated.in_inference(scaled, training) or bounds is None
                or output_bounds is None):
            return y
        # Inference: the MUL and the ADD as their int8 kernels compute.
        product, product_ready = int8_kernels.multiply_requantized(
            x, scale, [bounds, scale_grid], scaled.output_bounds(),
            self.num_bits)
        total, ready = int8_kernels.add_requantized(
            product, offset, [scaled.output_bounds(), offset_grid],
            output_bounds, self.num_bits)
        return emulated.chosen((total, ops.logical_and(ready, product_ready)),
                               y)

    def compute_output_shape(self, input_shape):
        return input_shape
