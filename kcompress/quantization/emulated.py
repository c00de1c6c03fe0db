"""Which QAT layers compute in inference as the file's int8 ops do.

`int8_kernels` has the arithmetic; this module picks, for a
`QuantizeWrapper` in inference, the op its layer becomes in the file:

- CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED (a convolution or Dense with
  no activation or a ReLU);
- ADD and MUL (an `Add` or `Multiply` of two tensors);
- MEAN (channels-last global average pooling);
- CONCATENATION, with the QUANTIZE ops that move inputs onto its grid.

A convolution or Dense that leaves its output for a fused ReLU or a
`Concatenate` to round writes onto that layer's grid
(`input_grid.rounding_consumer`).

Folded conv + BatchNorm (`fold_batchnorm`), the swish MUL (`composite`)
and the model input's QUANTIZE (`QuantizeLayer`) call `int8_kernels`
themselves, through `in_inference` and `chosen`.

Each needs its inputs' grids (`input_grid`); where one is unknown, or a
range is still unset, the layer keeps its fake-quantized float output. The
exporter's trace (`export_mode`) and calibration never come here: the
converter must see the float graph with its FakeQuant ops.
"""

import keras
from keras import ops

from kcompress.quantization import input_grid
from kcompress.quantization import int8_kernels
from kcompress.quantization import quantizers

__all__ = ["INT32_BIAS", "TRANSPOSED", "chosen", "in_inference",
           "wrapper_output"]

# Layers whose TFLite kernel takes an int32 bias on the grid
# `input scale * weight scale`. (A transposed convolution's bias may stay a
# separate ADD in the file, so it is left float.)
INT32_BIAS = (keras.layers.Conv1D, keras.layers.Conv2D,
              keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D,
              keras.layers.Dense)
TRANSPOSED = (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose)
_GLOBAL_AVERAGE = (keras.layers.GlobalAveragePooling1D,
                   keras.layers.GlobalAveragePooling2D,
                   keras.layers.GlobalAveragePooling3D)


def in_inference(layer, training):
    """Whether a call of `layer` (a QAT layer with an output range)
    computes as the int8 ops do: inference, outside the exporter's trace
    and calibration."""
    return not training and not layer.export_mode and not layer.calibrating


def chosen(result, rounded):
    """The emulated values of `result = (values, ready)` where `ready`,
    else `rounded`, the fake-quantized float output."""
    values, ready = result
    return ops.where(ready, values, rounded)


def wrapper_output(wrapper, inputs, mapping, magnitudes, rounded,
                   output_bounds=None):
    """The inference output of `wrapper` (a `QuantizeWrapper` called
    `in_inference`): as the int8 op computes it where `int8_kernels`
    emulates that op, else `rounded`, its fake-quantized float output.

    Args:
        wrapper: the layer.
        inputs: its input (a list for a merge).
        mapping: `[(weight variable, fake-quantized value)]`, the bias last
            and on its int32 grid.
        magnitudes: `quantizers.weight_magnitude` of each weight.
        rounded: the fake-quantized float output.
        output_bounds: the range of the output grid; defaults to the
            wrapper's own (`wrapper.output_bounds()`).
    """
    layer = wrapper.layer
    if output_bounds is None:
        output_bounds = wrapper.output_bounds()
    if isinstance(layer, keras.layers.Concatenate):
        return _concatenated(wrapper, inputs, output_bounds, rounded)
    if isinstance(layer, (keras.layers.Add, keras.layers.Multiply)):
        bounds = (input_grid.merged_input_bounds(wrapper)
                  if isinstance(inputs, (list, tuple)) and len(inputs) == 2
                  else None)
        if bounds is None:
            return rounded
        merge = (int8_kernels.add_requantized
                 if isinstance(layer, keras.layers.Add)
                 else int8_kernels.multiply_requantized)
        return chosen(merge(inputs[0], inputs[1], bounds, output_bounds,
                            wrapper.num_bits), rounded)
    bounds = input_grid.input_bounds(wrapper)
    if bounds is None:
        return rounded
    if (isinstance(layer, _GLOBAL_AVERAGE)
            and layer.data_format == "channels_last"
            and None not in tuple(inputs.shape[1:-1])):
        return chosen(int8_kernels.mean_requantized(
            inputs, tuple(range(1, len(inputs.shape) - 1)), layer.keepdims,
            bounds, output_bounds, wrapper.num_bits), rounded)
    if _is_kernel(wrapper):
        return _kernel_output(wrapper, inputs, mapping, magnitudes[0],
                              bounds, output_bounds, rounded)
    return rounded


def _concatenated(wrapper, inputs, output_bounds, rounded):
    """A CONCATENATION: each input moved onto the output's grid as the
    file's QUANTIZE does it (those written straight onto it stay)."""
    bounds = input_grid.merged_input_bounds(wrapper)
    if bounds is None or not isinstance(inputs, (list, tuple)):
        return rounded
    parts = [int8_kernels.converted(x, b, output_bounds, wrapper.num_bits)
             for x, b in zip(inputs, bounds)]
    ready = parts[0][1]
    for _, part_ready in parts[1:]:
        ready = ops.logical_and(ready, part_ready)
    return chosen((ops.concatenate([values for values, _ in parts],
                                   axis=wrapper.layer.axis), ready), rounded)


def _is_kernel(wrapper):
    """A convolution or Dense, no activation or a ReLU, kernel first."""
    layer = wrapper.layer
    activation = getattr(getattr(layer, "activation", None), "__name__",
                         None)
    return (isinstance(layer, INT32_BIAS)
            and not isinstance(layer, TRANSPOSED)
            and activation in ("linear", "relu")
            and list(wrapper.quantize_config.weights)[:1] == ["kernel"])


def channel_shape(kernel, axis):
    """The shape that broadcasts one weight scale per output channel over
    `kernel` (quantization `axis` as for `quantizers.fake_quant_weight`),
    or None for one scale."""
    rank = len(kernel.shape)
    if axis is None:
        return None
    if axis == quantizers.DEPTHWISE:
        return (1,) * (rank - 2) + tuple(kernel.shape[-2:])
    return (1,) * (rank - 1) + (-1,)


def _kernel_output(wrapper, inputs, mapping, magnitude, bounds,
                   output_bounds, rounded):
    kernel_variable, kernel = mapping[0]
    bias_variable = getattr(wrapper.layer, "bias", None)
    bias = dict((id(w), v) for w, v in mapping).get(id(bias_variable))

    def run(x, k, b):
        values = [(kernel_variable, k)]
        if bias_variable is not None:
            values.append((bias_variable, b if b is not None
                           else ops.zeros_like(bias_variable)))
        return wrapper._run(x, values)

    return chosen(int8_kernels.requantized(
        run, inputs, kernel, bias, magnitude,
        channel_shape(kernel, wrapper.quantized_weights[0][1]), bounds,
        output_bounds, wrapper.num_bits), rounded)
