"""Pins what `kcompress._keras_internals` relies on in Keras.

Each function of the adapter gets a small check on a tiny model, so a Keras
release that moves one of the internals it reads fails here, by name. Runs
on every backend (no TensorFlow import).
"""

import math
import warnings

import keras
import numpy as np
import pytest
from keras import ops

from kcompress import _keras_internals as ki


class _Block(keras.layers.Layer):
    """A composite layer without build(): a Conv2D, then a Dense."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv = keras.layers.Conv2D(4, 3, name="conv")
        self.dense = keras.layers.Dense(2, name="dense")

    def call(self, x):
        return self.dense(self.conv(x))


class _Outer(keras.layers.Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.block = _Block(name="block")

    def call(self, x):
        return self.block(x)


class _Scaled(keras.layers.Layer):
    """A layer with a variable of its own and a sublayer."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.inner = keras.layers.Dense(3, name="inner")

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(3,), name="scale")
        self.count = self.add_weight(shape=(), name="count", trainable=False)
        self.inner.build(input_shape)

    def call(self, x):
        return self.inner(x) * self.scale


class _Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(2)

    def call(self, x):
        return self.dense(x)


def _shared_model():
    """x -> d1 -> shared -> shared -> out: `shared` called twice."""
    x = keras.Input((4,), name="x")
    d1 = keras.layers.Dense(4, name="d1")
    shared = keras.layers.Dense(4, name="shared")
    out = keras.layers.Dense(2, name="out")
    y = out(shared(shared(d1(x))))
    return keras.Model(x, y), d1, shared, out


def test_functional_class():
    model, *_ = _shared_model()
    assert isinstance(model, ki.Functional)
    subclassed = _Subclassed()
    subclassed(np.zeros((1, 4), "float32"))
    assert not isinstance(subclassed, ki.Functional)


def test_stateless_scope():
    assert ki.get_stateless_scope() is None
    with keras.StatelessScope() as scope:
        assert ki.get_stateless_scope() is scope
    assert ki.get_stateless_scope() is None


def test_sublayers_and_descendants():
    block = _Block()
    assert ki.sublayers(block) == [block.conv, block.dense]
    outer = _Outer()
    assert ki.sublayers(outer) == [outer.block]
    # Every depth (in an order the adapter does not promise).
    found = ki.descendants(outer)
    assert len(found) == 3 and {id(layer) for layer in found} == {
        id(outer.block), id(outer.block.conv), id(outer.block.dense)}
    assert ki.sublayers(keras.layers.Dense(2)) == []


def test_own_variables():
    layer = _Scaled()
    layer.build((None, 5))
    own = ki.own_variables(layer)
    assert [v.path for v in own] == [layer.scale.path, layer.count.path]
    assert len(layer.weights) == 4  # and the sublayer's kernel and bias


def test_inbound_and_outbound_nodes():
    _, d1, shared, out = _shared_model()
    assert len(ki.inbound_nodes(shared)) == 2
    # shared feeds itself once and `out` once.
    assert [n.operation for n in ki.outbound_nodes(shared)] == [shared, out]
    assert [n.operation for n in ki.outbound_nodes(d1)] == [shared]
    assert ki.outbound_nodes(out) == []
    node = ki.inbound_nodes(out)[0]
    assert node.operation is out
    assert list(node.input_tensors) == list(
        ki.inbound_nodes(shared)[1].output_tensors)


def test_nodes_if_any():
    assert ki.inbound_nodes_if_any(object()) == ()
    assert ki.outbound_nodes_if_any(object()) == ()
    _, _, shared, _ = _shared_model()
    assert ki.inbound_nodes_if_any(shared) is ki.inbound_nodes(shared)
    assert ki.outbound_nodes_if_any(shared) is ki.outbound_nodes(shared)


def test_keras_history():
    x = keras.Input((4,))
    dense = keras.layers.Dense(2)
    y = dense(x)
    history = ki.keras_history(y)
    assert history.operation is dense
    assert (history.node_index, history.tensor_index) == (0, 0)
    assert history[0] is dense
    assert isinstance(ki.keras_history(x).operation, keras.layers.InputLayer)
    assert ki.keras_history(np.zeros(2, "float32")) is None
    assert ki.keras_history(1.0) is None
    # A KerasTensor no call produced.
    assert ki.keras_history(keras.KerasTensor((None, 2))) is None


def test_call_args():
    a, b = keras.Input((3,)), keras.Input((3,))
    add = keras.layers.Add()
    add([a, b])
    args = ki.call_args(ki.inbound_nodes(add)[0])
    assert len(args) == 1 and isinstance(args[0], (list, tuple))
    assert args[0][0] is a and args[0][1] is b
    dense = keras.layers.Dense(2)
    dense(a)
    args = ki.call_args(ki.inbound_nodes(dense)[0])
    assert len(args) == 1 and args[0] is a


def test_sequential_functional_and_nodes_by_depth():
    unbuilt = keras.Sequential([keras.layers.Dense(2)])
    assert ki.sequential_functional(unbuilt) is None
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3),
                              keras.layers.Dense(2)])
    graph = ki.sequential_functional(model)
    assert isinstance(graph, ki.Functional)
    by_depth = ki.nodes_by_depth(graph)
    depths = sorted(by_depth, reverse=True)
    ops_in_order = [n.operation for d in depths for n in by_depth[d]]
    assert ops_in_order[1:] == model.layers  # after the InputLayer
    assert isinstance(ops_in_order[0], keras.layers.InputLayer)
    assert [n.operation for n in by_depth[0]] == [model.layers[-1]]

    functional, _, shared, out = _shared_model()
    by_depth = ki.nodes_by_depth(functional)
    assert [n.operation for n in by_depth[0]] == [out]
    assert [n.operation for n in by_depth[1]] == [shared]
    assert ki.nodes_by_depth(_Subclassed()) is None


def test_nodes_kept():
    _, d1, shared, out = _shared_model()
    before = {id(layer): (len(ki.inbound_nodes(layer)),
                          len(ki.outbound_nodes(layer)))
              for layer in (d1, shared, out)}
    with ki.nodes_kept([d1, shared, out, shared]):
        out(shared(d1(keras.Input((4,)))))
        assert len(ki.inbound_nodes(shared)) == 3
    after = {id(layer): (len(ki.inbound_nodes(layer)),
                         len(ki.outbound_nodes(layer)))
             for layer in (d1, shared, out)}
    assert after == before


def test_build_by_tracing():
    block = _Block()
    with warnings.catch_warnings():  # Keras warns of the unbuilt state.
        warnings.simplefilter("ignore")
        block.build_from_config({"input_shape": (None, 6, 6, 3)})
    assert not block.conv.weights  # build_from_config alone: none
    block = _Block()
    ki.build_by_tracing(block, {"input_shape": (None, 6, 6, 3)})
    assert block.built
    assert block.conv.kernel.shape == (3, 3, 3, 4)
    assert block.dense.kernel.shape == (4, 2)
    assert ki.inbound_nodes(block) == []  # no graph node recorded


def test_attention_uses_gate():
    assert ki.attention_uses_gate(
        keras.layers.MultiHeadAttention(num_heads=2, key_dim=4)) is False
    gated = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4,
                                            use_gate=True)
    assert ki.attention_uses_gate(gated) is True


@pytest.mark.parametrize("causal", [False, True])
def test_attention_steps_reproduce_the_call(causal):
    """The composite QAT layer's steps, on the public projections, give
    MultiHeadAttention's own output."""
    mha = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4)
    rng = np.random.default_rng(0)
    query = rng.normal(size=(2, 3, 6)).astype("float32")
    value = rng.normal(size=(2, 5, 6)).astype("float32")
    expected = mha(query, value, use_causal_mask=causal)

    assert mha.attention_axes == (1,)
    assert ki.attention_scale(mha) == 1.0 / math.sqrt(float(mha.key_dim))
    mask = ki.attention_mask(mha, query, value, use_causal_mask=causal)
    if causal:
        assert tuple(mask.shape[-2:]) == (3, 5)
        np.testing.assert_array_equal(
            ops.convert_to_numpy(mask)[0], np.tri(3, 5, dtype=bool))
    else:
        assert mask is None
    queries = mha.query_dense(query) * ki.attention_scale(mha)
    keys = mha.key_dense(value)
    values = mha.value_dense(value)
    scores_equation, context_equation = ki.attention_equations(mha)
    scores = ops.einsum(scores_equation, keys, queries)
    probabilities = ki.masked_softmax(mha, scores, mask)
    assert tuple(probabilities.shape) == (2, 2, 3, 5)
    np.testing.assert_allclose(
        ops.convert_to_numpy(ops.sum(probabilities, axis=-1)), 1.0,
        rtol=1e-5)
    dropped = ki.attention_dropout(mha, probabilities, training=False)
    context = ops.einsum(context_equation, dropped, values)
    outputs = mha.output_dense(context)
    np.testing.assert_allclose(ops.convert_to_numpy(outputs),
                               ops.convert_to_numpy(expected),
                               rtol=1e-5, atol=1e-5)


def test_no_module_outside_the_adapter_reads_keras_internals():
    """Keras's private attributes and `keras.src` are read in
    `kcompress/_keras_internals.py` only, so the next Keras release breaks
    one file."""
    import pathlib
    import re

    root = pathlib.Path(__file__).resolve().parents[1]
    private = re.compile(
        r"keras\.src|[._\"'](_inbound_nodes|_outbound_nodes|_keras_history|"
        r"_nodes_by_depth|_flatten_layers|_trainable_variables|"
        r"_non_trainable_variables|_input_shape_arg|_call_has_training_arg|"
        r"_build_shapes_dict|_query_dense|_key_dense|_value_dense|"
        r"_output_dense|_functional)\b")
    found = [f"{path.relative_to(root)}:{number}"
             for package in ("kcompress", "tflite_export")
             for path in sorted((root / package).rglob("*.py"))
             if path.name != "_keras_internals.py"
             for number, line in enumerate(path.read_text().splitlines(), 1)
             if private.search(line)]
    assert not found, found


def test_call_kwargs_are_the_keywords_of_the_call():
    inputs = keras.Input((4, 4, 1))
    padded = keras.ops.pad(inputs, [[0, 0], [1, 1], [1, 1], [0, 0]],
                           constant_values=-1.0)
    operation = ki.keras_history(padded).operation
    (node,) = ki.inbound_nodes(operation)
    assert ki.call_kwargs(node) == {"constant_values": -1.0}


def test_attention_softmax_mask_expands_at_the_heads_axis():
    mha = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4)
    query = np.zeros((2, 3, 6), "float32")
    mha(query, query)
    scores = ops.zeros((2, 2, 3, 3))
    mask = np.array([[[True, False, True]] * 3, [[True] * 3] * 3])
    expanded, axis = ki.attention_softmax_mask(mha, scores, mask)
    assert tuple(expanded.shape) == (2, 1, 3, 3)
    assert axis == (3,)
    np.testing.assert_array_equal(ops.convert_to_numpy(expanded)[:, 0], mask)


def test_explicit_attention_gives_the_fused_paths_values():
    """Without dropout, MultiHeadAttention masks inside the fused
    dot_product_attention; the explicit path masks with its Softmax layer
    and gives the same values."""
    mha = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4)
    rng = np.random.default_rng(0)
    query = rng.normal(size=(2, 5, 6)).astype("float32")
    mask = rng.random((2, 5, 5)) > 0.3
    fused = ops.convert_to_numpy(mha(query, query, attention_mask=mask))
    calls = []
    original = mha._softmax.call

    def counted(*args, **kwargs):
        calls.append(kwargs.get("mask") is not None)
        return original(*args, **kwargs)

    object.__setattr__(mha._softmax, "call", counted)
    try:
        with ki.explicit_attention(mha):
            explicit = ops.convert_to_numpy(
                mha(query, query, attention_mask=mask))
            unmasked = mha(query, query)  # The fused path, as before.
        assert "_compute_attention" not in vars(mha)
        mha(query, query, attention_mask=mask)
    finally:
        object.__delattr__(mha._softmax, "call")
    assert calls == [True]  # Called with the mask inside the context only.
    np.testing.assert_allclose(ops.convert_to_numpy(unmasked),
                               ops.convert_to_numpy(mha(query, query)),
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(explicit, fused, rtol=1e-5, atol=1e-6)
