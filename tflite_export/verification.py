"""`verify`: does the `.tflite` file give the answers the Keras model gave?"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from tflite_export.conversion import ConversionError
from tflite_export.conversion import check_data
from tflite_export.conversion import check_model
from tflite_export.file_bytes import operators
from tflite_export.input_matching import feed_order
from tflite_export.input_matching import input_names
from tflite_export.inspection import check_tflite_bytes
from tflite_export.inspection import interpreter_for
from tflite_export.mixed_precision import interpreter_precisions
from tflite_export.output_matching import match_outputs
from tflite_export.output_matching import output_names

if TYPE_CHECKING:  # Keras loads lazily here; only for the hints.
    import keras

_BATCH = 64


@dataclasses.dataclass
class OutputAgreement:
    """How one output of the file agrees with the Keras model's.

    `max_steps` and `mean_steps` are the differences in the output's
    quantization steps (None for a float output); `top1_agreement` compares
    the argmax over each sample's values.
    """

    name: str
    shape: tuple
    dtype: str
    top1_agreement: float
    max_abs_diff: float
    mean_abs_diff: float
    output_scale: float
    max_steps: float
    mean_steps: float

    def to_dict(self):
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Verification:
    """Agreement between a TFLite model and a Keras model on the same data.

    `outputs` has one `OutputAgreement` per Keras output, each matched to
    the file's tensor by name and shape (`output_matching`). The other
    fields describe the first output, as for a single-output model;
    accuracies need labels and a single output. `layer_precision` says
    what each Keras layer with weights computes in, in the file (`"int8"`,
    `"int16x8"`, `"float32"`, or `"unknown"` where the converter fused the
    layer's ops under another name).
    """

    samples: int
    top1_agreement: float
    max_abs_diff: float
    mean_abs_diff: float
    output_scale: float
    max_steps: float
    mean_steps: float
    keras_accuracy: float
    tflite_accuracy: float
    outputs: list = dataclasses.field(default_factory=list)
    layer_precision: dict = dataclasses.field(default_factory=dict)

    def to_dict(self):
        return dataclasses.asdict(self)


def quantize(x, detail):
    """`x` in the input type of `detail` (an interpreter tensor detail)."""
    scale, zero_point = detail["quantization"]
    if detail["dtype"] in (np.int8, np.int16, np.uint8) and scale:
        info = np.iinfo(detail["dtype"])
        q = np.round(x / scale + zero_point)
        return np.clip(q, info.min, info.max).astype(detail["dtype"])
    return x.astype(detail["dtype"])


def _dequantize(y, detail):
    scale, zero_point = detail["quantization"]
    if np.issubdtype(y.dtype, np.integer) and scale:
        return (y.astype(np.float32) - zero_point) * scale
    return y.astype(np.float32)


def output_scale(interpreter, detail, ops):
    """Quantization step of an output, None if float.

    For a float output fed by DEQUANTIZE, the step of the int8 tensor behind
    it (`ops`: the file's `file_bytes.operators`).
    """
    scale = detail["quantization"][0]
    if scale:
        return float(scale)
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    for op in ops:
        if op["op_name"] == "DEQUANTIZE" and detail["index"] in op["outputs"]:
            source = tensors[op["inputs"][0]]
            if source["quantization"][0]:
                return float(source["quantization"][0])
    return None


def run_tflite(tflite_bytes, arrays, num_threads=None, delegates=True,
               reference_kernels=False, names=None):
    """Runs the TFLite model over the input arrays; float outputs.

    Each array feeds the file's input of its name (`input_matching`):
    `arrays` is a dict keyed by the file's input names, or a list in the
    order of `names` (the Keras model's, `input_matching.input_names`). A
    list without names suits a single-input file, or one whose inputs all
    differ in shape.

    Returns the file's first output and its quantization step
    (`run_outputs` returns every output). `delegates=False` uses TFLite's
    built-in kernels instead of XNNPACK, and `reference_kernels=True` its
    reference kernels.
    """
    interpreter = interpreter_for(tflite_bytes, num_threads=num_threads,
                                  delegates=delegates,
                                  reference_kernels=reference_kernels)
    detail = interpreter.get_output_details()[0]
    (values,) = run_outputs(interpreter, arrays, [detail], names)
    return values, output_scale(interpreter, detail, operators(tflite_bytes))


def run_outputs(interpreter, arrays, output_details, names=None,
                model_name=None):
    """Runs an interpreter over the input arrays, batch by batch.

    `arrays`, `names` and `model_name` are as `input_matching.feed_order`
    takes them: each array feeds the file's input of its name.

    Returns:
        One float array per entry of `output_details`, samples first.
    """
    fed = feed_order(interpreter, arrays, names, model_name)
    outputs = [[] for _ in output_details]
    size = len(fed[0][1])
    # A file converted with a fixed batch size runs that many at a time.
    signature = fed[0][0].get("shape_signature")
    fixed = signature is not None and len(signature) and signature[0] > 0
    step = int(signature[0]) if fixed else _BATCH
    if fixed and size % step:
        raise ConversionError(
            f"Received: {size} samples for a file with a fixed batch size "
            f"of {step}. Expected a multiple of {step}.")
    for start in range(0, size, step):
        batch = [(detail, array[start:start + step]) for detail, array in fed]
        current = {d["index"]: d for d in interpreter.get_input_details()}
        for detail, array in batch:
            if tuple(current[detail["index"]]["shape"]) != array.shape:
                interpreter.resize_tensor_input(detail["index"], array.shape)
        interpreter.allocate_tensors()
        for detail, array in batch:
            interpreter.set_tensor(detail["index"], quantize(array, detail))
        interpreter.invoke()
        for values, detail in zip(outputs, output_details):
            values.append(_dequantize(interpreter.get_tensor(detail["index"]),
                                      detail))
    return [np.concatenate(values) for values in outputs]


def _agreement(name, lite, reference, scale, dtype):
    diff = np.abs(lite - reference)
    flat_lite = lite.reshape(len(lite), -1)
    flat_ref = reference.reshape(len(reference), -1)
    return OutputAgreement(
        name=name, shape=tuple(int(d) for d in lite.shape[1:]),
        dtype=dtype,
        top1_agreement=float(np.mean(flat_lite.argmax(-1)
                                     == flat_ref.argmax(-1))),
        max_abs_diff=float(diff.max()), mean_abs_diff=float(diff.mean()),
        output_scale=scale,
        max_steps=float(diff.max() / scale) if scale else None,
        mean_steps=float(diff.mean() / scale) if scale else None)


def verify(tflite_bytes: bytes, keras_model: keras.Model, x,
           y=None) -> Verification:
    """Runs the TFLite model on `x` and compares it with `keras_model`.

    Args:
        tflite_bytes: the flatbuffer.
        keras_model: the model it came from (for `qat` files, the QAT model).
        x: inputs, an array or a list of arrays (one per input).
        y: optional integer labels, for accuracy.

    Returns:
        A `Verification`: for each output (matched to the file's tensor by
        name and shape), top-1 agreement and differences, absolute and, for
        a quantized output, in quantization steps; and accuracies.
    """
    tflite_bytes = check_tflite_bytes(tflite_bytes)
    check_model(keras_model, argument="keras_model")
    arrays = check_data(x, keras_model, argument="x")
    interpreter = interpreter_for(tflite_bytes)
    details = match_outputs(interpreter, keras_model)
    if y is not None:
        if len(details) != 1:
            raise ConversionError(
                f"Received: labels y for model '{keras_model.name}' with "
                f"{len(details)} outputs. Expected y=None: labels score a "
                "single-output classifier (a detector is scored by "
                "tflite_export.verify_detections).")
        y = np.asarray(y)
        if y.dtype.kind not in "iu" or y.reshape(len(y), -1).shape != (
                len(arrays[0]), 1):
            raise ConversionError(
                f"Received: y of dtype {y.dtype} and shape {y.shape}. "
                f"Expected one integer label per sample, shape "
                f"({len(arrays[0])},).")
    # Each array feeds the file's input of its Keras name; a file whose
    # inputs are not the model's is refused here, before Keras runs.
    lites = run_outputs(interpreter, arrays, details,
                        input_names(keras_model), keras_model.name)
    from kcompress.inputs import model_input  # Loads Keras.

    references = keras_model.predict(model_input(keras_model, arrays),
                                     verbose=0, batch_size=256)
    if len(details) == 1:
        references = [references]
    ops = operators(tflite_bytes)
    agreements = [
        _agreement(name, lite,
                   np.asarray(reference, np.float32).reshape(lite.shape),
                   output_scale(interpreter, detail, ops),
                   np.dtype(detail["dtype"]).name)
        for name, lite, reference, detail in zip(
            output_names(keras_model), lites, references, details)]
    first = agreements[0]
    keras_accuracy = tflite_accuracy = None
    if y is not None:
        y = np.asarray(y).reshape(-1)
        flat_ref = np.asarray(references[0]).reshape(len(y), -1)
        keras_accuracy = float(np.mean(flat_ref.argmax(-1) == y))
        tflite_accuracy = float(np.mean(
            lites[0].reshape(len(y), -1).argmax(-1) == y))
    return Verification(
        samples=len(lites[0]),
        top1_agreement=first.top1_agreement,
        max_abs_diff=first.max_abs_diff,
        mean_abs_diff=first.mean_abs_diff,
        output_scale=first.output_scale,
        max_steps=first.max_steps,
        mean_steps=first.mean_steps,
        keras_accuracy=keras_accuracy,
        tflite_accuracy=tflite_accuracy,
        outputs=agreements,
        layer_precision=interpreter_precisions(interpreter, [
            layer.name for layer in keras_model.layers if layer.weights], ops),
    )
