"""Pruning policies: which layers of a model `prune_low_magnitude` prunes,
and which models it refuses, as TFMOT's `pruning_policy=` argument takes
them.

`PruneForLatencyOnXNNPack` prunes only what XNNPACK's sparse float path
runs sparse (1x1 convolutions) and refuses a model that path cannot run,
naming the layer and what to change (`xnnpack_sparse`).
"""

import keras

from kcompress._model_utils import iter_layers
from kcompress.pruning import xnnpack_sparse

__all__ = ["PruningPolicy", "PruneForLatencyOnXNNPack"]


@keras.saving.register_keras_serializable(package="kcompress")
class PruningPolicy:
    """The base of a pruning policy (TFMOT's interface).

    A subclass implements `allow_pruning(layer)` and
    `ensure_model_supports_pruning(model)`; `prune_low_magnitude(model,
    pruning_policy=policy)` calls both.
    """

    def allow_pruning(self, layer):
        """Whether `layer` is pruned."""
        raise NotImplementedError

    def ensure_model_supports_pruning(self, model):
        """Raises `ValueError` if the policy cannot prune `model`."""
        raise NotImplementedError

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="kcompress")
class PruneForLatencyOnXNNPack(PruningPolicy):
    """Prunes the layers XNNPACK runs sparse, on models it runs sparse.

    Only 1x1 convolutions are pruned (`xnnpack_sparse_layers`). A model
    that XNNPACK's sparse float path cannot run (no 3x3 stride-2 stem on 3
    channels, no global average pool, a layer outside the NCHW path, a
    stride-2 convolution padded on one side) is refused with a
    `ValueError` saying what to change (`xnnpack_sparse_issues`). Export
    the stripped model with `tflite_export.convert(model, "float32",
    sparse_encoding=True)` so the file stores the kernels sparse.

    Example:

    >>> L = keras.layers
    >>> model = keras.Sequential([
    ...     keras.Input((8, 8, 3)), L.ZeroPadding2D(1),
    ...     L.Conv2D(8, 3, strides=2), L.ReLU(), L.Conv2D(16, 1, name="pw"),
    ...     L.GlobalAveragePooling2D(), L.Dense(2)])
    >>> from kcompress.pruning import prune_low_magnitude
    >>> pruned = prune_low_magnitude(
    ...     model, pruning_policy=PruneForLatencyOnXNNPack())
    >>> [layer.name for layer in pruned.layers
    ...  if type(layer).__name__ == "PruneLowMagnitude"]
    ['prune_low_magnitude_pw']
    """

    def allow_pruning(self, layer):
        return xnnpack_sparse.is_pointwise(layer)

    def ensure_model_supports_pruning(self, model):
        # The sparsity itself is what pruning is about to give it.
        issues = xnnpack_sparse.xnnpack_sparse_issues(model, min_sparsity=0.0)
        if issues:
            raise ValueError(
                f"Model '{model.name}' cannot run on XNNPACK's sparse float "
                "path, so PruneForLatencyOnXNNPack refuses it: "
                + " ".join(issues))
        if not any(self.allow_pruning(layer) for layer in iter_layers(model)):
            raise ValueError(
                f"Model '{model.name}' has no 1x1 Conv2D, the only layers "
                "XNNPACK runs sparse. Expected at least one.")
