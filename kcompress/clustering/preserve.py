"""`PreserveClusters`: cluster-preserving QAT (CQAT) and, with zeros kept,
sparsity- and cluster-preserving QAT (PCQAT).

QAT trains every weight on its own, so a clustered kernel leaves its
centroids after the first step. This callback finds, when training begins,
the clusters of each kernel of the model (the distinct values a stripped
clustered model holds, per output channel where a channel has its own), and
after every training batch moves each cluster's weights to their mean: the
kernel trains as `number_of_clusters` shared values, each updated by the
average step of its weights. A cluster at exactly zero stays at zero
(`preserve_sparsity`), so a pruned, clustered model keeps both through QAT,
and its int8 file holds at most that many values per kernel (per channel).
Host-side work after each batch, cheap on the small models clustering
targets.
"""

import keras
import numpy as np

from kcompress import _model_utils
from kcompress.clustering.cluster_wrapper import check_count
from kcompress.quantization import shared_values

__all__ = ["PreserveClusters"]


def _kernels(model):
    """Every variable named `kernel` in `model` (inside QAT wrappers and
    folded convolutions too), once each."""
    seen, kernels = set(), []
    for layer in _model_utils.iter_layers(model):
        for variable in layer.weights:
            if variable.path.split("/")[-1] in ("kernel", "depthwise_kernel") \
                    and id(variable) not in seen:
                seen.add(id(variable))
                kernels.append(variable)
    return kernels


@keras.saving.register_keras_serializable(package="kcompress")
class PreserveClusters(keras.callbacks.Callback):
    """Keeps clustered kernels on shared values through QAT (CQAT/PCQAT).

    Use it in `fit` of the QAT model made from a stripped clustered model
    (`quantize_model(strip_clustering(clustered))`).

    Args:
        number_of_clusters: the clustering's count: kernels with at most
            this many distinct values (per tensor, or in every output
            channel) are kept clustered; others train freely.
        preserve_sparsity: keep a cluster that is exactly zero at zero.
    """

    def __init__(self, number_of_clusters, preserve_sparsity=True):
        super().__init__()
        self.number_of_clusters = check_count(number_of_clusters)
        self.preserve_sparsity = bool(preserve_sparsity)

    def on_train_begin(self, logs=None):
        self._tracked = []
        for variable in _kernels(self.model):
            values = keras.ops.convert_to_numpy(variable)
            ids = shared_values.cluster_ids(values, self.number_of_clusters)
            if ids is None:
                continue
            ids = ids.reshape(-1)
            zero = np.zeros(ids.max() + 1, bool)
            if self.preserve_sparsity:
                zero[ids[values.reshape(-1) == 0]] = True
            self._tracked.append((variable, ids, zero))
        if not self._tracked:
            raise ValueError(
                f"PreserveClusters found no kernel of model "
                f"'{self.model.name}' with at most {self.number_of_clusters} "
                "distinct values (per tensor or per channel). Pass the QAT "
                "model made from a stripped clustered model, with the same "
                "number_of_clusters.")

    @property
    def tracked(self):
        """The kernels kept clustered."""
        return [variable for variable, _, _ in self._tracked]

    def on_train_batch_end(self, batch, logs=None):
        model = self.model  # On JAX this syncs the variables first.
        del model
        for variable, ids, zero in self._tracked:
            values = keras.ops.convert_to_numpy(variable).reshape(-1)
            counts = np.bincount(ids, minlength=len(zero))
            means = np.bincount(ids, weights=values, minlength=len(zero)) / (
                np.maximum(counts, 1))
            means[zero] = 0.0
            variable.assign(means[ids].reshape(variable.shape).astype(
                variable.dtype))

    def get_config(self):
        return {"number_of_clusters": self.number_of_clusters,
                "preserve_sparsity": self.preserve_sparsity}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
