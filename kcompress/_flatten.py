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

A variable the composite owns itself (a class token, a layer scale) is
held in the flat graph by an `OwnedWeight` layer (`_owned_weights`): while
the call is traced, the attribute stands for that layer's output, so the
flat model trains and saves it. A value whose first axis has size 1 is
first stood in for broadcast to the batch: the `ops.tile(token, (batch,
1, 1))` that follows, traced with the batch unknown (None), then keeps the
batch, as a reshape to `(None, ...)` becomes a `Reshape` layer. Each
traced graph is run against the layer itself before it is used.

A composite whose `call` does not trace on symbolic tensors, or that owns
a variable no attribute holds, stays one node; the reason is returned so
that each technique can name the layer it left out.
"""

import contextlib
import inspect

import keras
import numpy as np

from kcompress import _keras_internals
from kcompress import _model_utils
from kcompress import _owned_weights

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
    unreached = _owned_weights.attributes(layer)
    if isinstance(unreached, str):
        return (f"it owns variables of its own ({unreached}) that no "
                "attribute holds, which only the layer can read")
    return None


def _all_layers(model):
    """Every layer reachable from `model`, inside composites too."""
    return _keras_internals.descendants(model)


def _needs_flattening(model, refused, models=False):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            if _model_utils.is_graph_model(layer) and (
                    models or _needs_flattening(layer, refused)):
                return True
        elif is_composite(layer) and id(layer) not in refused:
            return True
    return False


class _Flattening:
    """One flattening: what was refused, and the names given and taken."""

    def __init__(self, model, models):
        self.models = models
        self.refused = {}  # id -> (name in the flat graph, reason)
        self.used = {layer.name for layer in _model_utils.iter_layers(model)}
        self.renamed = {}  # id -> (layer, its own name)

    def needed(self, model):
        return _needs_flattening(model, self.refused, self.models)

    def unique_names(self, composite):
        """Gives each sublayer of `composite` whose name the graph already
        has the composite's name in front (a functional model needs unique
        names; KerasHub names the dropout of every block "dropout")."""
        for inner in _keras_internals.sublayers(composite):
            if inner.name in self.used:
                self.renamed.setdefault(id(inner), (inner, inner.name))
                inner.name = _model_utils.unique_name(
                    f"{composite.name}_{inner.name}", self.used)
            else:
                self.used.add(inner.name)

    def restore_names(self):
        for layer, name in self.renamed.values():
            layer.name = name

    def traced(self, layer, args, kwargs, whole):
        """`(outputs, None)` of `layer.call` on the symbolic `args`, or
        `(None, reason)`. With `whole`, the composites inside it are
        inlined in the same trace."""
        inner = [layer] + ([c for c in _keras_internals.descendants(layer)
                            if is_composite(c) and _refusal(c) is None]
                           if whole else [])
        for composite in inner:
            self.unique_names(composite)
        inputs = _symbolic((args, kwargs))
        # Values stood in for broadcast to the batch first, then as they
        # are; plain tensors (no variables) last as constants, as before.
        ways = [(False, False)]
        if inputs and any(_owned_weights.attributes(c) for c in inner):
            ways = [(True, True), (True, False)] + (
                [] if any(_keras_internals.own_variables(c) for c in inner)
                else ways)
        for held, batched in ways:
            used = set(self.used)
            try:
                with _inlined(inner[1:]), _owned_weights.standing_in(
                        inner if held else [], inputs[0] if held else None,
                        batched, used):
                    outputs = layer.call(*args, **kwargs)
                reason = _unfaithful(layer, args, kwargs, outputs)
            except Exception as error:  # noqa: BLE001 - any user code
                outputs, reason = None, (
                    "its call does not run on symbolic tensors "
                    f"({type(error).__name__}: {error})")
            if reason is None:
                self.used = used
                break
        return outputs, reason

    def graph(self, model):
        current = _model_utils.sequential_as_functional(model)
        while self.needed(current):
            current = self.level(current)
        return current

    def level(self, model):
        """`model` with each composite node replaced by its call's graph
        (and, with `models`, each nested model by its graph)."""
        inline = set()

        def clone_function(layer):
            if isinstance(layer, keras.Model):
                if not _model_utils.is_graph_model(layer):
                    return layer
                if self.models:
                    inline.add(id(layer))
                    return layer
                return self.graph(layer) if self.needed(layer) else layer
            if is_composite(layer) and id(layer) not in self.refused:
                reason = _refusal(layer)
                if reason:
                    self.refused[id(layer)] = (layer.name, reason)
                else:
                    inline.add(id(layer))
            return layer

        def call_function(layer, *args, **kwargs):
            if id(layer) in inline and isinstance(layer, keras.Model):
                return _model_graph(layer, args)
            if id(layer) in inline:
                # First its sublayers as nodes (each flattened or kept on
                # its own later); if they cannot be nodes (a block that
                # returns None among its outputs), inlined as well.
                for whole in (False, True):
                    outputs, reason = self.traced(layer, args, kwargs, whole)
                    if reason is None:
                        return outputs
                self.refused[id(layer)] = (layer.name, reason)
            return layer(*args, **kwargs)

        return _model_utils.clone(model, clone_function, call_function)


_INLINING = {}  # class -> its subclass whose __call__ runs call


def _inlining(cls):
    """`cls` with a `__call__` that runs `call` directly, so a composite
    called inside another's traced call adds its sublayers' nodes instead
    of one node of its own."""
    if cls not in _INLINING:
        parameters = inspect.signature(cls.call).parameters
        open_ended = any(p.kind is p.VAR_KEYWORD
                         for p in parameters.values())

        def __call__(self, *args, **kwargs):
            if not open_ended:
                kwargs = {k: v for k, v in kwargs.items()
                          if k in parameters}
            return cls.call(self, *args, **kwargs)

        _INLINING[cls] = type(cls.__name__, (cls,), {
            "__call__": __call__, "__module__": cls.__module__})
    return _INLINING[cls]


@contextlib.contextmanager
def _inlined(composites):
    """Runs with each of `composites` inlined when called (see
    `_inlining`); their classes are restored on exit."""
    classes = [(layer, type(layer)) for layer in composites]
    try:
        for layer, cls in classes:
            layer.__class__ = _inlining(cls)
        yield
    finally:
        for layer, cls in classes:
            layer.__class__ = cls


def _model_graph(model, args):
    """The outputs of a nested graph model's layers called on `args`."""
    model = _model_utils.sequential_as_functional(model)
    inputs = args[0] if len(args) == 1 else list(args)
    return keras.models.clone_model(model, input_tensors=inputs,
                                    clone_function=lambda layer: layer).output


def _symbolic(structure):
    return [t for t in keras.tree.flatten(structure)
            if isinstance(t, keras.KerasTensor)]


def _keeps_batch(operation):
    """Whether `operation` is a reshape, tile or broadcast whose target's
    first axis is None: a batch size read with `ops.shape(x)[0]` while
    tracing, where it is None (the graph would fail at run time)."""
    shape = {"Reshape": "newshape", "Tile": "repeats",
             "BroadcastTo": "shape"}.get(type(operation).__name__)
    shape = getattr(operation, shape or "", None)
    return (isinstance(shape, (list, tuple)) and len(shape) > 1
            and shape[0] is None and None not in tuple(shape)[1:])


def _batch_reshape(operation, *args, **kwargs):
    """A `call_function` for cloning: each `ops.reshape(x, (B, ...))`
    whose `B` was the batch size while tracing (None, which fails at run
    time) becomes a `keras.layers.Reshape` of the other dimensions, which
    keeps the batch; an `ops.tile(x, (B, ...))` or `ops.broadcast_to(x,
    (B, ...))` of an `x` that already has the batch (a value stood in for
    broadcast, see `_owned_weights`) keeps it, tiling the other axes. The
    check on two batch sizes proves the result."""
    if not _keeps_batch(operation):
        return operation(*args, **kwargs)
    x, kind = args[0], type(operation).__name__
    if kind == "Reshape":
        return keras.layers.Reshape(tuple(operation.newshape)[1:])(x)
    if x.shape[0] is not None or len(x.shape) != len(
            getattr(operation, "repeats", getattr(operation, "shape", ()))):
        return operation(*args, **kwargs)
    if kind == "Tile":
        rest = tuple(operation.repeats)[1:]
        return x if set(rest) <= {1} else keras.ops.tile(x, (1,) + rest)
    if tuple(x.shape[1:]) == tuple(operation.shape)[1:]:
        return x
    return operation(*args, **kwargs)


def _final_copy(model):
    """`model` of fresh copies of its layers, batch reshapes fixed."""
    def copy(layer):
        if isinstance(layer, keras.Model):
            return _final_copy(layer)
        return _model_utils.clone_layer(layer)

    if isinstance(model, keras.Sequential):
        return _model_utils.clone(model, copy)
    return _model_utils.clone(model, copy, _batch_reshape)


def _sample(tensor, batch, rng):
    shape = [batch if d is None else d for d in tensor.shape]
    if "int" in str(tensor.dtype) or "bool" in str(tensor.dtype):
        return np.zeros(shape, tensor.dtype)
    return rng.normal(size=shape).astype(tensor.dtype)


def _unfaithful(layer, args, kwargs, outputs):
    """Why the graph traced from `layer.call` does not compute what the
    layer computes, or None.

    A trace can succeed and still be wrong: a `Reshape` that baked in the
    batch size seen while tracing fails on another batch, and a tensor the
    call made from a Python value is a constant in the graph. Both graphs
    run on random inputs of two batch sizes, and must agree.
    """
    inputs = _symbolic((args, kwargs))
    outs = keras.tree.flatten(outputs)
    # An input returned as it is (a list of every stage's input) is
    # computed faithfully, and so is a value the call made without its
    # inputs (None for no attention scores, an empty constant); the
    # symbolic others are checked.
    passed = {id(t) for t in inputs}
    checked = [i for i, t in enumerate(outs)
               if isinstance(t, keras.KerasTensor) and id(t) not in passed]
    if not checked:
        return None
    graph = keras.Model(inputs, [outs[i] for i in checked])
    if any(_keeps_batch(op) for op in graph.operations):
        graph = keras.models.clone_model(graph, clone_function=lambda op: op,
                                         call_function=_batch_reshape)
    rng = np.random.default_rng(0)
    for batch in (2, 3):
        values = {id(t): _sample(t, batch, rng) for t in inputs}

        def fill(x, values=values):
            return values.get(id(x), x) if isinstance(
                x, keras.KerasTensor) else x

        expected = keras.tree.flatten(layer(
            *keras.tree.map_structure(fill, args),
            **keras.tree.map_structure(fill, kwargs)))
        expected = [expected[i] for i in checked]
        try:
            got = keras.tree.flatten(graph([values[id(t)] for t in inputs]))
        except Exception as error:  # noqa: BLE001 - any user code
            return ("the graph traced from its call fails on a batch of "
                    f"{batch} ({type(error).__name__})")
        for a, b in zip(expected, got):
            a = keras.ops.convert_to_numpy(a)
            b = keras.ops.convert_to_numpy(b)
            if a.shape != b.shape or not np.allclose(a, b, rtol=1e-4,
                                                     atol=1e-4):
                return ("the graph traced from its call does not compute "
                        "what the layer computes (it depends on the batch "
                        "size or on values fixed while tracing)")
    return None


def flatten_composites(model, models=False):
    """`model` with its composite layers' sublayers in the graph.

    Args:
        model: a Sequential or functional model (nested models included).
            It is not modified: its layers' graph nodes are restored.
        models: also put the layers of nested Sequential and functional
            models into the outer graph (a backbone nested in a classifier,
            as KerasHub's tasks build them), for the analyses that follow
            channels across the whole graph.

    Returns:
        `(flat, left)`: `flat` is `model` itself when there is nothing to
        flatten, else a new functional model (a Sequential becomes
        functional) of copies of the layers, with the trained weights.
        `left` maps the name of each composite that stays one node to the
        reason.
    """
    flattening = _Flattening(model, models)
    if not flattening.needed(model):
        return model, {}
    with _keras_internals.nodes_kept(_all_layers(model)):
        try:
            flat = _final_copy(flattening.graph(model))
        finally:
            flattening.restore_names()
    # A composite refused inside another that was then kept whole is not
    # in the graph; only the layers that are count.
    present = {layer.name for layer in _model_utils.iter_layers(flat)}
    return flat, {name: reason
                  for name, reason in flattening.refused.values()
                  if name in present}
