"""The one place where kcompress reads Keras internals.

Keras 3 has no public API for a few things a model rewriter needs: the
Functional class, a layer's direct sublayers and directly owned variables,
the graph nodes a layer was called at, and the active stateless scope.
Every such access goes through this module, and
`tests/test_keras_internals.py` pins what it relies on, so that a Keras
release that moves one of them breaks this file and its test, not the
techniques.
"""

import contextlib

import keras
from keras.src.backend import compute_output_spec
from keras.src.backend.common.stateless_scope import get_stateless_scope
from keras.src.models.functional import Functional

__all__ = ["Functional", "get_stateless_scope", "sublayers",
           "descendants", "own_variables", "inbound_nodes",
           "outbound_nodes", "nodes_kept", "build_by_tracing"]


def sublayers(layer):
    """The layers `layer` holds as attributes (one level down), in the
    order it created them."""
    return list(layer._flatten_layers(include_self=False, recursive=False))


def descendants(layer):
    """Every layer `layer` holds, at any depth (not `layer` itself)."""
    return list(layer._flatten_layers(include_self=False, recursive=True))


def own_variables(layer):
    """The variables `layer` created itself (`add_weight` in its `build`),
    not those of its sublayers."""
    return (list(layer._trainable_variables)
            + list(layer._non_trainable_variables))


def inbound_nodes(operation):
    """The graph nodes at which `operation` (a layer or a `keras.ops`
    operation) was called on symbolic tensors."""
    return operation._inbound_nodes


def outbound_nodes(operation):
    """The graph nodes that consume `operation`'s outputs."""
    return operation._outbound_nodes


@contextlib.contextmanager
def nodes_kept(layers):
    """Restores each layer's graph nodes on exit.

    Calling a layer on symbolic tensors records a node on it. A rewrite
    that calls the user's own layers while building an intermediate graph
    (flattening a composite layer) leaves their node lists as it found
    them, so the user's model is not changed.
    """
    layers = list({id(layer): layer for layer in layers}.values())
    saved = [(layer, list(layer._inbound_nodes), list(layer._outbound_nodes))
             for layer in layers]
    try:
        yield
    finally:
        for layer, inbound, outbound in saved:
            layer._inbound_nodes[:] = inbound
            layer._outbound_nodes[:] = outbound


def build_by_tracing(layer, build_config):
    """Builds `layer` by running its `call` on symbolic inputs of the
    shapes in `build_config` (what `get_build_config()` returned).

    A layer without a `build()` of its own creates its sublayers' weights
    only when it is first called; `build_from_config` alone leaves it with
    none. No graph node is recorded.
    """
    config = build_config or {}
    if "input_shape" in config:
        args = [keras.tree.map_shape_structure(keras.KerasTensor,
                                               config["input_shape"])]
        kwargs = {}
    else:
        args = []
        kwargs = {key[:-len("_shape")]: keras.tree.map_shape_structure(
            keras.KerasTensor, shape)
            for key, shape in config.get("shapes_dict", {}).items()}
    compute_output_spec(layer.call, *args, **kwargs)
    layer.built = True
