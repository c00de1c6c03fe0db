"""Channel pruning by dependency group, and shrink on residual graphs."""

import keras
import numpy as np
import pytest

import kcompress as kc

L = keras.layers


def _conv_bn(x, filters, name, kernel=3, strides=1, act="relu"):
    x = L.Conv2D(filters, kernel, strides=strides, padding="same",
                 use_bias=False, name=f"{name}_conv")(x)
    x = L.BatchNormalization(name=f"{name}_bn")(x)
    return L.Activation(act, name=f"{name}_act")(x) if act else x


def resnet_style():
    """Basic blocks, one with a projection shortcut."""
    inputs = keras.Input((8, 8, 3))
    x = _conv_bn(inputs, 8, "stem")
    y = _conv_bn(x, 8, "b1a")
    y = _conv_bn(y, 8, "b1b", act=None)
    x = L.ReLU(name="b1_out")(L.Add(name="b1_add")([x, y]))
    y = _conv_bn(x, 16, "b2a", strides=2)
    y = _conv_bn(y, 16, "b2b", act=None)
    shortcut = _conv_bn(x, 16, "b2_proj", kernel=1, strides=2, act=None)
    x = L.ReLU(name="b2_out")(L.Add(name="b2_add")([shortcut, y]))
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, L.Dense(10, name="head")(x))


def _inverted(x, expand, out, name, residual):
    y = _conv_bn(x, expand, f"{name}_expand", kernel=1, act="relu6")
    y = L.DepthwiseConv2D(3, padding="same", use_bias=False,
                          name=f"{name}_dw")(y)
    y = L.BatchNormalization(name=f"{name}_dw_bn")(y)
    y = L.ReLU(6.0, name=f"{name}_dw_relu")(y)
    y = _conv_bn(y, out, f"{name}_project", kernel=1, act=None)
    return L.Add(name=f"{name}_add")([x, y]) if residual else y


def mobilenet_v2_style():
    inputs = keras.Input((8, 8, 3))
    x = _conv_bn(inputs, 8, "stem", act="relu6")
    x = _inverted(x, 24, 8, "block1", residual=True)
    x = _inverted(x, 24, 12, "block2", residual=False)
    x = _inverted(x, 36, 12, "block3", residual=True)
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, L.Dense(10, name="head")(x))


def squeeze_excite_style():
    inputs = keras.Input((8, 8, 3))
    x = _conv_bn(inputs, 16, "stem", act="swish")
    s = L.GlobalAveragePooling2D(name="se_squeeze")(x)
    s = L.Reshape((1, 1, 16), name="se_reshape")(s)
    s = L.Conv2D(4, 1, activation="swish", name="se_reduce")(s)
    s = L.Conv2D(16, 1, activation="sigmoid", name="se_expand")(s)
    x = L.Multiply(name="se_excite")([x, s])
    x = _conv_bn(x, 8, "project", kernel=1, act=None)
    x = L.Flatten()(x)
    return keras.Model(inputs, L.Dense(10, name="head")(x))


def densenet_style():
    inputs = keras.Input((8, 8, 3))
    x = _conv_bn(inputs, 8, "stem")
    for i in range(3):
        y = _conv_bn(x, 6, f"dense{i}")
        x = L.Concatenate(name=f"concat{i}")([x, y])
    x = _conv_bn(x, 12, "transition", kernel=1)
    x = L.AveragePooling2D(2)(x)
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, L.Dense(10, name="head")(x))


BUILDERS = [resnet_style, mobilenet_v2_style, squeeze_excite_style,
            densenet_style]


def _randomize(model):
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            channels = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, channels),
                               rng.normal(0, 0.3, channels),
                               rng.normal(0, 0.3, channels),
                               rng.uniform(0.5, 2.0, channels)])
    return model


@pytest.mark.parametrize("build", BUILDERS, ids=lambda b: b.__name__)
def test_shrunk_outputs_equal_the_zeroed_model(build):
    keras.utils.set_random_seed(0)
    model = _randomize(build())
    x = np.random.default_rng(1).normal(size=(4, 8, 8, 3)).astype("float32")
    before = [np.array(w) for w in model.get_weights()]
    zeroed = kc.pruning.prune_channel_groups(model, 0.5)
    shrunk = kc.pruning.shrink(zeroed)
    assert shrunk.channels_kept, "nothing was removed"
    assert shrunk.count_params() < 0.75 * model.count_params()
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(shrunk(x)),
        keras.ops.convert_to_numpy(zeroed(x)), atol=1e-4, rtol=1e-4)
    # The input model keeps every weight.
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)


def _group_of(graph, layer_name):
    return next(g for g in graph.groups if layer_name in g.name.split("+"))


def test_residual_branches_share_one_group():
    graph = kc.pruning.channel_groups(resnet_style())
    assert set(_group_of(graph, "stem_conv").name.split("+")) == {
        "stem_conv", "b1b_conv"}
    assert set(_group_of(graph, "b2_proj_conv").name.split("+")) == {
        "b2_proj_conv", "b2b_conv"}
    assert _group_of(graph, "b1a_conv").prunable
    head = _group_of(graph, "head")
    assert "model output" in head.reason


def test_concatenated_producers_stay_separate_groups():
    graph = kc.pruning.channel_groups(densenet_style())
    for i in range(3):
        group = _group_of(graph, f"dense{i}_conv")
        assert group.name == f"dense{i}_conv" and group.prunable
        assert len(group.classes) == 6


def test_squeeze_excite_gate_follows_the_gated_channels():
    graph = kc.pruning.channel_groups(squeeze_excite_style())
    assert set(_group_of(graph, "stem_conv").name.split("+")) == {
        "stem_conv", "se_expand"}


def test_a_layer_the_grouping_does_not_understand_blocks_its_group():
    inputs = keras.Input((8, 8, 3))
    x = _conv_bn(inputs, 8, "stem")
    x = L.LayerNormalization(name="norm")(x)
    x = _conv_bn(x, 8, "next")
    model = keras.Model(inputs, L.Dense(2, name="head")(
        L.GlobalAveragePooling2D()(x)))
    graph = kc.pruning.channel_groups(model)
    assert "'norm' (LayerNormalization)" in _group_of(graph, "stem_conv").reason
    assert _group_of(graph, "next_conv").prunable
    zeroed = kc.pruning.prune_channel_groups(model, 0.5)
    shrunk = kc.pruning.shrink(zeroed)
    assert shrunk.channels_kept == {"next_conv": (4, 8)}


def test_protect_and_round_to():
    model = mobilenet_v2_style()
    zeroed = kc.pruning.prune_channel_groups(
        model, 0.5, protect=["stem_conv"], round_to=8)
    kept = kc.pruning.shrink(zeroed).channels_kept
    assert "stem_conv" not in kept and "block1_project_conv" not in kept
    # 24 expand channels, half pruned: 12 rounds up to 16.
    assert kept["block1_expand_conv"] == (16, 24)


@pytest.mark.parametrize("kwargs", [{"fraction": 1.0}, {"fraction": -0.1},
                                    {"fraction": 0.5, "round_to": 0},
                                    {"fraction": 0.5, "protect": ["nope"]}])
def test_bad_arguments_get_their_error(kwargs):
    with pytest.raises(ValueError, match="Received: "):
        kc.pruning.prune_channel_groups(resnet_style(), **kwargs)


APPLICATIONS = {
    "MobileNetV2": lambda: keras.applications.MobileNetV2(
        (96, 96, 3), alpha=0.35, weights=None, classifier_activation=None),
    "EfficientNetB0": lambda: keras.applications.EfficientNetB0(
        input_shape=(32, 32, 3), weights=None, classifier_activation=None),
    "DenseNet121": lambda: keras.applications.DenseNet121(
        input_shape=(32, 32, 3), weights=None, classifier_activation=None),
}


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="graph analysis and numpy only; eager calls of these graphs take "
    "minutes on JAX, and CI's JAX pass has the small graphs")
@pytest.mark.parametrize("name", sorted(APPLICATIONS))
def test_keras_applications_shrink_exactly(name):
    model = _randomize(APPLICATIONS[name]())
    x = np.random.default_rng(0).uniform(
        0, 255, size=(2,) + model.input_shape[1:]).astype("float32")
    graph = kc.pruning.channel_groups(model)
    assert sum(not g.prunable for g in graph.groups) <= 2  # input, output
    zeroed = kc.pruning.prune_channel_groups(model, 0.5)
    shrunk = kc.pruning.shrink(zeroed)
    assert shrunk.count_params() < 0.5 * model.count_params()
    expected = keras.ops.convert_to_numpy(zeroed(x))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(shrunk(x)),
                               expected, atol=1e-4 * np.abs(expected).max())


def _digits(shape):
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = np.repeat(digits.images[..., None] / 16.0, shape[-1], axis=-1)
    return x.astype("float32"), digits.target.astype("int32")


def _fit_groups(model, x, y, sparsity=0.5, steps=3, **kwargs):
    pruned = kc.prune_low_magnitude(
        model, kc.pruning.ConstantSparsity(sparsity, 0, frequency=1),
        structure="channels", **kwargs)
    pruned.compile("adam", keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    pruned.fit(x[:96], y[:96], batch_size=32, epochs=1, steps_per_epoch=steps,
               verbose=0, callbacks=[kc.pruning.UpdatePruningStep()])
    return pruned


@pytest.mark.parametrize("build", [resnet_style, mobilenet_v2_style],
                         ids=lambda b: b.__name__)
def test_groups_are_pruned_during_fit_and_shrink_exactly(build):
    keras.utils.set_random_seed(0)
    model = build()
    x, y = _digits(model.input_shape[1:])
    pruned = _fit_groups(model, x, y)
    assert {w.structure for w in kc.pruning.pruning_wrappers(pruned)} == {
        "groups"}
    stripped = kc.pruning.strip_pruning(pruned)
    shrunk = kc.pruning.shrink(pruned)
    graph = kc.pruning.channel_groups(model)
    prunable = [g for g in graph.groups if g.prunable]
    kept = shrunk.channels_kept
    # Every prunable group lost half its channels, in each of its producers.
    for group in prunable:
        for name in group.name.split("+"):
            assert kept[name][0] == kept[name][1] // 2 + kept[name][1] % 2, (
                name, kept[name])
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(shrunk(x[:16])),
        keras.ops.convert_to_numpy(stripped(x[:16])), atol=1e-4, rtol=1e-4)


def test_group_masks_survive_save_and_load(tmp_path):
    keras.utils.set_random_seed(0)
    model = resnet_style()
    x, y = _digits(model.input_shape[1:])
    pruned = _fit_groups(model, x, y, round_to=4)
    path = str(tmp_path / "pruned.keras")
    pruned.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x[:8])),
                               keras.ops.convert_to_numpy(pruned(x[:8])),
                               atol=1e-6)
    assert {w.round_to for w in kc.pruning.pruning_wrappers(loaded)} == {4}
    assert kc.pruning.shrink(loaded).channels_kept == kc.pruning.shrink(
        pruned).channels_kept


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="host-side search; slow on JAX (CI budget)")
def test_mac_budget_on_a_residual_graph():
    model = resnet_style()
    macs = sum(row.macs for row in kc.profiling.layer_stats(model))
    fraction = kc.pruning.channel_fraction_for(model, macs=macs // 2)
    assert 0.2 < fraction < 0.8
    shrunk = kc.pruning.shrink(kc.pruning.prune_channel_groups(model,
                                                               fraction))
    assert sum(row.macs for row in kc.profiling.layer_stats(shrunk)) <= (
        macs // 2)


def vit_style():
    """Pre-norm encoder blocks: attention and a GELU MLP, residual adds."""
    inputs = keras.Input((8, 8, 3))
    x = L.Reshape((16, 12))(L.Conv2D(12, 2, strides=2, name="embed")(inputs))
    for i in range(2):
        y = L.LayerNormalization(name=f"ln1_{i}")(x)
        y = L.MultiHeadAttention(4, 3, name=f"attention_{i}")(y, y)
        x = L.Add()([x, y])
        y = L.LayerNormalization(name=f"ln2_{i}")(x)
        y = L.Dense(24, activation="gelu", name=f"mlp1_{i}")(y)
        x = x + L.Dense(12, name=f"mlp2_{i}")(y)
    x = L.GlobalAveragePooling1D()(L.LayerNormalization(name="ln")(x))
    return keras.Model(inputs, L.Dense(10, name="head")(x))


def test_vit_loses_whole_heads_and_mlp_units():
    keras.utils.set_random_seed(0)
    model = vit_style()
    graph = kc.pruning.channel_groups(model)
    assert _group_of(graph, "attention_0").prunable
    assert len(_group_of(graph, "attention_0").classes) == 4
    assert _group_of(graph, "mlp1_0").prunable
    assert "LayerNormalization" in _group_of(graph, "embed").reason
    x = np.random.default_rng(0).normal(size=(4, 8, 8, 3)).astype("float32")
    zeroed = kc.pruning.prune_channel_groups(model, 0.5)
    shrunk = kc.pruning.shrink(zeroed)
    assert shrunk.channels_kept == {
        "attention_0": (2, 4), "attention_1": (2, 4), "mlp1_0": (12, 24),
        "mlp1_1": (12, 24)}
    assert shrunk.get_layer("attention_0").num_heads == 2
    np.testing.assert_allclose(keras.ops.convert_to_numpy(shrunk(x)),
                               keras.ops.convert_to_numpy(zeroed(x)),
                               atol=1e-5)


def test_vit_heads_are_pruned_during_fit():
    keras.utils.set_random_seed(0)
    model = vit_style()
    x, y = _digits((8, 8, 3))
    pruned = _fit_groups(model, x, y)
    wrapped = {w.layer.name for w in kc.pruning.pruning_wrappers(pruned)}
    assert {"attention_0", "attention_1", "mlp1_0", "mlp2_1"} <= wrapped
    shrunk = kc.pruning.shrink(pruned)
    assert shrunk.channels_kept["attention_1"] == (2, 4)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(shrunk(x[:8])),
        keras.ops.convert_to_numpy(kc.pruning.strip_pruning(pruned)(x[:8])),
        atol=1e-4)


def test_protected_stem_keeps_its_groups_during_fit_and_report_says_why():
    keras.utils.set_random_seed(0)
    model = resnet_style()
    x, y = _digits(model.input_shape[1:])
    pruned = _fit_groups(model, x, y, protect=["stem_conv"])
    shrunk = kc.pruning.shrink(pruned)
    assert "stem_conv" not in shrunk.channels_kept
    assert "b1b_conv" not in shrunk.channels_kept  # tied to the stem's add
    assert shrunk.channels_kept["b1a_conv"] == (4, 8)
    lines = []
    text = kc.pruning.channel_report(shrunk, print_fn=lines.append)
    assert "head" in text and "model output" in text
    with pytest.raises(ValueError, match=r"protect=\['nope'\]"):
        kc.prune_low_magnitude(model, structure="channels", protect=["nope"])
