"""`tfmot.clustering.keras.experimental`: `cluster_weights` with
`preserve_sparsity=True` (kcompress's `cluster_weights` takes it too)."""

from kcompress.clustering import cluster_weights
from kcompress.compat.tfmot.clustering.keras.experimental import cluster

__all__ = ["cluster", "cluster_weights"]
