"""Knowledge distillation for compressed students, on Keras 3's Distiller.

Typical use (a pruned student learns from its float original)::

    import kcompress as kc

    student = kc.prune_low_magnitude(model, schedule)
    distiller = kc.distillation.distill(student, teacher=model)
    distiller.compile(optimizer="adam",
                      loss=keras.losses.SparseCategoricalCrossentropy(
                          from_logits=True))
    distiller.fit(x, y, callbacks=[kc.pruning.UpdatePruningStep()])
    final = kc.strip_pruning(distiller.student)
"""

from kcompress.distillation.distiller import distill
from kcompress.distillation.losses import SoftTargetKLDivergence

__all__ = ["distill", "SoftTargetKLDivergence"]
