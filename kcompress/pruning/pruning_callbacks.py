"""Callbacks that drive and record pruning during `fit`."""

import csv
import logging
import os

import keras
from keras import ops

from kcompress._arguments import as_int
from kcompress.pruning.global_masks import GlobalMasker
from kcompress.pruning.group_masks import GroupMasker
from kcompress.pruning.prune import pruning_wrappers

_logger = logging.getLogger(__name__)

__all__ = ["UpdatePruningStep", "PruningSummaries"]


def _wrappers_or_raise(model, callback_name):
    wrappers = pruning_wrappers(model)
    if not wrappers:
        raise ValueError(
            f"{callback_name} was given model '{model.name}', which has no "
            "PruneLowMagnitude layers. Pass the model returned by "
            "kcompress.pruning.prune_low_magnitude."
        )
    return wrappers


@keras.saving.register_keras_serializable(package="kcompress")
class UpdatePruningStep(keras.callbacks.Callback):
    """Starts the pruning step counters of a pruned model; required by `fit`.

    The counters then advance inside the compiled train step, one per batch,
    so the callback costs nothing per batch. Their values are model weights:
    `keras.callbacks.BackupAndRestore` and `.keras` files keep them, and a
    resumed `fit` continues the schedule where it stopped.

    A backup taken mid-epoch (`BackupAndRestore(save_freq=N)`) restores
    mid-epoch weights, but Keras then replays that epoch from its first
    batch. The callback rewinds the pruning step to that epoch's start, so
    the schedule, the step and the mask updates match an uninterrupted run.
    The weights themselves see the replayed batches twice, as in any Keras
    model resumed this way; `save_freq="epoch"` resumes exactly.

    For channel-group pruning (`structure="groups"`) the callback also sets
    the masks, before each batch whose schedule updates (see
    `group_masks.GroupMasker`): a group spans several layers, which no
    single layer's step can see. Likewise for global pruning
    (`scope="global"`, see `global_masks.GlobalMasker`), where one threshold
    ranks the weights of every layer.

    Example:

    >>> import keras, numpy as np
    >>> from kcompress.pruning import prune_low_magnitude
    >>> model = prune_low_magnitude(keras.Sequential(
    ...     [keras.Input((4,)), keras.layers.Dense(2)]))
    >>> model.compile("sgd", "mse")
    >>> history = model.fit(np.ones((8, 4)), np.ones((8, 2)), verbose=0,
    ...                     callbacks=[UpdatePruningStep()])
    """

    def on_train_begin(self, logs=None):
        self._wrappers = _wrappers_or_raise(self.model, "UpdatePruningStep")
        for wrapper in self._wrappers:
            wrapper.step_callback_attached = True
            if int(ops.convert_to_numpy(wrapper.pruning_step)) < 0:
                wrapper.pruning_step.assign(0)
        self._masker = GroupMasker(self.model, self._wrappers)
        self._global = GlobalMasker(self._wrappers)
        self._step = None

    def on_epoch_begin(self, epoch, logs=None):
        for wrapper in self._wrappers:
            marked_epoch, start = (int(v) for v in ops.convert_to_numpy(
                wrapper.epoch_marks))
            if marked_epoch == epoch and start >= 0:
                # Restored from a backup taken inside this very epoch, which
                # Keras replays from its first batch.
                wrapper.pruning_step.assign(start)
            else:
                step = int(ops.convert_to_numpy(wrapper.pruning_step))
                wrapper.epoch_marks.assign([epoch, step])
        if self._masker or self._global:
            # Counted here from now on: reading it each batch would cost a
            # device sync (and on JAX, a state sync).
            first = (self._global.wrappers[0] if self._global else
                     next(iter(self._masker.wrappers.values())))
            self._step = max(int(ops.convert_to_numpy(
                first.pruning_step)), 0)

    def on_train_batch_begin(self, batch, logs=None):
        if not (self._masker or self._global):
            return
        self._step += 1  # the 1-based batch the schedule sees
        updates = self._masker.due(self._step) if self._masker else None
        sparsity = self._global.due(self._step) if self._global else None
        if updates or sparsity is not None:
            _ = self.model  # On JAX this syncs the variables; the step
            # then reads the new masks back from them.
        if updates:
            self._masker.update(updates)
        if sparsity is not None:
            self._global.update(sparsity)

    def on_epoch_end(self, epoch, logs=None):
        for wrapper in self._wrappers:
            wrapper.epoch_marks.assign([-1, -1])

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _tensorboard_writer(log_dir):
    """A TensorBoard event writer, or None where TensorFlow is unavailable."""
    # TensorBoard event files are written by TensorFlow's summary ops. Outside
    # tflite_export/, TensorFlow is reached only here and in the fenced
    # `tf.distribute` question of pruning_wrapper._can_assign_in_branch.
    try:
        import tensorboard  # noqa: F401  (tf.summary needs it to write)
        import tensorflow as tf
    except ImportError:
        _logger.warning(
            "PruningSummaries: TensorBoard is not installed, so only %s is "
            "written. `pip install tensorboard` for event files.",
            PruningSummaries.CSV_NAME)
        return None
    return tf.summary.create_file_writer(log_dir)


@keras.saving.register_keras_serializable(package="kcompress")
class PruningSummaries(keras.callbacks.Callback):
    """Records each pruned weight's sparsity, to TensorBoard and to CSV.

    For every `PruneLowMagnitude` layer and pruned weight it logs the actual
    fraction of zeros in the mask, the schedule's current target, and the
    step. Scalars go to TensorBoard under `log_dir` as
    `pruning/<layer>/<weight>/sparsity`; the same rows are appended to
    `log_dir/pruning_summaries.csv` (columns: epoch, step, layer, weight,
    sparsity, target) for people without TensorBoard.

    Args:
        log_dir: directory for the event files and the CSV file.
        update_freq: `"epoch"` to log at the end of each epoch, or an integer
            `n` to log every `n` batches as well.
        tensorboard: whether to write TensorBoard event files.
    """

    CSV_NAME = "pruning_summaries.csv"
    FIELDS = ("epoch", "step", "layer", "weight", "sparsity", "target")

    def __init__(self, log_dir, update_freq="epoch", tensorboard=True):
        super().__init__()
        if not isinstance(log_dir, (str, os.PathLike)) or not str(log_dir):
            raise ValueError(
                f"Received: log_dir={log_dir!r}. Expected a directory path."
            )
        if update_freq != "epoch" and not (
                as_int(update_freq) is not None and update_freq > 0):
            raise ValueError(
                f"Received: update_freq={update_freq!r}. Expected 'epoch' or "
                "a positive integer (batches)."
            )
        self.log_dir = os.fspath(log_dir)
        self.update_freq = (update_freq if update_freq == "epoch"
                            else as_int(update_freq))
        self.tensorboard = tensorboard
        self._epoch = 0
        self._writer = None

    @property
    def csv_path(self):
        return os.path.join(self.log_dir, self.CSV_NAME)

    def on_train_begin(self, logs=None):
        self._wrappers = _wrappers_or_raise(self.model, "PruningSummaries")
        os.makedirs(self.log_dir, exist_ok=True)
        if not os.path.exists(self.csv_path):
            with open(self.csv_path, "w", newline="") as f:
                csv.writer(f).writerow(self.FIELDS)
        if self.tensorboard and self._writer is None:
            self._writer = _tensorboard_writer(self.log_dir)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.update_freq != "epoch" and (batch + 1) % self.update_freq == 0:
            self._log()

    def on_epoch_end(self, epoch, logs=None):
        self._log()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.flush()

    def rows(self):
        """The current `(epoch, step, layer, weight, sparsity, target)` rows."""
        # On JAX, `fit` keeps the training state apart from the variables
        # inside an epoch; reading `self.model` attaches it back.
        _ = self.model
        rows = []
        for wrapper in self._wrappers:
            step = int(ops.convert_to_numpy(wrapper.pruning_step))
            _, target = wrapper.pruning_schedule(max(step, 1))
            target = float(ops.convert_to_numpy(target))
            for weight, mask in zip(wrapper.pruned_weights, wrapper.masks):
                values = ops.convert_to_numpy(mask)
                sparsity = float((values == 0).mean())
                rows.append((self._epoch, step, wrapper.layer.name,
                             weight.name, sparsity, target))
        return rows

    def _log(self):
        rows = self.rows()
        with open(self.csv_path, "a", newline="") as f:
            csv.writer(f).writerows(rows)
        if self._writer is None:
            return
        import tensorflow as tf  # Only reached when the writer exists.

        with self._writer.as_default():
            for _, step, layer, weight, sparsity, target in rows:
                tf.summary.scalar(f"pruning/{layer}/{weight}/sparsity",
                                  sparsity, step=step)
                tf.summary.scalar(f"pruning/{layer}/{weight}/target",
                                  target, step=step)

    def get_config(self):
        return {"log_dir": self.log_dir, "update_freq": self.update_freq,
                "tensorboard": self.tensorboard}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
