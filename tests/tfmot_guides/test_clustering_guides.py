"""TFMOT's weight clustering example and comprehensive guide, and its
collaborative optimization examples (PQAT, CQAT, PCQAT), run through
`kcompress.compat.tfmot` on Keras 3.

The guides claim: a clustered kernel holds at most `number_of_clusters`
values (per channel with `cluster_per_channel`); accuracy stays close to
the float model's; the stripped model compresses under gzip; and QAT with a
preserving scheme keeps the zeros, the clusters, or both, into the int8
file.
"""

import keras
import numpy as np
import pytest

import tflite_export as te
from kcompress.compat import tfmot
from tests.tfmot_guides.conftest import compile_guide
from tests.tfmot_guides.conftest import reload
from tests.tfmot_guides.conftest import tflite_accuracy

L = keras.layers
# The guides' "minimal loss" is on MNIST's 10,000 test images; on these 360
# after a few hundred steps, allow 3 points (5 after 80% pruning).
TOLERANCE = 0.03
CentroidInitialization = tfmot.clustering.keras.CentroidInitialization


def _unique(model, name):
    return len(np.unique(keras.ops.convert_to_numpy(
        model.get_layer(name).kernel)))


def _per_channel_unique(kernel):
    """Most distinct values in one output channel of a file's kernel."""
    return max(len(np.unique(row))
               for row in kernel.reshape(kernel.shape[0], -1))


def _cluster(model, data, epochs=2, **params):
    keras.utils.set_random_seed(1)
    clustered = compile_guide(tfmot.clustering.keras.cluster_weights(
        model, **params), learning_rate=1e-4)
    clustered.fit(data.x_train, data.y_train, batch_size=32, epochs=epochs,
                  verbose=0)
    return clustered


def test_clustering_example(guide):
    """The example: 16 clusters, LINEAR, fine-tune at a low rate, strip;
    at most 16 values per kernel, accuracy kept, gzip 3x smaller, and the
    int8 file of the stripped model."""
    data = guide.data
    clustered = _cluster(
        guide.copy(), data, number_of_clusters=16,
        cluster_centroids_init=CentroidInitialization.LINEAR)
    final_model = tfmot.clustering.keras.strip_clustering(clustered)
    compile_guide(final_model)
    accuracy = final_model.evaluate(data.x_test, data.y_test, verbose=0)[1]
    assert accuracy >= guide.accuracy - TOLERANCE, accuracy
    assert _unique(final_model, "conv") <= 16
    assert _unique(final_model, "logits") <= 16
    dense_gzip = te.gzip_size(te.convert(guide.model, "float32"))
    clustered_gzip = te.gzip_size(te.convert(final_model, "float32"))
    assert clustered_gzip < dense_gzip / 3, (clustered_gzip, dense_gzip)
    int8 = te.convert(final_model, "int8",
                      representative_data=data.x_train[:200])
    assert tflite_accuracy(int8, data) >= guide.accuracy - TOLERANCE


def test_cluster_some_layers_per_channel_and_save(guide, tmp_path):
    """Comprehensive guide: cluster only the Conv2D, per channel, through
    `clone_model`; save and load under cluster_scope; strip."""
    def apply_clustering_to_conv(layer):
        copy = layer.__class__.from_config(layer.get_config())
        if isinstance(layer, L.Conv2D):
            copy.build(layer.input.shape)
            copy.set_weights(layer.get_weights())
            return tfmot.clustering.keras.cluster_weights(
                copy, number_of_clusters=4, cluster_per_channel=True)
        return copy

    model = guide.copy()
    clustered = compile_guide(keras.models.clone_model(
        model, clone_function=apply_clustering_to_conv))
    clustered.fit(guide.data.x_train[:256], guide.data.y_train[:256],
                  verbose=0)
    loaded = reload(clustered, str(tmp_path / "clustered.keras"),
                    tfmot.clustering.keras.cluster_scope(),
                    guide.data.x_test[:8])
    stripped = tfmot.clustering.keras.strip_clustering(loaded)
    kernel = keras.ops.convert_to_numpy(stripped.get_layer("conv").kernel)
    per_channel = kernel.reshape(-1, kernel.shape[-1])
    assert max(len(np.unique(column)) for column in per_channel.T) <= 4
    assert len(np.unique(kernel)) > 4  # each channel has its own values
    assert _unique(stripped, "logits") > 16  # not clustered


def test_clusterable_custom_layer():
    """Comprehensive guide: a custom layer names its clusterable weights
    through ClusterableLayer."""

    class MyDenseLayer(L.Dense, tfmot.clustering.keras.ClusterableLayer):
        def get_clusterable_weights(self):
            return [("kernel", self.kernel)]

    model = keras.Sequential([keras.Input((20,)), MyDenseLayer(8)])
    clustered = tfmot.clustering.keras.cluster_weights(
        model, number_of_clusters=4)
    clustered.compile("adam", "mse")
    x = np.random.default_rng(0).normal(size=(64, 20)).astype("float32")
    clustered.fit(x, x[:, :8], verbose=0)
    stripped = tfmot.clustering.keras.strip_clustering(clustered)
    layer = stripped.layers[-1]
    assert len(np.unique(keras.ops.convert_to_numpy(layer.kernel))) <= 4
    assert len(np.unique(keras.ops.convert_to_numpy(layer.bias))) > 4


@pytest.fixture(scope="module")
def pruned(guide):
    """The collaborative examples start from a model pruned to 50% (the
    guides' figure) and stripped."""
    keras.utils.set_random_seed(1)
    data = guide.data
    model = compile_guide(tfmot.sparsity.keras.prune_low_magnitude(
        guide.copy(), tfmot.sparsity.keras.ConstantSparsity(
            0.5, begin_step=0, frequency=10)))
    model.fit(data.x_train, data.y_train, batch_size=32, epochs=2,
              verbose=0, callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    return tfmot.sparsity.keras.strip_pruning(model)


def _qat(model, scheme, data):
    keras.utils.set_random_seed(1)
    annotated = tfmot.quantization.keras.quantize_annotate_model(model)
    qat = compile_guide(tfmot.quantization.keras.quantize_apply(
        annotated, scheme), learning_rate=1e-4)
    qat.fit(data.x_train, data.y_train, batch_size=32, epochs=1, verbose=0)
    accuracy = qat.evaluate(data.x_test, data.y_test, verbose=0)[1]
    return te.convert(qat, "qat"), accuracy


def test_pqat_example_keeps_the_zeros_in_the_int8_file(guide, pruned):
    tflite, accuracy = _qat(
        pruned, tfmot.experimental.combine.
        Default8BitPrunePreserveQuantizeScheme(), guide.data)
    assert accuracy >= guide.accuracy - TOLERANCE
    assert tflite_accuracy(tflite, guide.data) >= guide.accuracy - TOLERANCE
    for op_name, kernel in te.kernel_weights(tflite).values():
        assert np.mean(kernel == 0) >= 0.49, op_name


def test_cqat_example_keeps_the_clusters_in_the_int8_file(guide):
    clustered = tfmot.clustering.keras.strip_clustering(_cluster(
        guide.copy(), guide.data, epochs=1, number_of_clusters=8,
        cluster_centroids_init=CentroidInitialization.KMEANS_PLUS_PLUS))
    tflite, accuracy = _qat(
        clustered, tfmot.experimental.combine.
        Default8BitClusterPreserveQuantizeScheme(), guide.data)
    assert accuracy >= guide.accuracy - TOLERANCE
    kernels = te.kernel_weights(tflite)
    assert len(kernels) == 2
    for op_name, kernel in kernels.values():
        assert _per_channel_unique(kernel) <= 8, op_name
        if op_name == "FULLY_CONNECTED":  # per tensor
            assert len(np.unique(kernel)) <= 8


def test_pcqat_example_keeps_zeros_and_clusters(guide, pruned):
    clustered = tfmot.clustering.keras.strip_clustering(_cluster(
        pruned, guide.data, epochs=1, number_of_clusters=8,
        cluster_centroids_init=CentroidInitialization.KMEANS_PLUS_PLUS,
        preserve_sparsity=True))
    tflite, accuracy = _qat(
        clustered, tfmot.experimental.combine.
        Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=True),
        guide.data)
    assert accuracy >= guide.accuracy - TOLERANCE
    for op_name, kernel in te.kernel_weights(tflite).values():
        assert np.mean(kernel == 0) >= 0.49, op_name
        assert _per_channel_unique(kernel) <= 8, op_name
