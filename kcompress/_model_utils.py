"""Model plumbing shared by the compression techniques: cloning and walking.

Every public entry point that rewrites a model (`prune_low_magnitude`,
`strip_pruning`, ...) clones it with `keras.models.clone_model` and a
`clone_function`, so the user's model is never modified. `clone_model` alone
re-initializes weights; `clone_layer` copies them.
"""

import inspect

import keras
import numpy as np

from kcompress import _keras_internals

# Keras does not export the Functional class; it is the only reliable way to
# tell a graph-built model from a subclassed one.
from kcompress._keras_internals import Functional


def unique_name(base, used):
    """`base`, or the first of `base_1`, `base_2`, ... not in `used`; the
    name returned is added to `used`."""
    name, n = base, 1
    while name in used:
        name, n = f"{base}_{n}", n + 1
    used.add(name)
    return name


def keep_input_shape(wrapper, layer):
    """Gives `wrapper` the `input_shape=` its wrapped `layer` was made with,
    so a Sequential whose first layer is wrapped builds as the bare layer's
    would (TFMOT's guides wrap `Dense(..., input_shape=...)` this way)."""
    _keras_internals.copy_input_shape_argument(layer, wrapper)


def inner_output_spec(layer, *args, **kwargs):
    """`layer.compute_output_spec(*args, **kwargs)` for a wrapper's inner
    layer, without the `training` or `mask` argument the wrapper's own call
    took when the inner layer's call does not take it (`Layer.__call__`
    drops those for a call; `compute_output_spec` does not)."""
    parameters = inspect.signature(layer.call).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        kwargs = {k: v for k, v in kwargs.items()
                  if k in parameters or k not in ("training", "mask")}
    return layer.compute_output_spec(*args, **kwargs)


def is_graph_model(model):
    """Whether `model` is a Sequential or functional model (clonable)."""
    return isinstance(model, (keras.Sequential, Functional))


def iter_layers(model):
    """All layers of `model`, nested sub-models flattened, depth first."""
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from iter_layers(layer)


def find_layers(model, kinds):
    """The layers of `model` that are instances of `kinds`, each once.

    Nested models are searched. A layer reached through more than one path
    (a Distiller reaches its student's layers twice) is listed once, in
    first-seen order. `model` may itself be such a layer.
    """
    if isinstance(model, kinds):
        return [model]
    if not isinstance(model, keras.Model):
        return []
    found = {}
    for layer in iter_layers(model):
        if isinstance(layer, kinds):
            found.setdefault(id(layer), layer)
    return list(found.values())


def is_operation_node(operation):
    """Whether a graph node is a `keras.ops` operation rather than a layer.

    Functional models hold such nodes where the user wrote `x + y`,
    `x * gate` or `ops.mean(x, axis=1)` on Keras tensors. They have no
    weights and no build config.
    """
    return not isinstance(operation, keras.layers.Layer)


def copy_operation(operation):
    """A fresh copy of a weightless `keras.ops` operation node."""
    try:
        return operation.__class__.from_config(operation.get_config())
    except (NotImplementedError, TypeError, ValueError):
        return operation  # Stateless: sharing it between graphs is safe.


def clone(model, clone_function, call_function=None):
    """`keras.models.clone_model`, keeping the user's model name.

    `clone_function` sees layers only: `keras.ops` operation nodes of a
    functional graph are copied as they are (every technique carries them
    through unchanged). `call_function`, if given, sees every node.
    """

    def layers_only(layer):
        if is_operation_node(layer):
            return copy_operation(layer)
        return clone_function(layer)

    new = keras.models.clone_model(model, clone_function=layers_only,
                                   call_function=call_function)
    # clone_model builds a new graph; the names stay the user's.
    new.name = model.name
    return new


def _positive_zeros(values):
    """`values` with every -0.0 made +0.0 (a masked negative weight is -0.0:
    its float32 bytes then differ from +0.0's and gzip less well)."""
    values = np.asarray(values)
    if np.issubdtype(values.dtype, np.floating):
        return values + values.dtype.type(0)
    return values


def values_with(variables, substitutes):
    """Numpy values of `variables`, with `[(variable, value)]` pairs (masked
    or fake-quantized weights) in place of those variables' own values;
    their zeros are +0.0."""
    by_id = {id(v): _positive_zeros(keras.ops.convert_to_numpy(x))
             for v, x in substitutes}
    return [by_id.get(id(v), np.asarray(keras.ops.convert_to_numpy(v)))
            for v in variables]


def has_zeros(tensor):
    """Whether `tensor` holds at least one exact zero."""
    return not bool(keras.ops.convert_to_numpy(
        keras.ops.all(keras.ops.not_equal(tensor, 0))))


def deserialized(config, keys, custom_objects=None):
    """A copy of a layer config with the objects under `keys` deserialized
    (what a `from_config` does before calling the constructor)."""
    config = config.copy()
    for key in keys:
        config[key] = keras.saving.deserialize_keras_object(
            config[key], custom_objects=custom_objects)
    return config


def clone_layer(layer, weights=None):
    """A new layer with `layer`'s config, built the same, holding its weights.

    Args:
        layer: a Keras layer.
        weights: optional list of numpy arrays to load instead of the layer's
            own weights (same order as `layer.get_weights()`).
    """
    new = _from_config(layer)
    build_config = layer.get_build_config()
    if layer.built and build_config:
        new.build_from_config(build_config)
    values = layer.get_weights() if weights is None else weights
    if values and len(new.weights) != len(values) and build_config:
        # A layer without a build() of its own: its sublayers' weights
        # appear when it runs.
        _keras_internals.build_by_tracing(new, build_config)
    if values and len(new.weights) != len(values):
        raise ValueError(_copy_error(
            layer, f"a copy made from its config holds {len(new.weights)} "
            f"weights, the layer {len(values)}"))
    if values:
        new.set_weights(values)
    return new


# What `keras.layers.Layer.__init__` accepts from a config.
_BASE_ARGUMENTS = ("name", "trainable", "dtype", "autocast")


def _from_config(layer):
    """A new layer of `layer`'s class and config.

    Some layers do not round-trip: KerasHub's put values their constructor
    derives (`num_patches`) into the config, or a constructor without
    `**kwargs` rejects `trainable`, or `get_config` is not implemented
    (a built-in layer given an object argument). Such a layer is made
    again from the config entries its constructor takes; its weights are
    then checked against the original's, shape by shape.
    """
    cls = type(layer)
    try:
        return cls.from_config(layer.get_config())
    except (TypeError, ValueError, NotImplementedError,
            AttributeError) as error:
        failure = error
    try:
        config = layer.get_config()
    except (NotImplementedError, AttributeError):
        config = {"name": layer.name, "trainable": layer.trainable,
                  "dtype": layer.dtype_policy}
    parameters = inspect.signature(cls.__init__).parameters
    accepted = set(parameters)
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        accepted.update(_BASE_ARGUMENTS)
    try:
        new = cls(**{k: v for k, v in config.items() if k in accepted})
    except (TypeError, ValueError):
        raise ValueError(_copy_error(
            layer, f"it does not round-trip through get_config() and "
            f"from_config() ({type(failure).__name__}: {failure})")
        ) from failure
    new.trainable = layer.trainable
    return new


def _copy_error(layer, why):
    return (
        f"Layer '{layer.name}' of type {type(layer).__name__} cannot be "
        f"copied into the compressed model: {why}. Give "
        f"{type(layer).__name__} a get_config() that returns every "
        "constructor argument and a build() that builds its sublayers, or "
        "compress the model without it (build the model from the layers "
        "it holds).")


def _subclassed_error(model, verb, per_layer_hint):
    return ValueError(
        f"Received: a subclassed model '{model.name}' of type "
        f"{type(model).__name__}. Expected a Sequential or functional model: "
        f"{verb} rewrites a model by cloning it, and Keras cannot clone a "
        f"subclassed model. Instead, {per_layer_hint}"
    )


def check_model_argument(obj, argument, verb, per_layer_hint,
                         accept_layers=True):
    """Raises a named error unless `obj` is what `verb` accepts.

    Args:
        accept_layers: whether a layer or a list of layers is accepted as
            well as a Sequential or functional model. The message says
            exactly what is.
    """
    if isinstance(obj, keras.Model) and not is_graph_model(obj):
        raise _subclassed_error(obj, verb, per_layer_hint)
    if isinstance(obj, keras.Model):
        return
    if accept_layers and isinstance(obj, (keras.layers.Layer, list, tuple)):
        return
    accepted = ("a keras.layers.Layer, a list of layers, or a Sequential or "
                "functional keras.Model" if accept_layers else
                f"a Sequential or functional keras.Model; {verb} rewrites "
                "whole models")
    raise ValueError(
        f"Received: {argument}={obj!r} of type {type(obj).__name__}. "
        f"Expected {accepted}."
    )


# Set on every QAT layer class (quantization/); read here so that pruning can
# recognize a quantized model without importing quantization.
QUANTIZED_MARKER = "_kcompress_quantized"


def quantized_layer_names(model):
    """Names of the QAT layers in `model` (empty for a plain model)."""
    return [layer.name for layer in iter_layers(model)
            if getattr(layer, QUANTIZED_MARKER, False)]


def sequential_as_functional(model, copy=None):
    """A Sequential model as a functional one; other models as they are.

    Args:
        model: a model. It is not modified.
        copy: `layer -> layer` applied to each layer before it is called;
            None calls the model's own layers (they then have one more
            graph node each).
    """
    if not isinstance(model, keras.Sequential):
        return model
    spec = model.inputs[0]
    inputs = keras.Input(batch_shape=spec.shape, dtype=spec.dtype,
                         name=f"{model.name}_input")
    x = inputs
    for layer in model.layers:
        x = (layer if copy is None else copy(layer))(x)
    return keras.Model(inputs, x, name=model.name)


def transform_model(model, layer_fn):
    """Clones `model`, nested models included, replacing each layer.

    Args:
        model: a Sequential or functional model. It is not modified.
        layer_fn: `layer -> new layer`. It must return a new object (use
            `clone_layer` for layers it leaves alone).

    Returns:
        The new model, with the same name.
    """

    def clone_function(layer):
        if isinstance(layer, keras.Model):
            return transform_model(layer, layer_fn)
        return layer_fn(layer)

    return clone(model, clone_function)


def expand_layers(model, replace):
    """Clones `model`, replacing some layers with chains of layers.

    Args:
        model: a Sequential or functional model, nested models included. It
            is not modified.
        replace: `layer -> None` to copy the layer, or a sequence of new
            layers applied one after another in its place.

    Returns:
        The new model, with the same name.
    """
    if isinstance(model, keras.Sequential):
        new_layers = []
        for layer in model.layers:
            if isinstance(layer, keras.Model):
                new_layers.append(expand_layers(layer, replace))
                continue
            parts = replace(layer)
            new_layers.extend(parts if parts else [clone_layer(layer)])
        spec = model.inputs[0]
        return keras.Sequential(
            [keras.Input(batch_shape=spec.shape, dtype=spec.dtype)]
            + new_layers, name=model.name)
    chains = {}

    def clone_function(layer):
        if isinstance(layer, keras.Model):
            return expand_layers(layer, replace)
        parts = replace(layer)
        if not parts:
            return clone_layer(layer)
        chains[id(parts[0])] = parts[1:]
        return parts[0]

    def call_function(layer, *args, **kwargs):
        outputs = layer(*args, **kwargs)
        for following in chains.get(id(layer), ()):
            outputs = following(outputs)
        return outputs

    return clone(model, clone_function, call_function)
