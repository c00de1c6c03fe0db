"""Weight clustering: unique values, training, sparsity, serialization."""

import keras
import numpy as np
import pytest

import kcompress as kc
from kcompress.clustering import centroids
from tests._digits import digit_images

L = keras.layers
INITS = list(kc.clustering.CentroidInitialization)


def _unique_per_channel(kernel, per_channel):
    kernel = np.asarray(kernel)
    if not per_channel:
        return len(np.unique(kernel))
    columns = kernel.reshape(-1, kernel.shape[-1])
    return max(len(np.unique(columns[:, c])) for c in range(columns.shape[1]))


def _cnn():
    keras.utils.set_random_seed(0)
    return keras.Sequential([
        keras.Input((8, 8, 1)),
        L.Conv2D(8, 3, activation="relu", name="conv"),
        L.Flatten(),
        L.Dense(16, activation="relu", name="hidden"),
        L.Dense(10, name="logits"),
    ])


@pytest.mark.parametrize("init", INITS, ids=lambda i: i.value)
def test_initializations_give_sorted_centroids_in_range(init):
    values = np.random.default_rng(0).normal(size=500)
    result = centroids.initial_centroids(values, 8, init)
    assert result.shape == (8,)
    assert np.all(np.diff(result) >= 0)
    assert values.min() <= result.min() and result.max() <= values.max()


@pytest.mark.parametrize("per_channel", [False, True])
def test_training_keeps_at_most_n_values_per_kernel(per_channel):
    x, y = digit_images(256)
    clustered = kc.clustering.cluster_weights(
        _cnn(), number_of_clusters=4, cluster_per_channel=per_channel)
    clustered.compile("adam", keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    before = [np.array(w) for w in clustered.get_weights()]
    clustered.fit(x, y, batch_size=64, epochs=1, verbose=0)
    assert any(np.any(b != np.asarray(a)) for b, a in zip(
        before, clustered.get_weights()))
    stripped = kc.clustering.strip_clustering(clustered)
    for name in ("conv", "hidden", "logits"):
        kernel = stripped.get_layer(name).kernel
        per = per_channel and name == "conv"
        assert _unique_per_channel(kernel, per) <= 4, name
    np.testing.assert_allclose(keras.ops.convert_to_numpy(stripped(x[:8])),
                               keras.ops.convert_to_numpy(clustered(x[:8])),
                               atol=1e-5)


def test_centroids_receive_gradients_and_move():
    x, y = digit_images(256)
    clustered = kc.clustering.cluster_weights(_cnn(), number_of_clusters=4)
    wrapper = clustered.get_layer("cluster_hidden")
    start = np.array(wrapper.centroids[0])
    clustered.compile(keras.optimizers.SGD(0.1), keras.losses.
                      SparseCategoricalCrossentropy(from_logits=True))
    clustered.fit(x, y, batch_size=64, epochs=1, verbose=0)
    assert np.abs(np.array(wrapper.centroids[0]) - start).max() > 1e-4


def test_preserve_sparsity_keeps_zeros_and_n_values():
    model = _cnn()
    kernel = np.array(model.get_layer("hidden").kernel)
    kernel[np.abs(kernel) < np.quantile(np.abs(kernel), 0.8)] = 0
    model.get_layer("hidden").kernel.assign(kernel)
    x, y = digit_images(256)
    clustered = kc.clustering.cluster_weights(model, number_of_clusters=8,
                                              preserve_sparsity=True)
    clustered.compile("adam", keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    clustered.fit(x, y, batch_size=64, epochs=1, verbose=0)
    result = np.asarray(kc.clustering.strip_clustering(clustered).get_layer(
        "hidden").kernel)
    assert np.all(result[kernel == 0] == 0)
    assert len(np.unique(result)) <= 8


def test_config_round_trip_and_keras_file(tmp_path):
    x, _ = digit_images(256)
    clustered = kc.clustering.cluster_weights(
        _cnn(), number_of_clusters=5,
        cluster_centroids_init=kc.clustering.CentroidInitialization.LINEAR,
        cluster_per_channel=True)
    wrapper = clustered.get_layer("cluster_conv")
    config = wrapper.get_config()
    again = kc.clustering.ClusterWeights.from_config(config).get_config()
    assert again["layer"]["config"] == config["layer"]["config"]
    assert {k: v for k, v in again.items() if k != "layer"} == {
        k: v for k, v in config.items() if k != "layer"}
    path = str(tmp_path / "clustered.keras")
    clustered.save(path)
    loaded = keras.saving.load_model(path)  # no scope
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x[:8])),
                               keras.ops.convert_to_numpy(clustered(x[:8])),
                               atol=1e-6)


@pytest.mark.parametrize("kwargs, match", [
    ({"number_of_clusters": 1}, "number_of_clusters=1"),
    ({"number_of_clusters": 8, "cluster_centroids_init": "MEDIAN"},
     "cluster_centroids_init='MEDIAN'"),
])
def test_bad_arguments_get_their_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        kc.clustering.cluster_weights(_cnn(), **kwargs)


def test_unsupported_layer_is_refused_by_name():
    with pytest.raises(ValueError, match="'norm' of type BatchNormalization"):
        kc.clustering.cluster_weights(L.BatchNormalization(name="norm"), 8)


def test_summary_shows_unique_values_per_kernel():
    clustered = kc.clustering.cluster_weights(_cnn(), number_of_clusters=6)
    rows = {row.name: row for row in kc.summary(clustered,
                                                print_fn=lambda t: None)}
    assert rows["cluster_hidden"].unique <= 6
    assert rows["cluster_hidden"].type == "Dense (clustered)"
    assert rows["cluster_hidden"].params == 8 * 6 * 6 * 16 + 16
    plain = {row.name: row for row in kc.summary(_cnn(),
                                                 print_fn=lambda t: None)}
    assert plain["hidden"].unique > 100


def test_interrupted_fit_resumes_with_the_clusters(tmp_path):
    x, y = digit_images(256)

    def run(interrupt):
        keras.utils.set_random_seed(0)
        clustered = kc.clustering.cluster_weights(_cnn(), 4)
        clustered.compile(keras.optimizers.SGD(0.05), keras.losses.
                          SparseCategoricalCrossentropy(from_logits=True))
        backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))

        class Stop(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if interrupt and epoch == 0:
                    raise RuntimeError("interrupted")

        try:
            clustered.fit(x, y, batch_size=64, epochs=2, verbose=0,
                          shuffle=False, callbacks=[backup, Stop()])
        except RuntimeError:
            # Another seed: only the backup can make this model the other.
            keras.utils.set_random_seed(1)
            clustered = kc.clustering.cluster_weights(_cnn(), 4)
            clustered.compile(keras.optimizers.SGD(0.05), keras.losses.
                              SparseCategoricalCrossentropy(from_logits=True))
            clustered.fit(x, y, batch_size=64, epochs=2, verbose=0,
                          shuffle=False, callbacks=[backup, seen])
        return kc.clustering.strip_clustering(clustered)

    class Seen(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.epochs = []

        def on_epoch_begin(self, epoch, logs=None):
            self.epochs.append(epoch)

    seen = Seen()
    resumed = run(interrupt=True)
    assert seen.epochs == [1]  # resumed after epoch 0, not restarted
    straight = run(interrupt=False)
    for a, b in zip(resumed.get_weights(), straight.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-5)
