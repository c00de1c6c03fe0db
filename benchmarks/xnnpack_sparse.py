"""Does XNNPACK's sparse float path pay on a pruned MobileNetV2?

XNNPACK runs a float32 graph in NCHW layout with sparse 1x1 convolutions
when the graph qualifies (`kcompress.pruning.xnnpack_sparse_issues` lists
the conditions) and the weights are stored sparse (`convert(...,
sparse_encoding=True)`, the converter's EXPERIMENTAL_SPARSITY, which adds
DENSIFY ops). This script builds, at 96x96x3 with random weights:

- `keras.applications` MobileNetV2 (alpha 1.0), whose stride-2
  convolutions pad one side only (the stem "same", the depthwise blocks
  a ZeroPadding2D(((0, 1), (0, 1))));
- the same network padded 1 on every side, as XNNPACK's NCHW path wants
  (`xnnpack_sparse_padding`),

prunes every 1x1 convolution to `--sparsity` during a short `fit`
(`prune_low_magnitude` with a schedule for each layer
`xnnpack_sparse_layers` names), and times on the host, alternating files
round by round: dense float32, dense int8 (PTQ), and the pruned model in
float32, with and without sparse encoding.

Run: `python benchmarks/xnnpack_sparse.py` (add `--emulated` for the
emulated Raspberry Pi 4).
"""

import os
import sys
import tempfile

import numpy as np
from absl import app
from absl import flags

_SPARSITY = flags.DEFINE_float("sparsity", 0.85, "1x1-conv sparsity.")
_ROUNDS = flags.DEFINE_integer("rounds", 5, "Alternating timing rounds.")
_RUNS = flags.DEFINE_integer("runs", 30, "Inferences per timing.")
_EMULATED = flags.DEFINE_bool("emulated", False,
                              "Also time on the emulated Raspberry Pi 4.")

SHAPE = (96, 96, 3)


def _models():
    import keras

    import kcompress as kc

    keras.utils.set_random_seed(0)
    stock = keras.applications.MobileNetV2(
        input_shape=SHAPE, alpha=1.0, weights=None, classes=10)
    return {"keras.applications MobileNetV2": stock,
            "MobileNetV2, symmetric padding": kc.pruning.xnnpack_sparse_padding(
                stock)}


def _pruned(model, x, y):
    import keras

    import kcompress as kc

    schedule = kc.pruning.ConstantSparsity(_SPARSITY.value, 0, frequency=1)
    pruned = kc.prune_low_magnitude(model, {
        name: schedule for name in kc.pruning.xnnpack_sparse_layers(model)})
    pruned.compile("adam", keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    pruned.fit(x, y, batch_size=16, epochs=1, verbose=0,
               callbacks=[kc.pruning.UpdatePruningStep()])
    return kc.strip_pruning(pruned)


def _host(path, xnnpack=True):
    from tflite_export import targets

    return targets.bench("host", path, runs=_RUNS.value, warmup=10,
                         xnnpack=xnnpack)["median_ms"]


def _emulated(path):
    from tflite_export import targets

    return targets.bench("rpi4-emu", path, runs=5, warmup=2)["median_ms"]


def main(argv):
    del argv
    sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))
    import kcompress as kc
    import tflite_export as te
    from kcompress.tables import render

    rng = np.random.default_rng(0)
    x = rng.uniform(size=(64,) + SHAPE).astype("float32")
    y = rng.integers(0, 10, 64)
    work = tempfile.mkdtemp(prefix="xnnpack-sparse-")
    rows = []
    for name, model in _models().items():
        issues = kc.pruning.xnnpack_sparse_issues(model)
        pruned = _pruned(model, x, y)
        left = kc.pruning.xnnpack_sparse_issues(pruned)
        files = {
            "dense float32": te.convert(model, "float32"),
            "dense int8": te.convert(model, "int8",
                                     representative_data=x[:32]),
            f"pruned {_SPARSITY.value:.0%} float32": te.convert(
                pruned, "float32"),
            f"pruned {_SPARSITY.value:.0%} float32, sparse encoding":
                te.convert(pruned, "float32", sparse_encoding=True),
        }
        paths = {}
        for label, data in files.items():
            paths[label] = os.path.join(work, f"{len(rows)}_{label}.tflite")
            te.save_atomically(data, paths[label])
        times = {label: [] for label in files}
        for _ in range(_ROUNDS.value):
            for label in files:
                times[label].append(_host(paths[label]))
        base = times["dense float32"]
        emulated = {label: _emulated(paths[label]) for label in files
                    if _EMULATED.value}
        for label, data in files.items():
            ratios = [t / b for t, b in zip(times[label], base)]
            pi = (f"{emulated[label]:.1f} "
                  f"({emulated[label] / emulated['dense float32']:.2f}x)"
                  if emulated else "-")
            rows.append([name, label, f"{len(data):,}",
                         f"{np.median(times[label]):.2f}",
                         f"{np.median(ratios):.2f}", pi,
                         "; ".join(issues if label.startswith("dense")
                                   else left) or "none"])
    print(f"Command: python benchmarks/xnnpack_sparse.py "
          f"--sparsity={_SPARSITY.value} --rounds={_ROUNDS.value}"
          + (" --emulated" if _EMULATED.value else "") + "\n")
    print(render(["model", "file", "size (B)", "host ms (XNNPACK, 1 thread)",
                  "x dense float32 (paired)",
                  "Pi 4 ms, emulated (x dense float32)",
                  "xnnpack_sparse_issues"], rows))


if __name__ == "__main__":
    app.run(main)
