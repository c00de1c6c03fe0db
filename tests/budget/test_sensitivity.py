"""sensitivity(): per-layer drops, measured; the cache; bad input."""

import json
import os

import numpy as np
import pytest

from kcompress import budget


def _table(model, data, **kwargs):
    kwargs.setdefault("sparsities", (0.5, 0.95))
    kwargs.setdefault("channel_fractions", (0.5,))
    kwargs.setdefault("precisions", ("int8", "int16x8"))
    return budget.sensitivity(model, data, verbose=0, **kwargs)


def test_rows_cover_every_layer_and_kind(trained_cnn, budget_data):
    _, val = budget_data
    before = [w.copy() for w in trained_cnn.get_weights()]
    table = _table(trained_cnn, val)
    names = ["conv1", "conv2", "conv3", "hidden", "logits"]
    assert table.layers("sparsity") == names
    assert table.layers("precision") == names
    # Channel groups: every layer but the logits (the model's outputs).
    assert table.layers("channels") == names[:-1]
    assert 0.8 < table.baseline <= 1.0
    for name in names:  # pruning 95% of a layer alone hurts more than 50%
        assert table.drop(name, "sparsity", 0.95) >= table.drop(
            name, "sparsity", 0.5) - 0.02
    # The first conv (72 weights) cannot lose 95% of them; int8 costs little.
    assert table.drop("conv1", "sparsity", 0.95) > 0.2
    assert abs(table.drop("conv2", "precision", "int8")) < 0.03
    assert all(np.array_equal(a, b) for a, b in zip(
        before, trained_cnn.get_weights())), "the user's model changed"
    text = table.to_markdown()
    assert "| conv1 |" in text and "int16x8" in text
    again = budget.SensitivityTable.from_config(table.get_config())
    assert again.rows == table.rows


def test_cache_returns_the_same_table(trained_cnn, budget_data, tmp_path):
    _, val = budget_data
    first = _table(trained_cnn, val, precisions=(), cache_dir=tmp_path)
    (entry,) = tmp_path.iterdir()
    # A baseline no measurement gives: the second call must read the file.
    config = json.loads(entry.read_text())
    config["baseline"] = 0.123
    entry.write_text(json.dumps(config))
    second = _table(trained_cnn, val, precisions=(), cache_dir=tmp_path)
    assert second.baseline == 0.123 != first.baseline
    assert second.rows == first.rows
    # Other settings are another entry.
    _table(trained_cnn, val, precisions=(), sparsities=(0.8,),
           cache_dir=tmp_path)
    assert len(os.listdir(tmp_path)) == 2


def test_plot_draws_a_curve_per_layer(trained_cnn, budget_data):
    import matplotlib

    matplotlib.use("Agg")
    _, val = budget_data
    axes = _table(trained_cnn, val, precisions=()).plot()
    assert len(axes[0].get_lines()) == 5


@pytest.mark.parametrize("kwargs, message", [
    (dict(metric="f1"), "metric='f1'"),
    (dict(sparsities=(0.5, 1.0)), "sparsities="),
    (dict(precisions=("int4",)), "precisions="),
])
def test_bad_settings_are_refused(trained_cnn, budget_data, kwargs,
                                  message):
    _, val = budget_data
    with pytest.raises(ValueError, match=message):
        _table(trained_cnn, val, **kwargs)


def test_a_metric_the_data_cannot_compute(trained_cnn, budget_data):
    (x, _), _ = budget_data
    with pytest.raises(ValueError, match="metric='accuracy' with labels"):
        _table(trained_cnn, (x[:50], np.zeros((50, 3), "float32")))
    with pytest.raises(ValueError, match="tuple \\(x, y\\)"):
        _table(trained_cnn, x[:50])
