"""2:4 sparsity survives int8 conversion: every group of 4 weights along the
input channels of every int8 kernel in the .tflite file holds 2 zeros."""

import keras
import numpy as np

import kcompress as kc
import tflite_export as te

L = keras.layers


def _int8_kernels(tflite):
    """`{op: int8 weights}` of each CONV_2D and FULLY_CONNECTED."""
    kernels = {}
    for key, (op_name, weights) in te.kernel_weights(tflite).items():
        if op_name in ("CONV_2D", "FULLY_CONNECTED"):
            assert weights.dtype == np.int8
            kernels[key] = weights
    return kernels


def test_two_of_four_exports_intact_to_int8():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((6, 6, 8)),
        L.Conv2D(16, 3, padding="same", activation="relu", name="conv"),
        L.Flatten(), L.Dense(12, activation="relu", name="hidden"),
        L.Dense(4, name="out")])
    pruned = kc.prune_low_magnitude(
        model, kc.pruning.ConstantSparsity(0.5, begin_step=0, frequency=1),
        sparsity_m_by_n=(2, 4))
    pruned.compile(optimizer="adam", loss="mse")
    x = np.random.default_rng(0).normal(size=(64, 6, 6, 8)).astype("float32")
    pruned.fit(x, np.zeros((64, 4)), epochs=1, verbose=0,
               callbacks=[kc.pruning.UpdatePruningStep()])
    tflite = te.convert(kc.strip_pruning(pruned), "int8",
                        representative_data=x)
    kernels = _int8_kernels(tflite)
    assert len(kernels) == 3, sorted(kernels)
    for name, kernel in kernels.items():
        # TFLite stores kernels output-channel first, input channels last.
        groups = kernel.reshape(-1, 4)
        assert ((groups == 0).sum(axis=1) >= 2).all(), name
