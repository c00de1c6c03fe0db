"""Cluster-preserving QAT: prune, cluster, QAT, int8, with both kept."""

import keras
import numpy as np
import pytest

import kcompress as kc
import tflite_export as te
from tests._digits import digit_images

L = keras.layers


def test_pcqat_keeps_zeros_and_clusters_into_the_int8_file():
    keras.utils.set_random_seed(0)
    x, y = digit_images()
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        L.Conv2D(16, 3, activation="relu", name="conv"),
        L.Flatten(), L.Dense(32, activation="relu", name="hidden"),
        L.Dense(10, name="logits")])
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile("adam", loss)
    model.fit(x, y, batch_size=64, epochs=5, verbose=0)
    pruned = kc.prune_low_magnitude(
        model, kc.pruning.PolynomialDecay(0.0, 0.8, 0, end_step=30,
                                          frequency=5))
    pruned.compile("adam", loss, metrics=["accuracy"])
    pruned.fit(x, y, batch_size=64, epochs=2, verbose=0,
               callbacks=[kc.pruning.UpdatePruningStep()])
    pruned_accuracy = pruned.evaluate(x, y, verbose=0)[1]
    clustered = kc.clustering.cluster_weights(
        kc.strip_pruning(pruned), 16, preserve_sparsity=True,
        cluster_per_channel=True)
    clustered.compile("adam", loss)
    clustered.fit(x, y, batch_size=64, epochs=1, verbose=0)
    qat = kc.quantize_model(kc.clustering.strip_clustering(clustered),
                            calibration_data=x[:200])
    qat.compile(keras.optimizers.Adam(1e-4), loss, metrics=["accuracy"])
    preserve = kc.clustering.PreserveClusters(16)
    qat.fit(x, y, batch_size=64, epochs=1, verbose=0, callbacks=[preserve])
    assert len(preserve.tracked) == 3
    accuracy = qat.evaluate(x, y, verbose=0)[1]
    assert accuracy >= pruned_accuracy - 0.03, (accuracy, pruned_accuracy)
    if keras.backend.backend() != "tensorflow":
        return  # (conversion from JAX: tests/test_backends.py; CI budget)
    kernels = te.kernel_weights(te.convert(qat, "qat"))
    assert len(kernels) == 3
    for op_name, kernel in kernels.values():
        assert np.mean(kernel == 0) >= 0.79, op_name
        if op_name == "CONV_2D":  # per output channel, the first axis
            flat = kernel.reshape(kernel.shape[0], -1)
            assert max(len(np.unique(row)) for row in flat) <= 16
        else:
            assert len(np.unique(kernel)) <= 16


def test_without_the_callback_qat_scatters_the_clusters():
    keras.utils.set_random_seed(0)
    x, y = digit_images()
    model = keras.Sequential([keras.Input((8, 8, 1)), L.Flatten(),
                              L.Dense(10, name="logits")])
    clustered = kc.clustering.strip_clustering(
        kc.clustering.cluster_weights(model, 4))
    qat = kc.quantize_model(clustered)
    qat.compile("adam", keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    qat.fit(x[:256], y[:256], batch_size=64, epochs=1, verbose=0)
    kernel = np.asarray(qat.get_layer("quant_logits").layer.kernel)
    assert len(np.unique(kernel)) > 4


def test_a_model_without_clusters_is_refused():
    model = keras.Sequential([keras.Input((8,)), L.Dense(3)])
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match="no kernel .* at most 4"):
        model.fit(np.ones((8, 8)), np.ones((8, 3)), verbose=0,
                  callbacks=[kc.clustering.PreserveClusters(4)])
