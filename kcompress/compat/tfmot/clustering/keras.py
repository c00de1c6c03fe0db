"""`tfmot.clustering.keras` on kcompress (`kcompress.clustering`)."""

from kcompress.clustering import CentroidInitialization
from kcompress.clustering import ClusterableLayer
from kcompress.clustering import cluster_scope
from kcompress.clustering import cluster_weights
from kcompress.clustering import strip_clustering
from kcompress.compat._unsupported import module_getattr

__all__ = ["CentroidInitialization", "ClusterableLayer", "cluster_scope",
           "cluster_weights", "strip_clustering"]

__getattr__ = module_getattr("tfmot.clustering.keras", {
    "experimental": "its cluster_weights(..., preserve_sparsity=True) is "
    "kcompress.clustering.cluster_weights(..., preserve_sparsity=True); use "
    "tfmot.clustering.keras.cluster_weights.",
})
