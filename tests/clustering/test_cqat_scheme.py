"""Cluster-preserving QAT in the graph: `quantize_apply(..., scheme=...)`
and `quantize_model(..., preserve_clusters=True)`."""

import keras
import numpy as np
import pytest

import kcompress as kc
import tflite_export as te
from kcompress.quantization import schemes
from kcompress.quantization import shared_values
from tests._digits import digit_images

L = keras.layers


def _loss():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _clustered(count=8, sparsity=0.0):
    """A stripped clustered CNN with a conv+BatchNorm pair (folded in QAT)
    and Dense layers, pruned first when `sparsity`."""
    keras.utils.set_random_seed(0)
    x, y = digit_images(512)
    model = keras.Sequential([
        keras.Input((8, 8, 1)), L.Conv2D(8, 3, name="conv"),
        L.BatchNormalization(name="bn"), L.ReLU(), L.Flatten(),
        L.Dense(32, activation="relu", name="hidden"),
        L.Dense(10, name="logits")])
    model.compile("adam", _loss())
    model.fit(x, y, batch_size=64, epochs=2, verbose=0)
    if sparsity:
        pruned = kc.prune_low_magnitude(
            model, kc.pruning.ConstantSparsity(sparsity, 0, frequency=1))
        pruned.compile("adam", _loss())
        pruned.fit(x[:64], y[:64], batch_size=64, epochs=1, verbose=0,
                   callbacks=[kc.pruning.UpdatePruningStep()])
        model = kc.strip_pruning(pruned)
    return kc.clustering.strip_clustering(kc.clustering.cluster_weights(
        model, count, preserve_sparsity=bool(sparsity)))


def test_layout_numbers_values_per_tensor_then_per_channel():
    per_channel = np.stack([np.arange(4.0), np.arange(4.0) + 10], -1)
    ids, count, by_channel = shared_values.layout(per_channel, max_count=4)
    assert (count, by_channel) == (4, True)
    np.testing.assert_array_equal(ids, [[0, 0], [1, 1], [2, 2], [3, 3]])
    assert shared_values.layout(per_channel, max_count=8)[1:] == (8, False)
    assert shared_values.layout(per_channel, max_count=3) is None
    assert len(np.unique(shared_values.cluster_ids(per_channel, 4))) == 8


def test_weights_join_the_nearest_trainable_centroid():
    """As TFMOT's CQAT: the forward pass sees centroids; each weight trains
    on its own and, on a training call, joins its nearest centroid."""
    dense = L.Dense(2, use_bias=False)
    dense.build((None, 3))
    dense.kernel.assign(np.array([[1, 1], [1, 5], [5, 5]], "float32"))
    wrapper = kc.quantization.QuantizeWrapper(
        dense, preserve_clusters=True, preserve_sparsity=False)
    wrapper.build((None, 3))
    assert wrapper.clustered_weights == {
        "kernel": {"count": 2, "per_channel": False}}
    assert len(wrapper.trainable_weights) == 2  # the kernel, the centroids
    dense.kernel.assign(np.array([[4.6, 1], [1, 5], [5, 5]], "float32"))
    (_, inference), = wrapper.effective_weights()
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(inference),
                                  [[1, 1], [1, 5], [5, 5]])
    (_, trained), = wrapper.effective_weights(training=True)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(trained),
                                  [[5, 1], [1, 5], [5, 5]])


def test_cqat_scheme_keeps_clusters_through_training_into_the_file():
    x, y = digit_images(512)
    clustered = _clustered(8)
    qat = kc.quantization.quantize_apply(
        kc.quantization.quantize_annotate_model(clustered),
        scheme=kc.quantization.Default8BitClusterPreserveQuantizeScheme(
            preserve_sparsity=False))
    assert "kernel" in qat.get_layer("quant_hidden").clustered_weights
    assert qat.get_layer("quant_conv_bn").kernel_clustered
    qat.compile(keras.optimizers.Adam(1e-3), _loss(), metrics=["accuracy"])
    qat.fit(x, y, batch_size=64, epochs=1, verbose=0)
    for name in ("quant_hidden", "quant_logits"):
        (_, value), = qat.get_layer(name).effective_weights()
        assert len(np.unique(keras.ops.convert_to_numpy(value))) <= 8
    if keras.backend.backend() != "tensorflow":
        return  # (conversion from JAX: tests/test_backends.py; CI budget)
    kernels = te.kernel_weights(te.convert(qat, "qat"))
    assert len(kernels) == 3
    for op_name, kernel in kernels.values():
        rows = kernel.reshape(kernel.shape[0], -1)
        if op_name == "CONV_2D":  # the BatchNorm scales each channel
            assert max(len(np.unique(row)) for row in rows) <= 8
        else:
            assert len(np.unique(kernel)) <= 8, op_name


def test_pcqat_keeps_zeros_and_clusters_without_a_callback():
    x, y = digit_images(512)
    clustered = _clustered(8, sparsity=0.75)
    qat = kc.quantize_model(clustered, preserve_clusters=True)
    qat.compile(keras.optimizers.Adam(1e-3), _loss())
    qat.fit(x, y, batch_size=64, epochs=1, verbose=0)
    for layer in ("quant_hidden", "quant_logits"):
        (_, value), = qat.get_layer(layer).effective_weights()
        value = keras.ops.convert_to_numpy(value)
        assert np.mean(value == 0) >= 0.74 and len(np.unique(value)) <= 8
    if keras.backend.backend() != "tensorflow":
        return  # (conversion from JAX: tests/test_backends.py; CI budget)
    for op_name, kernel in te.kernel_weights(
            te.convert(qat, "qat")).values():
        assert np.mean(kernel == 0) >= 0.74, op_name
        rows = kernel.reshape(kernel.shape[0], -1)
        assert max(len(np.unique(row)) for row in rows) <= 8, op_name


def test_cqat_model_saves_and_loads_with_the_same_outputs(tmp_path):
    x, _ = digit_images(512)
    qat = kc.quantize_model(_clustered(4), preserve_clusters=True,
                            calibration_data=x[:64])
    path = str(tmp_path / "cqat.keras")
    qat.save(path)
    loaded = keras.saving.load_model(path)
    assert "kernel" in loaded.get_layer("quant_hidden").clustered_weights
    np.testing.assert_allclose(loaded.predict(x[:16], verbose=0),
                               qat.predict(x[:16], verbose=0), atol=1e-5)


@pytest.mark.parametrize("scheme, options", [
    (schemes.Default8BitQuantizeScheme(), (True, False)),
    (schemes.Default8BitPrunePreserveQuantizeScheme(), (True, False)),
    (schemes.Default8BitClusterPreserveQuantizeScheme(), (True, True)),
    (schemes.Default8BitClusterPreserveQuantizeScheme(False), (False, True)),
])
def test_schemes_round_trip_their_config(scheme, options):
    again = type(scheme).from_config(scheme.get_config())
    assert again == scheme
    assert (again.preserve_sparsity, again.preserve_clusters) == options
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(scheme))
    assert restored == scheme


def test_bad_scheme_gets_its_error():
    model = keras.Sequential([keras.Input((4,)), L.Dense(2)])
    with pytest.raises(ValueError, match="Received: scheme='cqat'"):
        kc.quantization.quantize_apply(
            kc.quantization.quantize_annotate_model(model), scheme="cqat")
    with pytest.raises(ValueError, match="preserve_sparsity=1. Expected"):
        schemes.QuantizeScheme(preserve_sparsity=1)
