"""Box coding, IoU, anchors and training targets."""

import numpy as np
import pytest

from kcompress.detection import AnchorBoxes
from kcompress.detection import check_ground_truth
from kcompress.detection import decode
from kcompress.detection import detection_targets
from kcompress.detection import encode
from kcompress.detection import iou


def test_encode_then_decode_gives_the_boxes_back():
    rng = np.random.default_rng(0)
    anchors = np.column_stack([rng.uniform(.2, .8, (50, 2)),
                               rng.uniform(.1, .5, (50, 2))])
    top_left = rng.uniform(0, .5, (50, 2))
    boxes = np.column_stack([top_left, top_left + rng.uniform(.05, .5,
                                                               (50, 2))])
    np.testing.assert_allclose(decode(encode(boxes, anchors), anchors),
                               boxes, atol=1e-5)


def test_iou_of_known_boxes():
    got = iou([[0, 0, .5, .5]], [[0, 0, .5, .5], [.25, .25, .75, .75],
                                 [.6, .6, .9, .9]])
    np.testing.assert_allclose(got, [[1.0, 1 / 7, 0.0]], rtol=1e-5)


def test_anchors_follow_the_head_order():
    anchors = AnchorBoxes((64, 64), (16, 32), ((.3,), (.6,)), (1., 2.))
    boxes = anchors.boxes()
    assert boxes.shape == (4 * 4 * 2 + 2 * 2 * 2, 4)
    # Level 0, row 0, column 0: two aspect ratios at the first centre.
    np.testing.assert_allclose(boxes[0, :2], [.125, .125])
    np.testing.assert_allclose(boxes[1, :2], [.125, .125])
    np.testing.assert_allclose(boxes[1, 3] / boxes[1, 2], 2.0)
    np.testing.assert_allclose(boxes[2, :2], [.125, .375])  # next column
    np.testing.assert_allclose(boxes[32, :2], [.25, .25])  # level 1
    assert AnchorBoxes.from_config(anchors.get_config()) == anchors


@pytest.mark.parametrize("kwargs, message", [
    ({"image_size": (60, 64)}, "divisible by every stride"),
    ({"scales": ((.3,),)}, "one list per feature map"),
    ({"aspect_ratios": (0.0,)}, "aspect_ratios"),
    ({"strides": (0, 32)}, "strides=0"),
])
def test_bad_anchors_say_what_was_received(kwargs, message):
    arguments = {"image_size": (64, 64), "strides": (16, 32),
                 "scales": ((.3,), (.6,)), "aspect_ratios": (1.,)}
    with pytest.raises(ValueError, match=message):
        AnchorBoxes(**{**arguments, **kwargs})


def test_targets_make_every_box_claim_an_anchor():
    anchors = AnchorBoxes((64, 64), (16, 32), ((.3,), (.6,)), (1.,))
    truth = [(np.array([[.1, .1, .2, .2], [.2, .3, .8, .9]]),
              np.array([2, 0]))]
    boxes, classes = detection_targets(truth, anchors, num_classes=3)
    assert boxes.shape == (1, 20, 5) and classes.shape == (1, 20, 4)
    positive = boxes[0, :, 4] == 1
    # The tiny box overlaps no anchor by 0.5, yet gets its best one.
    assert classes[0, positive, 2].sum() >= 1
    assert classes[0, positive, 0].sum() >= 1
    assert np.all(classes[0, ~positive, :3] == 0)
    assert np.all(classes[0, positive, 3] == 1)  # positives weigh 1


@pytest.mark.parametrize("boxes, classes, message", [
    (np.zeros((0, 4)), [], "no boxes of image 0"),
    ([[.1, .1, .5, 1.2]], [0], "outside the image"),
    ([[-.1, .1, .5, .5]], [0], "outside the image"),
    ([[.1, .1, .5, .5]], [3], "Expected integers in \\[0, 3\\)"),
    ([[.1, .1, .5, .5]], [-1], "class ids"),
    ([[.5, .1, .1, .5]], [0], "empty box"),
    ([[.1, .1, .5, .5]], [0, 1], "one class id per box"),
])
def test_bad_ground_truth_gets_a_clear_error(boxes, classes, message):
    with pytest.raises(ValueError, match=message):
        check_ground_truth(boxes, classes, num_classes=3, index=0)
    anchors = AnchorBoxes((64, 64), (16, 32), ((.3,), (.6,)), (1.,))
    with pytest.raises(ValueError, match=message):
        detection_targets([(boxes, classes)], anchors, 3)
