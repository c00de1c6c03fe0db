"""`detection_targets`: what an SSD head should predict for each anchor.

An anchor is positive for the true box it overlaps most when that IoU is at
least `positive_iou`, and every true box also claims its best anchor (so a
small object is never left without one). Anchors below `negative_iou` are
background; those in between are ignored by the class loss.
"""

import numpy as np

from kcompress.detection.boxes import BOX_SCALES
from kcompress.detection.boxes import check_ground_truth
from kcompress.detection.boxes import encode
from kcompress.detection.boxes import iou

__all__ = ["detection_targets"]


def _corners(anchors):
    cy, cx, h, w = anchors.T
    return np.stack([cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2], -1)


def detection_targets(ground_truth, anchors, num_classes, positive_iou=0.5,
                      negative_iou=0.4, scales=BOX_SCALES):
    """Training targets for the `box_encodings` and `class_scores` outputs.

    Args:
        ground_truth: one `(boxes, classes)` pair per image (boxes
            normalized `(ymin, xmin, ymax, xmax)`, class ids in
            `[0, num_classes)`).
        anchors: an `AnchorBoxes`, or its `(N, 4)` array.
        num_classes: the detector's class count.
        positive_iou: IoU from which an anchor is positive.
        negative_iou: IoU below which an anchor is background.
        scales: the box coding's scales.

    Returns:
        `(box_targets, class_targets)`: `(images, N, 5)`, the encoded box
        and a 1/0 positive flag; `(images, N, num_classes + 1)`, one-hot
        classes (all zero for background) and a 1/0 weight (0: ignored).

    Raises:
        ValueError: bad ground truth (`boxes.check_ground_truth`), or
            thresholds out of order.
    """
    if not 0 < negative_iou <= positive_iou <= 1:
        raise ValueError(
            f"Received: negative_iou={negative_iou}, positive_iou="
            f"{positive_iou}. Expected 0 < negative_iou <= positive_iou "
            "<= 1.")
    anchors = anchors.boxes() if hasattr(anchors, "boxes") else np.asarray(
        anchors, np.float32)
    corners = _corners(anchors)
    count = len(anchors)
    box_targets = np.zeros((len(ground_truth), count, 5), np.float32)
    class_targets = np.zeros((len(ground_truth), count, num_classes + 1),
                             np.float32)
    for i, (boxes, classes) in enumerate(ground_truth):
        boxes, classes = check_ground_truth(boxes, classes, num_classes, i)
        overlap = iou(boxes, corners)  # (k, N)
        best_box = overlap.argmax(0)
        best_iou = overlap.max(0)
        positive = best_iou >= positive_iou
        claimed = overlap.argmax(1)
        positive[claimed] = True
        best_box[claimed] = np.arange(len(boxes))
        box_targets[i, :, :4] = encode(boxes[best_box], anchors, scales)
        box_targets[i, :, 4] = positive
        box_targets[i, ~positive, :4] = 0
        class_targets[i, positive, classes[best_box[positive]]] = 1
        class_targets[i, :, -1] = positive | (best_iou < negative_iou)
    return box_targets, class_targets
