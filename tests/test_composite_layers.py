"""Pruning, QAT and clustering reach the layers inside composite layers.

Runs on every backend (the JAX pass includes it); the int8 files of the
same models are checked in tests/tflite_export/test_composite_export.py.
"""

import logging
import os

import keras
import numpy as np
import pytest

import kcompress as kc
from kcompress import _flatten
from kcompress import _keras_internals
from kcompress._owned_weights import OwnedWeight
from kcompress.clustering import cluster_weights
from kcompress.clustering import strip_clustering
from kcompress.pruning import ConstantSparsity
from kcompress.pruning import UpdatePruningStep
from kcompress.pruning import prune_channel_groups
from kcompress.pruning import shrink
from tests._composite_blocks import OwnKernel
from tests._composite_blocks import ScaledDense
from tests._composite_blocks import blocks_model
from tests._composite_blocks import scaled_model
from tests._composite_blocks import token_model

_X = np.random.default_rng(0).uniform(size=(32, 16, 16, 3)).astype("float32")
_Y = np.random.default_rng(1).integers(0, 10, size=32)


def _kernels(model):
    return {layer.name: keras.ops.convert_to_numpy(layer.kernel)
            for layer in model.layers if hasattr(layer, "kernel")}


@pytest.mark.parametrize("no_build", [False, True])
def test_flattening_keeps_outputs_and_leaves_the_model_alone(no_build):
    model = blocks_model(no_build)
    before = [w.copy() for w in model.get_weights()]
    flat, left = _flatten.flatten_composites(model)
    assert left == {}
    names = [type(layer).__name__ for layer in flat.layers]
    assert names.count("Conv2D") == 3 and names.count("Dense") == 3
    np.testing.assert_allclose(flat.predict(_X, verbose=0),
                               model.predict(_X, verbose=0), atol=1e-6)
    # The user's layers have the graph nodes and weights they had.
    block = model.get_layer("block1")
    assert len(_keras_internals.inbound_nodes(block)) == 1
    assert _keras_internals.inbound_nodes(block.conv) == []
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_model_without_composites_is_returned_as_it_is():
    model = scaled_model()
    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    assert _flatten.flatten_composites(plain) == (plain, {})
    flat, left = _flatten.flatten_composites(model)
    assert list(left) == ["scaled"] and "owns variables" in left["scaled"]


def _owned(model):
    return {layer.name: layer for layer in model.layers
            if isinstance(layer, OwnedWeight)}


def test_a_composite_owning_a_class_token_flattens_trains_and_saves(
        tmp_path):
    model = token_model()
    flat, left = _flatten.flatten_composites(model)
    assert left == {}
    owned = _owned(flat)
    assert sorted(owned) == ["embed_position", "embed_token"]
    assert "TokenEmbedding" not in [type(layer).__name__
                                    for layer in flat.layers]
    embed = model.get_layer("embed")
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(owned["embed_token"].value),
        keras.ops.convert_to_numpy(embed.token))
    for x in (_X, _X[:3]):  # The tile by batch keeps any batch size.
        np.testing.assert_allclose(flat.predict(x, verbose=0),
                                   model.predict(x, verbose=0), atol=1e-5)
    # The flat model trains the token and saves it.
    flat.compile("adam", keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    flat.fit(_X, _Y, epochs=1, batch_size=16, verbose=0)
    trained = keras.ops.convert_to_numpy(owned["embed_token"].value)
    assert not np.allclose(trained, keras.ops.convert_to_numpy(embed.token))
    path = os.path.join(tmp_path, "flat.keras")
    flat.save(path)
    loaded = keras.saving.load_model(path)  # no custom_objects scope
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(_owned(loaded)["embed_token"].value),
        trained)
    np.testing.assert_allclose(loaded.predict(_X, verbose=0),
                               flat.predict(_X, verbose=0), atol=1e-6)
    config = owned["embed_token"].get_config()
    again = OwnedWeight.from_config(config)
    assert again.get_config() == config and again.batched


def test_an_owned_weight_refuses_a_batch_axis_it_cannot_broadcast():
    with pytest.raises(ValueError, match=r"Received: value_shape=\(2, 3\)"):
        OwnedWeight((2, 3), batched=True)


def test_qat_reaches_the_conv_beside_a_class_token():
    model = token_model()
    qat = kc.quantize_model(model, strict=True)
    kinds = [type(layer).__name__ for layer in qat.layers]
    assert "TokenEmbedding" not in kinds
    wrapped = {getattr(layer, "layer", layer).name: type(layer).__name__
               for layer in qat.layers}
    assert wrapped["patches"] == "QuantizeWrapper"
    assert wrapped["embed_token"] == "QuantizeWrapper"
    kc.quantization.calibrate(qat, _X)
    # The token's grid is fine enough for the float model's answers.
    float_out = model.predict(_X, verbose=0)
    assert np.abs(qat.predict(_X, verbose=0) - float_out).max() < 0.1 * (
        np.abs(float_out).max())


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="converts with TensorFlow")
def test_qat_file_of_a_class_token_composite_is_int8_and_equals_keras():
    import tflite_export as te

    qat = kc.quantize_model(token_model(), strict=True)
    qat.compile("adam", keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    qat.fit(_X, _Y, epochs=1, batch_size=16, verbose=0)
    tflite = te.convert(qat, "qat")
    compute = [op for op in te.inspect(tflite).ops if op.name in (
        "CONV_2D", "FULLY_CONNECTED", "BATCH_MATMUL")]
    assert len(compute) == 3 and all(op.integer for op in compute), [
        (op.name, op.integer) for op in compute]
    report = te.verify(tflite, qat, _X)
    assert report.max_steps <= 2, report.max_steps


@pytest.mark.parametrize("no_build", [False, True])
def test_pruning_reaches_the_kernels_inside_composites(no_build):
    pruned = kc.prune_low_magnitude(
        blocks_model(no_build), ConstantSparsity(0.75, 0, frequency=1))
    pruned.compile("adam", keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    pruned.fit(_X, _Y, epochs=1, batch_size=16, verbose=0,
               callbacks=[UpdatePruningStep()])
    kernels = _kernels(kc.strip_pruning(pruned))
    assert len(kernels) == 6  # 3 convolutions, 2 in the SE block, the head
    for name, kernel in kernels.items():
        assert abs(np.mean(kernel == 0) - 0.75) <= 0.01, name


def test_with_and_without_build_give_the_same_model():
    built, lazy = blocks_model(False), blocks_model(True)
    lazy.set_weights(built.get_weights())
    qat = [kc.quantize_model(m) for m in (built, lazy)]
    assert [type(layer).__name__ for layer in qat[0].layers] == [
        type(layer).__name__ for layer in qat[1].layers]
    for model in qat:
        kc.quantization.calibrate(model, _X)
    np.testing.assert_allclose(qat[0].predict(_X, verbose=0),
                               qat[1].predict(_X, verbose=0), atol=1e-5)


def test_qat_folds_batchnorm_inside_composites():
    qat = kc.quantize_model(blocks_model())
    kinds = [type(layer).__name__ for layer in qat.layers]
    assert kinds.count("QuantizeConvBatchNorm") == 3
    assert "ConvBlock" not in kinds and "SqueezeExcite" not in kinds


def test_clustering_reaches_the_kernels_inside_composites():
    clustered = cluster_weights(blocks_model(True), number_of_clusters=4)
    for name, kernel in _kernels(strip_clustering(clustered)).items():
        assert len(np.unique(kernel)) <= 4, name


def test_channel_groups_shrink_inside_composites():
    zeroed = prune_channel_groups(blocks_model(True), 0.5)
    small = shrink(zeroed)
    assert small.count_params() < zeroed.count_params()
    np.testing.assert_allclose(small.predict(_X, verbose=0),
                               zeroed.predict(_X, verbose=0), atol=1e-4)


@pytest.mark.parametrize("verb,logger_name,call", [
    ("prune_low_magnitude", "kcompress.pruning.prune",
     lambda m, **kw: kc.prune_low_magnitude(m, **kw)),
    ("quantize_model", "kcompress.quantization.quantize",
     lambda m, **kw: kc.quantize_model(m, **kw)),
    ("cluster_weights", "kcompress.clustering.cluster",
     lambda m, **kw: cluster_weights(m, number_of_clusters=4, **kw)),
])
def test_a_layer_left_out_is_named_and_strict_raises(verb, logger_name, call,
                                                     caplog):
    # QAT cannot flatten a composite owning a variable; pruning and
    # clustering reach its Dense (below), but not a custom kernel.
    model = scaled_model(ScaledDense if verb == "quantize_model"
                         else OwnKernel)
    with caplog.at_level(logging.WARNING, logger=logger_name):
        compressed = call(model)
    messages = [r.getMessage() for r in caplog.records
                if r.name == logger_name]
    assert len(messages) == 1
    assert f"{verb} left 1 layer(s)" in messages[0]
    if verb == "quantize_model":
        assert "'scaled' (it owns variables of its own" in messages[0]
        # 16 * 16 + 16 + 16 of the 144 + 288 + 68 parameters.
        assert "288 of its 500 parameters (57.6%)" in messages[0]
    else:
        assert "'scaled' (kcompress cannot" in messages[0]
        assert "OwnKernel" in messages[0]
        assert "256 of its 468 parameters (54.7%)" in messages[0]
    # The layer left out is copied with its weights.
    for a, b in zip(model.get_layer("scaled").get_weights(),
                    compressed.get_layer("scaled").get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="'scaled'.*strict=True"):
        call(model, strict=True)


def test_a_composite_that_cannot_be_flattened_is_pruned_as_one_layer():
    pruned = kc.prune_low_magnitude(scaled_model(),
                                    ConstantSparsity(0.5, 0, frequency=1))
    assert pruned.get_layer("prune_low_magnitude_scaled")
    pruned.compile("adam", "mse")
    pruned.fit(np.ones((8, 8)), np.ones((8, 4)), epochs=1, verbose=0,
               callbacks=[UpdatePruningStep()])
    inner = kc.strip_pruning(pruned).get_layer("scaled").dense.kernel
    assert np.mean(keras.ops.convert_to_numpy(inner) == 0) == 0.5
    clustered = strip_clustering(cluster_weights(scaled_model(),
                                                 number_of_clusters=3))
    inner = clustered.get_layer("scaled").dense.kernel
    assert len(np.unique(keras.ops.convert_to_numpy(inner))) <= 3


def test_a_fully_covered_model_logs_nothing(caplog):
    with caplog.at_level(logging.WARNING, logger="kcompress"):
        kc.prune_low_magnitude(blocks_model())
        kc.quantize_model(blocks_model())
    assert not [r for r in caplog.records if "uncompressed" in r.getMessage()]


def test_summary_shows_what_each_layer_got():
    rows = {row.name: row for row in kc.summary(
        kc.prune_low_magnitude(scaled_model(OwnKernel)),
        print_fn=lambda text: None)}
    assert rows["scaled"].compression == "none"
    assert rows["prune_low_magnitude_first"].compression == "pruned"
    rows = {row.name: row for row in kc.summary(
        kc.quantize_model(scaled_model()), print_fn=lambda text: None)}
    assert rows["scaled"].compression == "none"
    assert rows["quant_first"].compression == "QAT"
    printed = []
    kc.summary(kc.quantize_model(scaled_model()), print_fn=printed.append)
    assert "Left uncompressed ('none'): scaled" in printed[0]
