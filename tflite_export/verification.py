"""`verify`: does the `.tflite` file give the answers the Keras model gave?"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from tflite_export.conversion import ConversionError
from tflite_export.conversion import check_data
from tflite_export.conversion import check_model
from tflite_export.inspection import check_tflite_bytes
from tflite_export.inspection import interpreter_for

if TYPE_CHECKING:  # Keras loads lazily here; only for the hints.
    import keras

_BATCH = 64


@dataclasses.dataclass
class Verification:
    """Agreement between a TFLite model and a Keras model on the same data.

    `max_steps` and `mean_steps` are the output differences in output
    quantization steps (None for a float output).
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


def output_scale(interpreter):
    """Quantization step of the model's (first) output, or None if float.

    For a float output fed by DEQUANTIZE, the step of the int8 tensor behind
    it.
    """
    detail = interpreter.get_output_details()[0]
    scale = detail["quantization"][0]
    if scale:
        return float(scale)
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    for op in interpreter._get_ops_details():  # No public equivalent.
        if op["op_name"] == "DEQUANTIZE" and detail["index"] in op["outputs"]:
            source = tensors[op["inputs"][0]]
            if source["quantization"][0]:
                return float(source["quantization"][0])
    return None


def run_tflite(tflite_bytes, arrays, num_threads=None, delegates=True,
               reference_kernels=False):
    """Runs the TFLite model over the input arrays; float outputs.

    `delegates=False` uses TFLite's built-in kernels instead of XNNPACK,
    and `reference_kernels=True` its reference kernels.
    """
    interpreter = interpreter_for(tflite_bytes, num_threads=num_threads,
                                  delegates=delegates,
                                  reference_kernels=reference_kernels)
    input_details = interpreter.get_input_details()
    output_detail = interpreter.get_output_details()[0]
    outputs = []
    size = len(arrays[0])
    # A file converted with a fixed batch size runs that many at a time.
    signature = input_details[0].get("shape_signature")
    fixed = signature is not None and len(signature) and signature[0] > 0
    step = int(signature[0]) if fixed else _BATCH
    if fixed and size % step:
        raise ConversionError(
            f"Received: {size} samples for a file with a fixed batch size "
            f"of {step}. Expected a multiple of {step}.")
    for start in range(0, size, step):
        batch = [a[start:start + step] for a in arrays]
        for detail, array in zip(input_details, batch):
            if tuple(detail["shape"]) != array.shape:
                interpreter.resize_tensor_input(detail["index"], array.shape)
        interpreter.allocate_tensors()
        for detail, array in zip(interpreter.get_input_details(), batch):
            interpreter.set_tensor(detail["index"], quantize(array, detail))
        interpreter.invoke()
        raw = interpreter.get_tensor(output_detail["index"])
        outputs.append(_dequantize(raw, interpreter.get_output_details()[0]))
    return np.concatenate(outputs), output_scale(interpreter)


def _check_same_signature(tflite_bytes, keras_model):
    """Refuses a file whose inputs or output do not match the model's."""
    if len(keras_model.outputs) != 1:
        raise ConversionError(
            f"Model '{keras_model.name}' has {len(keras_model.outputs)} "
            "outputs. verify compares single-output models; verify each "
            "output through a keras.Model(model.inputs, model.outputs[i]).")
    interpreter = interpreter_for(tflite_bytes, delegates=False)
    def lite(details):
        return [tuple(int(d) if d >= 0 else None
                      for d in detail["shape_signature"][1:])
                for detail in details]

    lite_in = lite(interpreter.get_input_details())
    lite_out = lite(interpreter.get_output_details())
    keras_in = [tuple(t.shape[1:]) for t in keras_model.inputs]
    keras_out = [tuple(keras_model.outputs[0].shape[1:])]
    if lite_in != keras_in or lite_out != keras_out:
        raise ConversionError(
            f"The .tflite file takes inputs {lite_in} and gives {lite_out} "
            f"(per sample), but model '{keras_model.name}' takes {keras_in} "
            f"and gives {keras_out}. Pass the Keras model the file was "
            "converted from.")


def verify(tflite_bytes: bytes, keras_model: keras.Model, x,
           y=None) -> Verification:
    """Runs the TFLite model on `x` and compares it with `keras_model`.

    Args:
        tflite_bytes: the flatbuffer.
        keras_model: the model it came from (for `qat` files, the QAT model).
        x: inputs, an array or a list of arrays (one per input).
        y: optional integer labels, for accuracy.

    Returns:
        A `Verification`: top-1 agreement, output differences (absolute and,
        for a quantized output, in quantization steps) and accuracies.
    """
    tflite_bytes = check_tflite_bytes(tflite_bytes)
    check_model(keras_model, argument="keras_model")
    arrays = check_data(x, keras_model, argument="x")
    _check_same_signature(tflite_bytes, keras_model)
    if y is not None:
        y = np.asarray(y)
        if y.dtype.kind not in "iu" or y.reshape(len(y), -1).shape != (
                len(arrays[0]), 1):
            raise ConversionError(
                f"Received: y of dtype {y.dtype} and shape {y.shape}. "
                f"Expected one integer label per sample, shape "
                f"({len(arrays[0])},).")
    lite, scale = run_tflite(tflite_bytes, arrays)
    reference = keras_model.predict(arrays if len(arrays) > 1 else arrays[0],
                                    verbose=0, batch_size=256)
    reference = np.asarray(reference, np.float32).reshape(lite.shape)
    diff = np.abs(lite - reference)
    flat_lite = lite.reshape(len(lite), -1)
    flat_ref = reference.reshape(len(reference), -1)
    agreement = float(np.mean(flat_lite.argmax(-1) == flat_ref.argmax(-1)))
    keras_accuracy = tflite_accuracy = None
    if y is not None:
        y = np.asarray(y).reshape(-1)
        keras_accuracy = float(np.mean(flat_ref.argmax(-1) == y))
        tflite_accuracy = float(np.mean(flat_lite.argmax(-1) == y))
    return Verification(
        samples=len(lite),
        top1_agreement=agreement,
        max_abs_diff=float(diff.max()),
        mean_abs_diff=float(diff.mean()),
        output_scale=scale,
        max_steps=float(diff.max() / scale) if scale else None,
        mean_steps=float(diff.mean() / scale) if scale else None,
        keras_accuracy=keras_accuracy,
        tflite_accuracy=tflite_accuracy,
    )
