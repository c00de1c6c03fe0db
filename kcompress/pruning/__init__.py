"""Magnitude pruning during `fit`, with TFMOT's names and semantics.

Typical use::

    import kcompress as kc

    pruned = kc.pruning.prune_low_magnitude(
        model, kc.pruning.PolynomialDecay(0.0, 0.8, begin_step=0, end_step=400))
    pruned.compile(...)
    pruned.fit(x, y, callbacks=[kc.pruning.UpdatePruningStep()])
    final = kc.pruning.strip_pruning(pruned)
"""

from kcompress.pruning.channel_targets import channel_fraction_for
from kcompress.pruning.channel_targets import channel_report
from kcompress.pruning.dependency_groups import channel_groups
from kcompress.pruning.group_pruning import prune_channel_groups
from kcompress.pruning.prunable_layer import PrunableLayer
from kcompress.pruning.prune import prune_low_magnitude
from kcompress.pruning.prune import pruning_wrappers
from kcompress.pruning.prune import strip_pruning
from kcompress.pruning.pruning_callbacks import PruningSummaries
from kcompress.pruning.pruning_callbacks import UpdatePruningStep
from kcompress.pruning.pruning_policy import PruneForLatencyOnXNNPack
from kcompress.pruning.pruning_policy import PruningPolicy
from kcompress.pruning.pruning_schedule import ConstantSparsity
from kcompress.pruning.pruning_schedule import PolynomialDecay
from kcompress.pruning.pruning_schedule import PruningSchedule
from kcompress.pruning.pruning_schedule import ScheduleFn
from kcompress.pruning.pruning_wrapper import PruneLowMagnitude
from kcompress.pruning.shrinking import shrink
from kcompress.pruning.xnnpack_sparse import xnnpack_sparse_issues
from kcompress.pruning.xnnpack_sparse import xnnpack_sparse_layers
from kcompress.pruning.xnnpack_sparse import xnnpack_sparse_padding

__all__ = [
    "ScheduleFn",
    "ConstantSparsity",
    "PolynomialDecay",
    "PrunableLayer",
    "PruneForLatencyOnXNNPack",
    "PruneLowMagnitude",
    "PruningPolicy",
    "PruningSchedule",
    "PruningSummaries",
    "UpdatePruningStep",
    "channel_fraction_for",
    "channel_groups",
    "channel_report",
    "prune_channel_groups",
    "prune_low_magnitude",
    "pruning_wrappers",
    "shrink",
    "strip_pruning",
    "xnnpack_sparse_issues",
    "xnnpack_sparse_layers",
    "xnnpack_sparse_padding",
]
