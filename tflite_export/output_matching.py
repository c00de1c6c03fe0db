"""Which tensor of a `.tflite` file is which output of the Keras model.

The converter does not keep the Keras output order: it may sort a
signature's outputs by name, or emit a post-processing op's outputs in its
own order. `convert` therefore names each output in the file's signature
after the Keras output (`output_names`), and `match_outputs` pairs them by
that name, then checks the shape. A file without such names (converted
elsewhere) is matched by shape, and only when every shape is unique: two
outputs of the same shape are never paired by position.
"""

from __future__ import annotations

from tflite_export.errors import ConversionError


def output_names(model):
    """The names `convert` gives the model's outputs in the file's signature.

    Keras's own output names (the layers that produce them), made unique.
    """
    names = list(getattr(model, "output_names", None) or [])
    if len(names) != len(model.outputs) or len(set(names)) != len(names):
        names = [f"output_{i}" for i in range(len(model.outputs))]
    return names


def signature_runner(interpreter):
    """The runner of the file's only signature, or None (none, or several)."""
    signatures = interpreter.get_signature_list()
    if len(signatures) != 1:
        return None
    return interpreter.get_signature_runner(next(iter(signatures)))


def signature_outputs(interpreter):
    """`{name: tensor index}` of the file's (only) signature, or `{}`."""
    runner = signature_runner(interpreter)
    if runner is None:
        return {}
    return {name: detail["index"]
            for name, detail in runner.get_output_details().items()}


def per_sample(shape):
    """A tensor's shape without the batch axis, None where it is dynamic."""
    return tuple(int(d) if d >= 0 else None for d in shape[1:])


def match_outputs(interpreter, keras_model):
    """The file's output detail for each Keras output, in the Keras order.

    Raises:
        ConversionError: an output the file does not have (by name), one
            whose shape differs, or a file with unnamed outputs of the same
            shape.
    """
    details = {d["index"]: d for d in interpreter.get_output_details()}
    names = output_names(keras_model)
    keras_shapes = [tuple(t.shape[1:]) for t in keras_model.outputs]
    by_name = signature_outputs(interpreter)
    if len(keras_shapes) == 1 and len(details) == 1:
        # One output: nothing to mix up (and older files name it anything).
        only = next(iter(details.values()))
        _check_shape(names[0], only, keras_shapes[0], keras_model)
        return [only]
    if set(names) <= set(by_name):
        matched = [details[by_name[name]] for name in names]
    else:
        matched = _by_shape(details, names, keras_shapes, keras_model)
    for name, detail, shape in zip(names, matched, keras_shapes):
        _check_shape(name, detail, shape, keras_model)
    return matched


def _check_shape(name, detail, shape, keras_model):
    lite = per_sample(detail["shape_signature"])
    if lite != shape:
        raise ConversionError(
            f"Output '{name}' of model '{keras_model.name}' is {shape} per "
            f"sample, but the file's output of that name is {lite}. Pass the "
            "Keras model the file was converted from.")


def _by_shape(details, names, keras_shapes, keras_model):
    lite_shapes = {index: per_sample(d["shape_signature"])
                   for index, d in details.items()}
    matched = []
    for name, shape in zip(names, keras_shapes):
        candidates = [i for i, s in lite_shapes.items() if s == shape]
        if len(candidates) != 1 or keras_shapes.count(shape) != 1:
            raise ConversionError(
                f"Cannot tell which of the file's outputs is '{name}' of "
                f"model '{keras_model.name}': the file's signature does not "
                f"name it, and {len(candidates)} of its outputs have its "
                f"shape {shape}. Convert the model with "
                "tflite_export.convert, which names every output.")
        matched.append(details[candidates[0]])
    return matched
