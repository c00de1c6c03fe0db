"""Acceptance of channel-group pruning on residual models trained on digits.

A MobileNetV2-style and a ResNet-style network (kcompress_demo/residual.py)
are trained, then fine-tuned twice for the same epochs: once dense, once
channel-pruned by dependency group to half of the dense MACs. The shrunk
model must equal the masked one, score within 1.5 points of the dense
fine-tune, and make a smaller int8 file; then the ResNet-style one goes
through QAT and mode `qat` export with the file agreeing with Keras (the
MobileNetV2 family's QAT export is covered by tests/test_trained_zoo.py).
"""

import keras
import numpy as np
import pytest

import kcompress as kc
import tflite_export
from kcompress_demo import reference
from kcompress_demo import residual

TRAIN_EPOCHS, TUNE_EPOCHS = 6, 4
# The int8 file of the shrunk model against the dense one, at half the MACs.
# The weights shrink with the MACs (0.51x for both models); each remaining
# output channel keeps a per-channel scale in the file, which shrinks only
# with the channel count. (Before the lean writer stored each distinct zero
# point vector once, the MobileNetV2-style file was 0.61x.)
FILE_RATIO = 0.6


@pytest.fixture(scope="module")
def data():
    return reference.load_digits_split()


@pytest.mark.parametrize("name", sorted(residual.MODELS))
def test_half_the_macs_by_group_pruning(name, data):
    dense = reference.fit(residual.MODELS[name](), data, TRAIN_EPOCHS)
    macs = sum(row.macs for row in kc.layer_stats(dense))
    fraction = kc.pruning.channel_fraction_for(dense, macs=macs // 2)

    baseline = keras.models.clone_model(dense)
    baseline.set_weights(dense.get_weights())
    keras.utils.set_random_seed(1)
    baseline = reference.fit(baseline, data, TUNE_EPOCHS)
    keras.utils.set_random_seed(1)
    pruned = reference.fit(kc.prune_low_magnitude(
        dense, reference.pruning_schedule(data, fraction, TUNE_EPOCHS),
        structure="channels"), data, TUNE_EPOCHS,
        [kc.pruning.UpdatePruningStep()])
    shrunk = kc.pruning.shrink(pruned)
    masked = kc.pruning.strip_pruning(pruned)

    assert sum(row.macs for row in kc.layer_stats(shrunk)) <= macs // 2
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(shrunk(data.x_test)),
        keras.ops.convert_to_numpy(masked(data.x_test)), atol=1e-4)
    dense_accuracy = reference.accuracy(baseline, data.x_test, data.y_test)
    pruned_accuracy = reference.accuracy(shrunk, data.x_test, data.y_test)
    assert pruned_accuracy >= dense_accuracy - 0.015, (
        pruned_accuracy, dense_accuracy)
    representative = data.x_train[:200]
    dense_file = tflite_export.convert(baseline, "int8",
                                       representative_data=representative)
    shrunk_file = tflite_export.convert(shrunk, "int8",
                                        representative_data=representative)
    assert len(shrunk_file) <= FILE_RATIO * len(dense_file), (
        len(shrunk_file), len(dense_file))

    if name != "ResNet-style":
        return
    qat = kc.quantize_model(shrunk, calibration_data=representative)
    reference.compile_reference(qat, learning_rate=1e-4)
    qat.fit(data.x_train, data.y_train, batch_size=32, epochs=1, verbose=0)
    check = tflite_export.verify(tflite_export.convert(qat, "qat"), qat,
                                 data.x_test, data.y_test)
    assert check.top1_agreement >= 0.995, check
    assert check.max_steps <= 2.0, check
