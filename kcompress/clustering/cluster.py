"""Entry points: `cluster_weights`, `strip_clustering`, `cluster_scope`."""

import contextlib
import logging

import keras

from kcompress import _coverage
from kcompress import _flatten
from kcompress import _model_utils
from kcompress.clustering import centroids as centroids_lib
from kcompress.clustering.cluster_wrapper import ClusterableLayer
from kcompress.clustering.cluster_wrapper import ClusterWeights
from kcompress.clustering.cluster_wrapper import clusterable_weights

__all__ = ["cluster_weights", "strip_clustering", "cluster_scope",
           "clustering_wrappers"]

logger = logging.getLogger(__name__)

_PER_LAYER_HINT = (
    "wrap the layers to cluster where your model creates them, e.g. "
    "`kcompress.clustering.cluster_weights(keras.layers.Dense(64), "
    "number_of_clusters=16)` in `__init__`."
)


def clustering_wrappers(model):
    """All `ClusterWeights` layers in `model`, nested models included."""
    return _model_utils.find_layers(model, ClusterWeights)


def _clusterable(layer):
    if isinstance(layer, (ClusterWeights, keras.Model)):
        return False
    try:
        return bool(clusterable_weights(layer))
    except (ValueError, NotImplementedError):
        return False


def cluster_weights(to_cluster, number_of_clusters,
                    cluster_centroids_init=(
                        centroids_lib.CentroidInitialization.KMEANS_PLUS_PLUS),
                    **kwargs):
    """Makes a layer or model cluster its weights during training.

    Accepts what TFMOT's function of the same name accepts: a layer (returned
    wrapped in `ClusterWeights`), a list of layers, or a Sequential or
    functional model, nested models included (returned as a clone in which
    every clusterable layer is wrapped; other layers are copied unchanged,
    and the input model is not modified).

    Args:
        to_cluster: a layer, a list of layers, or a model.
        number_of_clusters: the most distinct values each weight keeps.
        cluster_centroids_init: a `CentroidInitialization`.
        **kwargs: `preserve_sparsity`, `cluster_per_channel` (see
            `ClusterWeights`); with a model, `strict=True` raises instead
            of warning when a layer holding a kernel is left unclustered;
            with a single layer, also layer arguments.

    Composite layers (subclassed layers that own Conv2D, Dense, ...
    sublayers) are flattened into the graph first, so their sublayers are
    clustered like any other.

    Returns:
        The wrapped layer, list of layers, or a new model. Train it with
        `fit` as usual (no callback is needed), then `strip_clustering`.
    """
    _model_utils.check_model_argument(to_cluster, "to_cluster",
                                      "cluster_weights", _PER_LAYER_HINT)
    options = dict(number_of_clusters=number_of_clusters,
                   cluster_centroids_init=cluster_centroids_init)
    options.update({k: kwargs.pop(k) for k in
                    ("preserve_sparsity", "cluster_per_channel")
                    if k in kwargs})

    def wrap(layer, **extra):
        return ClusterWeights(layer, **options, **extra)

    if isinstance(to_cluster, (list, tuple)):
        return [wrap(layer, **kwargs) for layer in to_cluster]
    if not isinstance(to_cluster, keras.Model):
        return wrap(to_cluster, **kwargs)
    model = to_cluster
    strict = kwargs.pop("strict", False)
    if kwargs:
        raise ValueError(
            f"Received: {sorted(kwargs)} with a model. Expected only the "
            "clustering arguments; layer arguments such as `name` apply to a "
            "single layer.")
    if clustering_wrappers(model):
        raise ValueError(
            f"Model '{model.name}' is already clustered: it holds "
            "ClusterWeights layers. Call strip_clustering(model) first.")
    if not model.built:
        raise ValueError(
            f"Model '{model.name}' is not built. Build it (give it an Input "
            "or call it on data) before clustering, so its weights exist.")
    model, left = _flatten.flatten_composites(model)
    wrapped = []

    def clone_function(layer):
        new = _model_utils.clone_layer(layer)
        if not _clusterable(layer):
            if _coverage.holds_kernel(layer):
                left.setdefault(layer.name, (
                    f"kcompress cannot cluster a {type(layer).__name__}; "
                    "give it the kcompress.clustering.ClusterableLayer "
                    "interface"))
            return new
        wrapped.append(layer.name)
        left.pop(layer.name, None)  # A composite clustered as one layer.
        return wrap(new, name=f"cluster_{layer.name}")

    clustered = _model_utils.transform_model(model, clone_function)
    _coverage.report_left_out(logger, "cluster_weights", model, left, strict)
    if not wrapped:
        raise ValueError(
            f"Model '{model.name}' has no clusterable layers: Dense, "
            "EinsumDense, Conv1D/2D/3D and their transposes, "
            "DepthwiseConv1D/2D, Embedding, or a layer implementing "
            "kcompress.clustering.ClusterableLayer.")
    return clustered


def strip_clustering(model):
    """A copy of `model` with every `ClusterWeights` replaced by its plain
    layer holding the clustered weights (the input is not modified). Given
    a single `ClusterWeights` layer, returns its plain layer."""
    if isinstance(model, ClusterWeights):
        return model.stripped_layer()
    _model_utils.check_model_argument(model, "model", "strip_clustering",
                                      _PER_LAYER_HINT, accept_layers=False)

    def clone_function(layer):
        if isinstance(layer, ClusterWeights):
            return layer.stripped_layer()
        return _model_utils.clone_layer(layer)

    return _model_utils.transform_model(model, clone_function)


@contextlib.contextmanager
def cluster_scope():
    """TFMOT's scope for loading clustered models. kcompress registers its
    classes, so `.keras` files load without it; kept for scripts that use
    it."""
    with keras.saving.custom_object_scope(
            {"ClusterWeights": ClusterWeights,
             "ClusterableLayer": ClusterableLayer}):
        yield
