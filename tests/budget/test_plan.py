"""Plans: the allocations spend where the table says it hurts least."""

import pytest

from kcompress import budget


def _table():
    rows = []
    # "tough" breaks early, "easy" barely notices; both 1,000 weights.
    for name, drops in (("tough", (0.05, 0.4, 0.6)),
                        ("easy", (0.0, 0.01, 0.015))):
        for setting, drop in zip((0.5, 0.8, 0.9), drops):
            rows.append((name, "sparsity", setting, 1000, 0.9 - drop, drop))
        for setting, drop in zip((0.25, 0.5), drops):
            rows.append((name, "channels", setting, 16, 0.9 - drop, drop))
    return budget.SensitivityTable(0.9, rows)


def test_allocate_sparsity_meets_the_mean_and_spares_the_tough_layer():
    plan = budget.allocate_sparsity(_table(), 0.6, max_sparsity=0.9)
    assert plan["easy"] == pytest.approx(0.9)
    assert plan["tough"] == pytest.approx(0.3, abs=1e-6)
    assert (plan["easy"] + plan["tough"]) / 2 == pytest.approx(0.6)


def test_allocate_sparsity_plans_only_the_named_layers():
    plan = budget.allocate_sparsity(_table(), 0.6, layers=["tough"])
    assert plan == {"tough": pytest.approx(0.6)}
    with pytest.raises(ValueError, match="layers=\\['nope'\\]"):
        budget.allocate_sparsity(_table(), 0.6, layers=["nope"])


def test_allocate_channels_grows_with_the_price():
    table = _table()
    savings = {"tough": 1000, "easy": 1000}
    assert budget.allocate_channels(table, savings, 0.0) == {}
    cheap = budget.allocate_channels(table, savings, 1e-4)
    assert cheap["easy"] == 0.5
    assert cheap.get("tough", 0.0) < 0.25  # at most a sliver of it
    # Between the measured fractions (0.25, 0.5) too, not only on them:
    # drops are convex between the measured points.
    middle = budget.allocate_channels(table, savings, 2e-4)
    assert 0.0 < middle["tough"] < 0.25
    assert budget.allocate_channels(table, savings, 1.0) == {
        "tough": 0.5, "easy": 0.5}


def test_plan_round_trips_and_prints():
    plan = budget.CompressionPlan(sparsity={"a": 0.8}, channels={"b": 0.25},
                                  precision={"c": "int16x8"})
    assert budget.CompressionPlan.from_config(plan.get_config()) == plan
    assert plan.mixed and plan.precision_of("z") == "int8"
    assert "| c |" in plan.to_markdown()


@pytest.mark.parametrize("kwargs, message", [
    (dict(sparsity={"a": 1.5}), "sparsity="),
    (dict(precision={"a": "int4"}), "precision="),
    (dict(default_precision="float16"), "default_precision="),
])
def test_bad_plans_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        budget.CompressionPlan(**kwargs)


def test_a_planned_sparsity_is_reached_in_fit():
    import keras
    import numpy as np

    import kcompress as kc

    model = keras.Sequential([keras.Input((16,)),
                              keras.layers.Dense(32, name="wide"),
                              keras.layers.Dense(4, name="out")])
    plan = budget.CompressionPlan(sparsity={"wide": 0.9, "out": 0.25})
    pruned = kc.pruning.prune_low_magnitude(
        model, plan.pruning_schedules(0, 8, frequency=2))
    pruned.compile("adam", "mse")
    x = np.random.default_rng(0).normal(size=(64, 16)).astype("float32")
    pruned.fit(x, np.zeros((64, 4)), batch_size=8, epochs=2, verbose=0,
               callbacks=[kc.pruning.UpdatePruningStep()])
    stripped = kc.pruning.strip_pruning(pruned)
    for name, target in plan.sparsity.items():
        kernel = stripped.get_layer(name).get_weights()[0]
        assert (kernel == 0).mean() == pytest.approx(target, abs=0.01)
