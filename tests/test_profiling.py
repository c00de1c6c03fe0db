import keras
import numpy as np
import pytest

import kcompress as kc


def test_counts_params_zeros_and_bytes():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3,
                              name="d"), keras.layers.ReLU()])
    kernel = np.array([[0, 1, 2], [0, 0, 3], [4, 0, 0], [5, 6, 0]], "float32")
    model.get_layer("d").set_weights([kernel, np.zeros(3, "float32")])
    printed = []
    rows = kc.summary(model, print_fn=printed.append)
    assert len(rows) == 1  # ReLU has no weights
    row = rows[0]
    assert (row.name, row.params, row.zeros) == ("d", 15, 9)
    assert row.sparsity == pytest.approx(9 / 15)
    assert row.float32_bytes == 60
    assert row.int8_bytes == 12 + 3 * 4  # int8 kernel, int32 bias
    assert "Total" in printed[0] and "60.0%" in printed[0]


def test_pruned_layers_count_masked_zeros_and_nested_names():
    inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(
        4, name="di")], name="inner")
    model = keras.Sequential([keras.Input((4,)), inner,
                              keras.layers.Dense(2, name="do")])
    pruned = kc.prune_low_magnitude(model)
    wrapper = kc.pruning.pruning_wrappers(pruned)[0]
    wrapper.masks[0].assign(np.zeros((4, 4)))
    rows = kc.layer_stats(pruned)
    assert [r.name for r in rows] == ["inner/prune_low_magnitude_di",
                                      "prune_low_magnitude_do"]
    assert rows[0].type == "Dense (pruned)"
    assert rows[0].zeros >= 16


def test_rejects_non_model():
    with pytest.raises(ValueError, match="Expected a keras.Model"):
        kc.layer_stats(keras.layers.Dense(2))
