"""Issue acceptance: channel pruning and `shrink` on the reference digits CNN.

Half of the channels of each conv and half of the hidden Dense units go,
with 10 fine-tune epochs; the shrunk files must be at most 0.35x the dense
ones, unzipped, and the shrunk model must go through QAT.
"""

import keras
import numpy as np
import pytest

import kcompress as kc
import tflite_export as te
from kcompress.pruning import PolynomialDecay
from kcompress_demo import reference


@pytest.fixture(scope="module")
def pruned_and_shrunk(_trained_float, digits):
    model = keras.saving.load_model(_trained_float[0])
    steps = -(-len(digits.x_train) // 32)
    keras.utils.set_random_seed(1)
    pruned = reference.compile_reference(kc.prune_low_magnitude(
        model, PolynomialDecay(0.0, 0.5, begin_step=0,
                               end_step=int(steps * 10 * 0.7), frequency=10),
        structure="channels"))
    pruned.fit(digits.x_train, digits.y_train, batch_size=32, epochs=10,
               verbose=0, callbacks=[kc.pruning.UpdatePruningStep()])
    return model, pruned, kc.pruning.shrink(pruned)


def test_half_the_channels_go_and_accuracy_holds(pruned_and_shrunk, digits,
                                                 float_accuracy):
    model, pruned, small = pruned_and_shrunk
    assert small.channels_kept == {"conv1": (8, 16), "conv2": (16, 32),
                                   "conv3": (32, 64), "dense1": (32, 64)}
    np.testing.assert_allclose(small.predict(digits.x_test, verbose=0),
                               pruned.predict(digits.x_test, verbose=0),
                               rtol=1e-4, atol=1e-4)
    accuracy = reference.accuracy(small, digits.x_test, digits.y_test)
    assert accuracy >= float_accuracy - 0.015


def test_shrunk_files_are_at_most_035x(pruned_and_shrunk, digits):
    model, _, small = pruned_and_shrunk
    for mode, options in (("float32", {}), ("int8", {
            "representative_data": digits.x_train[:300]})):
        dense = len(te.convert(model, mode, **options))
        shrunk = len(te.convert(small, mode, **options))
        assert shrunk <= 0.35 * dense, (mode, shrunk, dense)


def test_shrunk_model_goes_through_qat(pruned_and_shrunk, digits):
    _, _, small = pruned_and_shrunk
    qat = reference.compile_reference(kc.quantize_model(small))
    qat.fit(digits.x_train, digits.y_train, batch_size=32, epochs=3,
            verbose=0)
    report = te.verify(te.convert(qat, "qat"), qat, digits.x_test,
                       digits.y_test)
    assert report.top1_agreement >= 0.995
    assert round(report.max_steps, 3) <= 2
