"""TFMOT's own guide notebooks, run on `kcompress.compat.tfmot`.

Takes a local copy of TFMOT's guides (the `.ipynb` files under
`tensorflow_model_optimization/g3doc/guide/` of tensorflow/model-optimization;
this project ships none of TFMOT's code), extracts each notebook's code
cells, changes only what a user moving to Keras 3 here must change, and runs
the cells one by one, each guide in a fresh Python process. It prints one
row per guide: the cells that ran, and the first error.

The changes, and nothing else:
- the import line: `tensorflow_model_optimization` becomes
  `kcompress.compat.tfmot`, and `tf_keras` (TFMOT's compat `keras`,
  `tf.keras`) becomes Keras 3's `keras`;
- the data set: `keras.datasets.mnist` (a download) becomes scikit-learn's
  digits, upsampled to 28x28 and scaled to 0..255 as MNIST is;
- epoch counts above 2 become 2; shell magics (`!pip`, `%load_ext`,
  `%tensorboard`) are dropped;
- with `--keras3_fixes` (the default), two changes that Keras 3 itself
  needs, with or without kcompress (docs/tfmot.md):
  `save_weights` paths not ending in `.weights.h5` get that ending, and a
  tensor looked up in a converted file by `'<layer>/MatMul'` or
  `'<layer>/Conv2D'` is looked up by `'<layer>_1/MatMul'` or
  `'<layer>_1/convolution'`, the names Keras 3's trace gives them, and
  `keras.backend.clip`, gone from Keras 3, is `keras.ops.clip`.

Run: `python benchmarks/tfmot_guides.py --guides=DIR` where DIR holds the
guides' folders (pruning/, quantization/, clustering/, combine/).
"""

import json
import os
import pathlib
import re
import subprocess
import sys
import textwrap

from absl import app
from absl import flags

_GUIDES = flags.DEFINE_string(
    "guides", None, "The folder holding TFMOT's guide notebooks "
    "(pruning/, quantization/, clustering/, combine/).", required=True)
_ONLY = flags.DEFINE_list("only", [], "Run only these guides "
                          "(e.g. pruning/pruning_with_keras).")
_KERAS3_FIXES = flags.DEFINE_bool(
    "keras3_fixes", True, "Apply the two changes Keras 3 itself needs: "
    "save_weights paths end in .weights.h5, and converted tensors are "
    "named '<layer>_1/MatMul' and '<layer>_1/convolution'.")
_TIMEOUT = flags.DEFINE_integer("timeout", 1200, "Seconds per guide.")

# The stand-in for MNIST: the same shapes and value range, from the digits
# scikit-learn ships.
_PRELUDE = textwrap.dedent('''
    import numpy as _np
    import types as _types

    def _load_digits_as_mnist():
        from sklearn.datasets import load_digits
        digits = load_digits()
        images = _np.kron(digits.images, _np.ones((4, 4)))[:, 2:30, 2:30]
        images = (images * (255.0 / 16.0)).astype("uint8")
        labels = digits.target.astype("uint8")
        split = 1437
        return ((images[:split], labels[:split]),
                (images[split:], labels[split:]))

    _mnist = _types.SimpleNamespace(load_data=_load_digits_as_mnist)

    def _tfds_load(name, split, as_supervised=True, with_info=False):
        """CIFAR-10's shapes (32x32x3 uint8) from the digits; the splits
        'train[:90%]', 'train[90%:]' and 'test' as tf.data datasets."""
        import tensorflow as tf
        (train_x, train_y), (test_x, test_y) = _load_digits_as_mnist()
        def rgb(x):
            return _np.repeat(_np.pad(x, ((0, 0), (2, 2), (2, 2)))[..., None],
                              3, axis=-1)
        train_x, test_x = rgb(train_x), rgb(test_x)
        cut = int(0.9 * len(train_x))
        parts = {"train[:90%]": (train_x[:cut], train_y[:cut]),
                 "train[90%:]": (train_x[cut:], train_y[cut:]),
                 "test": (test_x, test_y), "train": (train_x, train_y)}
        datasets = [tf.data.Dataset.from_tensor_slices(parts[s])
                    for s in split]
        info = _types.SimpleNamespace(splits={
            "train": _types.SimpleNamespace(num_examples=len(train_x))})
        return (datasets, info) if with_info else datasets

    _tfds = _types.SimpleNamespace(load=_tfds_load)
    ''')

_SUBSTITUTIONS = [
    (r"from tensorflow_model_optimization\.python\.core\.keras\.compat "
     r"import keras", "import keras"),
    (r"tensorflow_model_optimization\.python\.core\.clustering\.keras\."
     r"experimental", "kcompress.compat.tfmot.clustering.keras.experimental"),
    (r"import tensorflow_model_optimization as tfmot",
     "import kcompress.compat.tfmot as tfmot"),
    (r"\bimport tf_keras as keras\b", "import keras"),
    (r"\bfrom tensorflow import keras\b", "import keras"),
    (r"\bimport tensorflow_datasets as tfds\b", "tfds = _tfds"),
    (r"\btf_keras\b", "keras"),
    (r"\btf\.keras\.datasets\.mnist\b", "_mnist"),
    (r"\bkeras\.datasets\.mnist\b", "_mnist"),
    (r"\btf\.keras\b", "keras"),
    (r"\bepochs\s*=\s*([3-9]|\d\d+)\b", "epochs = 2"),
]


def code_cells(path, keras3_fixes):
    """The notebook's code cells, with the substitutions applied."""
    cells = []
    for cell in json.loads(pathlib.Path(path).read_text())["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        lines, magic = [], False
        for line in source.splitlines():
            # A magic line and the lines its trailing backslashes continue.
            if magic or re.match(r"\s*(!|%%?[A-Za-z])", line):
                magic = line.rstrip().endswith("\\")
                continue
            lines.append(line)
        source = "\n".join(lines)
        for pattern, replacement in _SUBSTITUTIONS:
            source = re.sub(pattern, replacement, source)
        if keras3_fixes:
            source = _weights_h5(source)
            source = re.sub(r"'(\w+)/MatMul'", r"'\1_1/MatMul'", source)
            source = re.sub(r"'(\w+)/Conv2D'", r"'\1_1/convolution'", source)
            source = source.replace("keras.backend.clip(", "keras.ops.clip(")
        if source.strip():
            cells.append(source)
    return cells


def _weights_h5(source):
    """`save_weights(path)` and `load_weights(path)` on a `.weights.h5`
    path: the ending Keras 3 requires of a weights file."""
    def fix(match):
        return (f"{match.group(1)}(_kc_weights_path({match.group(2)})"
                f"{match.group(3)}")
    source = re.sub(r"(\.(?:save|load)_weights)\(([^,()]+(?:\([^()]*\))?)"
                    r"([,)])", fix, source)
    return source


_HELPERS = textwrap.dedent('''
    def _kc_weights_path(path):
        path = str(path)
        if path.endswith(".weights.h5"):
            return path
        for ending in (".h5", ".tf"):
            if path.endswith(ending):
                path = path[:-len(ending)]
        return path + ".weights.h5"
    ''')

_RUNNER = textwrap.dedent('''
    import json, sys, traceback
    cells = json.load(open(sys.argv[1]))
    namespace = {"__name__": "__main__"}
    for number, source in enumerate(cells):
        try:
            exec(compile(source, f"<cell {number}>", "exec"), namespace)
        except BaseException as error:  # report the first failure
            line = f"{type(error).__name__}: {error}".splitlines()[0]
            print(json.dumps({"ran": number, "cells": len(cells),
                              "error": line[:300],
                              "trace": traceback.format_exc()[-2000:]}))
            sys.exit(0)
    print(json.dumps({"ran": len(cells), "cells": len(cells),
                      "error": None}))
    ''')


def run_guide(path, keras3_fixes, timeout, workdir):
    cells = [_PRELUDE + _HELPERS] + code_cells(path, keras3_fixes)
    cells_file = pathlib.Path(workdir) / (pathlib.Path(path).stem + ".json")
    cells_file.write_text(json.dumps(cells))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", MPLBACKEND="Agg")
    try:
        done = subprocess.run(
            [sys.executable, "-c", _RUNNER, str(cells_file)],
            capture_output=True, text=True, timeout=timeout, cwd=workdir,
            env=env)
    except subprocess.TimeoutExpired:
        return {"ran": None, "cells": len(cells) - 1,
                "error": f"timed out after {timeout} s"}
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("{"):
            result = json.loads(line)
            result["ran"] -= 1  # the prelude is not the guide's
            result["cells"] -= 1
            return result
    return {"ran": None, "cells": len(cells) - 1,
            "error": (done.stderr.strip().splitlines() or ["no output"])[-1]}


def main(argv):
    del argv
    import tempfile

    root = pathlib.Path(_GUIDES.value)
    guides = sorted(root.glob("*/*.ipynb"))
    if _ONLY.value:
        guides = [g for g in guides
                  if f"{g.parent.name}/{g.stem}" in _ONLY.value]
    if not guides:
        sys.exit(f"No guide notebooks under {root}.")
    rows = []
    for path in guides:
        name = f"{path.parent.name}/{path.stem}"
        with tempfile.TemporaryDirectory() as workdir:
            result = run_guide(path, _KERAS3_FIXES.value, _TIMEOUT.value,
                               workdir)
        ok = result["error"] is None
        rows.append((name, ok, result))
        print(f"{name}: {'runs to the end' if ok else result['error']}",
              flush=True)
        if not ok and result.get("trace"):
            print(textwrap.indent(result["trace"], "    "), flush=True)
    print()
    print("Command: python benchmarks/tfmot_guides.py "
          + " ".join(sys.argv[1:]))
    print()
    print("| guide | cells run | runs to the end | first error |")
    print("|---|---|---|---|")
    for name, ok, result in rows:
        ran = "?" if result["ran"] is None else result["ran"]
        print(f"| {name} | {ran}/{result['cells']} | "
              f"{'yes' if ok else 'no'} | {result['error'] or ''} |")
    print(f"\n{sum(ok for _, ok, _ in rows)} of {len(rows)} guides run to "
          "the end.")


if __name__ == "__main__":
    app.run(main)
