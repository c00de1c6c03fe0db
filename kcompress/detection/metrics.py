"""Detection metrics: mean average precision and detection agreement.

`mean_average_precision` is COCO's: for each class, precision is made
monotone and read at 101 recall points; the mean runs over the classes
that have true boxes, and over IoU thresholds 0.5:0.95 for `mAP@0.5:0.95`.
`agreement` compares two detectors' boxes image by image (Keras against its
`.tflite` file): the share of boxes matched, same class, at IoU >= 0.5, and
the mean IoU of the matched pairs.
"""

import numpy as np

from kcompress.detection.boxes import check_ground_truth
from kcompress.detection.boxes import iou

__all__ = ["COCO_IOUS", "agreement", "average_precision",
           "mean_average_precision"]

COCO_IOUS = tuple(np.round(np.arange(0.5, 0.96, 0.05), 2))


def average_precision(scores, matched, positives):
    """COCO's 101-point AP of ranked detections.

    >>> average_precision([.9, .8], [True, False], positives=1)
    1.0
    """
    if positives == 0:
        return float("nan")
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    hits = np.asarray(matched, bool)[order]
    true = np.cumsum(hits)
    recall = true / positives
    precision = true / np.arange(1, len(hits) + 1)
    # Monotone precision: the best at any higher recall.
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    at = np.searchsorted(recall, np.linspace(0, 1, 101), side="left")
    values = np.zeros(101)
    reached = at < len(precision)
    values[reached] = precision[at[reached]]
    return float(np.mean(values))


def _matches(found, boxes, classes, threshold):
    """For each detection (best first), whether it matches a free true box
    of its class at `threshold`."""
    taken = np.zeros(len(boxes), bool)
    hits = np.zeros(len(found.scores), bool)
    overlap = iou(found.boxes, boxes) if len(found.scores) else None
    for i in np.argsort(-found.scores, kind="stable"):
        same = (classes == found.classes[i]) & ~taken
        if not same.any():
            continue
        candidates = np.where(same, overlap[i], -1)
        j = int(candidates.argmax())
        if candidates[j] >= threshold:
            taken[j] = hits[i] = True
    return hits


def _check_classes(classes, num_classes):
    if len(classes) and (classes.min() < 0 or classes.max() >= num_classes):
        raise ValueError(
            f"Received: detections of classes "
            f"{sorted(set(np.asarray(classes).tolist()))}. Expected class ids "
            f"in [0, {num_classes}).")


def mean_average_precision(detections, ground_truth, num_classes,
                           iou_thresholds=(0.5,)):
    """mAP of `detections` (a `Detections` per image) against the truth.

    Args:
        detections: `SSDPostProcessing`'s output, one entry per image.
        ground_truth: one `(boxes, classes)` pair per image.
        num_classes: the detector's class count.
        iou_thresholds: IoUs to average over (`COCO_IOUS` for 0.5:0.95).

    Returns:
        mAP in [0, 1].
    """
    if len(detections) != len(ground_truth):
        raise ValueError(
            f"Received: {len(detections)} images of detections and "
            f"{len(ground_truth)} of ground truth. Expected the same images.")
    truth = [check_ground_truth(b, c, num_classes, i)
             for i, (b, c) in enumerate(ground_truth)]
    per_threshold = []
    for threshold in iou_thresholds:
        scores = [[] for _ in range(num_classes)]
        hits = [[] for _ in range(num_classes)]
        for found, (boxes, classes) in zip(detections, truth):
            _check_classes(found.classes, num_classes)
            matched = _matches(found, boxes, classes, threshold)
            for c, s, m in zip(found.classes, found.scores, matched):
                scores[c].append(s)
                hits[c].append(m)
        counts = np.bincount(np.concatenate([c for _, c in truth]),
                             minlength=num_classes)
        aps = [average_precision(scores[c], hits[c], counts[c])
               for c in range(num_classes) if counts[c]]
        per_threshold.append(np.mean(aps))
    return float(np.mean(per_threshold))


def agreement(reference, other, threshold=0.5):
    """How `other`'s detections match `reference`'s, image by image.

    Returns:
        `(matched share, mean IoU of the matched pairs)`: the share of
        boxes of both detectors that found a same-class partner at IoU >=
        `threshold` in the other's (1.0 when both found nothing).
    """
    matched_pairs, ious, total = 0, [], 0
    for a, b in zip(reference, other):
        total += len(a.scores) + len(b.scores)
        if not len(a.scores) or not len(b.scores):
            continue
        overlap = iou(a.boxes, b.boxes)
        overlap[a.classes[:, None] != b.classes[None, :]] = 0
        taken = np.zeros(len(b.scores), bool)
        for i in range(len(a.scores)):
            candidates = np.where(taken, -1, overlap[i])
            j = int(candidates.argmax())
            if candidates[j] >= threshold:
                taken[j] = True
                matched_pairs += 1
                ious.append(float(candidates[j]))
    share = 2 * matched_pairs / total if total else 1.0
    return share, float(np.mean(ious)) if ious else float("nan")
