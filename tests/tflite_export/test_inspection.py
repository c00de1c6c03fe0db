"""`inspect`: ops, int8 coverage, weight zeros and sizes of a file."""

import keras
import numpy as np
import pytest

import tflite_export as te
from tflite_export.inspection import check_tflite_bytes
from tflite_export.inspection import interpreter_for


@pytest.fixture(scope="module")
def dense_model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((16,)),
                              keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(4)])
    kernel = model.layers[0].get_weights()[0]
    kernel[:, :16] = 0.0  # half the first kernel
    model.layers[0].set_weights([kernel, model.layers[0].get_weights()[1]])
    return model


def test_float_file_has_no_integer_ops_and_reports_zeros(dense_model):
    inspection = te.inspect(te.convert(dense_model, "float32"))
    assert inspection.int8_coverage == 0.0
    assert [op.name for op in inspection.float_ops].count(
        "FULLY_CONNECTED") == 2
    zeros = sorted(inspection.weight_zero_fraction.values())
    assert zeros[-1] == pytest.approx(0.5)


def test_int8_file_is_all_integer(dense_model):
    x = np.random.default_rng(0).normal(size=(64, 16)).astype("float32")
    inspection = te.inspect(te.convert(dense_model, "int8",
                                       representative_data=x))
    assert inspection.int8_coverage == 1.0
    assert not inspection.float_ops
    assert inspection.to_dict()["size"] == inspection.size


def test_gzip_size_sees_zeros():
    assert te.gzip_size(bytes(1000)) < te.gzip_size(np.random.default_rng(
        0).bytes(1000))


def test_not_bytes_and_not_a_model_are_named(dense_model):
    with pytest.raises(te.ModelFileError, match="of type Sequential"):
        te.inspect(dense_model)
    with pytest.raises(te.ModelFileError, match="a path"):
        check_tflite_bytes("model.tflite")
    with pytest.raises(te.ModelFileError, match="truncated or corrupt"):
        interpreter_for(b"not a flatbuffer")
