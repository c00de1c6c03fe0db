"""Weight clustering during `fit`, with TFMOT's names and semantics.

Typical use::

    import kcompress as kc

    clustered = kc.clustering.cluster_weights(
        model, number_of_clusters=16,
        cluster_centroids_init=kc.clustering.CentroidInitialization.LINEAR)
    clustered.compile(...)
    clustered.fit(x, y)
    final = kc.clustering.strip_clustering(clustered)

Then cluster-preserving QAT (PCQAT, keeping zeros too)::

    qat = kc.quantize_model(final)
    qat.fit(x, y, callbacks=[kc.clustering.PreserveClusters(16)])
"""

from kcompress.clustering.centroids import CentroidInitialization
from kcompress.clustering.cluster import cluster_scope
from kcompress.clustering.cluster import cluster_weights
from kcompress.clustering.cluster import clustering_wrappers
from kcompress.clustering.cluster import strip_clustering
from kcompress.clustering.cluster_wrapper import ClusterableLayer
from kcompress.clustering.cluster_wrapper import ClusterWeights
from kcompress.clustering.preserve import PreserveClusters

__all__ = [
    "CentroidInitialization",
    "ClusterWeights",
    "ClusterableLayer",
    "PreserveClusters",
    "cluster_scope",
    "cluster_weights",
    "clustering_wrappers",
    "strip_clustering",
]
