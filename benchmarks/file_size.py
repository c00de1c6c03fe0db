"""Where the bytes of an int8 file go, against the stock converter (issue 19).

MobileNetV2 (alpha 0.35, 96x96, random weights) and the digits reference
CNN, each converted by the stock `tf.lite.TFLiteConverter.from_keras_model`
(full-integer PTQ, float input and output) and by `tflite_export.convert`
with names kept (the old default), names dropped (the default now) and a
fixed batch of 1. Then, from one training step of the same model: the dense
model, the 50%-pruned and stripped one, and the QAT one (`qat` mode), so
that the three differ only by the technique.

Each row splits the file (`tflite_export.file_bytes.size_breakdown`) into
weight buffers, quantization parameters, strings and graph, and counts the
constant buffers the converter stored once for several tensors (it
deduplicates identical buffers, such as the all-zero biases of an untrained
model).

With `--zoo`, one row per model of `benchmarks/model_zoo.py`
(`kcompress_demo.zoo`, random weights): the stock converter's PTQ file
against `tflite_export.convert(model, "int8")`, both from the same model
and representative data, with float input and output.

Run: `python benchmarks/file_size.py` (about 3 minutes on 2 cores), or
`python benchmarks/file_size.py --zoo` (about 15 minutes).
"""

import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

import kcompress as kc  # noqa: E402
import tflite_export as te  # noqa: E402
from kcompress.tables import render  # noqa: E402
from kcompress_demo import reference  # noqa: E402
from tflite_export import file_bytes  # noqa: E402

_ZOO = flags.DEFINE_bool("zoo", False, "Every model of the zoo against the "
                         "stock converter, instead of the breakdown.")
_ZOO_MODELS = flags.DEFINE_list("zoo_models", None,
                                "With --zoo: a subset of the zoo.")
_STOCK_ONLY = flags.DEFINE_string(
    "stock_only", None, "Print the stock PTQ size of this zoo model (the "
    "child process of --zoo: the stock converter can crash the process).")


def _stock(model, x):
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([s[None]] for s in x[:100])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter.convert()


def rows_for(name, model, x, y):
    """The table rows of one model: each file, split by part."""
    files = [("stock TFLiteConverter PTQ", _stock(model, x))]
    int8 = dict(representative_data=x, float_io=True)
    files.append(("kcompress int8, names kept",
                  te.convert(model, "int8", keep_names=True, **int8)))
    files.append(("kcompress int8", te.convert(model, "int8", **int8)))
    files.append(("kcompress int8, batch_size=1",
                  te.convert(model, "int8", batch_size=1, **int8)))
    keras.utils.set_random_seed(1)
    dense = keras.models.clone_model(model)
    dense.set_weights(model.get_weights())
    dense.compile("adam", "sparse_categorical_crossentropy")
    dense.fit(x, y, batch_size=len(x), epochs=1, verbose=0)
    files.append(("1 step: dense, int8", te.convert(dense, "int8", **int8)))
    keras.utils.set_random_seed(1)
    pruned = kc.prune_low_magnitude(
        model, kc.pruning.ConstantSparsity(0.5, 0, frequency=1))
    pruned.compile("adam", "sparse_categorical_crossentropy")
    pruned.fit(x, y, batch_size=len(x), epochs=1, verbose=0,
               callbacks=[kc.pruning.UpdatePruningStep()])
    files.append(("1 step: pruned 50%, stripped, int8",
                  te.convert(kc.strip_pruning(pruned), "int8", **int8)))
    keras.utils.set_random_seed(1)
    qat = kc.quantization.quantize_model(model)
    qat.compile("adam", "sparse_categorical_crossentropy")
    qat.fit(x, y, batch_size=len(x), epochs=1, verbose=0)
    files.append(("1 step: QAT, qat", te.convert(qat, "qat")))
    stock = len(files[0][1])
    rows = []
    for label, tflite in files:
        parts = file_bytes.size_breakdown(tflite)
        rows.append([name, label, f"{parts.total:,}",
                     f"{parts.total / stock:.3f}", f"{parts.weights:,}",
                     f"{parts.quantization:,}", f"{parts.strings:,}",
                     f"{parts.graph:,}", str(parts.shared_buffers)])
    return rows


def _failure(error):
    first = (str(error).strip().splitlines() or [""])[0][:80]
    return f"fails: {type(error).__name__}: {first}"


def zoo_rows():
    """One row per zoo model: stock PTQ bytes, kcompress int8 bytes."""
    from kcompress_demo import zoo

    rows = []
    for name in _ZOO_MODELS.value or list(zoo.MODELS):
        model = zoo.build(name)
        x = zoo.sample_inputs(model, 16)
        child = subprocess.run(
            [sys.executable, __file__, f"--stock_only={name}"],
            capture_output=True, text=True, check=False)
        lines = child.stdout.strip().splitlines()
        if child.returncode == 0 and lines and lines[-1].isdigit():
            stock = int(lines[-1])
        elif child.returncode < 0:  # killed by a signal
            stock = f"crashes: signal {-child.returncode} in the converter"
        else:
            stock = "fails: " + ((child.stderr.strip().splitlines()
                                  or ["?"])[-1][:80])
        try:
            if any(isinstance(layer, keras.layers.RNN)
                   for layer in model.layers):
                # int8 PTQ of a recurrent model is refused (TensorFlow's
                # calibration crashes, as the stock column shows): its int8
                # file comes from QAT, calibrated on the same data.
                qat = kc.quantization.quantize_model(
                    model, calibration_data=x)
                ours = len(te.convert(qat, "qat"))
                name += " (kcompress: qat)"
            else:
                ours = len(te.convert(model, "int8", representative_data=x,
                                      float_io=True))
        except Exception as error:  # noqa: BLE001 (reported in the table)
            ours = _failure(error)
        both = isinstance(stock, int) and isinstance(ours, int)
        rows.append([name, f"{stock:,}" if isinstance(stock, int) else stock,
                     f"{ours:,}" if isinstance(ours, int) else ours,
                     f"{ours / stock:.3f}" if both else "-"])
        print(" | ".join(rows[-1]), flush=True)
    return rows


def main(argv):
    del argv
    if _STOCK_ONLY.value:
        from kcompress_demo import zoo

        model = zoo.build(_STOCK_ONLY.value)
        print(len(_stock(model, zoo.sample_inputs(model, 16))))
        return
    if _ZOO.value:
        print(render(["model", "stock TFLiteConverter PTQ (B)",
                      "kcompress int8 (B)", "x stock"], zoo_rows()))
        print("\nCommand: python benchmarks/file_size.py "
              + " ".join(sys.argv[1:]))
        return
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    mobilenet = keras.applications.MobileNetV2(
        input_shape=(96, 96, 3), alpha=0.35, weights=None, classes=10)
    x = rng.uniform(-1, 1, (16, 96, 96, 3)).astype("float32")
    rows = rows_for("MobileNetV2", mobilenet, x, rng.integers(0, 10, 16))
    data = reference.load_digits_split()
    cnn = reference.reference_cnn()
    reference.fit(cnn, data, epochs=3)
    rows += rows_for("digits CNN", cnn, data.x_train[:300],
                     data.y_train[:300])
    print(render(["model", "file", "bytes", "x stock", "weights",
                  "quantization", "strings", "graph", "shared buffers"],
                 rows))
    print(f"\nCommand: python benchmarks/file_size.py {' '.join(sys.argv[1:])}"
          .rstrip())


if __name__ == "__main__":
    app.run(main)
