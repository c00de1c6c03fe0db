"""The schedule sees the 1-based number of each batch, as in TFMOT.

`benchmarks/pruning_parity.py` shows that, started from the same weights and
fed the same batches, this makes kcompress's masks and accuracies TFMOT's
seed for seed; evaluated on the 0-based count, every mask update came one
batch later and runs drifted apart at 80-90% sparsity.
"""

import keras
import numpy as np
from keras import ops

import kcompress as kc


class _MaskLog(keras.callbacks.Callback):
    """The kernel sparsity after each batch."""

    def __init__(self, wrapper):
        super().__init__()
        self.wrapper, self.sparsities = wrapper, []

    def on_train_batch_end(self, batch, logs=None):
        _ = self.model  # On JAX, attaches the training state back.
        mask = ops.convert_to_numpy(self.wrapper.masks[0])
        self.sparsities.append(float(np.mean(mask == 0)))


def _fit(schedule, batches):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((10,)),
                              keras.layers.Dense(20, name="dense")])
    pruned = kc.prune_low_magnitude(model, schedule)
    pruned.compile("sgd", "mse")
    log = _MaskLog(pruned.get_layer("prune_low_magnitude_dense"))
    x = np.random.default_rng(0).normal(size=(4 * batches, 10))
    pruned.fit(x.astype("float32"), np.zeros((4 * batches, 20), "float32"),
               batch_size=4, verbose=0,
               callbacks=[kc.pruning.UpdatePruningStep(), log])
    return log.sparsities


def test_updates_fall_on_the_batches_tfmot_updates_on():
    schedule = kc.pruning.PolynomialDecay(0.0, 0.8, begin_step=0,
                                          end_step=11, frequency=3)
    sparsities = _fit(schedule, 11)
    changed = [i + 1 for i in range(1, 11)
               if sparsities[i] != sparsities[i - 1]]
    assert sparsities[0] == 0.0  # batch 1 is off the frequency
    # ... and on end_step, off the frequency (kcompress's one addition).
    assert changed == [3, 6, 9, 11], sparsities
    # A fit of end_step batches ends on the final sparsity.
    assert sparsities[-1] == 0.8


def test_constant_sparsity_waits_for_its_frequency():
    schedule = kc.pruning.ConstantSparsity(0.5, begin_step=0, frequency=4)
    assert _fit(schedule, 3) == [0.0, 0.0, 0.0]
    assert _fit(schedule, 4)[-1] == 0.5
