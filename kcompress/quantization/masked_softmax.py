"""A masked softmax whose intermediate values stay finite and small.

Keras masks a softmax by filling the masked positions with -1e9
(`Softmax(mask=...)`, and so every `MultiHeadAttention` with an attention
or padding mask, KerasHub's text encoders included). In float that is
exact. In an int8 file it is not, in two ways:

- post-training quantization calibrates the filled tensor to a range
  reaching -1e9: a scale of about 4e6, under which every score rounds to
  the same value (`tflite_export` refuses such a file);
- a QAT model fake-quantizes the scores but not the filled tensor, so the
  converter gives the fill (a SELECT_V2, which keeps its input's grid) the
  scores' grid, and -1e9 becomes the bottom of that grid: a value a few
  hundredths below the real scores, not far below them. The masked
  positions then take their share of the softmax in the file and none in
  Keras (measured on the tiny KerasHub BERT: the fill quantized to -0.05
  on a grid of step 3.3e-4; DistilBERT's and RoBERTa's files were 13 and
  23 output steps from Keras).

`finite_masked_softmax` computes the same softmax with a fill that is
finite and fixed relative to the row: the scores minus their largest
unmasked value (the shift leaves a softmax unchanged), and `FILL` (-16)
at the masked positions. A masked position's weight is then at most
exp(-16) = 1.1e-7 of the largest one's, in float and in the file (where
`FILL` is the bottom of the grid and the int8 SOFTMAX's table reaches
exp(-16) there, far below its 1/256 output step); the output is then
zeroed at the masked positions, as Keras does. The shifted scores live on
the fixed range `[FILL, 0]` (a step of 16/255 = 0.063 in int8, fake
quantized so in QAT): finite whatever the scores do, at the cost of a
coarser grid than the scores' own when they span less than 16.

The QAT attention (`composite.QuantizeMultiHeadAttention`) uses it;
`quantize_model` puts a `FiniteMaskedSoftmax` (fake quantizing) in place
of each plain `keras.layers.Softmax` the graph calls with a mask, and
`strip_quantization` puts the Keras layer back; `tflite_export` traces
every plain `Softmax` with it when it converts to an integer file with
representative data (PTQ). So a model need not be changed.

Example:

>>> import numpy as np
>>> scores = np.array([[1.0, 2.0, 3.0]], "float32")
>>> mask = np.array([[True, True, False]])
>>> probabilities = finite_masked_softmax(scores, mask)
>>> print(np.round(keras.ops.convert_to_numpy(probabilities), 4))
[[0.2689 0.7311 0.    ]]
"""

import keras
from keras import ops

from kcompress import _keras_internals
from kcompress import _model_utils
from kcompress.quantization import quantizers

__all__ = ["FILL", "FiniteMaskedSoftmax", "finite_masked_softmax",
           "attention_softmax", "with_finite_softmaxes", "as_keras_softmax"]

# The value masked positions take, relative to the row's largest unmasked
# score: exp(-16) = 1.1e-7.
FILL = -16.0


def _axes(axis):
    return tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)


def finite_masked_softmax(x, mask, axis=-1, num_bits=None):
    """`keras.layers.Softmax(axis)(x, mask=mask)`, with finite fills.

    Args:
        x: the scores.
        mask: broadcastable to `x`; True (or > 0.5) where a position is
            kept. None gives the plain softmax.
        axis: an axis or a tuple of axes, as `keras.layers.Softmax` takes.
        num_bits: None for float; else the bit width the shifted scores
            are fake-quantized to on `[FILL, 0]` (QAT).

    Returns:
        The probabilities, exactly 0 at masked positions; the kept ones
        differ from Keras's by at most exp(-16) per masked position, of
        their value.
    """
    axes = _axes(axis)
    if mask is None:
        return _softmax(x, axes)
    if len(mask.shape) > len(x.shape):
        raise ValueError(
            f"Received: mask of shape {tuple(mask.shape)} for scores of "
            f"shape {tuple(x.shape)}. Expected a mask broadcastable to the "
            "scores, with no more dimensions.")
    if keras.backend.standardize_dtype(mask.dtype) != "bool":
        mask = ops.greater(mask, ops.cast(0.5, mask.dtype))
    lowest = ops.min(x, axis=axes, keepdims=True)
    # The largest unmasked score (the row's lowest where all are masked),
    # found without a huge fill: the masked positions hold the lowest.
    top = ops.max(ops.where(mask, x, lowest), axis=axes, keepdims=True)
    shifted = ops.subtract(x, top)
    if num_bits is not None:
        shifted = quantizers.fake_quant_activation(shifted, FILL, 0.0,
                                                   num_bits)
    logits = ops.where(mask, shifted, ops.cast(FILL, shifted.dtype))
    return ops.where(mask, _softmax(logits, axes), 0.0)


def _softmax(x, axes):
    if len(axes) > 1:  # as keras.layers.Softmax computes it
        return ops.exp(x - ops.logsumexp(x, axis=axes, keepdims=True))
    return ops.softmax(x, axis=axes[0])


def attention_softmax(mha, scores, mask, num_bits=None):
    """`mha`'s masked softmax of its attention `scores` (a
    `MultiHeadAttention`'s), with finite fills (`finite_masked_softmax`);
    Keras's own where `mask` is None."""
    if mask is None:
        return _keras_internals.masked_softmax(mha, scores, None)
    mask, axis = _keras_internals.attention_softmax_mask(mha, scores, mask)
    return finite_masked_softmax(scores, mask, axis, num_bits)


@keras.saving.register_keras_serializable(package="kcompress")
class FiniteMaskedSoftmax(keras.layers.Softmax):
    """A `keras.layers.Softmax` whose mask fills finitely
    (`finite_masked_softmax`).

    Args:
        axis: as `keras.layers.Softmax` takes it.
        num_bits: None for float; else the bit width of the shifted
            scores' fixed grid (QAT).
        **kwargs: passed to `keras.layers.Softmax`.
    """

    def __init__(self, axis=-1, num_bits=None, **kwargs):
        super().__init__(axis=axis, **kwargs)
        self.num_bits = num_bits

    def call(self, inputs, mask=None):
        return finite_masked_softmax(inputs, mask, self.axis, self.num_bits)

    def get_config(self):
        return {**super().get_config(), "num_bits": self.num_bits}


def _called_with_mask(layer):
    return any(_keras_internals.call_kwargs(node).get("mask") is not None
               for node in _keras_internals.inbound_nodes_if_any(layer))


def _masked_softmaxes(model):
    return [layer for layer in _model_utils.iter_layers(model)
            if type(layer) is keras.layers.Softmax
            and _called_with_mask(layer)]


def with_finite_softmaxes(model, num_bits=8):
    """`model` (not modified), or a clone of it in which each plain
    `keras.layers.Softmax` called with a mask is a `FiniteMaskedSoftmax`
    with `num_bits` (its other layers copied as they are)."""
    if isinstance(model, keras.Sequential):
        return model
    replaced = {id(layer) for layer in _masked_softmaxes(model)}
    if not replaced:
        return model

    def layer_fn(layer):
        if id(layer) in replaced:
            return FiniteMaskedSoftmax(num_bits=num_bits,
                                       **layer.get_config())
        return _model_utils.clone_layer(layer)

    return _model_utils.transform_model(model, layer_fn)


def as_keras_softmax(layer):
    """`layer`, or the `keras.layers.Softmax` a `FiniteMaskedSoftmax`
    stands for."""
    if not isinstance(layer, FiniteMaskedSoftmax):
        return layer
    config = layer.get_config()
    config.pop("num_bits")
    return keras.layers.Softmax.from_config(config)
