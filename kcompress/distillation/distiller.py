"""`distill`: Keras 3's Distiller, set up for compressed students.

kcompress does not write another Distiller. `distill` builds a
`keras.distillation.Distiller` with logits distillation and defaults that
suit a compressed student learning from its own uncompressed original, and
it checks what the Distiller would otherwise fail on later or silently: the
teacher's type and the output shapes. Its logits loss is
`SoftTargetKLDivergence`, a KL divergence computed from log-softmax: Keras's
default KL path clips probabilities and lost 1 to 3 points on a pruned
student. The pruning and QAT callbacks find the
wrappers inside the Distiller's student, so a pruned or QAT student trains
with them as usual; `distiller.student` comes out ready for
`strip_pruning` and `tflite_export.convert`.
"""

from __future__ import annotations

import keras

from kcompress import _model_utils
from kcompress.distillation.losses import SoftTargetKLDivergence

__all__ = ["distill"]


def _output_shapes(model):
    return [tuple(t.shape[1:]) for t in model.outputs]


def distill(student: keras.Model, teacher: keras.Model,
            temperature: float = 1.0, student_loss_weight: float = 0.1,
            feature_layers: list | None = None,
            **kwargs) -> keras.distillation.Distiller:
    """A `keras.distillation.Distiller` of `teacher` into `student`.

    Args:
        student: the model to train, e.g. from `prune_low_magnitude`,
            `quantize_model` or `lowrank.factorize`. Its outputs must be
            logits.
        teacher: a trained Keras model with the same output shape, typically
            the float model the student was made from. It is copied (a
            functional or Sequential teacher) before the Distiller freezes
            it, so the model you pass is not changed.
        temperature: softmax temperature of the logits distillation.
        student_loss_weight: weight in [0, 1] of the student's own loss on
            the labels; the distillation loss gets the rest. The defaults
            (T=1, 0.1) scored best on the pruned digits CNN against higher
            temperatures and weights (measured in BUILD.md).
        feature_layers: optional list of `(teacher_layer, student_layer)`
            name pairs to match features with `FeatureDistillation` as well.
        **kwargs: passed to `keras.distillation.Distiller`.

    Returns:
        An uncompiled Distiller. Compile it with the student's loss (from
        logits), fit it with the usual callbacks, then use
        `distiller.student`.

    Example:

    >>> import keras
    >>> teacher = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> student = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> distiller = distill(student, teacher)
    >>> type(distiller).__name__
    'Distiller'
    """
    if not isinstance(teacher, keras.Model):
        raise ValueError(
            f"Received: teacher of type {type(teacher).__name__}. Expected a "
            "trained keras.Model."
        )
    if not isinstance(student, keras.Model):
        raise ValueError(
            f"Received: student of type {type(student).__name__}. Expected a "
            "keras.Model."
        )
    if len(student.outputs) != 1:
        raise ValueError(
            f"Received: student '{student.name}' with "
            f"{len(student.outputs)} outputs. Expected one output of logits: "
            "logits distillation does not fit a detector's box regressions "
            "and sigmoid scores. Fine-tune a pruned or QAT detector with its "
            "own losses (kcompress.detection.BoxRegressionLoss and "
            "FocalClassLoss) instead.")
    if _output_shapes(teacher) != _output_shapes(student):
        raise ValueError(
            f"Received: a teacher with output shapes {_output_shapes(teacher)}"
            f" and a student with {_output_shapes(student)}. Expected the "
            "same output shapes: logits distillation compares them "
            "element by element."
        )
    if not (isinstance(temperature, (int, float)) and temperature > 0):
        raise ValueError(
            f"Received: temperature={temperature!r}. Expected a number > 0."
        )
    if _model_utils.is_graph_model(teacher):
        teacher = _model_utils.transform_model(teacher,
                                               _model_utils.clone_layer)
    losses = [keras.distillation.LogitsDistillation(
        temperature=temperature, loss=SoftTargetKLDivergence(temperature))]
    for teacher_layer, student_layer in feature_layers or ():
        losses.append(keras.distillation.FeatureDistillation(
            teacher_layer_name=teacher_layer,
            student_layer_name=student_layer))
    return keras.distillation.Distiller(
        teacher=teacher, student=student, distillation_losses=losses,
        student_loss_weight=student_loss_weight, **kwargs)
