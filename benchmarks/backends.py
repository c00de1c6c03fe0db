"""The digits pipeline on each Keras backend: the int8 file and its accuracy.

For each backend (TensorFlow, JAX, and PyTorch when torch is installed) a
child process with `KERAS_BACKEND` set runs `python -m kcompress_demo.backends`:
30 float epochs, 80% PolynomialDecay pruning over 10 epochs, 5 epochs of
pruning-preserving QAT (the "PQAT 80% int8" row of compare_tfmot.py), then
the `qat` export and its verification. On JAX and PyTorch, `convert` saves
the model and converts it in a TensorFlow-backend child, so the file must
have the TensorFlow backend's ops and size. Times are seconds of the whole
run, for orientation only: the backends run one after another, not
interleaved.

Run: `python benchmarks/backends.py [--backends=tensorflow,jax,torch]`.
"""

import importlib.util
import json
import os
import subprocess
import sys

from absl import app
from absl import flags

_BACKENDS = flags.DEFINE_list("backends", ["tensorflow", "jax", "torch"],
                              "Backends to run (those not installed are "
                              "skipped).")


def run(backend):
    environment = dict(os.environ, KERAS_BACKEND=backend,
                       TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run([sys.executable, "-m", "kcompress_demo.backends"],
                          env=environment, capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        raise SystemExit(f"{backend} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv):
    del argv
    sys.path.insert(0, os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    from kcompress.tables import render

    installed = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}
    backends = [b for b in _BACKENDS.value
                if importlib.util.find_spec(installed.get(b, b))]
    results = [run(backend) for backend in backends]
    base = results[0]
    rows = [[r["backend"], f"{r['keras_accuracy']:.4f}",
             f"{r['tflite_accuracy']:.4f}", f"{r['top1_agreement']:.2%}",
             f"{r['max_steps']:.1f}", f"{r['size']:,}",
             f"{r['size'] / base['size']:.3f}", f"{r['gzip_size']:,}",
             f"{r['int8_coverage']:.0%}",
             "yes" if r["ops"] == base["ops"] else "NO",
             f"{r['train_seconds']:.0f}", f"{r['convert_seconds']:.1f}"]
            for r in results]
    print("\nDigits pipeline per Keras backend: prune 80% -> PQAT -> qat "
          "int8 file -> verify on the test split (n=360).")
    print("Command: python benchmarks/backends.py --backends="
          + ",".join(backends) + "\n")
    print(render(["backend", "Keras acc", "TFLite acc", "agreement",
                  "max steps", "size (B)", f"size / {base['backend']}",
                  "gzip (B)", "int8 ops", f"ops = {base['backend']}",
                  "train s", "convert s"], rows))


if __name__ == "__main__":
    app.run(main)
