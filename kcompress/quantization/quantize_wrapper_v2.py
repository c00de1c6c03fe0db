"""`QuantizeWrapperV2`: QAT of a layer whose `QuantizeConfig` is written
the TFMOT way, with quantizer objects.

TFMOT's guides quantize a custom layer with a `QuantizeConfig` subclass
that hands out quantizers (`tfmot_quantizers`) through
`get_weights_and_quantizers(layer)`, `get_activations_and_quantizers(layer)`
and `get_output_quantizers(layer)`. `quantize_apply` wraps such a layer in
`QuantizeWrapperV2` (TFMOT's name), which builds each quantizer's variables
on itself and calls them on every step, as TFMOT's wrapper does.

One difference, which Keras 3 imposes: TFMOT's wrapper hands the quantized
weights to `set_quantize_weights(layer, ...)`, which assigns them to layer
attributes (`layer.kernel = ...`); Keras 3 layers hold their weights as
variables behind read-only properties. Here the layer is called with the
quantized values in place of its variables (`keras.StatelessScope`), and
`set_quantize_weights` is not called. Activations go through
`set_quantize_activations` as in TFMOT, for the call's duration.

The file: every quantizer lowers to
`keras.quantizers.fake_quant_with_min_max_vars`, which the TFLite converter
folds into int8 kernels. Such a layer has no int8-kernel emulation in
inference (`int8_kernels`): Keras computes its fake-quantized floats.
"""

import keras

from kcompress import _model_utils
from kcompress._substitute import call_with_values
from kcompress.quantization.quantize_annotate import HoldsQuantizeConfig
from kcompress.quantization.quantize_config import QuantizeConfig

__all__ = ["QuantizeWrapperV2", "uses_quantizers"]


def uses_quantizers(config):
    """Whether `config` is written the TFMOT way (a `QuantizeConfig`
    subclass defining `get_weights_and_quantizers`)."""
    return isinstance(config, QuantizeConfig) and callable(
        getattr(config, "get_weights_and_quantizers", None))


@keras.saving.register_keras_serializable(package="kcompress")
class QuantizeWrapperV2(HoldsQuantizeConfig, keras.layers.Wrapper):
    """QAT of `layer` as its TFMOT-style `quantize_config` says.

    Args:
        layer: the layer to quantize.
        quantize_config: a `QuantizeConfig` subclass defining
            `get_weights_and_quantizers`, `get_activations_and_quantizers`,
            `set_quantize_activations` and `get_output_quantizers`.
        **kwargs: passed to `keras.layers.Wrapper`.
    """

    _kcompress_quantized = True  # _model_utils.QUANTIZED_MARKER

    def __init__(self, layer, quantize_config, **kwargs):
        if not uses_quantizers(quantize_config):
            raise ValueError(
                f"Received: quantize_config={quantize_config!r}. Expected a "
                "QuantizeConfig subclass defining get_weights_and_quantizers "
                "(TFMOT's interface); other configs go to QuantizeWrapper.")
        kwargs.setdefault("name", f"quant_{layer.name}")
        super().__init__(layer, **kwargs)
        _model_utils.keep_input_shape(self, layer)
        self.quantize_config = quantize_config

    def build(self, input_shape=None):
        if not self.layer.built:
            self.layer.build(input_shape)
        config = self.quantize_config
        self._weight_quantizers = [
            (weight, quantizer, quantizer.build(
                tuple(weight.shape), f"{weight.name}_{i}", self))
            for i, (weight, quantizer) in enumerate(
                config.get_weights_and_quantizers(self.layer))]
        output_shape = self.layer.compute_output_shape(input_shape)
        self._activation_quantizers = [
            (activation, quantizer, quantizer.build(
                tuple(output_shape), f"activation_{i}", self))
            for i, (activation, quantizer) in enumerate(
                config.get_activations_and_quantizers(self.layer))]
        self._output_quantizers = [
            (quantizer, quantizer.build(tuple(output_shape), f"output_{i}",
                                        self))
            for i, quantizer in enumerate(
                config.get_output_quantizers(self.layer))]
        self.built = True

    def call(self, inputs, training=None):
        mapping = [(weight, quantizer(weight.value, training, variables))
                   for weight, quantizer, variables in self._weight_quantizers]

        def quantized(activation, quantizer, variables):
            return lambda x: quantizer(activation(x), training, variables)

        config = self.quantize_config
        if self._activation_quantizers:
            config.set_quantize_activations(self.layer, [
                quantized(*entry) for entry in self._activation_quantizers])
        try:
            outputs = call_with_values(
                self, self.layer, mapping, inputs,
                own_state=[v for _, _, variables in
                           self._activation_quantizers
                           for v in variables.values()])
        finally:
            if self._activation_quantizers:
                config.set_quantize_activations(self.layer, [
                    activation for activation, _, _ in
                    self._activation_quantizers])
        for quantizer, variables in self._output_quantizers:
            outputs = quantizer(outputs, training, variables)
        return outputs

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)
