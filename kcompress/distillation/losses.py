"""`SoftTargetKLDivergence`: the logits distillation loss, computed stably.

Keras's `LogitsDistillation` with its default `"kl_divergence"` takes a
softmax of both logits and hands the probabilities to
`keras.losses.KLDivergence`, which clips them to `[1e-7, 1]`. Where the
student is confidently wrong, as a freshly pruned student often is, the
clipped probability has no gradient, and the float32 softmax loses the small
probabilities the soft targets are about. On the pruned digits CNN that cost
distillation its lead over plain fine-tuning (BUILD.md has the figures).

This loss takes the temperature-scaled logits that `LogitsDistillation`
passes to a custom loss and computes the same KL divergence with
`log_softmax`, which keeps every gradient. It multiplies by `T**2`, as the
literature and Keras's own KL path do, so the gradient scale does not depend
on the temperature.
"""

import keras
from keras import ops

__all__ = ["SoftTargetKLDivergence"]


@keras.saving.register_keras_serializable(package="kcompress")
class SoftTargetKLDivergence(keras.losses.Loss):
    """KL(softmax(teacher) || softmax(student)) from logits, times `T**2`.

    Args:
        temperature: the temperature `T` the logits were divided by; only
            the `T**2` scale uses it.
        reduction: as for any Keras loss.
        name: the loss name.

    Example:

    >>> loss = SoftTargetKLDivergence(temperature=1.0)
    >>> same = loss(ops.array([[2.0, 0.0]]), ops.array([[2.0, 0.0]]))
    >>> float(same)
    0.0
    """

    def __init__(self, temperature=1.0, reduction="sum_over_batch_size",
                 name="soft_target_kl_divergence", dtype=None):
        if not (isinstance(temperature, (int, float))
                and not isinstance(temperature, bool) and temperature > 0):
            raise ValueError(
                f"Received: temperature={temperature!r}. Expected a number "
                "> 0."
            )
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.temperature = float(temperature)

    def call(self, y_true, y_pred):
        teacher = ops.log_softmax(ops.convert_to_tensor(y_true), axis=-1)
        student = ops.log_softmax(ops.convert_to_tensor(y_pred), axis=-1)
        divergence = ops.sum(ops.exp(teacher) * (teacher - student), axis=-1)
        return divergence * (self.temperature ** 2)

    def get_config(self):
        config = super().get_config()
        config["temperature"] = self.temperature
        return config
