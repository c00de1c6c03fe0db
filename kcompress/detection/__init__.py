"""Object detection: an SSD-lite head, its training targets and losses,
box decoding with non-maximum suppression, and mean average precision.

A detector is an ordinary Keras model with two outputs, `box_encodings`
and `class_scores`, so pruning and QAT wrap it and train it in `fit` as
any other model::

    anchors = kc.detection.AnchorBoxes((96, 96), (16, 32),
                                       ((.2, .35), (.5, .8)), (1., .5, 2.))
    model = kc.detection.ssd_lite(num_classes=4, anchors=anchors)
    boxes, classes = kc.detection.detection_targets(truth, anchors, 4)
    model.compile("adam", loss=[kc.detection.BoxRegressionLoss(),
                                kc.detection.FocalClassLoss()])
    model.fit(images, [boxes, classes])
    post = kc.detection.SSDPostProcessing(anchors, num_classes=4)
    found = post(*model.predict(images))
    kc.detection.mean_average_precision(found, truth, 4)

`tflite_export.convert(model, "qat", postprocess=post)` puts the same
decoding and NMS in the file as LiteRT's `TFLite_Detection_PostProcess`.
"""

from kcompress.detection.anchors import AnchorBoxes
from kcompress.detection.boxes import check_ground_truth
from kcompress.detection.boxes import decode
from kcompress.detection.boxes import encode
from kcompress.detection.boxes import iou
from kcompress.detection.detector import BOX_OUTPUT
from kcompress.detection.detector import SCORE_OUTPUT
from kcompress.detection.detector import ssd_lite
from kcompress.detection.losses import BoxRegressionLoss
from kcompress.detection.losses import FocalClassLoss
from kcompress.detection.metrics import COCO_IOUS
from kcompress.detection.metrics import agreement
from kcompress.detection.metrics import mean_average_precision
from kcompress.detection.postprocess import Detections
from kcompress.detection.postprocess import SSDPostProcessing
from kcompress.detection.targets import detection_targets

__all__ = ["AnchorBoxes", "BOX_OUTPUT", "BoxRegressionLoss", "COCO_IOUS",
           "Detections", "FocalClassLoss", "SCORE_OUTPUT",
           "SSDPostProcessing", "agreement", "check_ground_truth", "decode",
           "detection_targets", "encode", "iou", "mean_average_precision",
           "ssd_lite"]
