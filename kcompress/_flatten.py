"""Composite layers flattened into the functional graph.

A composite layer is a subclassed `keras.layers.Layer` that owns built-in
layers and calls them (a conv block of Conv2D, BatchNormalization and
ReLU6; a squeeze-and-excite block; every KerasHub backbone's blocks).
Called in a functional model it is one node: the techniques, which wrap the
graph's layers, would never see the convolutions inside.

`flatten_composites` replaces each composite node by the graph its `call`
builds when run on symbolic tensors: its sublayers become nodes of their
own, its `keras.ops` become operation nodes, and every technique then
treats them as it treats a flat graph (QAT folds a conv, BatchNorm and
activation inside a block as it folds them at the top level, so the file
equals Keras there too). This route was chosen over wrapping sublayers
inside a copy of the composite because it needs no copy of the composite
(KerasHub layers with object arguments do not round-trip `get_config`, and
layers without `build()` rebuild without their weights) and because the
QAT placement depends on the graph around each sublayer, which only a
graph shows.

A composite whose `call` does not trace on symbolic tensors, or that owns
variables of its own (a class token, a layer scale), stays one node; the
reason is returned so that each technique can name the layer it left out.
"""

import keras

from kcompress import _keras_internals
from kcompress import _model_utils

__all__ = ["is_composite", "flatten_composites"]

# Layers of these packages are handled by the techniques as they are
# (Keras's own composites such as MultiHeadAttention, and kcompress's
# wrappers).
_KNOWN_PACKAGES = ("keras.", "kcompress.")


def is_composite(layer):
    """Whether `layer` is a user-defined layer that owns other layers."""
    if isinstance(layer, keras.Model):
        return False
    if type(layer).__module__.startswith(_KNOWN_PACKAGES):
        return False
    return bool(_keras_internals.sublayers(layer))


def _refusal(layer):
    """Why `layer` cannot be flattened before tracing it, or None."""
    own = _keras_internals.own_variables(layer)
    if own:
        names = ", ".join(v.path if hasattr(v, "path") else v.name
                          for v in own[:3])
        return (f"it owns variables of its own ({names}), which only a "
                "layer can hold")
    return None


def _all_layers(model):
    """Every layer reachable from `model`, inside composites too."""
    return _keras_internals.descendants(model)


def _needs_flattening(model, refused):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            if _model_utils.is_graph_model(layer) and _needs_flattening(
                    layer, refused):
                return True
        elif is_composite(layer) and id(layer) not in refused:
            return True
    return False


def _as_functional(model):
    """A Sequential as a functional model of the same layer objects."""
    if not isinstance(model, keras.Sequential):
        return model
    spec = model.inputs[0]
    inputs = keras.Input(batch_shape=spec.shape, dtype=spec.dtype,
                         name=f"{model.name}_input")
    x = inputs
    for layer in model.layers:
        x = layer(x)
    return keras.Model(inputs, x, name=model.name)


def _one_level(model, refused, owners):
    """`model` with each composite node replaced by its call's graph."""
    inline = set()

    def clone_function(layer):
        if isinstance(layer, keras.Model):
            if _model_utils.is_graph_model(layer) and _needs_flattening(
                    layer, refused):
                return _flattened(layer, refused, owners)
            return layer
        if is_composite(layer) and id(layer) not in refused:
            reason = _refusal(layer)
            if reason:
                refused[id(layer)] = (layer, reason)
            else:
                inline.add(id(layer))
                for inner in _keras_internals.sublayers(layer):
                    owners.setdefault(id(inner), layer.name)
        return layer

    def call_function(layer, *args, **kwargs):
        if id(layer) in inline:
            try:
                return layer.call(*args, **kwargs)
            except Exception as error:  # noqa: BLE001 - any user code
                refused[id(layer)] = (layer, (
                    "its call does not run on symbolic tensors "
                    f"({type(error).__name__}: {error})"))
        return layer(*args, **kwargs)

    return _model_utils.clone(model, clone_function, call_function)


def _flattened(model, refused, owners):
    current = _as_functional(model)
    while _needs_flattening(current, refused):
        current = _one_level(current, refused, owners)
    return current


def _fresh_copies(model, owners):
    """`model` rebuilt from copies of its layers, names made unique (the
    same sublayer name in two blocks gets the block's name in front)."""
    used = set()

    def copy(layer):
        if isinstance(layer, keras.Model):
            return _model_utils.transform_model(layer, copy)
        new = _model_utils.clone_layer(layer)
        if new.name in used and id(layer) in owners:
            new.name = f"{owners[id(layer)]}_{new.name}"
        used.add(new.name)
        return new

    return _model_utils.clone(model, copy)


def flatten_composites(model):
    """`model` with its composite layers' sublayers in the graph.

    Args:
        model: a Sequential or functional model (nested models included).
            It is not modified: its layers' graph nodes are restored.

    Returns:
        `(flat, left)`: `flat` is `model` itself when it holds no composite
        layer, else a new functional model (a Sequential becomes
        functional) of copies of the layers, with the trained weights.
        `left` maps the name of each composite that stays one node to the
        reason.
    """
    refused = {}
    if not _needs_flattening(model, refused):
        return model, {}
    owners = {}
    with _keras_internals.nodes_kept(_all_layers(model)):
        flat = _fresh_copies(_flattened(model, refused, owners), owners)
    return flat, {layer.name: reason for layer, reason in refused.values()}
