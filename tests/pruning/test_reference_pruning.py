"""Issue acceptance: pruning the reference digits CNN during fit."""

import keras
import numpy as np
import pytest

import kcompress as kc
from kcompress.pruning import PolynomialDecay
from kcompress_demo import reference

FINE_TUNE_EPOCHS = 10


def _prune_and_fine_tune(model, digits, steps_per_epoch, **prune_kwargs):
    end_step = int(steps_per_epoch * FINE_TUNE_EPOCHS * 0.7)
    prune_kwargs.setdefault("pruning_schedule", PolynomialDecay(
        0.0, prune_kwargs.pop("sparsity", 0.5), begin_step=0,
        end_step=end_step, frequency=10))
    pruned = reference.compile_reference(
        kc.prune_low_magnitude(model, **prune_kwargs))
    pruned.fit(digits.x_train, digits.y_train, batch_size=32,
               epochs=FINE_TUNE_EPOCHS, verbose=0,
               callbacks=[kc.pruning.UpdatePruningStep()])
    return pruned


def _kernels(model):
    for layer in model.layers:
        for attr in ("kernel", "embeddings"):
            if hasattr(layer, attr):
                yield layer.name, keras.ops.convert_to_numpy(
                    getattr(layer, attr))


# At 80% the bound is the float accuracy minus 1 point; at 90% the issue sets
# 0.95 instead (TFMOT gives 0.9556 there).
@pytest.mark.parametrize("sparsity, min_accuracy", [(0.8, None), (0.9, 0.95)])
def test_reference_pruning_reaches_sparsity_and_accuracy(
        sparsity, min_accuracy, float_model, float_accuracy, digits,
        steps_per_epoch, tmp_path):
    pruned = _prune_and_fine_tune(float_model, digits, steps_per_epoch,
                                  sparsity=sparsity)
    stripped = kc.strip_pruning(pruned)
    for name, kernel in _kernels(stripped):
        assert abs((kernel == 0).mean() - sparsity) <= 0.005, name
    accuracy = reference.accuracy(stripped, digits.x_test, digits.y_test)
    if min_accuracy is None:
        assert accuracy >= float_accuracy - 0.01
    else:
        assert accuracy >= min_accuracy

    # The wrapped model saves to .keras and loads with no scope.
    path = tmp_path / "pruned.keras"
    pruned.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded.predict(digits.x_test, verbose=0),
                               pruned.predict(digits.x_test, verbose=0),
                               rtol=1e-5, atol=1e-5)
    for a, b in zip(kc.pruning.pruning_wrappers(loaded),
                    kc.pruning.pruning_wrappers(pruned)):
        assert int(a.pruning_step.numpy()) == int(b.pruning_step.numpy())
        for ma, mb in zip(a.masks, b.masks):
            np.testing.assert_array_equal(ma.numpy(), mb.numpy())


def test_reference_m_by_n(float_model, float_accuracy, digits,
                          steps_per_epoch):
    schedule = kc.pruning.ConstantSparsity(0.5, begin_step=0, frequency=50)
    pruned = _prune_and_fine_tune(float_model, digits, steps_per_epoch,
                                  pruning_schedule=schedule,
                                  sparsity_m_by_n=(2, 4))
    stripped = kc.strip_pruning(pruned)
    for name, kernel in _kernels(stripped):
        axis = 0 if kernel.ndim == 2 else -2
        groups = np.moveaxis(kernel, axis, -1)
        channels = groups.shape[-1]
        full = channels - channels % 4
        if full:
            whole = groups[..., :full].reshape(-1, 4)
            assert ((whole == 0).sum(axis=1) >= 2).all(), name
        # conv1 has a single input channel: its padded groups keep <= 2.
        rest = groups[..., full:]
        assert ((rest != 0).sum(axis=-1) <= 2).all(), name
    accuracy = reference.accuracy(stripped, digits.x_test, digits.y_test)
    assert accuracy >= float_accuracy - 0.02
