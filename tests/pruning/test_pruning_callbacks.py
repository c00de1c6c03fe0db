import csv
import glob

import keras
import numpy as np
import pytest

from kcompress import pruning
from kcompress.pruning import PolynomialDecay


def _pruned_model():
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8,
                              name="d1"), keras.layers.Dense(2, name="d2")])
    return pruning.prune_low_magnitude(
        model, PolynomialDecay(0.0, 0.5, begin_step=0, end_step=6,
                               frequency=2))


def test_pruning_summaries_csv_and_tensorboard(tmp_path):
    model = _pruned_model()
    model.compile("sgd", "mse")
    x = np.random.default_rng(0).normal(size=(16, 6)).astype("float32")
    summaries = pruning.PruningSummaries(tmp_path, update_freq=1)
    model.fit(x, np.zeros((16, 2)), batch_size=4, epochs=3, verbose=0,
              callbacks=[pruning.UpdatePruningStep(), summaries])
    with open(tmp_path / "pruning_summaries.csv") as f:
        rows = list(csv.DictReader(f))
    d1 = [r for r in rows if r["layer"] == "d1"]
    steps = [int(r["step"]) for r in d1]
    assert steps == sorted(steps) and steps[-1] == 12
    assert float(d1[0]["sparsity"]) == 0.0
    assert float(d1[-1]["sparsity"]) == pytest.approx(0.5)
    assert float(d1[-1]["target"]) == pytest.approx(0.5)
    assert glob.glob(str(tmp_path / "events.out.tfevents.*"))


def test_callbacks_refuse_unpruned_model(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)],
                             name="plain")
    model.compile("sgd", "mse")
    for callback in (pruning.UpdatePruningStep(),
                     pruning.PruningSummaries(tmp_path)):
        with pytest.raises(ValueError, match="'plain', which has no "
                           "PruneLowMagnitude"):
            model.fit(np.ones((2, 3)), np.ones((2, 1)), verbose=0,
                      callbacks=[callback])


@pytest.mark.parametrize("kwargs, message", [
    (dict(log_dir=""), "log_dir=''"),
    (dict(log_dir="x", update_freq=0), "update_freq=0"),
    (dict(log_dir="x", update_freq="batch"), "update_freq='batch'"),
])
def test_pruning_summaries_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        pruning.PruningSummaries(**kwargs)


class _Interrupt(keras.callbacks.Callback):
    def __init__(self, at_epoch):
        super().__init__()
        self.at_epoch = at_epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.at_epoch:
            raise RuntimeError("interrupted")


def test_backup_and_restore_resumes_step_and_masks(tmp_path):
    x = np.random.default_rng(0).normal(size=(32, 6)).astype("float32")
    y = np.zeros((32, 2))

    def fit(model, epochs, extra=()):
        model.compile("adam", "mse")
        model.fit(x, y, batch_size=8, epochs=epochs, verbose=0, callbacks=[
            pruning.UpdatePruningStep(),
            keras.callbacks.BackupAndRestore(str(tmp_path / "backup"),
                                             delete_checkpoint=False),
            *extra])

    keras.utils.set_random_seed(1)
    model = _pruned_model()
    with pytest.raises(RuntimeError, match="interrupted"):
        fit(model, 4, [_Interrupt(at_epoch=1)])  # dies after 2 epochs
    saved_masks = [keras.ops.convert_to_numpy(m).copy()
                   for w in pruning.pruning_wrappers(model) for m in w.masks]

    keras.utils.set_random_seed(1)
    resumed = _pruned_model()

    class Check(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:  # first epoch run after the restore
                for w in pruning.pruning_wrappers(self.model):
                    assert int(keras.ops.convert_to_numpy(
                        w.pruning_step)) == 8
                masks = [keras.ops.convert_to_numpy(m)
                         for w in pruning.pruning_wrappers(self.model)
                         for m in w.masks]
                for a, b in zip(saved_masks, masks):
                    np.testing.assert_array_equal(a, b)
                self.checked = True

    check = Check()
    fit(resumed, 4, [check])
    assert check.checked
    for w in pruning.pruning_wrappers(resumed):
        assert int(keras.ops.convert_to_numpy(w.pruning_step)) == 16


def test_callback_configs_round_trip(tmp_path):
    for callback in (pruning.UpdatePruningStep(),
                     pruning.PruningSummaries(tmp_path, update_freq=3,
                                              tensorboard=False)):
        clone = type(callback).from_config(callback.get_config())
        assert clone.get_config() == callback.get_config()


class _InterruptAtBatch(keras.callbacks.Callback):
    def __init__(self, epoch, batch):
        super().__init__()
        self.at = (epoch, batch)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            raise RuntimeError("interrupted")


def test_sub_epoch_backup_resumes_the_step_the_replay_implies(tmp_path):
    # 4 batches an epoch; a backup every 3 batches, the last one after
    # epoch 2's first batch (step 9); the crash comes one batch later. Keras
    # replays epoch 2 from its first batch, so the step must restart at 8.
    x = np.random.default_rng(0).normal(size=(32, 6)).astype("float32")
    y = np.zeros((32, 2))
    steps = {}

    class Steps(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            steps.setdefault(epoch, [
                int(keras.ops.convert_to_numpy(w.pruning_step))
                for w in pruning.pruning_wrappers(self.model)])

    def fit(model, extra):
        model.compile("adam", "mse")
        model.fit(x, y, batch_size=8, epochs=4, verbose=0, callbacks=[
            pruning.UpdatePruningStep(),
            keras.callbacks.BackupAndRestore(str(tmp_path / "backup"),
                                             save_freq=3),
            *extra])

    keras.utils.set_random_seed(1)
    with pytest.raises(RuntimeError, match="interrupted"):
        fit(_pruned_model(), [_InterruptAtBatch(epoch=2, batch=1)])
    keras.utils.set_random_seed(1)
    resumed = _pruned_model()
    fit(resumed, [Steps()])
    assert min(steps) == 2
    assert steps[2] == [8, 8] and steps[3] == [12, 12]
    for wrapper in pruning.pruning_wrappers(resumed):
        assert int(keras.ops.convert_to_numpy(wrapper.pruning_step)) == 16
        assert float(np.mean(keras.ops.convert_to_numpy(
            wrapper.masks[0]) == 0)) == pytest.approx(0.5)
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(wrapper.epoch_marks), [-1, -1])
