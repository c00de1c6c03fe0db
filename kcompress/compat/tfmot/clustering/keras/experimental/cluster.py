"""TFMOT's `clustering.keras.experimental.cluster` module, which its
sparsity-preserving guides import: `cluster_weights(...,
preserve_sparsity=True)`."""

from kcompress.clustering import cluster_weights

__all__ = ["cluster_weights"]
