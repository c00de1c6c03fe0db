"""`tfmot.sparsity.keras` on kcompress (`kcompress.pruning`)."""

import contextlib

import keras

from kcompress.compat._unsupported import module_getattr
from kcompress.pruning import ConstantSparsity
from kcompress.pruning import PolynomialDecay
from kcompress.pruning import PrunableLayer
from kcompress.pruning import PruneForLatencyOnXNNPack
from kcompress.pruning import PruneLowMagnitude
from kcompress.pruning import PruningPolicy
from kcompress.pruning import PruningSchedule
from kcompress.pruning import PruningSummaries
from kcompress.pruning import UpdatePruningStep as _UpdatePruningStep
from kcompress.pruning import prune_low_magnitude
from kcompress.pruning import strip_pruning

__all__ = ["ConstantSparsity", "PolynomialDecay", "PrunableLayer",
           "PruneForLatencyOnXNNPack", "PruneLowMagnitude", "PruningPolicy",
           "PruningSchedule", "PruningSummaries",
           "UpdatePruningStep", "prune_low_magnitude", "prune_scope",
           "strip_pruning"]


@keras.saving.register_keras_serializable(package="kcompress_tfmot")
class UpdatePruningStep(_UpdatePruningStep):
    """kcompress's `UpdatePruningStep`, also taking the calls TFMOT's custom
    training loop makes: `on_epoch_end(batch=...)` (TFMOT names the
    argument `batch`)."""

    def on_epoch_end(self, epoch=None, logs=None, batch=None):
        super().on_epoch_end(batch if epoch is None else epoch, logs)


@contextlib.contextmanager
def prune_scope():
    """TFMOT's scope for loading pruned models. kcompress registers its
    classes, so `.keras` files load without it; kept for TFMOT scripts."""
    with keras.saving.custom_object_scope(
            {"PruneLowMagnitude": PruneLowMagnitude}):
        yield


__getattr__ = module_getattr("tfmot.sparsity.keras", {})
