"""The variables a composite layer owns, held by layers of the flat graph.

A composite that owns a variable of its own (ViT's class token, DeiT's
distillation token and position table, a user's layer scale) reads it in
its `call`. Flattening the composite (`kcompress._flatten`) puts its
sublayers in the graph; the variable needs a layer there too, to be
trained, saved and loaded with the model. While the composite's `call` is
traced, each such attribute stands for the output of an `OwnedWeight`
holding a copy of the variable (and each plain tensor attribute, such as
ViT's position ids, for one holding the constant, so that a sublayer
called on it becomes a node rather than a constant).
"""

import contextlib

import keras
from keras import ops

from kcompress import _keras_internals
from kcompress import _model_utils

__all__ = ["OwnedWeight", "attributes", "standing_in"]


@keras.saving.register_keras_serializable(package="kcompress")
class OwnedWeight(keras.layers.Layer):
    """A value a composite layer owned (a class token, a position table),
    as the output of a layer of the flattened graph.

    The layer holds the value as its variable `value`; its input only gives
    the batch size. With `batched=True`, the value, whose first axis has
    size 1, is broadcast to the input's batch: the composite's
    `ops.tile(token, (batch, 1, 1))`, traced when the batch was unknown, is
    then the identity (see `kcompress._flatten`).

    Args:
        value_shape: the value's shape.
        value_dtype: its dtype (integer values are not trainable).
        batched: broadcast the value's first axis to the input's batch.
        **kwargs: passed to `keras.layers.Layer`.
    """

    def __init__(self, value_shape, value_dtype="float32", batched=False,
                 **kwargs):
        super().__init__(**kwargs)
        self.value_shape = tuple(value_shape)
        self.value_dtype = str(value_dtype)
        self.batched = bool(batched)
        if self.batched and (not self.value_shape
                             or self.value_shape[0] != 1):
            raise ValueError(
                f"Received: value_shape={self.value_shape} with "
                "batched=True. Expected a first axis of size 1 to "
                "broadcast to the batch.")
        self.value = self.add_weight(
            shape=self.value_shape, dtype=self.value_dtype,
            initializer="zeros", name="value",
            trainable="float" in self.value_dtype)
        self.built = True

    def call(self, inputs):
        value = ops.convert_to_tensor(self.value)
        if not self.batched:
            return value
        batch = ops.shape(keras.tree.flatten(inputs)[0])[0]
        return ops.broadcast_to(value, (batch,) + self.value_shape[1:])

    def compute_output_spec(self, inputs):
        shape = self.value_shape
        if self.batched:
            shape = (keras.tree.flatten(inputs)[0].shape[0],) + shape[1:]
        return keras.KerasTensor(shape, dtype=self.value_dtype)

    def get_config(self):
        return {**super().get_config(),
                "value_shape": list(self.value_shape),
                "value_dtype": self.value_dtype, "batched": self.batched}


def _is_value(value):
    if isinstance(value, keras.KerasTensor):
        return False
    return isinstance(value, keras.Variable) or ops.is_tensor(value)


def attributes(layer):
    """`{name: value}` of the variables `layer` owns and the tensors it
    holds as attributes, or a string naming an owned variable that no
    attribute holds (read from a list, say: it cannot be stood in for)."""
    own = _keras_internals.own_variables(layer)
    owned = {id(v) for v in own}
    # A variable held by a sublayer as well is that sublayer's to hold.
    found = {name: value for name, value in vars(layer).items()
             if not name.startswith("_") and _is_value(value) and (
                 id(value) in owned or not isinstance(value, keras.Variable))}
    reached = {id(value) for value in found.values()}
    unreached = [v for v in own if id(v) not in reached]
    if unreached:
        return ", ".join(v.path for v in unreached[:3])
    return found


def _stand_in(value, reference, batched, name):
    batched = batched and len(value.shape) > 0 and value.shape[0] == 1
    trainable = isinstance(value, keras.Variable) and value.trainable
    holder = OwnedWeight(tuple(value.shape),
                         keras.backend.standardize_dtype(value.dtype),
                         batched=batched, trainable=trainable, name=name)
    holder.value.assign(value)
    return holder(reference)


@contextlib.contextmanager
def standing_in(layers, reference, batched, used):
    """Runs with each attribute of `attributes(layer)`, for each layer of
    `layers`, replaced by the output of an `OwnedWeight` called on
    `reference`; `used` collects the names taken. The attributes are
    restored on exit."""
    saved = []
    try:
        for layer in layers:
            for name, value in attributes(layer).items():
                holder = _model_utils.unique_name(f"{layer.name}_{name}",
                                                  used)
                tensor = _stand_in(value, reference, batched, holder)
                saved.append((layer, name, value))
                # Past Keras's attribute tracking: restored below.
                object.__setattr__(layer, name, tensor)
        yield
    finally:
        for layer, name, value in reversed(saved):
            object.__setattr__(layer, name, value)
