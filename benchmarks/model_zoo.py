"""Conformance table: every technique on real architectures, against TFMOT.

One row per model of `kcompress_demo.zoo` (keras.applications families at
small inputs with random weights, a ViT-style encoder, a Conv1D text model,
LSTM and GRU classifiers). Columns:

- kcompress: PTQ int8, prune 50% -> int8, QAT -> qat int8, factorize
  (energy 0.9, then float32 export);
- TFMOT: QAT -> qat int8 and prune 50% -> int8 on the same architecture
  built with `tf_keras.applications` (or the same layers in tf_keras).

Each cell reads ok / refused (reason) / crash (exception). An int8 cell also
shows the file size, the share of compute ops running in int8, and the
largest output difference between the model and its file on the same inputs,
in output quantization steps. Each model runs in its own process.

Run: `python benchmarks/model_zoo.py` (add `--models=MobileNetV2,ViTEncoder`
for a subset, `--skip_tfmot` for kcompress only).
"""

import json
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # tf.keras is tf_keras.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

_MODELS = flags.DEFINE_list("models", None, "Subset of the zoo to run.")
_SKIP_TFMOT = flags.DEFINE_bool("skip_tfmot", False, "kcompress only.")
_WORKER = flags.DEFINE_string("worker", None, "Internal: run one model.")
_TFMOT_WORKER = flags.DEFINE_bool("tfmot_worker", False,
                                  "Internal: the TFMOT side of --worker.")

KC_COLUMNS = ("PTQ int8", "prune 50% -> int8", "QAT -> qat int8",
              "factorize 0.9")
TFMOT_COLUMNS = ("TFMOT QAT", "TFMOT prune 50%")
SAMPLES = 16


def _int8_cell(tflite_bytes, keras_model, x):
    import tflite_export

    info = tflite_export.inspect(tflite_bytes)
    check = tflite_export.verify(tflite_bytes, keras_model, x)
    steps = check.max_steps
    return {"status": "ok", "size": info.size,
            "int8": round(info.int8_coverage, 3),
            "steps": None if steps is None else round(float(steps), 2),
            "float_ops": sorted({op.name for op in info.float_ops})}


def _attempt(function):
    try:
        return function()
    except ValueError as error:  # kcompress's refusals are ValueErrors.
        return {"status": "refused", "reason": str(error).split(". ")[0]}
    except Exception as error:  # noqa: BLE001 - the cell reports any crash.
        return {"status": "crash",
                "reason": f"{type(error).__name__}: {str(error)[:120]}"}


def kcompress_cells(name):
    import keras

    import kcompress as kc
    import tflite_export
    from kcompress_demo import zoo

    keras.utils.set_random_seed(0)
    model = zoo.build(name)
    x = zoo.sample_inputs(model, SAMPLES)
    y = keras.ops.convert_to_numpy(model.predict(x, verbose=0)).argmax(-1)

    def ptq():
        return _int8_cell(tflite_export.convert(model, "int8",
                                                representative_data=x,
                                                float_io=True), model, x)

    def prune():
        pruned = kc.pruning.prune_low_magnitude(
            model, kc.pruning.ConstantSparsity(0.5, 0, frequency=1))
        pruned.compile("adam", "sparse_categorical_crossentropy")
        pruned.fit(x, y, epochs=1, batch_size=len(x), verbose=0,
                   callbacks=[kc.pruning.UpdatePruningStep()])
        stripped = kc.pruning.strip_pruning(pruned)
        return _int8_cell(tflite_export.convert(stripped, "int8",
                                                representative_data=x,
                                                float_io=True), stripped, x)

    def qat():
        quantized = kc.quantization.quantize_model(model, calibration_data=x)
        return _int8_cell(tflite_export.convert(quantized, "qat"),
                          quantized, x)

    def factorize():
        small = kc.lowrank.factorize(model, energy=0.9)
        tflite_export.convert(small, "float32")
        return {"status": "ok",
                "params": f"{small.count_params() / model.count_params():.2f}x"}

    return dict(zip(KC_COLUMNS, (_attempt(f) for f in (ptq, prune, qat,
                                                       factorize))))


def tfmot_cells(name):
    import tf_keras_zoo

    return dict(zip(TFMOT_COLUMNS, tf_keras_zoo.cells(name, SAMPLES,
                                                      _attempt)))


def _run_worker(name, tfmot):
    cells = tfmot_cells(name) if tfmot else kcompress_cells(name)
    print("ZOO-RESULT " + json.dumps(cells))


def _spawn(name, tfmot):
    command = [sys.executable, os.path.abspath(__file__), f"--worker={name}"]
    if tfmot:
        command.append("--tfmot_worker")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root)
    done = subprocess.run(command, capture_output=True, text=True, env=env,
                          cwd=root, timeout=1800)
    for line in done.stdout.splitlines():
        if line.startswith("ZOO-RESULT "):
            return json.loads(line[len("ZOO-RESULT "):])
    tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
    columns = TFMOT_COLUMNS if tfmot else KC_COLUMNS
    return {c: {"status": "crash", "reason": tail[:120]} for c in columns}


def _text(cell):
    if cell["status"] != "ok":
        reason = " ".join(cell["reason"].split()).replace("|", "/")
        return f"{cell['status']}: {reason}"
    if "size" not in cell:
        return f"ok ({cell['params']} params)" if "params" in cell else "ok"
    steps = "-" if cell["steps"] is None else f"{cell['steps']:g}"
    text = (f"ok {cell['size'] / 1000:,.0f} kB, int8 {cell['int8']:.0%}, "
            f"max {steps} steps")
    if cell.get("float_ops"):
        text += f" (float: {', '.join(cell['float_ops'])})"
    return text


def main(argv):
    del argv
    if _WORKER.value:
        _run_worker(_WORKER.value, _TFMOT_WORKER.value)
        return
    from kcompress_demo import zoo

    names = _MODELS.value or list(zoo.MODELS)
    columns = KC_COLUMNS + (() if _SKIP_TFMOT.value else TFMOT_COLUMNS)
    rows = []
    for name in names:
        start = time.time()
        cells = _spawn(name, tfmot=False)
        if not _SKIP_TFMOT.value:
            cells.update(_spawn(name, tfmot=True))
        rows.append((name, cells))
        print(f"{name}: {time.time() - start:.0f} s", file=sys.stderr)
    command = "python benchmarks/model_zoo.py " + " ".join(sys.argv[1:])
    print(f"\nCommand: {command.strip()}\n")
    print("| model | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for name, cells in rows:
        print(f"| {name} | " + " | ".join(_text(cells[c]) for c in columns)
              + " |")


if __name__ == "__main__":
    app.run(main)
