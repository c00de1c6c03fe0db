"""Pruning and QAT under tf.distribute.MirroredStrategy on 2 logical CPUs.

Run in its own process by test_mirrored.py: the CPU must be split into two
logical devices before TensorFlow initializes its runtime. Prints one JSON
object with what the tests check.
"""

import json
import os
import sys
import tempfile

import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

import kcompress as kc  # noqa: E402
import tflite_export as te  # noqa: E402
from kcompress_demo import reference  # noqa: E402


def replica_values(variable):
    """The per-replica values of a Keras variable (a tf MirroredVariable)."""
    mirrored = variable._value  # The tf.Variable behind the Keras variable.
    return [np.asarray(v.numpy()) for v in mirrored.values]


def main():
    keras.utils.set_random_seed(0)
    data = reference.load_digits_split()
    float_model = reference.compile_reference(reference.reference_cnn())
    float_model.fit(data.x_train, data.y_train, verbose=0,
                    **reference.FIT_ARGS)
    float_accuracy = reference.accuracy(float_model, data.x_test, data.y_test)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    steps_per_epoch = -(-len(data.x_train) // 32)
    result = {"replicas": strategy.num_replicas_in_sync,
              "float_accuracy": float_accuracy,
              "steps": steps_per_epoch * 10}

    with strategy.scope():
        pruned = reference.compile_reference(kc.prune_low_magnitude(
            float_model, kc.pruning.PolynomialDecay(
                0.0, 0.8, begin_step=0, end_step=steps_per_epoch * 7,
                frequency=10)))
        pruned.fit(data.x_train, data.y_train, batch_size=32, epochs=10,
                   verbose=0, callbacks=[kc.pruning.UpdatePruningStep()])
    wrappers = kc.pruning.pruning_wrappers(pruned)
    result["pruning_steps"] = [
        [int(v) for v in replica_values(w.pruning_step)] for w in wrappers]
    result["masks_identical"] = all(
        all(np.array_equal(values[0], other) for other in values[1:])
        for w in wrappers for m in w.masks
        for values in [replica_values(m)])
    stripped = kc.strip_pruning(pruned)
    result["sparsity"] = {
        layer.name: float((layer.kernel.numpy() == 0).mean())
        for layer in stripped.layers if hasattr(layer, "kernel")}
    result["pruned_accuracy"] = reference.accuracy(stripped, data.x_test,
                                                   data.y_test)

    path = os.path.join(tempfile.mkdtemp(), "pruned.keras")
    pruned.save(path)
    loaded = keras.saving.load_model(path)  # outside the strategy
    result["reload_max_diff"] = float(np.abs(
        loaded.predict(data.x_test, verbose=0)
        - pruned.predict(data.x_test, verbose=0)).max())

    with strategy.scope():
        qat = reference.compile_reference(kc.quantize_model(float_model))
        qat.fit(data.x_train, data.y_train, batch_size=32, epochs=3,
                verbose=0)
    ranges = [replica_values(layer.range_state)
              for layer in kc.quantization.quantize_layers(qat)
              if hasattr(layer, "range_state")]
    result["ranges_identical"] = all(
        all(np.array_equal(values[0], other) for other in values[1:])
        for values in ranges)
    tflite = te.convert(qat, "qat")
    report = te.verify(tflite, qat, data.x_test, data.y_test)
    result["qat_agreement"] = report.top1_agreement
    result["qat_max_steps"] = report.max_steps
    result["qat_tflite_accuracy"] = report.tflite_accuracy
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
