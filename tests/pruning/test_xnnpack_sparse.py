"""What keeps a model off XNNPACK's sparse path, and the fixes."""

import keras
import numpy as np
import pytest

import kcompress as kc

L = keras.layers


def _mobilenet_like(padding="same"):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3))
    x = L.Conv2D(8, 3, strides=2, padding=padding, name="stem")(inputs)
    x = L.ReLU(6.0)(x)
    y = L.Conv2D(16, 1, name="expand")(x)
    y = L.DepthwiseConv2D(3, padding="same", name="dw")(y)
    y = L.BatchNormalization()(y)
    y = L.Conv2D(8, 1, name="project")(y)
    x = L.Add()([x, y])
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, L.Dense(4, name="logits")(x))


def test_layers_are_the_pointwise_convolutions():
    assert kc.pruning.xnnpack_sparse_layers(_mobilenet_like()) == [
        "expand", "project"]


def test_issues_name_the_stem_and_the_dense_pointwise_layers():
    model = _mobilenet_like()
    issues = kc.pruning.xnnpack_sparse_issues(model)
    assert len(issues) == 2
    assert "'stem' pads 'same'" in issues[0]
    assert "2 1x1 convs hold fewer than 67% zeros" in issues[1]
    assert "'expand' (0%)" in issues[1]


def test_padded_stem_and_pruning_clear_every_issue():
    model = _mobilenet_like()
    fixed = kc.pruning.xnnpack_sparse_padding(model)
    assert [layer.name for layer in fixed.layers[1:3]] == ["stem_pad",
                                                           "stem"]
    assert fixed.get_layer("stem").padding == "valid"
    assert model.get_layer("stem").padding == "same"  # not modified
    x = np.random.default_rng(0).uniform(size=(2, 16, 16, 3)).astype(
        "float32")
    assert fixed.predict(x, verbose=0).shape == (2, 4)
    schedule = kc.pruning.ConstantSparsity(0.8, 0, frequency=1)
    pruned = kc.prune_low_magnitude(fixed, {
        name: schedule for name in kc.pruning.xnnpack_sparse_layers(fixed)})
    pruned.compile("sgd", "mse")
    pruned.fit(x, np.zeros((2, 4)), verbose=0,
               callbacks=[kc.pruning.UpdatePruningStep()])
    assert kc.pruning.xnnpack_sparse_issues(
        kc.strip_pruning(pruned)) == []


def test_keras_applications_block_padding_becomes_symmetric():
    inputs = keras.Input((16, 16, 3))
    x = L.Conv2D(8, 3, strides=2, padding="valid", name="stem")(
        L.ZeroPadding2D(1)(inputs))
    x = L.ZeroPadding2D(((0, 1), (0, 1)), name="block_pad")(x)
    x = L.DepthwiseConv2D(3, strides=2, name="block_dw")(x)
    model = keras.Model(inputs, L.GlobalAveragePooling2D()(x))
    issues = kc.pruning.xnnpack_sparse_issues(model)
    assert issues == [issues[0]] and "'block_pad'" in issues[0]
    fixed = kc.pruning.xnnpack_sparse_padding(model)
    assert fixed.get_layer("block_pad").padding == ((1, 1), (1, 1))
    assert fixed.output.shape == model.output.shape
    assert kc.pruning.xnnpack_sparse_issues(fixed) == []


def test_a_model_without_a_stem_or_pool_is_told_so():
    model = keras.Sequential([keras.Input((8, 8, 1)), L.Conv2D(4, 3),
                              L.Flatten(), L.Dense(2)])
    issues = kc.pruning.xnnpack_sparse_issues(model)
    assert "not a 3x3 stride-2 Conv2D on 3 input channels" in issues[0]
    assert "No GlobalAveragePooling2D" in issues[1]
    with pytest.raises(ValueError, match="padded on one side only"):
        kc.pruning.xnnpack_sparse_padding(model)
