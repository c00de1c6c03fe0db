"""Boxes: checks, intersection over union, and the SSD box coding.

Boxes are `(ymin, xmin, ymax, xmax)` normalized to the image, the layout
TFLite's detection outputs use. The coding is that of
`TFLite_Detection_PostProcess` (and the TF Object Detection API): against
an anchor `(ya, xa, ha, wa)`, a box of centre `(y, x)` and size `(h, w)` is
`((y - ya) / ha * sy, (x - xa) / wa * sx, log(h / ha) * sh, log(w / wa) *
sw)` with the scales `(sy, sx, sh, sw)`, by default `(10, 10, 5, 5)`.
Everything here is numpy: it runs on the data, outside the model.
"""

import numpy as np

__all__ = ["BOX_SCALES", "check_ground_truth", "decode", "encode", "iou"]

BOX_SCALES = (10.0, 10.0, 5.0, 5.0)


def check_ground_truth(boxes, classes, num_classes, index=None):
    """One image's true boxes and classes, checked.

    Args:
        boxes: `(k, 4)` normalized `(ymin, xmin, ymax, xmax)`.
        classes: `(k,)` integer class ids in `[0, num_classes)`.
        num_classes: the detector's class count.
        index: the image's index, for the error messages.

    Returns:
        `(boxes float32, classes int32)`.

    Raises:
        ValueError: an image without boxes, a box outside the image or
            empty, or a class id out of range.
    """
    where = "" if index is None else f" of image {index}"
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4) if np.size(
        boxes) else np.zeros((0, 4), np.float32)
    classes = np.asarray(classes).reshape(-1)
    if not len(boxes):
        raise ValueError(
            f"Received: no boxes{where}. Expected at least one true box per "
            "image: leave images without objects out of the detection set.")
    if len(classes) != len(boxes):
        raise ValueError(
            f"Received: {len(boxes)} boxes and {len(classes)} class ids"
            f"{where}. Expected one class id per box.")
    if classes.dtype.kind not in "iu" or classes.min() < 0 or (
            classes.max() >= num_classes):
        raise ValueError(
            f"Received: class ids {sorted(set(classes.tolist()))}{where}. "
            f"Expected integers in [0, {num_classes}).")
    if not np.all(np.isfinite(boxes)) or boxes.min() < 0 or boxes.max() > 1:
        raise ValueError(
            f"Received: a box outside the image{where} "
            f"({boxes[np.argmax(np.abs(boxes - .5).max(-1))].tolist()}). "
            "Expected (ymin, xmin, ymax, xmax) normalized to [0, 1].")
    if np.any(boxes[:, 2] <= boxes[:, 0]) or np.any(
            boxes[:, 3] <= boxes[:, 1]):
        raise ValueError(
            f"Received: an empty box{where}. Expected ymin < ymax and "
            "xmin < xmax.")
    return boxes, classes.astype(np.int32)


def iou(a, b):
    """Intersection over union of every box of `a` with every box of `b`.

    >>> iou([[0, 0, 1, 1]], [[0, 0, 1, .5], [2, 2, 3, 3]]).round(2)
    array([[0.5, 0. ]], dtype=float32)
    """
    a = np.asarray(a, np.float32).reshape(-1, 4)
    b = np.asarray(b, np.float32).reshape(-1, 4)
    top = np.maximum(a[:, None, 0], b[None, :, 0])
    left = np.maximum(a[:, None, 1], b[None, :, 1])
    bottom = np.minimum(a[:, None, 2], b[None, :, 2])
    right = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(bottom - top, 0, None) * np.clip(right - left, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12),
                    0).astype(np.float32)


def encode(boxes, anchors, scales=BOX_SCALES):
    """Box regression targets of `boxes` against `anchors` (same count).

    >>> anchors = np.array([[.5, .5, .2, .2]])
    >>> decode(encode([[.4, .4, .6, .7]], anchors), anchors).round(3)
    array([[0.4, 0.4, 0.6, 0.7]], dtype=float32)
    """
    boxes = np.asarray(boxes, np.float32)
    anchors = np.asarray(anchors, np.float32)
    h = np.maximum(boxes[:, 2] - boxes[:, 0], 1e-6)
    w = np.maximum(boxes[:, 3] - boxes[:, 1], 1e-6)
    y = boxes[:, 0] + h / 2
    x = boxes[:, 1] + w / 2
    sy, sx, sh, sw = scales
    return np.stack([(y - anchors[:, 0]) / anchors[:, 2] * sy,
                     (x - anchors[:, 1]) / anchors[:, 3] * sx,
                     np.log(h / anchors[:, 2]) * sh,
                     np.log(w / anchors[:, 3]) * sw], -1).astype(np.float32)


def decode(encodings, anchors, scales=BOX_SCALES):
    """Boxes `(ymin, xmin, ymax, xmax)` from regressions against anchors."""
    encodings = np.asarray(encodings, np.float32)
    anchors = np.asarray(anchors, np.float32)
    sy, sx, sh, sw = scales
    y = encodings[..., 0] / sy * anchors[:, 2] + anchors[:, 0]
    x = encodings[..., 1] / sx * anchors[:, 3] + anchors[:, 1]
    h = np.exp(encodings[..., 2] / sh) * anchors[:, 2]
    w = np.exp(encodings[..., 3] / sw) * anchors[:, 3]
    return np.stack([y - h / 2, x - w / 2, y + h / 2, x + w / 2],
                    -1).astype(np.float32)
