import logging

import keras
import numpy as np
import pytest

from kcompress import pruning
from kcompress.pruning import ConstantSparsity
from kcompress.pruning import PruneLowMagnitude


def _functional_with_nested():
    inner = keras.Sequential([keras.Input((6,)), keras.layers.Dense(5,
                              name="inner_dense")], name="inner")
    inputs = keras.Input((4,))
    x = keras.layers.Dense(6, name="outer_dense")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = inner(x)
    outputs = keras.layers.Dense(3, name="head")(x)
    return keras.Model(inputs, outputs, name="with_nested")


def _weights(model):
    return [w.copy() for w in model.get_weights()]


def test_layer_and_list():
    wrapped = pruning.prune_low_magnitude(keras.layers.Dense(2))
    assert isinstance(wrapped, PruneLowMagnitude)
    wrapped = pruning.prune_low_magnitude(
        [keras.layers.Dense(2), keras.layers.Conv2D(2, 3)])
    assert [type(w) for w in wrapped] == [PruneLowMagnitude] * 2


def test_functional_with_nested_model_wraps_all_and_keeps_weights():
    model = _functional_with_nested()
    x = np.random.default_rng(0).normal(size=(5, 4)).astype("float32")
    before = _weights(model)
    expected = model.predict(x, verbose=0)
    pruned = pruning.prune_low_magnitude(model)
    names = {w.layer.name for w in pruning.pruning_wrappers(pruned)}
    assert names == {"outer_dense", "inner_dense", "head"}
    # Masks start at ones, so the clone computes what the original did.
    np.testing.assert_allclose(pruned.predict(x, verbose=0), expected,
                               rtol=1e-5, atol=1e-6)
    # The input model is untouched.
    assert not pruning.pruning_wrappers(model)
    for a, b in zip(before, _weights(model)):
        np.testing.assert_array_equal(a, b)


def test_fit_then_strip_gives_same_outputs_and_plain_layers():
    model = _functional_with_nested()
    pruned = pruning.prune_low_magnitude(
        model, ConstantSparsity(0.6, begin_step=0, frequency=2))
    x = np.random.default_rng(1).normal(size=(32, 4)).astype("float32")
    pruned.compile("adam", "mse")
    pruned.fit(x, np.zeros((32, 3)), epochs=2, batch_size=8, verbose=0,
               callbacks=[pruning.UpdatePruningStep()])
    stripped = pruning.strip_pruning(pruned)
    assert not pruning.pruning_wrappers(stripped)
    assert [type(layer).__name__ for layer in stripped.layers] == [
        "InputLayer", "Dense", "BatchNormalization", "Sequential", "Dense"]
    np.testing.assert_allclose(stripped.predict(x, verbose=0),
                               pruned.predict(x, verbose=0), rtol=1e-5,
                               atol=1e-6)
    for name in ("outer_dense", "head"):
        kernel = stripped.get_layer(name).kernel.numpy()
        assert (kernel == 0).mean() == pytest.approx(0.6, abs=0.05)
    assert pruning.pruning_wrappers(pruned)  # strip left its input alone


def test_sequential_model():
    model = keras.Sequential([keras.Input((8, 8, 1)),
                              keras.layers.Conv2D(4, 3), keras.layers.Flatten(),
                              keras.layers.Dense(2)])
    pruned = pruning.prune_low_magnitude(model)
    assert [type(layer).__name__ for layer in pruned.layers] == [
        "PruneLowMagnitude", "Flatten", "PruneLowMagnitude"]
    assert pruned.name == model.name


def test_m_by_n_model_leaves_depthwise_dense_with_warning(caplog):
    caplog.set_level(logging.INFO)  # depthwise: dense by default, logged
    model = keras.Sequential([keras.Input((6, 6, 4)),
                              keras.layers.DepthwiseConv2D(3, name="dw"),
                              keras.layers.Conv2D(8, 1, name="pw")])
    pruned = pruning.prune_low_magnitude(model, sparsity_m_by_n=(2, 4))
    assert [type(layer).__name__ for layer in pruned.layers] == [
        "DepthwiseConv2D", "PruneLowMagnitude"]
    assert "dw" in caplog.text


def test_already_pruned_model_is_refused():
    pruned = pruning.prune_low_magnitude(_functional_with_nested())
    with pytest.raises(ValueError, match="already pruned.*strip_pruning"):
        pruning.prune_low_magnitude(pruned)
    with pytest.raises(ValueError, match="already wrapped"):
        pruning.prune_low_magnitude(pruned.layers[1])


def test_model_without_prunable_layers_is_refused():
    model = keras.Sequential([keras.Input((4,)), keras.layers.ReLU(),
                              keras.layers.Dropout(0.1)], name="plain")
    with pytest.raises(ValueError, match="'plain' has no prunable layers"):
        pruning.prune_low_magnitude(model)


def test_subclassed_model_gets_instructions():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    net = Net()
    net(np.ones((1, 3)))
    with pytest.raises(ValueError, match="subclassed model.*cannot clone.*"
                       "prune_low_magnitude\\(keras.layers.Dense"):
        pruning.prune_low_magnitude(net)


@pytest.mark.parametrize("bad", ["model.keras", 3, np.ones(3), {"a": 1}])
def test_non_keras_object_is_refused(bad):
    with pytest.raises(ValueError, match="Expected a keras.layers.Layer"):
        pruning.prune_low_magnitude(bad)


def test_layer_kwargs_with_model_are_refused():
    with pytest.raises(ValueError, match="name"):
        pruning.prune_low_magnitude(_functional_with_nested(), name="x")


def test_stripped_zeros_are_positive_zeros():
    """A masked negative weight is -0.0; stripped, every zero is +0.0, so
    a float32 file stores one byte pattern for zero (and gzips better)."""
    keras.utils.set_random_seed(0)
    model = pruning.prune_low_magnitude(
        keras.Sequential([keras.Input((16,)), keras.layers.Dense(16)]),
        ConstantSparsity(0.5, 0, frequency=1))
    model.compile("sgd", "mse")
    model.fit(np.ones((4, 16)), np.ones((4, 16)), verbose=0,
              callbacks=[pruning.UpdatePruningStep()])
    kernel = np.asarray(pruning.strip_pruning(model).layers[0].kernel)
    assert np.mean(kernel == 0) == 0.5
    assert not np.signbit(kernel[kernel == 0]).any()
