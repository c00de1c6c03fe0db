"""`check_inputs`: the one check of input data against a model.

`calibrate`, data-aware `factorize`, and `tflite_export`'s converter,
verifier and DATA loader all take arrays of model inputs. They check them
here, so each refuses the same bad data with the same message.
"""

import numpy as np

__all__ = ["check_inputs", "model_input"]


def model_input(model, arrays):
    """`arrays` (one per model input, in `model.inputs` order) in the
    structure `model` is called with: one array, a list, or a dict keyed
    by input name (KerasHub's models)."""
    import keras

    arrays = list(arrays)
    try:
        structure = model.input
    except (AttributeError, ValueError):  # A Sequential built without Input.
        return arrays[0] if len(arrays) == 1 else arrays
    return keras.tree.pack_sequence_as(structure, arrays)


def _input_shapes(model):
    inputs = getattr(model, "inputs", None)
    if not inputs:
        raise ValueError(
            f"Model '{model.name}' has no symbolic inputs (unbuilt, or "
            "subclassed). Give it a keras.Input first.")
    return [tuple(t.shape) for t in inputs]


def _by_name(data, model, argument):
    """The arrays of a dict `{input name: array}`, in the model's order."""
    names = [t.name for t in getattr(model, "inputs", None) or ()]
    if sorted(data) != sorted(names):
        raise ValueError(
            f"Received: {argument} keyed by {sorted(data)}. Expected one "
            f"array per model input, keyed by the input names {names}.")
    return [data[name] for name in names]


def check_inputs(data, model=None, argument="data"):
    """The arrays of `data`, one per model input, checked.

    Args:
        data: an array, a list or tuple of arrays (one per model input,
            in order), or a dict of them keyed by the input names.
        model: the model they are for; `None` checks only the arrays
            themselves.
        argument: the argument's name, for the messages.

    Returns:
        A list of numpy arrays.

    Raises:
        ValueError: for the wrong number of arrays, a non-numeric dtype, a
            shape that does not fit the model input, no samples, or NaN or
            infinite values. The message says what was received and what
            is expected.
    """
    if isinstance(data, dict):
        data = _by_name(data, model, argument)
    arrays = list(data) if isinstance(data, (list, tuple)) else [data]
    shapes = _input_shapes(model) if model is not None else [None] * len(
        arrays)
    if len(arrays) != len(shapes):
        raise ValueError(
            f"Received: {argument} with {len(arrays)} arrays. Expected "
            f"{len(shapes)}, one per model input.")
    checked = []
    for array, shape in zip(arrays, shapes):
        array = np.asarray(array)
        if array.dtype.kind not in "fiub":
            raise ValueError(
                f"Received: {argument} of dtype {array.dtype}, which is not "
                "numeric. Expected numbers.")
        if shape is not None and (array.ndim != len(shape) or any(
                want is not None and want != got
                for want, got in zip(shape[1:], array.shape[1:]))):
            raise ValueError(
                f"Received: {argument} of shape {array.shape}. Expected "
                f"(n, {', '.join(str(d) for d in shape[1:])}) to match the "
                "model input.")
        if array.ndim == 0 or len(array) == 0:
            raise ValueError(
                f"Received: {argument} with no samples (shape "
                f"{array.shape}). Expected at least one.")
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise ValueError(
                f"Received: {argument} with NaN or infinite (non-finite) "
                "values. Expected finite numbers.")
        checked.append(array)
    return checked
