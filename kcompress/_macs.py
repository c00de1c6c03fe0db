"""Multiply-accumulates per sample, read from a built model's shapes.

A layer with a kernel (Dense, the convolutions, their wrappers) does
`kernel size x output positions` MACs; a nested model, those of its
layers; a composite layer, those of the layers it holds, each counted at
the composite's own output positions (its sublayers are called inside its
`call`, where Keras keeps no shapes: exact for Dense per token and for
convolutions that keep the size, an estimate for strided ones). Other
layers count 0: the figure is the share of the compute a technique
reaches, not a latency model.
"""

import keras
import numpy as np

from kcompress import _keras_internals

_KERNELS = ("kernel", "depthwise_kernel", "pointwise_kernel")
_TRANSPOSED = (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose,
               keras.layers.Conv3DTranspose)


def _positions(tensor_shape):
    dims = tuple(tensor_shape)[1:-1]
    return int(np.prod([d for d in dims if d is not None])) if dims else 1


def _kernel_macs(layer, shape=None):
    inner = getattr(layer, "layer", layer)
    kernels = [getattr(inner, name) for name in _KERNELS
               if getattr(inner, name, None) is not None]
    if not kernels or isinstance(inner, keras.layers.Embedding):
        return None
    try:
        shape = (layer.input.shape if isinstance(inner, _TRANSPOSED)
                 else layer.output.shape)
    except (AttributeError, ValueError):  # not called in a graph, or twice
        if shape is None:
            return 0
    return sum(int(np.prod(k.shape)) for k in kernels) * _positions(shape)


def layer_macs(layer):
    """MACs per sample of one call of `layer` (0 if it cannot be read)."""
    if isinstance(layer, keras.Model):
        return model_macs(layer)
    macs = _kernel_macs(layer)
    if macs is not None:
        return macs
    try:
        shape = layer.output.shape
    except (AttributeError, ValueError):
        shape = None
    return sum(_kernel_macs(sub, shape) or 0
               for sub in _keras_internals.descendants(layer))


def model_macs(model):
    """MACs per sample of `model`: the sum over its layers."""
    return sum(layer_macs(layer) for layer in model.layers)
