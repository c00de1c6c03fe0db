"""Losses of an SSD head, in `keras.ops` (any backend).

Both read the targets `detection_targets` makes and divide by the image's
count of positive anchors, as SSD and RetinaNet do.
"""

import keras
from keras import ops

__all__ = ["BoxRegressionLoss", "FocalClassLoss"]


def _positives(flags):
    return ops.maximum(ops.sum(flags, axis=-1), 1.0)


@keras.saving.register_keras_serializable(package="kcompress")
class BoxRegressionLoss(keras.losses.Loss):
    """Huber loss of the box regressions, on positive anchors only.

    `y_true` is `(batch, N, 5)`: the encoded box and the positive flag;
    `y_pred` is `(batch, N, 4)`.

    Args:
        delta: the Huber loss's switch from quadratic to linear.
    """

    def __init__(self, delta=1.0, name="box_regression_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.delta = float(delta)

    def call(self, y_true, y_pred):
        flags = y_true[..., 4]
        error = ops.abs(y_true[..., :4] - y_pred)
        quadratic = ops.minimum(error, self.delta)
        huber = 0.5 * quadratic ** 2 + self.delta * (error - quadratic)
        per_anchor = ops.sum(huber, axis=-1) * flags
        return ops.sum(per_anchor, axis=-1) / _positives(flags)

    def get_config(self):
        return {**super().get_config(), "delta": self.delta}


@keras.saving.register_keras_serializable(package="kcompress")
class FocalClassLoss(keras.losses.Loss):
    """Sigmoid focal loss (Lin et al. 2017) over class probabilities.

    `y_true` is `(batch, N, classes + 1)`: one-hot classes (zero for
    background) and the anchor's weight (0 for an ignored anchor);
    `y_pred` is `(batch, N, classes)`, after the sigmoid.

    Args:
        alpha: the weight of the positive term.
        gamma: the focusing exponent.
    """

    def __init__(self, alpha=0.25, gamma=2.0, name="focal_class_loss",
                 **kwargs):
        super().__init__(name=name, **kwargs)
        self.alpha = float(alpha)
        self.gamma = float(gamma)

    def call(self, y_true, y_pred):
        labels, weights = y_true[..., :-1], y_true[..., -1:]
        p = ops.clip(y_pred, 1e-6, 1 - 1e-6)
        p_true = labels * p + (1 - labels) * (1 - p)
        alpha = labels * self.alpha + (1 - labels) * (1 - self.alpha)
        focal = -alpha * (1 - p_true) ** self.gamma * ops.log(p_true)
        per_image = ops.sum(ops.sum(focal, axis=-1) * weights[..., 0],
                            axis=-1)
        return per_image / _positives(ops.sum(labels, axis=-1))

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha,
                "gamma": self.gamma}
