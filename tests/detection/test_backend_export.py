"""A detector of whatever backend this run uses exports with NMS in the file
(JAX and PyTorch models convert in a TensorFlow child) and the file finds
the boxes Keras finds. `make test`'s JAX pass includes this file."""

import tflite_export as te
from kcompress import detection

from . import shapes


def test_detector_exports_with_nms_on_this_backend():
    x, truth = shapes.draw(16, seed=0)
    model = detection.ssd_lite(shapes.CLASSES, shapes.anchors())
    # Untrained scores sit near 0.5: a low threshold keeps boxes to compare.
    post = detection.SSDPostProcessing(shapes.anchors(), shapes.CLASSES,
                                       max_detections=5, score_threshold=.01)
    tflite = te.convert(model, "float32", postprocess=post)
    found = te.run_detections(tflite, x)
    assert all(len(f.scores) == 5 for f in found)
    check = te.verify_detections(tflite, model, x, truth, post)
    assert check.matched_share > 0.95 and check.mean_iou > 0.999
