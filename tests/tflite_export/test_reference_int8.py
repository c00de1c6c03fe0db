"""Issue acceptance: QAT, PTQ and pruning-preserving QAT on the digits CNN."""

import keras
import pytest

import kcompress as kc
import tflite_export as te
from kcompress_demo import reference

TFMOT_QAT_ACCURACY = 0.9722
QAT_EPOCHS = 5


def _assert_int8_everywhere(tflite):
    report = te.inspect(tflite)
    names = [op.name for op in report.ops]
    assert names[0] == "QUANTIZE" and names[-1] == "DEQUANTIZE"
    assert [op.name for op in report.float_ops] == ["QUANTIZE", "DEQUANTIZE"]
    return report


def _assert_agreement(report):
    assert report.top1_agreement >= 0.995
    assert round(report.max_steps, 3) <= 2


def _qat(model, digits, epochs=QAT_EPOCHS):
    qat = reference.compile_reference(kc.quantize_model(model))
    qat.fit(digits.x_train, digits.y_train, batch_size=32, epochs=epochs,
            verbose=0)
    return qat


@pytest.fixture(scope="module")
def float32_size(_trained_float):
    model = keras.saving.load_model(_trained_float[0])
    return len(te.convert(model, "float32"))


def test_qat_int8_matches_keras_and_float(float_model, float_accuracy,
                                          digits):
    qat = _qat(float_model, digits)
    tflite = te.convert(qat, "qat")
    _assert_int8_everywhere(tflite)
    report = te.verify(tflite, qat, digits.x_test, digits.y_test)
    _assert_agreement(report)
    assert report.tflite_accuracy >= float_accuracy - 0.005
    assert report.tflite_accuracy >= TFMOT_QAT_ACCURACY


def test_untrained_calibrated_qat_scores_like_float(float_model,
                                                   float_accuracy, digits):
    qat = kc.quantize_model(float_model,
                            calibration_data=digits.x_train[:256])
    accuracy = reference.accuracy(qat, digits.x_test, digits.y_test)
    assert accuracy >= float_accuracy - 0.01


def test_ptq_int8(float_model, float_accuracy, float32_size, digits):
    tflite = te.convert(float_model, "int8",
                        representative_data=digits.x_train)
    report = te.verify(tflite, float_model, digits.x_test, digits.y_test)
    assert report.tflite_accuracy >= float_accuracy - 0.01
    assert len(tflite) <= 0.28 * float32_size
    assert te.inspect(tflite).int8_coverage == 1.0


def test_pruning_preserving_qat(float_model, digits, float32_size,
                                steps_per_epoch):
    schedule = kc.pruning.PolynomialDecay(
        0.0, 0.8, begin_step=0, end_step=int(steps_per_epoch * 7),
        frequency=10)
    pruned = reference.compile_reference(
        kc.prune_low_magnitude(float_model, schedule))
    pruned.fit(digits.x_train, digits.y_train, batch_size=32, epochs=10,
               verbose=0, callbacks=[kc.pruning.UpdatePruningStep()])
    qat = _qat(pruned, digits)
    tflite = te.convert(qat, "qat")
    report = _assert_int8_everywhere(tflite)
    kernels = [v for k, v in report.weight_zero_fraction.items()]
    assert len(kernels) == 5
    assert min(kernels) >= 0.795
    assert report.gzip_size <= 0.09 * float32_size
    _assert_agreement(te.verify(tflite, qat, digits.x_test, digits.y_test))


def mobilenet_style(seed=0):
    L = keras.layers
    keras.utils.set_random_seed(seed)

    def block(x, filters, stride):
        y = L.DepthwiseConv2D(3, strides=stride, padding="same",
                              use_bias=False)(x)
        y = L.ReLU(6.0)(L.BatchNormalization()(y))
        y = L.Conv2D(filters, 1, use_bias=False)(y)
        return L.ReLU(6.0)(L.BatchNormalization()(y))

    inputs = keras.Input((8, 8, 1))
    x = L.Conv2D(16, 3, padding="same", use_bias=False)(inputs)
    x = L.ReLU(6.0)(L.BatchNormalization()(x))
    x = block(x, 16, 1)
    x = L.Add()([x, block(x, 16, 1)])
    x = block(x, 32, 2)
    x = L.Dropout(0.1)(L.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, L.Dense(10)(x), name="mobilenet_style")


def test_mobilenet_style_qat(digits):
    model = reference.compile_reference(mobilenet_style())
    model.fit(digits.x_train, digits.y_train, batch_size=32, epochs=10,
              verbose=0)
    qat = reference.compile_reference(kc.quantize_model(model))
    qat.fit(digits.x_train, digits.y_train, batch_size=32, epochs=3,
            verbose=0, callbacks=[
                kc.quantization.FreezeBatchNormStatistics(after_step=90)])
    tflite = te.convert(qat, "qat")
    _assert_int8_everywhere(tflite)
    report = te.verify(tflite, qat, digits.x_test, digits.y_test)
    _assert_agreement(report)
    assert report.tflite_accuracy >= 0.85
