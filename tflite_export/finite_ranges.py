"""Integer files whose ranges are finite.

`convert` never returns an integer file with a range that is not finite or
absurdly wide: `check_ranges` refuses one, naming the tensor. The one cause
met so far is fixed before conversion, as follows.

Padding with an infinite value, made finite before integer conversion.

A stem that pads with `-inf` before a max pool (KerasHub's CSPNet:
`ops.pad(x, ..., constant_values=-inf)`, so that the pool never picks
the padding) is exact in float. In an integer file the padded tensor gets
a range that reaches `-inf`: calibration gives it a scale of about 1e36,
XNNPACK refuses the file and the reference kernels compute nonsense.

The padding only has to stay below every value the pool sees. Padding with
the lowest value the padded input takes on the representative data does
that in the file (the int8 grid of that tensor starts there, so every value
it holds is at least the padding), keeps the tensor's range as it was
without padding, and leaves the float model's outputs as they were on that
data.
"""

import numpy as np

from tflite_export import file_bytes
from tflite_export.errors import ConversionError

__all__ = ["infinite_pads", "with_finite_padding", "check_ranges"]

# The widest activation scale accepted: a range of about +-1e8.
MAX_SCALE = 1e6


def _constant(kwargs, args):
    value = kwargs.get("constant_values", args[1] if len(args) > 1 else None)
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _is_pad(operation):
    return type(operation).__name__ == "Pad" and getattr(
        operation, "mode", "constant") == "constant"


def _walk(model, on_pad):
    """A clone of `model` in which each constant `Pad` node with an
    infinite value is built by `on_pad(index, layer, args, kwargs)`."""
    from kcompress import _model_utils  # Keras loads with the model.

    found = []

    def call_function(layer, *args, **kwargs):
        value = _constant(kwargs, args) if _is_pad(layer) else None
        if value is not None and not np.isfinite(value):
            found.append(layer.name)
            return on_pad(len(found) - 1, layer, args, kwargs)
        return layer(*args, **kwargs)

    return _model_utils.clone(model, _model_utils.clone_layer,
                              call_function), found


def infinite_pads(model):
    """Names of the constant `Pad` nodes of `model` padding with +-inf
    (`outer/inner` inside a nested model). Read from the graph; nothing is
    copied."""
    import keras

    from kcompress import _keras_internals
    from kcompress import _model_utils

    if isinstance(model, keras.Sequential) or not _model_utils.is_graph_model(
            model):
        return []
    found = []
    for operation in model.operations:
        if isinstance(operation, keras.Model):
            found += [f"{operation.name}/{name}"
                      for name in infinite_pads(operation)]
            continue
        if not _is_pad(operation):
            continue
        for node in _keras_internals.inbound_nodes(operation):
            value = _constant(_keras_internals.call_kwargs(node),
                              _keras_internals.call_args(node))
            if value is not None and not np.isfinite(value):
                found.append(operation.name)
                break
    return found


def with_finite_padding(model, arrays):
    """`model` (not modified) with each infinite padding value replaced by
    the lowest value its input takes on `arrays` (the representative data,
    one array per model input).

    Returns:
        `(model, names)`: a clone, or `model` itself when it pads with no
        infinite value, and the names of the `Pad` nodes changed.
    """
    import keras

    pads = infinite_pads(model)
    if not pads:
        return model, []
    if any("/" in name for name in pads):
        # A pad inside a nested backbone: one graph, to reach it.
        from kcompress._flatten import flatten_composites

        model, _ = flatten_composites(model, models=True)
    padded_inputs = []

    def record(index, layer, args, kwargs):
        padded_inputs.append(args[0])
        return layer(*args, **kwargs)

    probe, names = _walk(model, record)
    from kcompress.inputs import model_input

    values = keras.Model(probe.input, padded_inputs).predict(
        model_input(probe, arrays), verbose=0)
    values = values if isinstance(values, list) else [values]
    floors = [float(np.min(v)) for v in values]

    def finite(index, layer, args, kwargs):
        kwargs = dict(kwargs, constant_values=floors[index])
        return layer(args[0], **kwargs)

    return _walk(model, finite)[0], names


def check_ranges(tflite_bytes):
    """Raises a `ConversionError` naming the first tensor of the file whose
    quantization scale is not finite or wider than `MAX_SCALE`."""
    model = file_bytes.read_model(tflite_bytes)
    for subgraph in model.subgraphs or ():
        for tensor in subgraph.tensors or ():
            quantization = tensor.quantization
            scale = None if quantization is None else quantization.scale
            if scale is None or not len(scale):
                continue
            scale = np.asarray(scale, dtype=np.float64)
            if np.isfinite(scale).all() and scale.max() <= MAX_SCALE:
                continue
            name = tensor.name.decode() if isinstance(
                tensor.name, bytes) else str(tensor.name)
            raise ConversionError(
                f"Received: a model whose calibrated tensor '{name}' has a "
                f"quantization scale of {scale.max():.3g}, a range that is "
                f"not finite or wider than +-{MAX_SCALE * 127:.3g}. "
                "Expected finite activations: look for infinite or huge "
                "constants (padding with inf, an attention mask adding "
                "-1e9) or values that overflow before this tensor, and "
                "make them finite, or train with QAT instead.")
