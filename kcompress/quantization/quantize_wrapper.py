"""QAT layers: `QuantizeWrapper` around a layer, `QuantizeLayer` for inputs.

Both learn an activation range as an exponential moving average during `fit`
and fake-quantize with it. The first training batch (or `calibrate`) sets the
range outright. Until a range is set, activations pass through in float, so a
freshly quantized model scores what the float model scores (TFMOT starts from
a fixed [-6, 6] range and scores about 10% on digits before training).
"""

import keras
from keras import ops

from kcompress._substitute import call_with_values
from kcompress.quantization import quantizers
from kcompress.quantization.quantize_config import QuantizeConfig
from kcompress.quantization.quantize_config import default_quantize_config

__all__ = ["QuantizeWrapper", "QuantizeLayer", "ActivationRange"]

EMA_DECAY = 0.999


class ActivationRange:
    """Mixin: a learned output range and the fake quantization that uses it.

    The host layer calls `build_range()` in `build` and
    `quantize_output(y, training)` in `call`. Python flags set by
    `kcompress.quantization` functions:

    - `calibrating`: the call widens the range to cover the data (eager);
    - `export_mode`: the call always fake-quantizes, with no float
      pass-through, so the traced graph is what the TFLite converter expects.
    """

    def build_range(self):
        def scalar(name, value):
            return self.add_weight(
                name=name, shape=(), initializer=keras.initializers.Constant(
                    value), trainable=False, aggregation="only_first_replica")

        self.output_min = scalar("output_min", -6.0)
        self.output_max = scalar("output_max", 6.0)
        self.range_initialized = scalar("range_initialized", 0.0)
        self.ranges_frozen = scalar("ranges_frozen", 0.0)
        self.calibrating = False
        self.export_mode = False

    def _fake_quant(self, y, low, high):
        return quantizers.fake_quant_activation(y, low, high, self.num_bits)

    def quantize_output(self, y, training=None):
        if self.calibrating:
            seen = float(ops.convert_to_numpy(self.range_initialized)) > 0.5
            low = ops.minimum(ops.min(y), 0.0)
            high = ops.maximum(ops.max(y), 0.0)
            if seen:
                low = ops.minimum(low, self.output_min)
                high = ops.maximum(high, self.output_max)
            self.output_min.assign(low)
            self.output_max.assign(high)
            self.range_initialized.assign(1.0)
            return self._fake_quant(y, low, high)
        if training:
            low, high = quantizers.update_range(
                self.output_min, self.output_max, y, self.range_initialized,
                EMA_DECAY)
            frozen = ops.greater(self.ranges_frozen, 0.5)
            low = ops.where(frozen, self.output_min, low)
            high = ops.where(frozen, self.output_max, high)
            self.output_min.assign(low)
            self.output_max.assign(high)
            self.range_initialized.assign(1.0)
            return self._fake_quant(y, low, high)
        quantized = self._fake_quant(y, self.output_min, self.output_max)
        if self.export_mode:
            return quantized
        return ops.where(ops.greater(self.range_initialized, 0.5), quantized,
                         y)


def _check_config(config, layer):
    if config is None:
        config = default_quantize_config(layer)
        if config is None:
            from kcompress.quantization.quantize import unsupported_layer_error
            raise unsupported_layer_error(layer)
        return config
    if isinstance(config, dict):
        config = keras.saving.deserialize_keras_object(config)
    if not isinstance(config, QuantizeConfig):
        raise ValueError(
            f"Received: quantize_config={config!r}. Expected a "
            "kcompress.quantization.QuantizeConfig."
        )
    return config


@keras.saving.register_keras_serializable(package="kcompress")
class QuantizeWrapper(ActivationRange, keras.layers.Wrapper):
    """Runs `layer` with fake-quantized weights and a fake-quantized output.

    Weights are fake-quantized from the float weights on every call (the
    optimizer keeps updating the float weights). With `preserve_sparsity`,
    weights that were exactly zero when the wrapper was built stay zero, so
    pruning survives QAT and reaches the int8 file.

    Args:
        layer: the layer to quantize.
        quantize_config: a `QuantizeConfig`; defaults to the built-in one for
            the layer's type.
        preserve_sparsity: keep zero weights at zero.
        **kwargs: passed to `keras.layers.Wrapper`.

    Example:

    >>> import keras
    >>> dense = QuantizeWrapper(keras.layers.Dense(3))
    >>> dense(keras.ops.ones((2, 4))).shape
    (2, 3)
    """

    def __init__(self, layer, quantize_config=None, preserve_sparsity=True,
                 **kwargs):
        if isinstance(layer, (QuantizeWrapper, QuantizeLayer)):
            raise ValueError(
                f"Layer '{layer.name}' is already quantized. Quantizing twice "
                "is not supported."
            )
        if not isinstance(layer, keras.layers.Layer):
            raise ValueError(
                f"Received: layer={layer!r} of type {type(layer).__name__}. "
                "Expected a keras.layers.Layer."
            )
        kwargs.setdefault("name", f"quant_{layer.name}")
        super().__init__(layer, **kwargs)
        self.quantize_config = _check_config(quantize_config, layer)
        self.preserve_sparsity = bool(preserve_sparsity)
        self.num_bits = self.quantize_config.num_bits

    def build(self, input_shape=None):
        super().build(input_shape)
        self.quantized_weights = self.quantize_config.get_weights_and_axes(
            self.layer)
        self.zero_masks = []
        if self.preserve_sparsity:
            for weight, _ in self.quantized_weights:
                mask = self.add_weight(
                    name=f"{weight.name}_nonzero", shape=weight.shape,
                    dtype=weight.dtype, initializer="ones", trainable=False,
                    aggregation="only_first_replica")
                mask.assign(ops.cast(ops.not_equal(weight, 0), weight.dtype))
                self.zero_masks.append(mask)
        if self.quantize_config.quantize_output:
            self.build_range()
        else:
            self.calibrating = self.export_mode = False
        self.built = True

    def effective_weights(self):
        """`[(variable, float value)]`: weights with preserved zeros applied."""
        if not self.zero_masks:
            return [(w, ops.convert_to_tensor(w))
                    for w, _ in self.quantized_weights]
        return [(w, ops.multiply(w, m))
                for (w, _), m in zip(self.quantized_weights, self.zero_masks)]

    def call(self, inputs, *args, training=None, **kwargs):
        axes = [axis for _, axis in self.quantized_weights]
        mapping = [
            (w, quantizers.fake_quant_weight(value, axis, self.num_bits))
            for (w, value), axis in zip(self.effective_weights(), axes)]
        outputs = call_with_values(self, self.layer, mapping, inputs, *args,
                                   **kwargs)
        if self.quantize_config.quantize_output:
            outputs = self.quantize_output(outputs, training)
        return outputs

    def compute_output_shape(self, *args, **kwargs):
        return self.layer.compute_output_shape(*args, **kwargs)

    def compute_output_spec(self, *args, **kwargs):
        return self.layer.compute_output_spec(*args, **kwargs)

    def get_config(self):
        config = {
            "quantize_config": keras.saving.serialize_keras_object(
                self.quantize_config),
            "preserve_sparsity": self.preserve_sparsity,
        }
        return {**super().get_config(), **config}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = config.copy()
        config["quantize_config"] = keras.saving.deserialize_keras_object(
            config["quantize_config"], custom_objects=custom_objects)
        return super().from_config(config, custom_objects=custom_objects)


@keras.saving.register_keras_serializable(package="kcompress")
class QuantizeLayer(ActivationRange, keras.layers.Layer):
    """Fake-quantizes a model input with a learned range (TFLite's QUANTIZE).

    Args:
        num_bits: bit width.
        **kwargs: passed to `keras.layers.Layer`.
    """

    def __init__(self, num_bits=8, **kwargs):
        super().__init__(**kwargs)
        self.num_bits = num_bits

    def build(self, input_shape=None):
        self.build_range()
        self.built = True

    def call(self, inputs, training=None):
        return self.quantize_output(inputs, training)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "num_bits": self.num_bits}
