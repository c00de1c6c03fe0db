"""Global magnitude pruning: one threshold across layers, with ceilings."""

import keras
import numpy as np
import pytest

import kcompress as kc
from kcompress.pruning.global_masks import global_zero_counts
from tests._digits import digit_images


def _model():
    return keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(4, 3, activation="relu", name="c1"),
        keras.layers.Conv2D(16, 3, activation="relu", name="c2"),
        keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu", name="d1"),
        keras.layers.Dense(10, name="d2")])


def _kernels(model):
    return {layer.name: layer.get_weights()[0] for layer in model.layers
            if layer.weights}


def _prune(model, sparsity=0.9, **kwargs):
    x, y = digit_images(512)
    pruned = kc.pruning.prune_low_magnitude(
        model, kc.pruning.PolynomialDecay(0.0, sparsity, 0, 32, frequency=8),
        scope="global", **kwargs)
    pruned.compile("adam", keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    pruned.fit(x, y, epochs=2, batch_size=32, verbose=0,
               callbacks=[kc.pruning.UpdatePruningStep()])
    return pruned


def test_global_reaches_the_overall_sparsity_unevenly():
    pruned = _prune(_model(), 0.9, max_sparsity=0.97)
    kernels = _kernels(kc.pruning.strip_pruning(pruned))
    zeros = sum(int((k == 0).sum()) for k in kernels.values())
    total = sum(k.size for k in kernels.values())
    assert zeros / total == pytest.approx(0.9, abs=0.002)
    layer_sparsity = {n: float((k == 0).mean()) for n, k in kernels.items()}
    # The wide Dense gives more than its share, the small first conv less.
    assert layer_sparsity["d1"] > 0.9 > layer_sparsity["c1"]
    assert max(layer_sparsity.values()) <= 0.97 + 1e-6


def test_ceiling_keeps_every_layer_alive():
    pruned = _prune(_model(), 0.95, max_sparsity=0.9)
    kernels = _kernels(kc.pruning.strip_pruning(pruned))
    for name, kernel in kernels.items():
        assert (kernel == 0).mean() <= 0.9 + 1e-6, name
    # What the capped layers could not give, the others gave.
    zeros = sum(int((k == 0).sum()) for k in kernels.values())
    total = sum(k.size for k in kernels.values())
    assert zeros / total == pytest.approx(min(0.95, 0.9), abs=0.002)


def test_global_wrapper_round_trips_and_reloads(tmp_path):
    pruned = _prune(_model(), 0.8)
    wrapper = pruned.layers[0]
    config = wrapper.get_config()
    assert (config["scope"], config["max_sparsity"]) == ("global", 0.95)
    path = tmp_path / "global.keras"
    pruned.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.layers[0].scope == "global"
    x, _ = digit_images(16)
    np.testing.assert_allclose(loaded.predict(x, verbose=0),
                               pruned.predict(x, verbose=0), atol=1e-6)


def test_global_zero_counts_share_one_threshold():
    scores = [np.array([0.1, 0.2, 0.9]), np.array([0.05, 0.3, 0.4, 0.5])]
    assert global_zero_counts(scores, 3, [3, 4]) == [2, 1]
    # Capped: the first tensor may give only one; the second gives the rest.
    assert global_zero_counts(scores, 4, [1, 4]) == [1, 3]
    assert sum(global_zero_counts(scores, 99, [2, 2])) == 4


@pytest.mark.parametrize("kwargs, message", [
    (dict(scope="model"), "scope='model'"),
    (dict(scope="global", max_sparsity=1.0), "max_sparsity=1.0"),
    (dict(scope="global", structure="channels"), "cannot take structure"),
    (dict(scope="global", ranking="norm"), "ranking='norm'"),
])
def test_bad_scope_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        kc.pruning.prune_low_magnitude(_model(), **kwargs)


def test_global_refuses_a_dict_of_schedules():
    schedule = kc.pruning.ConstantSparsity(0.5, 0)
    with pytest.raises(ValueError, match="Expected one schedule"):
        kc.pruning.prune_low_magnitude(_model(), {"d1": schedule},
                                       scope="global")


def test_lamp_scores_are_scale_free():
    from kcompress.pruning.global_masks import lamp_scores

    weights = np.array([0.0, 1.0, 2.0, 3.0])
    np.testing.assert_allclose(lamp_scores(weights),
                               [0.0, 1 / 14, 4 / 13, 1.0])
    np.testing.assert_allclose(lamp_scores(1e-3 * weights),
                               lamp_scores(weights))


def test_lamp_ranking_does_not_empty_a_rescaled_layer():
    model = _model()
    model.build((None, 8, 8, 1))
    # Shrink the wide Dense's weights 100x: by magnitude it would give
    # everything it may; LAMP ranks each layer on its own scale.
    dense = model.get_layer("d1")
    dense.set_weights([w * 0.01 for w in dense.get_weights()])
    kernels = {}
    for ranking in ("magnitude", "lamp"):
        keras.utils.set_random_seed(0)
        pruned = _prune(model, 0.5, ranking=ranking)
        assert pruned.layers[0].get_config()["ranking"] == ranking
        kernels[ranking] = _kernels(kc.pruning.strip_pruning(pruned))
    assert (kernels["magnitude"]["d1"] == 0).mean() > 0.5
    assert (kernels["lamp"]["c2"] == 0).mean() > (
        kernels["magnitude"]["c2"] == 0).mean()
