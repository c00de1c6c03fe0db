"""`kcompress.compat.tfmot`: TFMOT's layout, one import line to change."""

import keras
import numpy as np
import pytest

from kcompress.compat import tfmot
from tests._digits import digit_images

L = keras.layers


def _model():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((8, 8, 1)),
                             L.Conv2D(8, 3, activation="relu"),
                             L.Flatten(), L.Dense(10)])


def test_pruning_guide_code_path():
    """The "Pruning in Keras" example: prune, fit with the callback,
    strip; the sparsity is reached."""
    x, y = digit_images(320)
    pruning_params = {"pruning_schedule": tfmot.sparsity.keras.
                      PolynomialDecay(initial_sparsity=0.50,
                                      final_sparsity=0.80, begin_step=0,
                                      end_step=10)}
    model = tfmot.sparsity.keras.prune_low_magnitude(_model(),
                                                     **pruning_params)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    model.fit(x, y, batch_size=32, epochs=1, verbose=0,
              callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    stripped = tfmot.sparsity.keras.strip_pruning(model)
    kernel = np.asarray(stripped.layers[-1].kernel)
    assert abs(np.mean(kernel == 0) - 0.8) < 0.01


def test_qat_and_clustering_guide_code_paths():
    x, y = digit_images(320)
    qat = tfmot.quantization.keras.quantize_model(_model())
    qat.compile("adam", keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    qat.fit(x, y, batch_size=32, epochs=1, verbose=0)
    CentroidInitialization = tfmot.clustering.keras.CentroidInitialization
    clustered = tfmot.clustering.keras.cluster_weights(
        _model(), number_of_clusters=16,
        cluster_centroids_init=CentroidInitialization.LINEAR)
    clustered.compile("adam", keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    clustered.fit(x, y, batch_size=32, epochs=1, verbose=0)
    final = tfmot.clustering.keras.strip_clustering(clustered)
    assert len(np.unique(np.asarray(final.layers[-1].kernel))) <= 16


@pytest.mark.parametrize("module, name, hint", [
    (tfmot.quantization.keras, "default_8bit", "QuantizeConfig"),
])
def test_unsupported_symbols_say_what_to_use(module, name, hint):
    with pytest.raises(AttributeError, match=f"{name} is not supported.*"
                       f"{hint}"):
        getattr(module, name)


def test_scopes_load_files(tmp_path):
    model = tfmot.sparsity.keras.prune_low_magnitude(_model())
    path = str(tmp_path / "pruned.keras")
    model.save(path)
    with tfmot.sparsity.keras.prune_scope():
        loaded = keras.saving.load_model(path)
    assert type(loaded.layers[0]).__name__ == "PruneLowMagnitude"
    with tfmot.quantization.keras.quantize_scope(), \
            tfmot.clustering.keras.cluster_scope():
        assert keras.saving.load_model(path) is not None
