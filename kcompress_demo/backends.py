"""The digits pipeline on the backend Keras runs on, as one JSON line.

Trains the reference CNN, prunes it to 80% during `fit`, runs
pruning-preserving QAT, exports the `qat` int8 file and verifies it against
the Keras model. `benchmarks/backends.py` and `tests/test_backends.py` run it
once per backend (`KERAS_BACKEND=jax python -m kcompress_demo.backends`) and
compare the files: on JAX and PyTorch, `tflite_export.convert` converts in a
TensorFlow-backend child process.

Run: `python -m kcompress_demo.backends [--epochs=30] [--fine_tune_epochs=10]
[--qat_epochs=5] [--sparsity=0.8]`.
"""

import json
import time

from absl import app
from absl import flags

_EPOCHS = flags.DEFINE_integer("epochs", 30, "Float training epochs.")
_FINE_TUNE = flags.DEFINE_integer("fine_tune_epochs", 10,
                                  "Pruning fine-tune epochs.")
_QAT_EPOCHS = flags.DEFINE_integer("qat_epochs", 5, "QAT epochs.")
_SPARSITY = flags.DEFINE_float("sparsity", 0.8, "Final sparsity, in [0, 1).")


def pipeline(epochs, fine_tune_epochs, qat_epochs, sparsity=0.8):
    """Runs prune -> PQAT -> qat export -> verify; returns the figures."""
    import keras

    import kcompress as kc
    import tflite_export as te
    from kcompress_demo import reference

    keras.utils.set_random_seed(0)
    data = reference.load_digits_split()
    start = time.perf_counter()
    model = reference.fit(reference.reference_cnn(), data, epochs)
    schedule = reference.pruning_schedule(data, sparsity, fine_tune_epochs)
    pruned = reference.fit(kc.prune_low_magnitude(model, schedule), data,
                           fine_tune_epochs, [kc.pruning.UpdatePruningStep()])
    stripped = kc.strip_pruning(pruned)
    qat = reference.fit(kc.quantize_model(stripped), data, qat_epochs)
    trained = time.perf_counter() - start
    start = time.perf_counter()
    tflite = te.convert(qat, "qat")
    converted = time.perf_counter() - start
    check = te.verify(tflite, qat, data.x_test, data.y_test)
    inspection = te.inspect(tflite)
    return {
        "backend": keras.backend.backend(),
        "keras_accuracy": check.keras_accuracy,
        "tflite_accuracy": check.tflite_accuracy,
        "top1_agreement": check.top1_agreement,
        "max_steps": check.max_steps,
        "size": len(tflite),
        "gzip_size": inspection.gzip_size,
        "int8_coverage": inspection.int8_coverage,
        "ops": sorted(op.name for op in inspection.ops),
        "largest_weight_zero_fraction": max(
            inspection.weight_zero_fraction.values(), default=0.0),
        "train_seconds": trained,
        "convert_seconds": converted,
    }


def main(argv):
    del argv
    print(json.dumps(pipeline(_EPOCHS.value, _FINE_TUNE.value,
                              _QAT_EPOCHS.value, _SPARSITY.value)))


if __name__ == "__main__":
    app.run(main)
