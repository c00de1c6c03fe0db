"""The end-to-end demo on the reference digits task (`make demo`).

Trains the reference CNN, prunes it to the target sparsity during `fit`, runs
pruning-preserving QAT, exports an int8 `.tflite`, verifies it against the
Keras model, benchmarks both files on the host and on the emulated
Raspberry Pi 4, and prints the compression report: per-layer sparsity,
accuracy in Keras and in TFLite, size, gzip size and latency.

Run: `python -m kcompress_demo [--sparsity=0.8] [--out_dir=artifacts]`.
"""

import json
import os
import sys

from absl import app
from absl import flags
from absl import logging

_SPARSITY = flags.DEFINE_float("sparsity", 0.8, "Final sparsity, in [0, 1).")
_EPOCHS = flags.DEFINE_integer("epochs", 30, "Float training epochs.")
_FINE_TUNE = flags.DEFINE_integer("fine_tune_epochs", 10,
                                  "Pruning fine-tune epochs.")
_QAT_EPOCHS = flags.DEFINE_integer("qat_epochs", 5, "QAT epochs.")
_OUT_DIR = flags.DEFINE_string("out_dir", "artifacts",
                               "Directory for the models, report and logs.")


def _report_table(rows):
    from kcompress.tables import render

    return render(
        ["model", "Keras acc", "TFLite acc", "size (B)", "gzip -9 (B)",
         "host ms", "Pi 4 ms (emulated)"],
        [(name, f"{keras_acc:.4f}", f"{lite_acc:.4f}", f"{size:,}",
          f"{gzipped:,}", host, emulated)
         for name, keras_acc, lite_acc, size, gzipped, host, emulated
         in rows])


def _bench(path, data, print_fn):
    """`(host median, emulated median, emulated bit-identical)` as text."""
    from tflite_export import targets
    from tflite_export.errors import TargetError

    host = targets.bench("host", path, runs=100, warmup=10)
    try:
        emulated = targets.bench("rpi4-emu", path, runs=10, warmup=2,
                               x=data.x_test[:100])
    except TargetError as error:
        print_fn(f"(emulated Pi skipped: {error})")
        return f"{host['median_ms']:.3f}", "-", None
    identical = bool((emulated["outputs"] == emulated["host_outputs"]).all())
    return (f"{host['median_ms']:.3f}", f"{emulated['median_ms']:.3f}",
            identical)


def run_pipeline(sparsity, epochs, fine_tune_epochs, qat_epochs, out_dir,
        print_fn=print):
    """Runs the demo; returns a dict of the figures it printed."""
    import kcompress as kc
    import tflite_export as te
    from kcompress_demo import reference

    os.makedirs(out_dir, exist_ok=True)
    data = reference.load_digits_split()
    print_fn(f"1/5 Training the reference CNN for {epochs} epochs...")
    model = reference.fit(reference.reference_cnn(), data, epochs)

    schedule = reference.pruning_schedule(data, sparsity, fine_tune_epochs)
    print_fn(f"2/5 Pruning to {sparsity:.0%} over {fine_tune_epochs} "
             "epochs...")
    callbacks = [kc.pruning.UpdatePruningStep(),
                 kc.pruning.PruningSummaries(os.path.join(out_dir, "logs"))]
    pruned = reference.fit(kc.prune_low_magnitude(model, schedule), data,
                           fine_tune_epochs, callbacks)
    stripped = kc.strip_pruning(pruned)

    print_fn(f"3/5 Pruning-preserving QAT for {qat_epochs} epochs...")
    qat = reference.fit(kc.quantize_model(stripped), data, qat_epochs)

    print_fn("4/5 Exporting float32 and int8 TFLite, verifying...")
    float_bytes = te.convert(model, "float32")
    int8_bytes = te.convert(qat, "qat")
    float_check = te.verify(float_bytes, model, data.x_test, data.y_test)
    int8_check = te.verify(int8_bytes, qat, data.x_test, data.y_test)
    te.save_atomically(float_bytes, os.path.join(out_dir,
                                                 "digits_float32.tflite"))
    int8_path = os.path.join(out_dir, "digits_pruned_int8.tflite")
    te.save_atomically(int8_bytes, int8_path)
    inspection = te.inspect(int8_bytes)

    print_fn("   Benchmarking on the host and the emulated Raspberry Pi 4...")
    float_bench = _bench(os.path.join(out_dir, "digits_float32.tflite"),
                         data, print_fn)
    int8_bench = _bench(int8_path, data, print_fn)

    print_fn("5/5 Report\n\nPer-layer sparsity of the pruned model:")
    layers = kc.summary(stripped, print_fn=print_fn)
    rows = [
        ("float32", float_check.keras_accuracy, float_check.tflite_accuracy,
         len(float_bytes), te.gzip_size(float_bytes), *float_bench[:2]),
        (f"pruned {sparsity:.0%} + QAT int8", int8_check.keras_accuracy,
         int8_check.tflite_accuracy, len(int8_bytes),
         inspection.gzip_size, *int8_bench[:2]),
    ]
    print_fn(f"\nTest split, n={len(data.y_test)}:\n" + _report_table(rows))
    float_ops = ", ".join(op.name for op in inspection.float_ops) or "none"
    print_fn(
        f"\nint8 file: {inspection.int8_coverage:.0%} of ops in int8 (float "
        f"only at: {float_ops}), "
        f"top-1 agreement with Keras {int8_check.top1_agreement:.2%}, max "
        f"output difference {int8_check.max_steps:.1f} quantization steps; "
        f"gzip size {inspection.gzip_size / len(float_bytes):.3f}x the "
        "float32 file.")
    if int8_bench[2] is not None:
        print_fn(f"Emulated Pi 4 int8 outputs bit-identical to the host: "
                 f"{int8_bench[2]}. Emulated latency is 100x-400x a real "
                 "Pi's and only good for relative comparisons.")
    report = {
        "float32": float_check.to_dict(),
        "int8": int8_check.to_dict(),
        "int8_inspection": {k: v for k, v in inspection.to_dict().items()
                            if k != "ops"},
        "float32_size": len(float_bytes),
        "latency_ms": {"float32": float_bench[:2], "int8": int8_bench[:2]},
        "emulated_int8_bit_identical": int8_bench[2],
        "layers": [vars(row) for row in layers],
    }
    report_path = os.path.join(out_dir, "report.json")
    te.save_atomically(json.dumps(report, indent=2).encode(), report_path)
    print_fn(f"Wrote {int8_path} and {report_path}.")
    return report


def main(argv):
    logging.set_verbosity(logging.WARNING)  # TensorFlow's export chatter
    if len(argv) > 1:
        print(f"demo: unexpected arguments {argv[1:]}", file=sys.stderr)
        sys.exit(2)
    if not 0.0 <= _SPARSITY.value < 1.0:
        print(f"demo: Received: --sparsity={_SPARSITY.value}. Expected a "
              "float in [0, 1).", file=sys.stderr)
        sys.exit(2)
    run_pipeline(_SPARSITY.value, _EPOCHS.value, _FINE_TUNE.value,
                 _QAT_EPOCHS.value, _OUT_DIR.value)


if __name__ == "__main__":
    app.run(main)
