"""int8 files of models built from composite (subclassed) layers: every
convolution and matmul inside the blocks runs in int8, and the QAT file
answers as the Keras model does."""

import keras
import numpy as np
import pytest

import kcompress as kc
import tflite_export as te
from tests._composite_blocks import blocks_model

_COMPUTE = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED",
            "BATCH_MATMUL")
_X = np.random.default_rng(0).uniform(size=(48, 16, 16, 3)).astype("float32")
_Y = np.random.default_rng(1).integers(0, 10, size=48)


@pytest.mark.parametrize("no_build", [False, True])
def test_qat_file_of_composite_blocks_is_int8_and_equals_keras(no_build):
    qat = kc.quantize_model(blocks_model(no_build))
    qat.compile("adam", keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    qat.fit(_X, _Y, epochs=1, batch_size=16, verbose=0)
    tflite = te.convert(qat, "qat")
    compute = [op for op in te.inspect(tflite).ops if op.name in _COMPUTE]
    assert len(compute) == 6  # 3 convolutions, 2 SE projections, the head
    assert all(op.integer for op in compute), [
        op.name for op in compute if not op.integer]
    report = te.verify(tflite, qat, _X)
    assert report.top1_agreement == 1.0
    assert report.max_steps <= 2


def test_int8_ptq_file_of_composite_blocks_loads_and_agrees():
    model = blocks_model(True)
    tflite = te.convert(model, "int8", representative_data=_X)
    compute = [op for op in te.inspect(tflite).ops if op.name in _COMPUTE]
    assert compute and all(op.integer for op in compute)
    report = te.verify(tflite, model, _X)
    assert report.top1_agreement >= 0.9
