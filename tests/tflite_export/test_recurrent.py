"""LSTM and GRU models: fixed batch sizes, builtin ops, QAT, clear refusals."""

import warnings

import keras
import numpy as np
import pytest

import kcompress as kc
import tflite_export
from tflite_export.conversion import ConversionError


def _recurrent(cell, batch_size=None):
    inputs = keras.Input((6, 4), batch_size=batch_size)
    x = getattr(keras.layers, cell)(8, name=cell.lower())(inputs)
    outputs = keras.layers.Dense(3, name="head")(x)
    return keras.Model(inputs, outputs, name=f"{cell.lower()}_model")


def _x(count=4):
    return np.random.default_rng(0).normal(size=(count, 6, 4)).astype(
        "float32")


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_fixed_batch_size_converts_to_builtin_ops(cell):
    model = _recurrent(cell)
    tflite = tflite_export.convert(model, "float32", batch_size=1)
    ops = {op.name for op in tflite_export.inspect(tflite).ops}
    assert "FlexTensorListReserve" not in ops and "WHILE" in ops
    check = tflite_export.verify(tflite, model, _x())
    assert check.max_abs_diff < 1e-4


def test_dynamic_batch_recurrent_model_gets_the_way_out():
    with pytest.raises(ConversionError, match=r"\['lstm'\] and a dynamic "
                       "batch size.*batch_size=1"):
        tflite_export.convert(_recurrent("LSTM"), "float32")


def test_calibrated_int8_of_recurrent_model_is_refused_not_crashed():
    model = _recurrent("GRU", batch_size=1)
    with pytest.raises(ConversionError, match=r"mode='int8'.*\['gru'\].*"
                       "Use mode 'qat'"):
        tflite_export.convert(model, "int8", representative_data=_x())


def test_qat_keeps_the_recurrent_layer_float_and_the_rest_int8():
    model = _recurrent("GRU", batch_size=1)
    with pytest.warns(UserWarning, match="left these layers in float.*gru"):
        qat = kc.quantization.quantize_model(model, calibration_data=_x())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # The WHILE loop stays float.
        tflite = tflite_export.convert(qat, "qat")
    ops = tflite_export.inspect(tflite).ops
    assert [op.integer for op in ops if op.name == "FULLY_CONNECTED"] == [
        True]
    check = tflite_export.verify(tflite, qat, _x())
    assert check.max_steps <= 1.0


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "1"])
def test_bad_batch_size_is_refused(bad):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(ConversionError, match=f"Received: batch_size={bad!r}"
                       ".*integer >= 1"):
        tflite_export.convert(model, "float32", batch_size=bad)


def test_fixed_batch_file_refuses_a_ragged_sample_count():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    tflite = tflite_export.convert(model, "float32", batch_size=2)
    x = np.ones((3, 3), "float32")
    with pytest.raises(ConversionError, match="3 samples.*fixed batch size "
                       "of 2"):
        tflite_export.verify(tflite, model, x)
    assert tflite_export.verify(tflite, model, x[:2]).max_abs_diff < 1e-5
