"""`ClusterWeights`: the layer wrapper that clusters weights during `fit`."""

import keras
import numpy as np
from keras import ops

from kcompress import _keras_internals
from kcompress import _model_utils
from kcompress._arguments import as_int
from kcompress._substitute import call_with_values
from kcompress.clustering import centroids as centroids_lib
from kcompress.quantization import shared_values

__all__ = ["ClusterWeights", "ClusterableLayer", "clusterable_weights"]

_KERNELS = (keras.layers.Dense, keras.layers.EinsumDense, keras.layers.Conv1D,
            keras.layers.Conv2D, keras.layers.Conv3D,
            keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose,
            keras.layers.Conv3DTranspose)
_DEPTHWISE = (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)
# Layers whose kernel TFLite quantizes per output channel, the last axis.
_PER_CHANNEL = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)


class ClusterableLayer:
    """Mixin for a custom layer to cluster: `get_clusterable_weights()`
    returns `[(name, variable)]`, as in TFMOT."""

    def get_clusterable_weights(self):
        raise NotImplementedError(
            f"{type(self).__name__} must implement get_clusterable_weights(), "
            "returning [(name, variable)] of the weights to cluster.")


def clusterable_weights(layer):
    """The variables `ClusterWeights` clusters in `layer`, or a ValueError
    naming what is supported."""
    if isinstance(layer, ClusterableLayer):
        return [variable for _, variable in layer.get_clusterable_weights()]
    if isinstance(layer, _DEPTHWISE):
        return [layer.kernel]
    if isinstance(layer, _KERNELS):
        return [layer.kernel]
    if isinstance(layer, keras.layers.Embedding):
        return [layer.embeddings]
    # A layer that owns clusterable layers (MultiHeadAttention, a composite
    # layer that cannot be flattened): their weights.
    inner = []
    if not type(layer).__module__.startswith("kcompress."):  # Not ours.
        inner = [weight for sublayer in _keras_internals.descendants(layer)
                 if isinstance(sublayer, _KERNELS + _DEPTHWISE
                               + (keras.layers.Embedding,))
                 for weight in clusterable_weights(sublayer)]
    if inner:
        return list({id(w): w for w in inner}.values())
    raise ValueError(
        f"Layer '{layer.name}' of type {type(layer).__name__} cannot be "
        "clustered. Clusterable layers: Dense, EinsumDense, Conv1D/2D/3D and "
        "their transposes, DepthwiseConv1D/2D, Embedding, or a layer "
        "implementing kcompress.clustering.ClusterableLayer.")


def check_count(number_of_clusters):
    count = as_int(number_of_clusters)
    if count is None or count < 2:
        raise ValueError(
            f"Received: number_of_clusters={number_of_clusters!r}. Expected "
            "an integer >= 2.")
    return count


@keras.saving.register_keras_serializable(package="kcompress")
class ClusterWeights(keras.layers.Wrapper):
    """Clusters a layer's weights during training, as TFMOT does.

    Each clustered weight holds at most `number_of_clusters` distinct values
    (per output channel with `cluster_per_channel` on a convolution): every
    weight is replaced by its nearest centroid. The centroids are trainable;
    the gradient of each centroid is the sum of its weights' gradients, and
    the weights themselves keep training through a straight-through
    estimator, so the assignment to centroids is refreshed on every
    training step. `strip_clustering` bakes the centroids into a plain
    layer.

    Args:
        layer: the layer to cluster (see `clusterable_weights`).
        number_of_clusters: centroids per weight (per channel).
        cluster_centroids_init: a `CentroidInitialization`.
        preserve_sparsity: keep zero weights at zero; one centroid is fixed
            at 0, so a weight still has at most `number_of_clusters` values.
        cluster_per_channel: cluster each output channel of a Conv1D/2D/3D
            kernel (each channel of a depthwise kernel) on its own, matching
            TFLite's per-channel int8 scales.
        **kwargs: passed to `keras.layers.Wrapper` (`name`, ...).
    """

    def __init__(self, layer, number_of_clusters=16,
                 cluster_centroids_init="KMEANS_PLUS_PLUS",
                 preserve_sparsity=False, cluster_per_channel=False,
                 **kwargs):
        if isinstance(layer, ClusterWeights):
            raise ValueError(
                f"Layer '{layer.name}' is already wrapped in ClusterWeights. "
                "Call kcompress.clustering.strip_clustering first.")
        if not isinstance(layer, keras.layers.Layer):
            raise ValueError(
                f"Received: layer={layer!r} of type {type(layer).__name__}. "
                "Expected a keras.layers.Layer.")
        if not isinstance(layer, (ClusterableLayer,) + _KERNELS + _DEPTHWISE
                          + (keras.layers.Embedding,)):
            clusterable_weights(layer)  # raises the named error
        kwargs.setdefault("name", f"cluster_{layer.name}")
        super().__init__(layer, **kwargs)
        _model_utils.keep_input_shape(self, layer)
        self.number_of_clusters = check_count(number_of_clusters)
        self.cluster_centroids_init = centroids_lib.check_init(
            cluster_centroids_init)
        self.preserve_sparsity = bool(preserve_sparsity)
        self.cluster_per_channel = bool(cluster_per_channel)

    def _channels(self, weight):
        """The number of channels clustered apart (1: the whole tensor)."""
        if not self.cluster_per_channel:
            return 1
        if isinstance(self.layer, _DEPTHWISE):
            return int(np.prod(weight.shape[-2:]))
        if isinstance(self.layer, _PER_CHANNEL):
            return int(weight.shape[-1])
        return 1

    def build(self, input_shape=None):
        super().build(input_shape)
        self.clustered = clusterable_weights(self.layer)
        self.centroids, self.indices, self.sparsity_masks = [], [], []
        for weight in self.clustered:
            channels = self._channels(weight)
            self.centroids.append(self.add_weight(
                name=f"{weight.name}_centroids",
                shape=(channels, self.number_of_clusters),
                initializer="zeros", trainable=True))
            self.indices.append(self.add_weight(
                name=f"{weight.name}_indices", shape=weight.shape,
                dtype="int32", initializer="zeros", trainable=False))
            self.sparsity_masks.append(self.add_weight(
                name=f"{weight.name}_sparsity_mask", shape=weight.shape,
                initializer="ones", trainable=False)
                if self.preserve_sparsity else None)
        self._initialize()
        self.built = True

    def _initialize(self):
        """Centroids from the layer's current weights, and the assignment."""
        for i, weight in enumerate(self.clustered):
            values = ops.convert_to_numpy(weight)
            channels = self.centroids[i].shape[0]
            columns = values.reshape(-1, channels)
            count = self.number_of_clusters - int(self.preserve_sparsity)
            rows = []
            for c in range(channels):
                if self.preserve_sparsity:  # the zero centroid first
                    centroids = centroids_lib.sparse_centroids(
                        columns[:, c], count, self.cluster_centroids_init,
                        seed=c)
                    zero = int(np.argmin(np.abs(centroids)))
                    centroids = np.concatenate(
                        [[0.0], np.delete(centroids, zero)])
                else:
                    centroids = centroids_lib.initial_centroids(
                        columns[:, c], count, self.cluster_centroids_init,
                        seed=c)
                rows.append(centroids)
            self.centroids[i].assign(np.array(rows, "float32"))
            if self.sparsity_masks[i] is not None:
                self.sparsity_masks[i].assign(
                    (values != 0).astype("float32"))
            self.indices[i].assign(ops.convert_to_numpy(
                self._nearest(i, ops.convert_to_tensor(values))))

    def _centroid_values(self, i):
        centroids = ops.convert_to_tensor(self.centroids[i])
        if self.preserve_sparsity:  # the first centroid stays at 0
            keep = np.ones(centroids.shape, "float32")
            keep[:, 0] = 0.0
            # ops.multiply, not `*`: a PyTorch parameter times a numpy
            # array goes through numpy, which refuses a tensor with grad.
            centroids = ops.multiply(centroids, ops.convert_to_tensor(keep))
        return centroids

    def _nearest(self, i, weight):
        return shared_values.nearest_centroids(weight,
                                               self._centroid_values(i))

    def clustered_value(self, i, indices=None):
        """Weight i as its centroids (times its sparsity mask)."""
        indices = self.indices[i] if indices is None else indices
        value = shared_values.gather_centroids(
            self._centroid_values(i), ops.convert_to_tensor(indices))
        if self.sparsity_masks[i] is not None:
            value = value * self.sparsity_masks[i]
        return value

    def call(self, inputs=None, *args, training=None, **kwargs):
        # `inputs` is None when the layer is called by keywords only.
        args = args if inputs is None else (inputs,) + args
        mapping = []
        for i, weight in enumerate(self.clustered):
            indices = None
            if training:
                weight_value = ops.convert_to_tensor(weight)
                indices = ops.cast(self._nearest(i, weight_value), "int32")
                self.indices[i].assign(indices)
                value = self.clustered_value(i, indices)
                # Straight through to the weights, so they keep training and
                # move between clusters.
                value = value + weight_value - ops.stop_gradient(weight_value)
            else:
                value = self.clustered_value(i)
            mapping.append((weight, value))
        return call_with_values(self, self.layer, mapping, *args,
                                training=training, **kwargs)

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def compute_output_spec(self, *args, **kwargs):
        return _model_utils.inner_output_spec(self.layer, *args, **kwargs)

    def stripped_layer(self):
        """A plain copy of the layer holding the clustered weights."""
        substitutes = [(w, self.clustered_value(i))
                       for i, w in enumerate(self.clustered)]
        values = _model_utils.values_with(self.layer.weights, substitutes)
        return _model_utils.clone_layer(self.layer, weights=values)

    def get_config(self):
        return {**super().get_config(),
                "number_of_clusters": self.number_of_clusters,
                "cluster_centroids_init": self.cluster_centroids_init.value,
                "preserve_sparsity": self.preserve_sparsity,
                "cluster_per_channel": self.cluster_per_channel}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        # keras.layers.Wrapper.from_config pops "layer" from the dict it is
        # given; work on a copy so the caller's config stays whole.
        return super().from_config(dict(config), custom_objects=custom_objects)
