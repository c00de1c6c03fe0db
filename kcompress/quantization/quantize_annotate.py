"""`QuantizeAnnotate`: marks a layer for `quantize_apply`."""

import keras

from kcompress import _model_utils
from kcompress.quantization.quantize_config import QuantizeConfig

__all__ = ["QuantizeAnnotate"]


class HoldsQuantizeConfig:
    """Serialization of a `keras.layers.Wrapper` that holds a
    `quantize_config`: serialized in `get_config`, deserialized only in
    `from_config`, as `keras.layers.Wrapper` does with its layer (the
    constructor takes objects, not dicts)."""

    def get_config(self):
        return {**super().get_config(),
                "quantize_config": keras.saving.serialize_keras_object(
                    self.quantize_config)}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = _model_utils.deserialized(config, ["quantize_config"],
                                           custom_objects)
        return super().from_config(config, custom_objects=custom_objects)


@keras.saving.register_keras_serializable(package="kcompress")
class QuantizeAnnotate(HoldsQuantizeConfig, keras.layers.Wrapper):
    """Marks `layer` to be quantized by `quantize_apply`; computes nothing.

    Args:
        layer: the layer to mark.
        quantize_config: optional `QuantizeConfig`; the default for the
            layer's type is used otherwise.
        **kwargs: passed to `keras.layers.Wrapper`.
    """

    def __init__(self, layer, quantize_config=None, **kwargs):
        if isinstance(layer, QuantizeAnnotate):
            raise ValueError(f"Layer '{layer.name}' is already annotated.")
        if quantize_config is not None and not isinstance(quantize_config,
                                                          QuantizeConfig):
            raise ValueError(
                f"Received: quantize_config={quantize_config!r}. Expected a "
                "kcompress.quantization.QuantizeConfig or None."
            )
        kwargs.setdefault("name", f"quant_annotate_{layer.name}")
        super().__init__(layer, **kwargs)
        _model_utils.keep_input_shape(self, layer)
        self.quantize_config = quantize_config

    def call(self, inputs, *args, **kwargs):
        return self.layer(inputs, *args, **kwargs)

    def compute_output_shape(self, *args, **kwargs):
        return self.layer.compute_output_shape(*args, **kwargs)

    def compute_output_spec(self, *args, **kwargs):
        return _model_utils.inner_output_spec(self.layer, *args, **kwargs)
