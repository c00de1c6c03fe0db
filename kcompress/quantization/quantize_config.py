"""`QuantizeConfig`: how one layer is quantized, and the default table.

The default table follows TFLite's int8 spec. Layers the converter runs as
int8 kernels on their own get their output fake-quantized. Layers that only
move int8 values around (max pooling, reshapes, padding, dropout) are left
alone: TFLite gives their output the scale of their input.
"""

import keras
from keras import layers

from kcompress._owned_weights import OwnedWeight
from kcompress.quantization.quantizers import DEPTHWISE

__all__ = ["QuantizeConfig", "default_quantize_config", "SUPPORTED_LAYERS"]


@keras.saving.register_keras_serializable(package="kcompress")
class QuantizeConfig:
    """How a layer is quantized during QAT.

    Custom layers pass one to `quantize_annotate_layer`. A subclass may
    override `get_weights_and_axes(layer)` to pick weights another way.

    Args:
        weights: mapping from weight attribute name (e.g. `"kernel"`) to its
            per-channel axis: an int, `None` for per-tensor, or `"depthwise"`
            for a `(h, w, in, multiplier)` kernel. Weights are quantized
            symmetric and narrow-range.
        quantize_output: whether the layer's output is fake-quantized with a
            learned (moving-average) range.
        num_bits: bit width, 8 for TFLite int8.
        output_range: optional fixed `(low, high)` output range, for ops
            whose int8 kernel has a fixed output scale (softmax and sigmoid
            output `[0, 255/256]`, tanh `[-1, 127/128]`). None learns it.

    Example:

    >>> config = QuantizeConfig(weights={"kernel": -1})
    >>> QuantizeConfig.from_config(config.get_config()) == config
    True
    """

    def __init__(self, weights=None, quantize_output=True, num_bits=8,
                 output_range=None):
        weights = dict(weights or {})
        for name, axis in weights.items():
            if not (axis is None or axis == DEPTHWISE or (
                    isinstance(axis, int) and not isinstance(axis, bool))):
                raise ValueError(
                    f"Received: weights={{{name!r}: {axis!r}}}. Expected each "
                    "axis to be an int, None (per-tensor) or 'depthwise'."
                )
        if num_bits not in range(2, 9):
            raise ValueError(
                f"Received: num_bits={num_bits!r}. Expected an int in [2, 8]."
            )
        if output_range is not None:
            try:
                low, high = (float(v) for v in output_range)
            except (TypeError, ValueError):
                low = high = float("nan")
            if not low <= 0.0 <= high or low == high:
                raise ValueError(
                    f"Received: output_range={output_range!r}. Expected None "
                    "or a pair (low, high) with low <= 0 <= high, low < high."
                )
            output_range = (low, high)
        self.weights = weights
        self.quantize_output = bool(quantize_output)
        self.num_bits = num_bits
        self.output_range = output_range

    @property
    def quantizes_anything(self):
        return bool(self.weights) or self.quantize_output

    def get_weights_and_axes(self, layer):
        """`[(variable, axis)]` for the weights of `layer` to quantize."""
        found = []
        for name, axis in self.weights.items():
            variable = getattr(layer, name, None)
            if variable is None:
                raise ValueError(
                    f"Layer '{layer.name}' ({type(layer).__name__}) has no "
                    f"weight '{name}' for its QuantizeConfig. Its weights: "
                    f"{[w.path for w in layer.weights]}."
                )
            found.append((variable, axis))
        return found

    def get_config(self):
        return {"weights": dict(self.weights),
                "quantize_output": self.quantize_output,
                "num_bits": self.num_bits,
                "output_range": (None if self.output_range is None
                                 else list(self.output_range))}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __hash__(self):
        return hash(repr(self))

    def __eq__(self, other):
        return type(self) is type(other) and (
            self.get_config() == other.get_config())

    def __repr__(self):
        return f"QuantizeConfig({self.get_config()})"


def _table():
    conv = {"kernel": -1}
    output_only = dict(quantize_output=True)
    pass_through = dict(quantize_output=False)
    return (
        # Subclasses before their bases.
        ((layers.DepthwiseConv1D,), dict(weights={"kernel": None})),
        ((layers.DepthwiseConv2D,), dict(weights={"kernel": DEPTHWISE})),
        # Per-tensor for transposed convolutions: the converter transposes
        # the kernel, and a per-channel axis no longer matches (conversion
        # fails), as for 1-D convolutions below.
        ((layers.Conv1DTranspose, layers.Conv2DTranspose),
         dict(weights={"kernel": None})),
        # Per-tensor for 1-D convolutions: the converter runs them as a 2-D
        # convolution after an ExpandDims, and its per-channel axis then
        # no longer matches (conversion fails).
        ((layers.Conv1D,), dict(weights={"kernel": None})),
        ((layers.Conv2D,), dict(weights=conv)),
        ((layers.Dense,), dict(weights={"kernel": None})),
        # TFLite's GATHER reads the int8 table and keeps its scale.
        ((layers.Embedding,), dict(weights={"embeddings": None},
                                   quantize_output=False)),
        ((layers.BatchNormalization, layers.ReLU, layers.Activation,
          layers.Add, layers.Subtract, layers.Multiply, layers.Average,
          layers.Maximum, layers.Minimum, layers.Concatenate,
          layers.GlobalAveragePooling1D, layers.GlobalAveragePooling2D,
          layers.UpSampling2D, layers.Rescaling, layers.Normalization,
          layers.Softmax, layers.LeakyReLU,
          layers.ELU, layers.PReLU), output_only),
        # TFLite's int8 AVERAGE_POOL_2D requires its output to keep the
        # input's scale.
        ((layers.MaxPooling1D, layers.MaxPooling2D, layers.AveragePooling1D,
          layers.AveragePooling2D, layers.Reshape,
          layers.Flatten, layers.Dropout, layers.SpatialDropout1D,
          layers.SpatialDropout2D, layers.GaussianNoise,
          layers.ZeroPadding1D, layers.ZeroPadding2D, layers.Cropping1D,
          layers.Cropping2D, layers.UpSampling1D, layers.Permute,
          layers.GlobalMaxPooling1D, layers.GlobalMaxPooling2D,
          layers.Identity, layers.ActivityRegularization), pass_through),
    )


# SeparableConv2D is split into DepthwiseConv2D + 1x1 Conv2D before
# quantizing, as TFLite runs it (see quantize.py).
# LayerNormalization and MultiHeadAttention have composite QAT layers
# (composite.py).
SUPPORTED_LAYERS = tuple(
    sorted({cls.__name__ for classes, _ in _table() for cls in classes}
           | {"SeparableConv2D", "InputLayer", "LayerNormalization",
              "MultiHeadAttention"}))


# TFLite's int8 kernels for these give their output a fixed scale; QAT
# rounds to the same grid (a learned range would be requantized after them).
FIXED_OUTPUT_RANGES = {
    "softmax": (0.0, 255.0 / 256.0),
    "sigmoid": (0.0, 255.0 / 256.0),
    "tanh": (-1.0, 127.0 / 128.0),
}


def _activation_name(layer):
    if isinstance(layer, layers.Softmax):
        return "softmax"
    if isinstance(layer, layers.Activation):
        activation = layer.get_config()["activation"]
        return activation if isinstance(activation, str) else None
    return None


def default_quantize_config(layer):
    """The default `QuantizeConfig` for `layer`, or None if it has none."""
    if isinstance(layer, keras.layers.InputLayer):
        return QuantizeConfig(quantize_output=False)
    if isinstance(layer, OwnedWeight):
        # A composite's own token or table: its float value gets an int8
        # grid, as the converter gives the constant it becomes.
        return QuantizeConfig(quantize_output="float" in layer.value_dtype)
    for classes, kwargs in _table():
        if isinstance(layer, classes):
            fixed = FIXED_OUTPUT_RANGES.get(_activation_name(layer))
            return QuantizeConfig(**kwargs, output_range=fixed)
    return None


def float_layer_warning(names):
    """The message for layers `quantize_model` leaves in float."""
    return (
        f"quantize_model left these layers in float, having no int8 "
        f"quantization for them: {', '.join(names)}. They run in float in "
        "the converted file, between DEQUANTIZE and QUANTIZE ops; their "
        "outputs are quantized for the layers that follow. To quantize one, "
        "give it a QuantizeConfig with quantize_annotate_layer and call "
        "quantize_apply."
    )


def unsupported_layer_error(layer):
    return ValueError(
        f"Layer '{layer.name}' of type {type(layer).__name__} has no default "
        "int8 quantization. Either give it a QuantizeConfig with "
        "`quantize_annotate_layer(layer, quantize_config=...)` and call "
        "`quantize_apply`, or leave it in float: annotate only the other "
        "layers with `quantize_annotate_layer` and call `quantize_apply`. "
        f"Layers with a default: {', '.join(SUPPORTED_LAYERS)}."
    )
