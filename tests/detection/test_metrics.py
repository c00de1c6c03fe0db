"""mAP and detection agreement, against hand-worked cases."""

import numpy as np
import pytest

from kcompress.detection import COCO_IOUS
from kcompress.detection import Detections
from kcompress.detection import agreement
from kcompress.detection import mean_average_precision


def _found(boxes, classes, scores):
    return Detections(np.asarray(boxes, np.float32).reshape(-1, 4),
                      np.asarray(classes, np.int32),
                      np.asarray(scores, np.float32))


TRUTH = [(np.array([[.1, .1, .4, .4], [.5, .5, .9, .9]]), np.array([0, 1])),
         (np.array([[.2, .2, .6, .6]]), np.array([0]))]


def test_perfect_detections_score_one():
    found = [_found(b, c, np.ones(len(c))) for b, c in TRUTH]
    assert mean_average_precision(found, TRUTH, 2) == pytest.approx(1.0)
    assert mean_average_precision(found, TRUTH, 2, COCO_IOUS) == (
        pytest.approx(1.0))


def test_nothing_found_scores_zero_and_wrong_class_misses():
    empty = [_found(np.zeros((0, 4)), [], []) for _ in TRUTH]
    assert mean_average_precision(empty, TRUTH, 2) == 0.0
    swapped = [_found(b, 1 - c, np.ones(len(c))) for b, c in TRUTH]
    assert mean_average_precision(swapped, TRUTH, 2) == 0.0


def test_a_shifted_box_counts_at_05_but_not_at_095():
    shifted = [_found(b + .02, c, np.ones(len(c))) for b, c in TRUTH]
    assert mean_average_precision(shifted, TRUTH, 2) == pytest.approx(1.0)
    strict = mean_average_precision(shifted, TRUTH, 2, COCO_IOUS)
    assert 0.1 < strict < 1.0


def test_a_false_positive_ranked_first_costs_precision():
    found = [_found([[.6, .0, .7, .1], *TRUTH[0][0]], [0, 0, 1],
                    [.99, .5, .5]), _found(TRUTH[1][0], [0], [.5])]
    # Class 0: ranks FP, TP, TP -> AP = (2/3 over recall (0, 1]) ~ 0.67.
    value = mean_average_precision(found, TRUTH, 2)
    assert value == pytest.approx((1.0 + 2 / 3) / 2, abs=0.01)


def test_agreement_counts_same_class_overlapping_boxes():
    a = [_found([[.1, .1, .5, .5], [.6, .6, .9, .9]], [0, 1], [.9, .8])]
    b = [_found([[.11, .1, .5, .5], [.6, .6, .9, .9]], [0, 0], [.9, .8])]
    share, mean_iou = agreement(a, b)
    assert share == pytest.approx(0.5)  # one of two pairs, same class
    assert 0.9 < mean_iou < 1.0
    assert agreement([_found(np.zeros((0, 4)), [], [])],
                     [_found(np.zeros((0, 4)), [], [])]) == (1.0,
                                                           pytest.approx(
                                                               np.nan,
                                                               nan_ok=True))


def test_mismatched_image_counts_are_refused():
    with pytest.raises(ValueError, match="same images"):
        mean_average_precision([], TRUTH, 2)
