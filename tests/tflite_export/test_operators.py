"""`file_bytes.operators`: the file's ops read from its bytes, as the
interpreter numbers them (the interpreter has no public call for it)."""

import keras
import numpy as np

import tflite_export as te
from tflite_export.file_bytes import operators
from tflite_export.inspection import interpreter_for


def test_ops_and_tensors_of_a_small_int8_file():
    model = keras.Sequential([
        keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, activation="relu"),
        keras.layers.DepthwiseConv2D(3), keras.layers.Flatten(),
        keras.layers.Dense(3)])
    x = np.random.default_rng(0).random((16, 8, 8, 1), "float32")
    tflite = te.convert(model, "int8", representative_data=x)
    ops = operators(tflite)
    assert [op["op_name"] for op in ops] == [
        "CONV_2D", "DEPTHWISE_CONV_2D", "RESHAPE", "FULLY_CONNECTED"]
    assert [op["index"] for op in ops] == list(range(len(ops)))
    interpreter = interpreter_for(tflite, delegates=False)
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    conv = ops[0]
    # Input, kernel, bias; the kernel is the int8 (4, 3, 3, 1) weight.
    assert tensors[conv["inputs"][1]]["shape"].tolist() == [4, 3, 3, 1]
    assert tensors[conv["inputs"][1]]["dtype"] == np.int8
    assert conv["outputs"] == ops[1]["inputs"][:1]
    assert conv["inputs"][0] == interpreter.get_input_details()[0]["index"]
    assert ops[-1]["outputs"] == [interpreter.get_output_details()[0][
        "index"]]
