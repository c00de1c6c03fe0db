"""`SSDPostProcessing`: box decoding and non-maximum suppression.

The same steps, with the same settings, run in two places: here in numpy
on a Keras model's `box_encodings` and `class_scores` (to score the Keras
model), and in the `.tflite` file as LiteRT's `TFLite_Detection_PostProcess`
op, which `tflite_export.convert(..., postprocess=...)` appends. Its
"fast" NMS (`use_regular_nms=false`, the op's default and the one mobile
SSDs ship) keeps each anchor's best class, drops scores under
`score_threshold`, and suppresses, across classes, any box overlapping a
higher-scoring kept box by more than `iou_threshold`.
"""

import dataclasses

import keras
import numpy as np

from kcompress.detection.anchors import AnchorBoxes
from kcompress.detection.boxes import BOX_SCALES
from kcompress.detection.boxes import decode
from kcompress.detection.boxes import iou

__all__ = ["Detections", "SSDPostProcessing"]


@dataclasses.dataclass
class Detections:
    """One image's detections, best first: `boxes` `(k, 4)` normalized
    `(ymin, xmin, ymax, xmax)`, `classes` `(k,)` and `scores` `(k,)`."""

    boxes: np.ndarray
    classes: np.ndarray
    scores: np.ndarray


def _check_fraction(name, value, low_open=False):
    value = float(value)
    if not (0 < value <= 1 if low_open else 0 <= value < 1):
        interval = "(0, 1]" if low_open else "[0, 1)"
        raise ValueError(f"Received: {name}={value}. Expected a float in "
                         f"{interval}.")
    return value


@keras.saving.register_keras_serializable(package="kcompress")
class SSDPostProcessing:
    """Decodes an SSD head's outputs into final detections.

    Args:
        anchors: the detector's `AnchorBoxes`.
        num_classes: classes the `class_scores` output scores (no
            background column).
        max_detections: boxes kept per image.
        score_threshold: the lowest score kept.
        iou_threshold: the overlap above which a lower box is suppressed.
        box_scales: the box coding's `(y, x, h, w)` scales.

    Example:

    >>> anchors = AnchorBoxes((32, 32), (16,), ((0.5,),))
    >>> post = SSDPostProcessing(anchors, num_classes=2, max_detections=2)
    >>> scores = np.zeros((1, 4, 2), np.float32); scores[0, 3, 1] = 0.9
    >>> found = post(np.zeros((1, 4, 4), np.float32), scores)[0]
    >>> found.boxes.round(2), found.classes, found.scores
    (array([[0.5, 0.5, 1. , 1. ]], dtype=float32), array([1], dtype=int32), \
array([0.9], dtype=float32))
    """

    def __init__(self, anchors, num_classes, max_detections=10,
                 score_threshold=0.3, iou_threshold=0.5,
                 box_scales=BOX_SCALES):
        if isinstance(anchors, dict):
            anchors = AnchorBoxes.from_config(anchors)
        if not isinstance(anchors, AnchorBoxes):
            raise ValueError(f"Received: anchors of type "
                             f"{type(anchors).__name__}. Expected an "
                             "AnchorBoxes.")
        self.anchors = anchors
        self.num_classes = int(num_classes)
        self.max_detections = int(max_detections)
        if self.num_classes < 1 or self.max_detections < 1:
            raise ValueError(
                f"Received: num_classes={num_classes}, max_detections="
                f"{max_detections}. Expected positive integers.")
        self.score_threshold = _check_fraction("score_threshold",
                                               score_threshold)
        self.iou_threshold = _check_fraction("iou_threshold", iou_threshold,
                                             low_open=True)
        self.box_scales = tuple(float(s) for s in box_scales)

    def __call__(self, box_encodings, class_scores):
        """Detections for a batch: `(batch, N, 4)` and `(batch, N, C)`."""
        anchor_boxes = self.anchors.boxes()
        box_encodings = np.asarray(box_encodings, np.float32)
        class_scores = np.asarray(class_scores, np.float32)
        expected = (len(anchor_boxes), self.num_classes)
        if box_encodings.shape[1:] != (expected[0], 4) or (
                class_scores.shape[1:] != expected):
            raise ValueError(
                f"Received: box_encodings {box_encodings.shape[1:]} and "
                f"class_scores {class_scores.shape[1:]} per image. Expected "
                f"({expected[0]}, 4) and {expected}: the anchors and classes "
                "this post-processing was built with.")
        return [self._one(boxes, scores, anchor_boxes) for boxes, scores in
                zip(box_encodings, class_scores)]

    def _one(self, encodings, scores, anchor_boxes):
        best = scores.max(-1)
        classes = scores.argmax(-1).astype(np.int32)
        candidates = np.flatnonzero(best >= self.score_threshold)
        order = candidates[np.argsort(-best[candidates], kind="stable")]
        boxes = decode(encodings[order], anchor_boxes[order],
                       self.box_scales)
        keep = []
        for i in range(len(order)):
            if len(keep) == self.max_detections:
                break
            if keep and iou(boxes[i], boxes[keep]).max() > self.iou_threshold:
                continue
            keep.append(i)
        return Detections(boxes[keep].reshape(-1, 4), classes[order][keep],
                          best[order][keep])

    def get_config(self):
        return {"anchors": self.anchors.get_config(),
                "num_classes": self.num_classes,
                "max_detections": self.max_detections,
                "score_threshold": self.score_threshold,
                "iou_threshold": self.iou_threshold,
                "box_scales": list(self.box_scales)}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
