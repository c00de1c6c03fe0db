"""The one place where kcompress reads Keras internals.

Keras 3 has no public API for a few things a model rewriter needs: the
Functional class, a layer's direct sublayers and directly owned variables,
the graph nodes a layer was called at (and a tensor's producing call,
a functional model's nodes by depth), the active stateless scope, and the
steps of `MultiHeadAttention`'s call that the QAT composite repeats.
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
           "outbound_nodes", "nodes_kept", "build_by_tracing",
           "copy_input_shape_argument",
           "inbound_nodes_if_any", "outbound_nodes_if_any",
           "keras_history", "call_args", "call_kwargs", "sequential_functional",
           "nodes_by_depth", "attention_uses_gate", "attention_mask",
           "attention_scale", "attention_equations", "masked_softmax",
           "attention_softmax_mask", "attention_dropout",
           "explicit_attention"]


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


# -- the functional graph ---------------------------------------------------
#
# A `Node` (what `inbound_nodes` lists) is itself Keras's: its `operation`,
# `input_tensors` and `output_tensors` are plain attributes Keras's own
# Functional reads; the call's positional arguments are not, and go
# through `call_args`.


def inbound_nodes_if_any(obj):
    """`inbound_nodes(obj)`, or `()` for an object that is no graph
    operation."""
    return getattr(obj, "_inbound_nodes", ())


def outbound_nodes_if_any(obj):
    """`outbound_nodes(obj)`, or `()` for an object that is no graph
    operation."""
    return getattr(obj, "_outbound_nodes", ())


def keras_history(tensor):
    """The `(operation, node_index, tensor_index)` named tuple recording
    the call that produced the symbolic `tensor` (`operation` is the
    `InputLayer` for a `keras.Input`), or None for a value no call
    produced (a constant, an eager tensor, a KerasTensor outside a graph).
    """
    return getattr(tensor, "_keras_history", None)


def call_args(node):
    """The positional arguments of the call `node` records, as passed:
    symbolic tensors, nested lists of them and constants."""
    return node.arguments.args


def call_kwargs(node):
    """The keyword arguments of the call `node` records."""
    return node.arguments.kwargs


def sequential_functional(model):
    """The functional model a built `keras.Sequential` runs (its graph), or
    None while it is unbuilt."""
    return model._functional


def nodes_by_depth(model):
    """`{depth: [node, ...]}` of a functional model's graph (depth 0 at its
    outputs), or None for a model without a graph (a subclassed one)."""
    return getattr(model, "_nodes_by_depth", None)


# -- MultiHeadAttention's call, step by step ----------------------------------
#
# Its projections (`query_dense`, ...) and `attention_axes` are public
# properties; the steps between them are not.


def attention_uses_gate(mha):
    """Whether `mha` gates its output (`use_gate=True`; False on Keras
    releases without the option)."""
    return getattr(mha, "_use_gate", False)


def attention_mask(mha, query, value, attention_mask=None,
                   use_causal_mask=False):
    """The mask `mha` applies to its scores for these call arguments."""
    return mha._compute_attention_mask(
        query, value, attention_mask=attention_mask,
        use_causal_mask=use_causal_mask)


def attention_scale(mha):
    """The factor `mha` scales its queries by (1/sqrt(key_dim))."""
    return mha._inverse_sqrt_key_dim


def attention_equations(mha):
    """`mha`'s einsum equations `(scores, context)`: keys with queries to
    scores, probabilities with values to the context. Set by `build`."""
    return mha._dot_product_equation, mha._combine_equation


def masked_softmax(mha, scores, mask=None):
    """`mha`'s softmax of `scores` over the attention axes, under `mask`."""
    return mha._masked_softmax(scores, mask)


def attention_softmax_mask(mha, scores, mask):
    """`(mask, axis)`: `mask` expanded as `mha`'s masked softmax expands it
    to broadcast against `scores` (at the heads axis), and the axes its
    softmax normalizes over."""
    expansion_axis = -len(mha._attention_axes) * 2 - 1
    for _ in range(len(scores.shape) - len(mask.shape)):
        mask = keras.ops.expand_dims(mask, axis=expansion_axis)
    return mask, mha._softmax.axis


@contextlib.contextmanager
def explicit_attention(mha):
    """While active, `mha` computes its attention step by step (scores,
    its masked softmax, context), as it does when asked for its scores,
    never by the fused `ops.dot_product_attention`: its `Softmax` layer is
    then where a mask applies. Unmasked calls are left as they are, and
    so is a layer that overrides that step or uses flash attention (which
    cannot return scores)."""
    base = keras.layers.MultiHeadAttention._compute_attention
    if type(mha)._compute_attention is not base or mha._flash_attention or (
            "_compute_attention" in vars(mha)):
        yield
        return
    original = mha._compute_attention

    def compute(query, key, value, attention_mask=None, training=None,
                return_attention_scores=False, **kwargs):
        if attention_mask is None and not kwargs.get("use_causal_mask"):
            return original(query, key, value, attention_mask, training,
                            return_attention_scores, **kwargs)
        outputs, scores = original(query, key, value, attention_mask,
                                   training, True, **kwargs)
        return outputs, scores if return_attention_scores else None

    object.__setattr__(mha, "_compute_attention", compute)
    try:
        yield
    finally:
        object.__delattr__(mha, "_compute_attention")


def attention_dropout(mha, probabilities, training=None):
    """`mha`'s dropout of the attention probabilities."""
    return mha._dropout_layer(probabilities, training=training)


def copy_input_shape_argument(source, target):
    """Gives `target` the `input_shape=` argument `source` was made with,
    unless it has one: a Sequential builds its first layer from it."""
    if getattr(target, "_input_shape_arg", None) is None:
        target._input_shape_arg = getattr(source, "_input_shape_arg", None)
