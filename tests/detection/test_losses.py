"""The SSD losses on hand-worked values, and a detector learning in `fit`
(run on every backend: `make test`'s JAX pass includes this file)."""

import keras
import numpy as np
import pytest

from kcompress import detection


def test_box_loss_is_huber_over_positives_only():
    y_true = np.zeros((1, 3, 5), np.float32)
    y_true[0, 0] = [1, 0, 0, 0, 1]  # positive, error 1 -> huber 0.5
    y_true[0, 1] = [3, 0, 0, 0, 1]  # positive, error 3 -> huber 2.5
    y_pred = np.zeros((1, 3, 4), np.float32)
    y_pred[0, 2] = 100  # negative: ignored
    loss = detection.BoxRegressionLoss(reduction=None)(y_true, y_pred)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loss), [1.5],
                               rtol=1e-6)


def test_focal_loss_matches_its_formula_and_skips_ignored_anchors():
    y_true = np.array([[[1, 0, 1], [0, 0, 1], [0, 0, 0]]], np.float32)
    y_pred = np.array([[[.8, .1], [.3, .2], [.9, .9]]], np.float32)
    loss = detection.FocalClassLoss(alpha=.25, gamma=2., reduction=None)(
        y_true, y_pred)

    def term(p, label):
        p_true = p if label else 1 - p
        alpha = .25 if label else .75
        return -alpha * (1 - p_true) ** 2 * np.log(p_true)

    # Anchor 2 is ignored (weight 0); one positive anchor in the image.
    want = (term(.8, 1) + term(.1, 0) + term(.3, 0) + term(.2, 0))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loss), [want],
                               rtol=1e-5)


@pytest.mark.parametrize("cls", [detection.BoxRegressionLoss,
                                 detection.FocalClassLoss])
def test_losses_round_trip_their_config(cls):
    loss = cls(name="custom")
    again = cls.from_config(loss.get_config())
    assert again.get_config() == loss.get_config()


def test_a_detector_learns_in_fit_on_this_backend():
    from . import shapes

    keras.utils.set_random_seed(0)
    x, truth = shapes.draw(64, seed=0)
    targets = detection.detection_targets(truth, shapes.anchors(),
                                          shapes.CLASSES)
    model = detection.ssd_lite(shapes.CLASSES, shapes.anchors())
    model.compile(keras.optimizers.Adam(3e-3),
                  loss=[detection.BoxRegressionLoss(),
                        detection.FocalClassLoss()])
    history = model.fit(x, list(targets), batch_size=16, epochs=4,
                        verbose=0).history["loss"]
    assert history[-1] < 0.7 * history[0]
