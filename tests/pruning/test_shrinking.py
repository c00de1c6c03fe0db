import keras
import numpy as np
import pytest

import kcompress as kc
from kcompress.pruning import ConstantSparsity
from kcompress.pruning import shrink

L = keras.layers


def _prune_channels(model, sparsity=0.5, steps=3):
    pruned = kc.prune_low_magnitude(
        model, ConstantSparsity(sparsity, begin_step=0, frequency=1),
        structure="channels")
    pruned.compile(optimizer="adam", loss="mse")
    x = np.random.default_rng(0).normal(
        size=(16,) + tuple(model.input_shape[1:])).astype("float32")
    y = np.zeros((16,) + tuple(model.output_shape[1:]), "float32")
    pruned.fit(x, y, epochs=1, steps_per_epoch=steps, verbose=0,
               callbacks=[kc.pruning.UpdatePruningStep()])
    return pruned, x


def _cnn(batchnorm=False, depthwise=False):
    keras.utils.set_random_seed(0)
    layers = [keras.Input((8, 8, 3)), L.Conv2D(8, 3, padding="same",
                                               name="c1")]
    if batchnorm:
        layers.append(L.BatchNormalization(name="bn"))
    layers.append(L.ReLU(name="relu"))
    if depthwise:
        layers += [L.DepthwiseConv2D(3, padding="same", depth_multiplier=2,
                                     activation="relu", name="dw")]
    layers += [L.Conv2D(12, 3, padding="same", activation="relu", name="c2"),
               L.MaxPooling2D(name="pool"), L.Flatten(name="flat"),
               L.Dense(16, activation="relu", name="d1"),
               L.Dense(4, name="out")]
    return keras.Sequential(layers, name="cnn")


@pytest.mark.parametrize("batchnorm, depthwise", [
    (False, False), (True, False), (False, True)])
def test_shrunk_outputs_equal_masked_outputs(batchnorm, depthwise):
    model = _cnn(batchnorm, depthwise)
    if batchnorm:  # non-trivial statistics: the removed shift must fold
        bn = model.get_layer("bn")
        rng = np.random.default_rng(1)
        bn.set_weights([rng.uniform(0.5, 2, 8), rng.normal(size=8),
                        rng.normal(size=8), rng.uniform(0.5, 2, 8)])
    pruned, x = _prune_channels(model)
    before = [w.copy() for w in model.get_weights()]
    small = shrink(pruned)
    np.testing.assert_allclose(small.predict(x, verbose=0),
                               pruned.predict(x, verbose=0),
                               rtol=1e-4, atol=1e-4)
    assert small.get_layer("c1").filters == 4
    assert small.get_layer("c2").filters == 6
    assert small.get_layer("d1").units == 8
    assert small.get_layer("out").units == 4  # the output is never pruned
    assert small.channels_kept["c1"] == (4, 8)
    if depthwise:
        assert small.get_layer("dw").kernel.shape == (3, 3, 4, 2)
    assert small.count_params() < 0.5 * model.count_params()
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)  # the input model is untouched


def test_depthwise_channels_are_pruned_with_their_producer():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((6, 6, 2)), L.Conv2D(8, 1, activation="relu", name="pw"),
        L.DepthwiseConv2D(3, padding="same", activation="relu", name="dw"),
        L.GlobalAveragePooling2D(), L.Dense(3, name="out")])
    assert [w.name for w in kc.pruning.pruning_wrappers(
        kc.prune_low_magnitude(model, structure="channels"))] == [
            "prune_low_magnitude_pw"]  # the depthwise follows pw's channels
    pruned = kc.prune_low_magnitude(model, {  # unless wrapped on its own
        "pw": ConstantSparsity(0.5, 0, frequency=1),
        "dw": ConstantSparsity(0.5, 0, frequency=1)},
        structure="channels")
    wrapper = pruned.get_layer("prune_low_magnitude_dw")
    pruned.compile(optimizer="adam", loss="mse")
    x = np.random.default_rng(0).normal(size=(8, 6, 6, 2)).astype("float32")
    pruned.fit(x, np.zeros((8, 3)), epochs=1, verbose=0,
               callbacks=[kc.pruning.UpdatePruningStep()])
    dead = np.flatnonzero(wrapper.masks[1].numpy() == 0)
    small = shrink(pruned)
    # pw loses its own 4 channels and those the depthwise layer zeroed.
    assert small.get_layer("pw").filters < 8 - 0 and len(dead) == 4
    np.testing.assert_allclose(small.predict(x, verbose=0),
                               pruned.predict(x, verbose=0),
                               rtol=1e-4, atol=1e-4)


def test_mobilenet_chain_shrinks_exactly():
    # BatchNorms after depthwise layers are not pruned: the removed channels
    # reach the next 1x1 conv as constants, folded into a bias it gains.
    keras.utils.set_random_seed(0)
    layers = [keras.Input((8, 8, 3)), L.Conv2D(8, 3, padding="same",
                                               use_bias=False, name="stem"),
              L.BatchNormalization(name="bn0"), L.ReLU(6.0)]
    for i, filters in enumerate((12, 16)):
        layers += [L.DepthwiseConv2D(3, padding="same", use_bias=False,
                                     name=f"dw{i}"),
                   L.BatchNormalization(name=f"bn_dw{i}"), L.ReLU(6.0),
                   L.Conv2D(filters, 1, use_bias=False, name=f"pw{i}"),
                   L.BatchNormalization(name=f"bn_pw{i}"), L.ReLU(6.0)]
    layers += [L.GlobalAveragePooling2D(), L.Dense(3, name="out")]
    model = keras.Sequential(layers)
    rng = np.random.default_rng(2)
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 2, n), rng.normal(size=n),
                               rng.normal(size=n), rng.uniform(0.5, 2, n)])
    pruned, x = _prune_channels(model)
    small = shrink(pruned)
    np.testing.assert_allclose(small.predict(x, verbose=0),
                               pruned.predict(x, verbose=0),
                               rtol=1e-4, atol=1e-4)
    assert small.channels_kept == {"stem": (4, 8), "pw0": (6, 12),
                                   "pw1": (8, 16)}
    assert small.get_layer("dw1").kernel.shape == (3, 3, 6, 1)
    assert small.get_layer("pw0").use_bias  # took the folded constants


def _residual():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(8, 3, padding="same", name="stem")(inputs)
    y = L.Conv2D(8, 3, padding="same", name="c1")(x)
    y = L.BatchNormalization(name="bn1")(y)
    y = L.ReLU()(y)
    x = L.Add(name="add")([x, y])
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, L.Dense(3, name="out")(x), name="resnet")


def test_residual_model_is_pruned_by_group_and_keeps_its_topology():
    pruned, x = _prune_channels(_residual())
    assert {w.structure for w in kc.pruning.pruning_wrappers(pruned)} == {
        "groups"}
    shrunk = shrink(pruned)
    assert shrunk.channels_kept == {"stem": (4, 8), "c1": (4, 8)}
    assert [type(layer).__name__ for layer in shrunk.layers].count("Add") == 1
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(shrunk(x)),
        keras.ops.convert_to_numpy(kc.pruning.strip_pruning(pruned)(x)),
        atol=1e-5)


def test_per_layer_channel_masks_on_a_residual_graph_are_refused():
    keras.utils.set_random_seed(0)
    schedule = ConstantSparsity(0.5, begin_step=0, frequency=1)
    inputs = keras.Input((8, 8, 3))
    x = kc.pruning.PruneLowMagnitude(
        L.Conv2D(8, 3, padding="same", name="stem"), schedule,
        structure="channels")(inputs)
    y = kc.pruning.PruneLowMagnitude(
        L.Conv2D(8, 3, padding="same", name="c1"), schedule,
        structure="channels")(x)
    x = L.GlobalAveragePooling2D()(L.Add(name="add")([x, y]))
    pruned = keras.Model(inputs, L.Dense(3, name="out")(x))
    pruned.compile(optimizer="adam", loss="mse")
    data = np.random.default_rng(0).normal(size=(16, 8, 8, 3))
    pruned.fit(data, np.zeros((16, 3)), epochs=1, steps_per_epoch=2,
               verbose=0, callbacks=[kc.pruning.UpdatePruningStep()])
    with pytest.raises(ValueError, match=r"layer 'add' \(Add\) joins 2 "
                       "branches.*same channels.*prune_channel_groups"):
        shrink(pruned)


def test_batchnorm_is_wrapped_instead_of_its_conv():
    pruned = kc.prune_low_magnitude(_cnn(batchnorm=True),
                                    structure="channels")
    names = [layer.name for layer in kc.pruning.pruning_wrappers(pruned)]
    assert names == ["prune_low_magnitude_bn", "prune_low_magnitude_c2",
                     "prune_low_magnitude_d1"]


def test_constant_that_cannot_fold_is_refused():
    keras.utils.set_random_seed(0)
    bn = L.BatchNormalization(name="bn")
    model = keras.Sequential([
        keras.Input((8, 8, 3)),
        kc.prune_low_magnitude(L.Conv2D(8, 3, padding="same", name="c1"),
                               ConstantSparsity(0.5, 0, frequency=1),
                               structure="channels"),
        bn, L.Conv2D(4, 3, padding="same", name="c2"),
        L.GlobalAveragePooling2D(), L.Dense(2, name="out")])
    bn.set_weights([np.ones(8), np.full(8, 0.5), np.zeros(8), np.ones(8)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.ones((4, 8, 8, 3)), np.zeros((4, 2)), verbose=0,
              callbacks=[kc.pruning.UpdatePruningStep()])
    with pytest.raises(ValueError, match="'c2' \\(Conv2D\\) reads removed "
                       "channels that are not zero but a constant"):
        shrink(model)


def test_structure_arguments_are_checked():
    with pytest.raises(ValueError, match="Received: structure='rows'"):
        kc.pruning.PruneLowMagnitude(L.Dense(3), structure="rows")
    with pytest.raises(ValueError, match="cannot take structure='channels'"):
        kc.pruning.PruneLowMagnitude(L.Conv1D(3, 3), structure="channels")
    with pytest.raises(ValueError, match="Expected the defaults"):
        kc.pruning.PruneLowMagnitude(L.Dense(3), structure="channels",
                                     sparsity_m_by_n=(2, 4))


def test_channel_pruned_model_saves_and_loads(tmp_path):
    pruned, x = _prune_channels(_cnn())
    pruned.save(tmp_path / "p.keras")
    loaded = keras.saving.load_model(tmp_path / "p.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0),
                               pruned.predict(x, verbose=0), rtol=1e-5)
    assert loaded.get_layer("prune_low_magnitude_c1").structure == "channels"


def test_budget_gives_the_fraction_and_the_report_lists_layers():
    model = _cnn()
    budget = int(0.4 * model.count_params())
    fraction = kc.pruning.channel_fraction_for(model, params=budget)
    assert 0.0 < fraction < 1.0
    pruned, _ = _prune_channels(model, sparsity=fraction)
    small = shrink(pruned)
    assert small.count_params() <= budget
    looser, _ = _prune_channels(model, sparsity=max(fraction - 0.1, 0.0))
    assert shrink(looser).count_params() > budget  # the fraction is tight
    printed = []
    text = kc.pruning.channel_report(small, print_fn=printed.append)
    assert printed == [text] and "c1" in text and "d1" in text
    macs = kc.pruning.channel_fraction_for(model, macs=10_000)
    assert macs > fraction  # MACs sit mostly in the convs
    with pytest.raises(ValueError, match="Expected exactly one budget"):
        kc.pruning.channel_fraction_for(model)
    with pytest.raises(ValueError, match="Even removing 99%"):
        kc.pruning.channel_fraction_for(model, params=10)


def test_per_layer_fractions_from_a_dict_of_schedules():
    model = _cnn()
    pruned = kc.prune_low_magnitude(model, {
        "c1": ConstantSparsity(0.25, 0, frequency=1),
        "c2": ConstantSparsity(0.5, 0, frequency=1)},
        structure="channels")
    pruned.compile(optimizer="adam", loss="mse")
    x = np.random.default_rng(0).normal(size=(8, 8, 8, 3)).astype("float32")
    pruned.fit(x, np.zeros((8, 4)), epochs=1, verbose=0,
               callbacks=[kc.pruning.UpdatePruningStep()])
    small = shrink(pruned)
    assert small.channels_kept == {"c1": (6, 8), "c2": (6, 12)}
    with pytest.raises(ValueError, match=r"no layers of those names"):
        kc.prune_low_magnitude(model, {"nope": ConstantSparsity(0.5, 0)})


def test_qat_of_a_channel_pruned_model_asks_for_shrink_first():
    pruned = kc.prune_low_magnitude(_cnn(batchnorm=True),
                                    structure="channels")
    with pytest.raises(ValueError, match=r"call kcompress.pruning.shrink\("
                       r"model\) first"):
        kc.quantize_model(pruned)
