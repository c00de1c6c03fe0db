"""`QuantizeAveragePooling`: average pooling as TFLite's int8 kernel runs it.

TFLite's int8 AVERAGE_POOL_2D keeps its input's scale and zero point, so
the mean of each window is rounded back onto the input's grid. Left as a
plain layer, QAT would keep the exact mean, and the layers after it would
see values the file never produces (a step apart on a quarter of the
elements of a 2x2 pool). This wrapper rounds the mean onto the grid of the
layer that produced its input (`input_grid`), and passes that grid on.
"""

import keras
from keras import ops

from kcompress.quantization import input_grid
from kcompress.quantization import int8_kernels
from kcompress.quantization import quantizers
from kcompress.quantization.composite import _Composite
from kcompress.quantization.export_trace import ExportMode

__all__ = ["QuantizeAveragePooling", "AVERAGE_POOLS"]

AVERAGE_POOLS = (keras.layers.AveragePooling1D, keras.layers.AveragePooling2D)


@keras.saving.register_keras_serializable(package="kcompress")
class QuantizeAveragePooling(_Composite):
    """QAT of an `AveragePooling1D`/`2D`: the mean, on the input's grid.

    Where the input's grid is unknown (the input comes from a float layer,
    or the layer is called at several places), the mean stays exact.

    Args:
        layer: the pooling layer.
        num_bits: bit width.
        **kwargs: passed to `keras.layers.Wrapper`.
    """

    WRAPS = AVERAGE_POOLS
    export_mode = ExportMode()
    # A window's mean is at most this close to a rounding boundary without
    # being on it (1/n of a step for an n-element window).
    _TIE_SHIFT = 1e-3

    def __init__(self, layer, num_bits=8, **kwargs):
        super().__init__(layer, num_bits=num_bits, **kwargs)
        self.export_mode = False  # Set by tflite_export while tracing.

    def call(self, inputs, training=None):
        del training  # The same in training and inference.
        outputs = self.layer(inputs)
        if self.export_mode:
            # The file's int8 AVERAGE_POOL_2D keeps its input's grid by
            # itself. A FakeQuant on that same grid after it adds nothing,
            # and it confuses the converter: where the pooled tensor also
            # feeds MaxPooling layers the converter merges (NASNet's
            # reduction cells), it left the ADDs after them in float. Only
            # where the pooled tensor also feeds a Concatenate is the grid
            # pinned (`input_grid.pins_grid`).
            return input_grid.pinned(self, outputs, self.num_bits)
        bounds = input_grid.input_bounds(self)
        if bounds is None:
            return outputs
        low, high = bounds
        valid = ops.less_equal(low, high)
        if self.layer.padding == "valid":
            return ops.where(valid, self._integer_mean(
                inputs, outputs, ops.minimum(low, high),
                ops.maximum(low, high)), outputs)
        low, high = int8_kernels.exact_range(ops.minimum(low, high),
                                             ops.maximum(low, high),
                                             self.num_bits)
        # TFLite rounds a mean halfway between two steps away from zero in
        # the signed int8 domain; FakeQuant rounds it up. Below the zero
        # point, move such a mean down a little first.
        scale = (high - low) / float(2 ** self.num_bits - 1)
        below = ops.less(outputs - low,
                         scale * float(2 ** (self.num_bits - 1)))
        shifted = outputs - ops.where(below, self._TIE_SHIFT * scale, 0.0)
        rounded = quantizers.fake_quant_activation(shifted, low, high,
                                                   self.num_bits)
        return ops.where(valid, rounded, outputs)

    def _integer_mean(self, inputs, outputs, low, high):
        """`outputs` (the float means) as the int8 kernel computes them for
        full windows (`int8_kernels.average_pooled`), with the gradient
        passing straight through."""
        exact = int8_kernels.average_pooled(self.layer, inputs, (low, high),
                                            self.layer.pool_size,
                                            self.num_bits)
        return ops.add(outputs, ops.stop_gradient(ops.subtract(exact,
                                                                outputs)))

    def output_bounds(self):
        return input_grid.input_bounds(self)

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)
