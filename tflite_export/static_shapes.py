"""Reshapes the converter can write as one RESHAPE op.

Keras 3's `Flatten` and `Reshape` reshape to `(batch, ...)` with the batch
read from the tensor at run time, because it is dynamic. The converter
cannot fold that, so each one becomes SHAPE, STRIDED_SLICE, PACK and
RESHAPE in the file, with their constant buffers (about 500 bytes on the
digits CNN). Where the per-sample shape is static, `-1` for the batch is
the same reshape, and the converter writes it as a single RESHAPE with a
constant shape: the file TFMOT's tf_keras models give.

`static_reshapes(model)` makes those layers reshape that way while the
exporter traces the model, and restores them after. It changes no graph:
rebuilding one around the user's layers would add call sites to them, and
QAT layers read their single call site to find their input's grid.
"""

import contextlib

import keras

from kcompress._model_utils import iter_layers


def static_target(layer):
    """The static per-sample output shape of a plain `Flatten` or `Reshape`.

    Returns None for other layers, for a channels-first `Flatten` (which
    transposes first), for subclasses (which may do more than reshape), and
    where the shape is not static or the layer was called on more than one
    input shape.
    """
    if type(layer) not in (keras.layers.Flatten, keras.layers.Reshape):
        return None
    if getattr(layer, "data_format", None) == "channels_first":
        return None
    try:
        shape = tuple(layer.output.shape)
    except (AttributeError, ValueError):  # unbuilt, or called several times
        return None
    tail = shape[1:]
    if not tail or not all(isinstance(d, int) and d >= 0 for d in tail):
        return None
    return tail


@contextlib.contextmanager
def static_reshapes(model):
    """While active, `model`'s static reshapes use -1 for the batch.

    Every plain `Flatten` and `Reshape` of `model` (nested models included)
    whose per-sample output shape is static computes
    `ops.reshape(x, (-1,) + shape)`: the same values, traced without shape
    ops.
    """
    patched = []
    for layer in iter_layers(model):
        target = static_target(layer)
        if target is None or "call" in vars(layer):
            continue

        def call(inputs, target=target):
            return keras.ops.reshape(inputs, (-1,) + target)

        object.__setattr__(layer, "call", call)
        patched.append(layer)
    try:
        yield
    finally:
        for layer in patched:
            object.__delattr__(layer, "call")
