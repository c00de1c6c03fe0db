"""`verify` and `run_tflite`: the file against the Keras model."""

import keras
import numpy as np
import pytest

import tflite_export as te
from tflite_export.verification import quantize
from tflite_export.verification import run_tflite


@pytest.fixture(scope="module")
def model_and_file():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)])
    return model, te.convert(model, "float32")


def _x(n=150):
    return np.random.default_rng(0).normal(size=(n, 6)).astype("float32")


def test_float_file_agrees_with_keras(model_and_file):
    model, tflite = model_and_file
    x = _x()
    y = model.predict(x, verbose=0).argmax(-1)
    check = te.verify(tflite, model, x, y)
    assert check.samples == 150 and check.top1_agreement == 1.0
    assert check.max_abs_diff < 1e-5 and check.max_steps is None
    assert check.keras_accuracy == check.tflite_accuracy == 1.0


def test_run_tflite_batches_like_keras(model_and_file):
    model, tflite = model_and_file
    x = _x(130)  # more than one batch of 64, and a partial one
    outputs, scale = run_tflite(tflite, [x])
    np.testing.assert_allclose(outputs, model.predict(x, verbose=0),
                               atol=1e-5)
    assert scale is None


def test_quantize_rounds_and_clips():
    detail = {"quantization": (0.5, 10), "dtype": np.int8}
    got = quantize(np.array([0.0, 1.24, 1000.0, -1000.0]), detail)
    assert got.tolist() == [10, 12, 127, -128]


def test_api_errors_say_what_was_received(model_and_file):
    model, tflite = model_and_file
    x = _x(4)
    with pytest.raises(te.ModelFileError, match="of type Sequential"):
        te.verify(model, tflite, x)  # swapped
    with pytest.raises(te.ModelFileError, match="a path"):
        te.verify("model.tflite", model, x)
    other = keras.Sequential([keras.Input((6,)), keras.layers.Dense(5)])
    with pytest.raises(te.ConversionError, match="Pass the Keras model the "
                       "file was converted from"):
        te.verify(tflite, other, x)
    two = keras.Model(model.inputs, [model.outputs[0], model.outputs[0]])
    with pytest.raises(te.ConversionError, match="Cannot tell which"):
        te.verify(tflite, two, x)
    with pytest.raises(te.ConversionError, match="one integer label"):
        te.verify(tflite, model, x, y=np.array(["a"] * 4))


def _drifted(tflite, steps):
    """The file with `steps` output quantization steps added to its last
    FULLY_CONNECTED's int32 bias: each output the op writes moves by `steps`
    (by one more or less where the requantization rounds the other way)."""
    from tensorflow.lite.tools import flatbuffer_utils

    from tflite_export.file_bytes import operators
    from tflite_export.inspection import interpreter_for

    interpreter = interpreter_for(tflite, delegates=False)
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    last = [op for op in operators(tflite)
            if op["op_name"] == "FULLY_CONNECTED"][-1]
    data, kernel, bias = last["inputs"]
    bias_scale = (tensors[data]["quantization"][0]
                  * tensors[kernel]["quantization"][0])
    shift = round(steps * tensors[last["outputs"][0]]["quantization"][0]
                  / bias_scale)
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(tflite))
    buffer = model.buffers[model.subgraphs[0].tensors[bias].buffer]
    values = np.frombuffer(bytes(buffer.data), np.int32) + shift
    buffer.data = np.frombuffer(values.astype(np.int32).tobytes(), np.uint8)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


@pytest.mark.parametrize("steps", [1, 3])
def test_verify_reports_a_drift_of_k_steps(steps):
    import kcompress as kc

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8),
                              keras.layers.ReLU(), keras.layers.Dense(3)])
    qat = kc.quantize_model(model)
    x = _x(64)
    qat.compile("adam", "mse")
    qat.fit(x, np.zeros((64, 3)), epochs=1, verbose=0)
    tflite = te.convert(qat, "qat")
    assert te.verify(tflite, qat, x).max_steps == 0
    drifted_file = _drifted(tflite, steps)
    # How far each output really moved, in steps, from the file itself.
    (before, scale), (after, _) = (run_tflite(f, [x])
                                   for f in (tflite, drifted_file))
    moved = np.abs(after - before) / scale
    assert np.median(moved) == pytest.approx(steps)
    drifted = te.verify(drifted_file, qat, x)
    assert drifted.max_steps == pytest.approx(moved.max())
    assert drifted.mean_steps == pytest.approx(moved.mean())
