"""`tfmot.clustering.keras` on kcompress (`kcompress.clustering`)."""

from kcompress.clustering import CentroidInitialization
from kcompress.clustering import ClusterableLayer
from kcompress.clustering import cluster_scope
from kcompress.clustering import cluster_weights
from kcompress.clustering import strip_clustering
from kcompress.compat._unsupported import module_getattr
from kcompress.compat.tfmot.clustering.keras import experimental

__all__ = ["CentroidInitialization", "ClusterableLayer", "cluster_scope",
           "cluster_weights", "experimental", "strip_clustering"]

__getattr__ = module_getattr("tfmot.clustering.keras", {})
