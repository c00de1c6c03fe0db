import keras
import numpy as np
import pytest

from kcompress import pruning
from kcompress.pruning import ConstantSparsity
from kcompress.pruning import PolynomialDecay
from kcompress.pruning import PruneLowMagnitude

LAYERS = [
    (lambda: keras.layers.Dense(6), (5,)),
    (lambda: keras.layers.EinsumDense("ab,bc->ac", output_shape=6), (5,)),
    (lambda: keras.layers.Conv1D(4, 3), (9, 3)),
    (lambda: keras.layers.Conv2D(4, 3), (7, 7, 3)),
    (lambda: keras.layers.Conv3D(4, 2), (4, 4, 4, 2)),
    (lambda: keras.layers.Conv2DTranspose(4, 3), (5, 5, 3)),
    (lambda: keras.layers.DepthwiseConv2D(3), (7, 7, 3)),
    (lambda: keras.layers.SeparableConv2D(4, 3), (7, 7, 3)),
    (lambda: keras.layers.Embedding(20, 6), (5,)),
]


def _input(shape, layer):
    rng = np.random.default_rng(0)
    if isinstance(layer, keras.layers.Embedding):
        return rng.integers(0, 20, size=(8,) + shape)
    return rng.normal(size=(8,) + shape).astype("float32")


def _train(model, x, y, epochs=1, **compile_kwargs):
    model.compile("adam", "mse", **compile_kwargs)
    model.fit(x, y, epochs=epochs, batch_size=4, verbose=0,
              callbacks=[pruning.UpdatePruningStep()])


@pytest.mark.parametrize("make_layer, shape", LAYERS)
def test_every_prunable_layer_reaches_sparsity(make_layer, shape):
    layer = make_layer()
    wrapper = PruneLowMagnitude(
        layer, ConstantSparsity(0.75, begin_step=0, frequency=1))
    model = keras.Sequential([keras.Input(shape, dtype=(
        "int32" if isinstance(layer, keras.layers.Embedding) else "float32")),
        wrapper])
    x = _input(shape, layer)
    y = model.predict(x, verbose=0)
    _train(model, x, y)
    expected = 2 if isinstance(layer, keras.layers.SeparableConv2D) else 1
    assert len(wrapper.masks) == expected
    for mask in wrapper.masks:
        values = keras.ops.convert_to_numpy(mask)
        keep = round(values.size * 0.25)
        assert int(values.sum()) == keep
    # The forward pass uses the masked weights: stripping changes nothing.
    stripped = pruning.strip_pruning(wrapper)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(stripped(x)),
                               keras.ops.convert_to_numpy(wrapper(x)),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("jit_compile", [True, False])
def test_forward_uses_masked_weights_under_fit(jit_compile):
    layer = keras.layers.Dense(4, use_bias=False)
    wrapper = PruneLowMagnitude(
        layer, ConstantSparsity(0.5, begin_step=0, frequency=1))
    model = keras.Sequential([keras.Input((8,)), wrapper])
    x = np.random.default_rng(0).normal(size=(16, 8)).astype("float32")
    _train(model, x, np.zeros((16, 4)), jit_compile=jit_compile)
    kernel = keras.ops.convert_to_numpy(layer.kernel)
    mask = keras.ops.convert_to_numpy(wrapper.masks[0])
    assert mask.mean() == 0.5
    np.testing.assert_allclose(model.predict(x, verbose=0),
                               x @ (kernel * mask), rtol=1e-5, atol=1e-6)
    assert int(keras.ops.convert_to_numpy(wrapper.pruning_step)) == 4


def test_fit_without_callback_names_it():
    model = keras.Sequential([keras.Input((3,)), pruning.prune_low_magnitude(
        keras.layers.Dense(2))])
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match="UpdatePruningStep"):
        model.fit(np.ones((4, 3)), np.ones((4, 2)), verbose=0)


def test_masks_follow_schedule_steps():
    schedule = PolynomialDecay(0.0, 0.8, begin_step=2, end_step=10,
                               frequency=4)
    wrapper = PruneLowMagnitude(keras.layers.Dense(10, use_bias=False),
                                schedule)
    model = keras.Sequential([keras.Input((10,)), wrapper])
    x = np.random.default_rng(0).normal(size=(4, 10)).astype("float32")
    model.compile("sgd", "mse")
    seen = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            _ = self.model  # On JAX, reading the model syncs the variables.
            seen.append(float(1 - keras.ops.convert_to_numpy(
                wrapper.masks[0]).mean()))

    model.fit(x, x, batch_size=1, epochs=3, verbose=0,
              callbacks=[pruning.UpdatePruningStep(), Record()])
    # Updates happen at steps 2, 6 and 10 (end_step); 12 steps in all.
    expected_at = {2: 0.8 * (1 - (1 - 0 / 8) ** 3),
                   6: 0.8 * (1 - (1 - 4 / 8) ** 3), 10: 0.8}
    for step, target in expected_at.items():
        assert seen[step] == pytest.approx(round(100 * target) / 100)
    assert seen[0] == 0.0 and seen[3] == seen[2] and seen[11] == seen[10]


def test_custom_prunable_layer():
    class Scale(keras.layers.Layer, pruning.PrunableLayer):
        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1], 8))
            self.unpruned = self.add_weight(shape=(8,))

        def call(self, x):
            return x @ self.w + self.unpruned

        def get_prunable_weights(self):
            return [self.w]

    wrapper = PruneLowMagnitude(
        Scale(), ConstantSparsity(0.5, begin_step=0, frequency=1),
        sparsity_m_by_n=(2, 4))
    model = keras.Sequential([keras.Input((8,)), wrapper])
    _train(model, np.ones((4, 8)), np.ones((4, 8)))
    mask = keras.ops.convert_to_numpy(wrapper.masks[0])
    assert mask.shape == (8, 8)
    assert ((mask.reshape(2, 4, 8) == 0).sum(axis=1) == 2).all()


def test_config_round_trip():
    wrapper = PruneLowMagnitude(
        keras.layers.Conv2D(3, 2, name="c"),
        PolynomialDecay(0.1, 0.6, begin_step=1, end_step=9, frequency=2),
        sparsity_m_by_n=(2, 4), name="pruned_c")
    config = wrapper.get_config()
    clone = PruneLowMagnitude.from_config(config)
    assert clone.get_config() == config
    assert clone.sparsity_m_by_n == (2, 4)
    assert clone.pruning_schedule == wrapper.pruning_schedule
    assert clone.layer.get_config() == wrapper.layer.get_config()


def test_default_schedule_is_not_shared():
    a = PruneLowMagnitude(keras.layers.Dense(2))
    b = PruneLowMagnitude(keras.layers.Dense(2))
    assert a.pruning_schedule == ConstantSparsity(0.5, begin_step=0)
    assert a.pruning_schedule is not b.pruning_schedule


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(sparsity_m_by_n=(3, 2)), ValueError,
     r"Received: sparsity_m_by_n=\(3, 2\). Expected a pair \(m, n\)"),
    (dict(sparsity_m_by_n=(0, 4)), ValueError, "sparsity_m_by_n=\\(0, 4\\)"),
    (dict(sparsity_m_by_n=4), ValueError, "sparsity_m_by_n=4"),
    (dict(block_size=(0, 2)), ValueError, r"block_size=\(0, 2\)"),
    (dict(block_pooling_type="MEDIAN"), ValueError, "block_pooling_type"),
    (dict(pruning_schedule=0.5), ValueError, "pruning_schedule=0.5"),
    (dict(sparsity_m_by_n=(2, 4), block_size=(2, 2)), ValueError,
     "at most one of them"),
])
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        PruneLowMagnitude(keras.layers.Dense(2), **kwargs)


def test_m_by_n_on_depthwise_is_refused_by_name():
    wrapper = PruneLowMagnitude(keras.layers.DepthwiseConv2D(3, name="dw"),
                                sparsity_m_by_n=(2, 4))
    with pytest.raises(ValueError, match="'dw' .*DepthwiseConv2D.*no "
                       "input-channel axis"):
        wrapper.build((None, 5, 5, 4))


def test_unprunable_layer_is_refused_by_name():
    with pytest.raises(ValueError, match="'ln' of type LayerNormalization "
                       "cannot be pruned"):
        PruneLowMagnitude(keras.layers.LayerNormalization(name="ln"))
    with pytest.raises(ValueError, match=r"'bn' \(BatchNormalization\) can "
                       "only be pruned with structure='channels'"):
        PruneLowMagnitude(keras.layers.BatchNormalization(name="bn"))


def test_non_layer_is_refused():
    with pytest.raises(ValueError, match="Expected a keras.layers.Layer"):
        PruneLowMagnitude("dense")
