"""Mixed precision in one file: chosen layers in int16x8, the rest in int8.

The TFLite converter quantizes a whole model one way. LiteRT's AI Edge
Quantizer (`ai-edge-quantizer`) quantizes a converted float file op by op,
from a recipe of regular expressions over the ops' output tensor names, and
puts QUANTIZE ops (int8 <-> int16 requantization) where precisions meet.
`convert_mixed` converts the model to float with its tensor names kept,
gives every op an int8 recipe (int8 weights and activations) and the named
layers an int16x8 one (int16 activations, int8 weights), calibrates on the
representative data, and returns the file. `layer_precisions` reads back
what each layer's ops compute in.

The ranges come from calibration, as in post-training quantization; a
QAT-trained model is converted through `convert(..., "qat")` instead, which
keeps its trained ranges but has one precision.
"""

import re

import numpy as np

from tflite_export.errors import ConversionError
from tflite_export.file_bytes import operators

__all__ = ["convert_mixed", "layer_precisions", "interpreter_precisions",
           "layer_pattern"]

_DTYPES = {np.int8: "int8", np.int16: "int16x8", np.float32: "float32",
           np.uint8: "uint8"}


def layer_pattern(name):
    """A regex for the tensors Keras's export names after layer `name`
    (`.../name/...` or `.../name_1/...`)."""
    return rf"(^|.*[/;]){re.escape(name)}(_\d+)?/.*"


def convert_mixed(model, representative_data, int16_layers, verbose=False):
    """A file with `int16_layers` in int16x8 and every other op in int8.

    Args:
        model: a float Keras model (not QAT).
        representative_data: typical inputs (an array), for calibration.
        int16_layers: names of layers of `model` to run in int16x8.

    Returns:
        The `.tflite` bytes, int8 input and output, names kept.
    """
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_quantizer import quantizer

    from tflite_export.conversion import check_data
    from tflite_export.conversion import convert
    from tflite_export.conversion import held_output

    known = {layer.name for layer in model.layers}
    unknown = sorted(set(int16_layers) - known)
    if unknown:
        raise ConversionError(
            f"Received: int16 layers {unknown}, not layers of model "
            f"'{model.name}'. Expected names of its layers.")
    samples = check_data(representative_data, model)
    if len(samples) != 1:
        raise ConversionError(
            "Mixed precision takes a model with one input; convert a "
            "multi-input model in one precision (mode='int8' or 'int16x8').")
    samples = samples[0]
    float_file = convert(model, "float32", keep_names=True, batch_size=1,
                         verbose=verbose)
    aeq = quantizer.Quantizer(float_file)
    aeq.add_static_config(".*", "*", 8, 8)
    interpreter = Interpreter(model_content=float_file)
    ops = operators(float_file)
    for name in int16_layers:
        # The recipe's regexes match op output names; the layer's last op
        # may output a tensor named after the signature instead.
        exact = [re.escape(t["name"])
                 for t in _layer_outputs(interpreter, name, ops)]
        aeq.add_static_config("|".join([layer_pattern(name)] + exact), "*",
                              16, 8)
    key, signature = next(iter(interpreter.get_signature_list().items()))
    input_name = signature["inputs"][0]
    with held_output(verbose):  # AEQ's progress bars and report
        calibration = aeq.calibrate(
            {key: [{input_name: samples[i:i + 1].astype("float32")}
                   for i in range(min(len(samples), 300))]})
        result = aeq.quantize(calibration, enable_progress_report=verbose)
    return bytes(result.quantized_model)


def _layer_outputs(interpreter, name, every):
    """The output tensors (details) of the ops that belong to layer `name`:
    its name is on the op's output tensor or on one of its constant inputs
    (the kernel). The model's last op outputs a tensor named after the
    signature, so only its kernel names it."""
    pattern = re.compile(layer_pattern(name))
    tensors = {d["index"]: d for d in interpreter.get_tensor_details()}
    produced = {i for op in every for i in op["outputs"]}
    produced |= {d["index"] for d in interpreter.get_input_details()}
    found = []
    for op in every:
        if op["op_name"] in ("QUANTIZE", "DEQUANTIZE"):
            continue
        outputs = [tensors[i] for i in op["outputs"] if i in tensors]
        constants = [tensors[i] for i in op["inputs"]
                     if i in tensors and i not in produced]
        if outputs and any(pattern.match(t["name"])
                           for t in outputs + constants):
            found.append(outputs[0])
    return found


def _precision(details):
    kinds = {_DTYPES.get(t["dtype"], str(t["dtype"])) for t in details}
    kinds.discard("int32")
    return (kinds.pop() if len(kinds) == 1 else
            "+".join(sorted(kinds)) if kinds else "unknown")


def layer_precisions(tflite_bytes, layer_names):
    """`{layer name: "int8" | "int16x8" | "float32" | "unknown"}`: the type
    of the activations the layer's ops output in the file (found by the
    tensor names `convert_mixed` keeps). In a file of one precision, a
    layer whose ops the converter renamed computes in that precision too."""
    from ai_edge_litert.interpreter import Interpreter

    return interpreter_precisions(Interpreter(model_content=tflite_bytes),
                                  layer_names, operators(tflite_bytes))


def interpreter_precisions(interpreter, layer_names, ops):
    """`layer_precisions` of the file an interpreter already holds
    (`ops`: the file's `file_bytes.operators`)."""
    tensors = {d["index"]: d for d in interpreter.get_tensor_details()}
    whole = _precision(
        tensors[i] for op in ops
        if op["op_name"] not in ("QUANTIZE", "DEQUANTIZE")
        for i in op["outputs"] if i in tensors)
    result = {}
    for name in layer_names:
        result[name] = _precision(_layer_outputs(interpreter, name, ops))
        if result[name] == "unknown" and "+" not in whole:
            result[name] = whole
    return result
