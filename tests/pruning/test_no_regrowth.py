"""A pruned weight stays pruned, as in TFMOT (issue 15).

Before, masks were ranked on the stored weights, which keep the value they
had when they were pruned (and drift on with Adam's momentum). At a later
mask update such a weight could come back with a value never trained in its
context, pushing out a live weight.
"""

import keras
import numpy as np
import pytest

from kcompress import pruning
from kcompress.pruning import PolynomialDecay
from kcompress.pruning.pruning_wrapper import PruneLowMagnitude


def test_a_pruned_weight_with_a_large_stale_value_stays_pruned():
    wrapper = PruneLowMagnitude(keras.layers.Dense(1, use_bias=False))
    wrapper.build((None, 4))
    wrapper.layer.kernel.assign(np.array([[5.0], [1.0], [2.0], [3.0]]))
    # Entry 0 was pruned when it was small; its stored value grew since.
    wrapper.masks[0].assign(np.array([[0.0], [1.0], [1.0], [1.0]]))
    new = keras.ops.convert_to_numpy(wrapper.compute_masks(0.5)[0])
    np.testing.assert_array_equal(new.ravel(), [0.0, 0.0, 1.0, 1.0])


def _revivals_during_pruning(seed):
    """Mask entries that go from 0 back to 1 while a model prunes to 80%."""
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(256, 16)).astype("float32")
    y = (x[:, :4].sum(1) > 0).astype("int64")
    model = keras.Sequential([keras.Input((16,)),
                              keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(2)])
    pruned = pruning.prune_low_magnitude(
        model, PolynomialDecay(0.0, 0.8, begin_step=0, end_step=64,
                               frequency=1))
    pruned.compile(keras.optimizers.Adam(3e-3),
                   keras.losses.SparseCategoricalCrossentropy(
                       from_logits=True))
    previous, revived = {}, [0]

    class Count(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            for wrapper in pruning.pruning_wrappers(self.model):
                mask = keras.ops.convert_to_numpy(wrapper.masks[0])
                if wrapper.name in previous:
                    revived[0] += int(np.sum((previous[wrapper.name] == 0)
                                             & (mask == 1)))
                previous[wrapper.name] = mask

    pruned.fit(x, y, batch_size=32, epochs=8, verbose=0,
               callbacks=[pruning.UpdatePruningStep(), Count()])
    sparsities = [float(np.mean(keras.ops.convert_to_numpy(w.masks[0]) == 0))
                  for w in pruning.pruning_wrappers(pruned)]
    return revived[0], sparsities


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_pruned_weight_comes_back_during_fit(seed):
    revived, sparsities = _revivals_during_pruning(seed)
    assert revived == 0
    assert sparsities == pytest.approx([0.8, 0.8], abs=0.01)


def test_depthwise_convolutions_stay_dense_unless_wrapped_explicitly():
    """As in TFMOT: at 90% a depthwise kernel (k*k weights per channel)
    loses whole channels; the parity benchmark measured -18 points."""
    model = keras.Sequential([
        keras.Input((6, 6, 4)),
        keras.layers.DepthwiseConv2D(3, name="dw"),
        keras.layers.Conv2D(8, 1, name="pw"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(2, name="head")])
    pruned = pruning.prune_low_magnitude(model)
    assert [type(layer).__name__ for layer in pruned.layers] == [
        "DepthwiseConv2D", "PruneLowMagnitude", "GlobalAveragePooling2D",
        "PruneLowMagnitude"]
    explicit = pruning.prune_low_magnitude(keras.layers.DepthwiseConv2D(3))
    assert isinstance(explicit, PruneLowMagnitude)
    by_name = pruning.prune_low_magnitude(
        model, {"dw": PolynomialDecay(0.0, 0.5, 0, 10)})
    assert isinstance(by_name.get_layer("prune_low_magnitude_dw"),
                      PruneLowMagnitude)
