"""Several outputs: each matched to the file's tensor by name, never by
position, through `verify`, the command and the report."""

import json

import keras
import numpy as np
import pytest

import kcompress as kc
import tflite_export as te
from tflite_export.inspection import interpreter_for
from tflite_export.output_matching import match_outputs
from tflite_export.output_matching import signature_outputs

from .helpers import cli


def _two_outputs(name="two_heads"):
    """Two outputs of the same shape whose names sort the other way."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(8, activation="relu")(inputs)
    first = keras.layers.Dense(3, name="z_scores")(hidden)
    second = keras.layers.Dense(3, name="a_boxes")(hidden)
    return keras.Model(inputs, [first, second], name=name)


def _x(n=40):
    return np.random.default_rng(1).normal(size=(n, 6)).astype("float32")


@pytest.fixture(scope="module")
def reordered():
    model = _two_outputs()
    tflite = te.convert(model, "float32")
    interpreter = interpreter_for(tflite)
    # The converter sorts the signature's outputs: the file's first output
    # is Keras's second. Matching by position would mix them up.
    first = interpreter.get_output_details()[0]["index"]
    assert signature_outputs(interpreter)["a_boxes"] == first
    return model, tflite


def test_outputs_reordered_by_the_converter_are_matched_by_name(reordered):
    model, tflite = reordered
    check = te.verify(tflite, model, _x())
    assert [o.name for o in check.outputs] == ["z_scores", "a_boxes"]
    for output in check.outputs:
        assert output.max_abs_diff < 1e-5 and output.top1_agreement == 1.0
    interpreter = interpreter_for(tflite)
    details = match_outputs(interpreter, model)
    by_name = signature_outputs(interpreter)
    assert [d["index"] for d in details] == [by_name["z_scores"],
                                             by_name["a_boxes"]]


def test_qat_two_output_model_reports_steps_per_output():
    model = _two_outputs("qat_two")
    qat = kc.quantize_model(model)
    qat.compile("adam", ["mse", "mse"])
    x = _x(64)
    qat.fit(x, [np.zeros((64, 3)), np.ones((64, 3))], epochs=1, verbose=0)
    check = te.verify(te.convert(qat, "qat"), qat, x)
    assert len(check.outputs) == 2
    for output in check.outputs:
        assert output.output_scale and output.max_steps <= 1.0


def test_shape_mismatch_and_labels_for_several_outputs(reordered):
    model, tflite = reordered
    inputs = keras.Input((6,))
    other = keras.Model(inputs, [keras.layers.Dense(3, name="z_scores")(
        inputs), keras.layers.Dense(4, name="a_boxes")(inputs)])
    with pytest.raises(te.ConversionError, match="'a_boxes'.*\\(4,\\)"):
        te.verify(tflite, other, _x(4))
    with pytest.raises(te.ConversionError, match="labels y for model"):
        te.verify(tflite, model, _x(4), y=np.zeros(4, int))


def test_command_and_report_give_one_row_per_output(reordered, tmp_path):
    model, _ = reordered
    model.save(tmp_path / "two.keras")
    np.savez(tmp_path / "data.npz", x=_x(), y=np.zeros(40, int))
    done = cli("convert", str(tmp_path / "two.keras"), "--mode=float32",
               f"--verify={tmp_path / 'data.npz'}",
               f"--out={tmp_path / 'two.tflite'}")
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "two.report.json").read_text())
    outputs = report["verification"]["outputs"]
    assert [o["name"] for o in outputs] == ["z_scores", "a_boxes"]
    assert all(o["max_abs_diff"] < 1e-5 for o in outputs)
    markdown = (tmp_path / "two.report.md").read_text()
    assert "| output z_scores (3,) float32 |" in markdown
    assert "| output a_boxes (3,) float32 |" in markdown
    done = cli("report", str(tmp_path / "two.tflite"))
    assert done.returncode == 0 and "two.tflite" in done.stdout
