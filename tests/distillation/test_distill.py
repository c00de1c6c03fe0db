import keras
import numpy as np
import pytest

import kcompress as kc
from kcompress import reference


def _compile(distiller):
    distiller.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return distiller


def test_pruned_student_prunes_inside_the_distiller(float_model, digits):
    teacher = float_model
    student = kc.prune_low_magnitude(float_model, kc.pruning.PolynomialDecay(
        0.0, 0.8, begin_step=0, end_step=90, frequency=10))
    distiller = _compile(kc.distillation.distill(student, teacher))
    distiller.fit(digits.x_train, digits.y_train, batch_size=32, epochs=4,
                  verbose=0, callbacks=[kc.pruning.UpdatePruningStep()])
    assert teacher.trainable  # the caller's teacher is not frozen
    stripped = kc.strip_pruning(distiller.student)
    for layer in stripped.layers:
        if hasattr(layer, "kernel"):
            assert abs((layer.kernel.numpy() == 0).mean() - 0.8) <= 0.005
    accuracy = reference.accuracy(stripped, digits.x_test, digits.y_test)
    assert accuracy >= 0.93


def test_qat_student_trains_and_converts(float_model, digits):
    import tflite_export as te

    student = kc.quantize_model(float_model)
    distiller = _compile(kc.distillation.distill(student, float_model,
                                                 temperature=2.0))
    distiller.fit(digits.x_train, digits.y_train, batch_size=32, epochs=1,
                  verbose=0, callbacks=[
                      kc.quantization.FreezeQuantizationRanges(after_step=30)])
    tflite = te.convert(distiller.student, "qat")
    report = te.verify(tflite, distiller.student, digits.x_test,
                       digits.y_test)
    assert report.top1_agreement >= 0.995


def test_teacher_must_be_a_keras_model():
    student = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="teacher of type str. Expected a "
                       "trained keras.Model"):
        kc.distillation.distill(student, "teacher.keras")


def test_output_shapes_must_match():
    student = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    teacher = keras.Sequential([keras.Input((4,)), keras.layers.Dense(5)])
    with pytest.raises(ValueError, match=r"output shapes \[\(5,\)\] and a "
                       r"student with \[\(3,\)\]"):
        kc.distillation.distill(student, teacher)


def test_temperature_must_be_positive():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="temperature=0"):
        kc.distillation.distill(model, model, temperature=0)
