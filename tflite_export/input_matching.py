"""Which input of a `.tflite` file each array feeds.

The converter does not keep the Keras input order: a model with inputs
`zeta` and `alpha` of the same shape, named `input_0` and `input_1` in the
signature, got a file whose first input tensor is `alpha`. `convert`
therefore names each input in the file's signature after the Keras input
(`input_names`), and `match_inputs` pairs arrays with the file's inputs by
that name, then checks the shape. Files converted
before that carry `convert`'s former names `input_0`, `input_1`, ... (the
Keras order) and are matched by them. A file without input names
(converted elsewhere) is matched by shape, and only when every shape is
unique: two inputs of the same shape are never fed by position.

Every place that feeds an interpreter (`verify`, `run_tflite`, the
detector's and the micro path's runs, `bench`'s data) goes through
`feed_order` or `match_inputs`; `convert`'s calibration feeds a dict keyed
by `input_names`.
"""

from __future__ import annotations

import re

import numpy as np

from tflite_export.errors import ConversionError
from tflite_export.output_matching import per_sample
from tflite_export.output_matching import signature_runner

# What TensorFlow takes as a signature argument name, kept to identifiers.
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
# A kept tensor name: `serving_default_zeta:0` is input `zeta`.
_TENSOR_NAME = re.compile(r"^(?:serving_default_)?(.+?)(?::\d+)?$")


def _keras_name(tensor):
    # The input layer's name: unlike the tensor's (`keras_tensor_4` for an
    # unnamed keras.Input), it survives saving and loading the model.
    from kcompress._keras_internals import keras_history

    history = keras_history(tensor)
    return getattr(getattr(history, "operation", None), "name", None) or (
        getattr(tensor, "name", None))


def input_names(model):
    """The names `convert` gives the model's inputs in the file's signature.

    The Keras input (layer) names, in `model.inputs` order; `input_0`,
    `input_1`, ... when they are not unique identifiers.
    """
    names = [_keras_name(tensor) for tensor in model.inputs]
    if len(set(names)) != len(names) or not all(
            isinstance(name, str) and _NAME.match(name) for name in names):
        return _positional_names(len(names))
    return names


def _positional_names(count):
    return [f"input_{i}" for i in range(count)]


def file_inputs(interpreter):
    """`{name: tensor index}` of the file's inputs, or `{}` if unnamed.

    The input names of the file's only signature; without one, its input
    tensors' names (kept by `convert(..., keep_names=True)`).
    """
    runner = signature_runner(interpreter)
    if runner is not None:
        return {name: detail["index"]
                for name, detail in runner.get_input_details().items()}
    details = interpreter.get_input_details()
    found = [_TENSOR_NAME.match(detail["name"] or "") for detail in details]
    names = {match.group(1): detail["index"]
             for match, detail in zip(found, details) if match}
    return names if len(names) == len(details) else {}


def _fits(shape, lite):
    """Whether an array's per-sample `shape` fits the file's (None: any)."""
    return len(shape) == len(lite) and all(
        a is None or b is None or a == b for a, b in zip(shape, lite))


def _describe(names, index):
    return f"'{names[index]}'" if names else f"number {index}"


def match_inputs(interpreter, shapes, names=None, model_name=None,
                 keras_order=True):
    """The file's input detail for each given input, in the given order.

    Args:
        interpreter: the file's interpreter.
        shapes: each input's per-sample shape (None where any size goes).
        names: each input's name (`input_names` of the Keras model, or the
            keys of a dict of arrays), or None.
        model_name: the Keras model the inputs are of, for the messages.
        keras_order: whether the inputs come in the Keras model's order
            (not a dict's), which a file named `input_0`, `input_1`, ...
            by an earlier `convert` follows.

    Raises:
        ConversionError: a count or a shape the file's inputs do not have,
            or inputs it cannot tell apart (no names, and several inputs
            of one shape).
    """
    details = interpreter.get_input_details()
    named = file_inputs(interpreter)
    of = f" of model '{model_name}'" if model_name else ""
    if len(shapes) != len(details):
        raise ConversionError(
            f"Received: {len(shapes)} inputs{of} (per-sample shapes "
            f"{list(shapes)}). Expected {len(details)}, one per input of the "
            f"file ({_file_summary(details, named)}).")
    if names is not None and len(names) != len(shapes):
        raise ConversionError(
            f"Received: names={list(names)} for {len(shapes)} inputs. "
            "Expected one name per input, in their order.")
    by_index = {detail["index"]: detail for detail in details}
    positional = _positional_names(len(details))
    if len(details) == 1:
        matched = details  # One input: nothing to mix up.
    elif names and len(set(names)) == len(names) and set(names) <= set(
            named):
        matched = [by_index[named[name]] for name in names]
    elif keras_order and set(named) == set(positional):
        # `convert`'s former names, which follow the Keras order.
        matched = [by_index[named[name]] for name in positional]
    else:
        matched = _by_shape(details, shapes, names, named, of)
    for index, (shape, detail) in enumerate(zip(shapes, matched)):
        lite = per_sample(detail["shape_signature"])
        if not _fits(tuple(shape), lite):
            hint = (" Pass the Keras model the file was converted from."
                    if model_name else "")
            raise ConversionError(
                f"Received: input {_describe(names, index)}{of} of "
                f"per-sample shape {tuple(shape)}. Expected {lite}, the shape "
                f"of the file's input it feeds "
                f"({_label(detail, named)}).{hint}")
    return matched


def _label(detail, named):
    names = [name for name, index in named.items() if index ==
             detail["index"]]
    return f"'{names[0]}'" if names else f"tensor {detail['index']}"


def _file_summary(details, named):
    return ", ".join(
        f"{_label(detail, named)} {per_sample(detail['shape_signature'])}"
        for detail in details)


def _by_shape(details, shapes, names, named, of):
    if named:
        advice = ("Name the arrays after the file's inputs: a dict keyed by "
                  "them, or a list with names=[...] in its order.")
    else:
        advice = ("Convert the model with tflite_export.convert, which names "
                  "every input after the Keras input.")
    matched = []
    for index, shape in enumerate(shapes):
        candidates = [detail for detail in details if _fits(
            tuple(shape), per_sample(detail["shape_signature"]))]
        twins = [other for other in shapes if _fits(tuple(shape),
                                                    tuple(other))]
        if len(candidates) != 1 or len(twins) != 1:
            raise ConversionError(
                f"Received: {len(shapes)} inputs{of} named "
                f"{names or 'nothing'}, of per-sample shapes {list(shapes)}. "
                f"Expected the names of the file's inputs "
                f"({_file_summary(details, named)}): without them an input "
                f"is matched by its shape, and {len(candidates)} of the "
                f"file's inputs take {tuple(shape)}, the shape of input "
                f"{_describe(names, index)}. {advice}")
        matched.append(candidates[0])
    return matched


def feed_order(interpreter, arrays, names=None, model_name=None):
    """The file's inputs and the arrays that feed them, in the file's order.

    Args:
        interpreter: the file's interpreter.
        arrays: one array per input, samples first: a list (in the order of
            `names`) or a dict keyed by input name.
        names: the list's input names (`input_names` of the Keras model);
            None matches by shape, which needs every shape to be unique.
        model_name: for the messages.

    Returns:
        `[(detail, array)]` in the order of `interpreter.get_input_details()`
        (the file's input order, which TFLM's `set_input` indexes).
    """
    keras_order = not isinstance(arrays, dict)
    if not keras_order:
        names, arrays = list(arrays), list(arrays.values())
    arrays = [np.asarray(array) for array in arrays]
    matched = match_inputs(interpreter, [a.shape[1:] for a in arrays], names,
                           model_name, keras_order)
    position = {detail["index"]: i for i, detail in
                enumerate(interpreter.get_input_details())}
    return sorted(zip(matched, arrays),
                  key=lambda pair: position[pair[0]["index"]])
