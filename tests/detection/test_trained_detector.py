"""Detectors trained on drawn shapes: fit, prune, QAT, export with NMS in
the file, and the file's boxes against Keras's.

Training, export and mAP run on `shapes.tiny_detector` (the head layout of
`ssd_lite` on a small backbone), since training and QAT-tracing
MobileNetV2's graph take minutes. The SSD-lite on MobileNetV2 is built here
for channel groups, saving and the refusals, and `test_losses` trains it;
notebook 06 (also in `make test`) and `benchmarks/detection.py` take it
through pruning and QAT on real photos."""

import keras
import numpy as np
import pytest

import kcompress as kc
import tflite_export as te
from kcompress import detection

from . import shapes

pytestmark = pytest.mark.xdist_group("trained_detector")

EPOCHS = 10


def _fit(model, x, targets, epochs, learning_rate=3e-3, callbacks=()):
    model.compile(keras.optimizers.Adam(learning_rate),
                  loss=[detection.BoxRegressionLoss(),
                        detection.FocalClassLoss()])
    model.fit(x, list(targets), batch_size=32, epochs=epochs, verbose=0,
              callbacks=list(callbacks))
    return model


@pytest.fixture(scope="module")
def data():
    x, truth = shapes.draw(512, seed=0)
    x_test, truth_test = shapes.draw(64, seed=1)
    targets = detection.detection_targets(truth, shapes.anchors(),
                                          shapes.CLASSES)
    return x, targets, x_test, truth_test


@pytest.fixture(scope="module")
def post():
    # A low threshold, so that even a briefly trained model gives boxes.
    return detection.SSDPostProcessing(shapes.anchors(), shapes.CLASSES,
                                       max_detections=8, score_threshold=.2)


@pytest.fixture(scope="module")
def tiny(data):
    keras.utils.set_random_seed(0)
    x, targets, _, _ = data
    return _fit(shapes.tiny_detector(), x, targets, EPOCHS)


@pytest.fixture(scope="module")
def float_file(tiny, post):
    return te.convert(tiny, "float32", postprocess=post)


@pytest.fixture(scope="module")
def mobilenet_ssd():
    """The SSD-lite on MobileNetV2, untrained (weights=None)."""
    keras.utils.set_random_seed(0)
    return detection.ssd_lite(shapes.CLASSES, shapes.anchors())


def _map(model, x, truth, post):
    return detection.mean_average_precision(
        post(*model.predict(x, verbose=0)), truth, shapes.CLASSES)


def test_training_finds_the_shapes(tiny, data, post):
    _, _, x_test, truth_test = data
    keras.utils.set_random_seed(0)
    untrained = shapes.tiny_detector("untrained")
    assert _map(untrained, x_test, truth_test, post) < 0.02
    assert _map(tiny, x_test, truth_test, post) > 0.1


def test_float_file_finds_the_boxes_keras_finds(tiny, data, post,
                                                 float_file):
    _, _, x_test, truth_test = data
    tflite = float_file
    check = te.verify_detections(tflite, tiny, x_test, truth_test, post)
    found = te.run_detections(tflite, x_test)
    assert sum(len(f.scores) for f in found) > len(x_test) / 2
    assert check.matched_share > 0.98 and check.mean_iou > 0.999
    assert abs(check.tflite_map50 - check.keras_map50) < 0.005
    ops = {op.name for op in te.inspect(tflite).ops}
    assert "TFLite_Detection_PostProcess" in ops


def test_pruned_qat_detector_is_int8_and_agrees(tiny, data, post):
    x, targets, x_test, truth_test = data
    steps = 2 * len(x) // 32
    pruned = kc.prune_low_magnitude(
        tiny, kc.pruning.PolynomialDecay(0.0, 0.5, 0, steps // 2,
                                         frequency=4))
    _fit(pruned, x, targets, 2, 1e-3, [kc.pruning.UpdatePruningStep()])
    stripped = kc.strip_pruning(pruned)
    # Depthwise kernels stay dense, as TFMOT leaves them.
    kernels = [layer.kernel for layer in stripped.layers
               if type(layer) is keras.layers.Conv2D]
    zeros = [float(np.mean(keras.ops.convert_to_numpy(k) == 0))
             for k in kernels]
    assert len(kernels) == 9
    assert min(zeros) >= 0.49
    qat = _fit(kc.quantize_model(stripped), x, targets, 1, 5e-4)
    tflite = te.convert(qat, "qat", postprocess=post)
    inspection = te.inspect(tflite)
    floating = {op.name for op in inspection.float_ops}
    assert floating <= {"QUANTIZE", "DEQUANTIZE",
                        "TFLite_Detection_PostProcess"}, floating
    check = te.verify_detections(tflite, qat, x_test, truth_test, post)
    assert abs(check.tflite_map50 - check.keras_map50) <= 0.005
    assert check.matched_share > 0.95


def test_channel_groups_shrink_the_detector(mobilenet_ssd, data):
    x_test = data[2][:8]
    zeroed = kc.pruning.prune_channel_groups(mobilenet_ssd, 0.25)
    small = kc.pruning.shrink(zeroed)
    assert small.count_params() < 0.9 * mobilenet_ssd.count_params()
    for got, want in zip(small.predict(x_test, verbose=0),
                         zeroed.predict(x_test, verbose=0)):
        np.testing.assert_allclose(got, want, atol=1e-4)


def test_detector_saves_and_loads_with_the_same_outputs(mobilenet_ssd, data,
                                                        tmp_path):
    x_test = data[2][:4]
    mobilenet_ssd.save(tmp_path / "detector.keras")
    loaded = keras.saving.load_model(tmp_path / "detector.keras")
    for got, want in zip(loaded.predict(x_test, verbose=0),
                         mobilenet_ssd.predict(x_test, verbose=0)):
        np.testing.assert_allclose(got, want, atol=1e-6)


def test_unrecognised_head_and_bad_truth_are_refused(mobilenet_ssd, tiny, data,
                                                     post, float_file):
    _, _, x_test, truth_test = data
    inputs = keras.Input((shapes.SIZE, shapes.SIZE, 3))
    flat = keras.layers.GlobalAveragePooling2D()(inputs)
    classifier = keras.Model(inputs, keras.layers.Dense(3)(flat))
    with pytest.raises(te.ConversionError, match="does not recognise"):
        te.convert(classifier, "float32", postprocess=post)
    other = detection.SSDPostProcessing(
        detection.AnchorBoxes((64, 64), (16, 32), ((.3,), (.6,)), (1.,)),
        shapes.CLASSES)
    with pytest.raises(te.ConversionError, match="does not recognise"):
        te.convert(mobilenet_ssd, "float32", postprocess=other)
    with pytest.raises(te.ConversionError, match="SSDPostProcessing"):
        te.convert(mobilenet_ssd, "float32", postprocess={"max_detections": 3})
    tflite = float_file
    bad = list(truth_test[:4])
    bad[2] = (np.array([[.1, .1, .5, 1.5]]), np.array([0]))
    with pytest.raises(ValueError, match="outside the image of image 2"):
        te.verify_detections(tflite, tiny, x_test[:4], bad, post)
    with pytest.raises(te.ConversionError, match="not a detector's"):
        te.run_detections(te.convert(classifier, "float32"), x_test[:1])


def test_ptq_detector_has_float_ends_and_int8_inside(tiny, data, post):
    x, _, x_test, truth_test = data
    tflite = te.convert(tiny, "int8", representative_data=x[:64],
                        postprocess=post)
    floating = {op.name for op in te.inspect(tflite).float_ops}
    assert floating <= {"QUANTIZE", "DEQUANTIZE",
                        "TFLite_Detection_PostProcess"}, floating
    check = te.verify_detections(tflite, tiny, x_test, truth_test, post)
    assert check.tflite_map50 > 0.5 * check.keras_map50 > 0
    with pytest.raises(te.ConversionError, match="float_io=False"):
        te.convert(tiny, "int8", representative_data=x[:8],
                   postprocess=post, float_io=False)
