"""Masked softmaxes traced with finite fills for post-training quantization.

Keras fills a softmax's masked positions with -1e9 (`Softmax(mask=...)`,
inside every `MultiHeadAttention` given a mask). Calibrated, the filled
tensor's range reaches -1e9: a scale of about 4e6, which
`finite_ranges.check_ranges` refuses (every score would round to one
value). While `finite_masked_softmaxes(model)` is active, every plain
`keras.layers.Softmax` of the model (inside its layers too: KerasHub's
attention, nested backbones) called with a mask computes
`kcompress.quantization.masked_softmax.finite_masked_softmax` instead,
whose fill is 16 below the row's largest unmasked score: the file's
ranges stay finite and modest, and its values differ from Keras's by at
most exp(-16) per masked position, of each probability. The model itself
is not changed (the same way as `static_shapes.static_reshapes`).

A `MultiHeadAttention` without dropout computes its attention with the
fused `ops.dot_product_attention`, which masks with the lowest float
(a scale of 1e36 once calibrated) and no `Softmax` layer; while the
context is active it takes its step-by-step path instead (the one it takes
to return its scores: the same values), whose `Softmax` is the one above.

QAT models need none of this: their attention computes the finite softmax
in Keras already (`QuantizeMultiHeadAttention`).
"""

import contextlib

__all__ = ["finite_masked_softmaxes"]


@contextlib.contextmanager
def finite_masked_softmaxes(model):
    """While active, the plain `Softmax` layers of `model` fill masked
    positions with a finite value, and its `MultiHeadAttention` layers
    apply their masks through their `Softmax` (see the module docstring).
    """
    import keras

    from kcompress import _keras_internals

    layers = _keras_internals.descendants(model)
    with contextlib.ExitStack() as stack:
        for layer in layers:
            if isinstance(layer, keras.layers.MultiHeadAttention):
                stack.enter_context(_keras_internals.explicit_attention(layer))
        for layer in layers:  # (`descendants` lists each layer once)
            if type(layer) is keras.layers.Softmax and (
                    "call" not in vars(layer)):
                stack.enter_context(_finite_fill(layer))
        yield


@contextlib.contextmanager
def _finite_fill(softmax):
    """`softmax` (a `keras.layers.Softmax`) with a finite fill, while
    active."""
    from kcompress.quantization.masked_softmax import finite_masked_softmax

    original = softmax.call

    def call(inputs, mask=None):
        if mask is None:
            return original(inputs)
        return finite_masked_softmax(inputs, mask, softmax.axis)

    object.__setattr__(softmax, "call", call)
    try:
        yield
    finally:
        object.__delattr__(softmax, "call")
