"""kcompress against TFMOT: pruning accuracy, seed by seed (issue 15).

The same four small architectures, the same data and the same recipe in both
frameworks, 5 seeds each:

- models: a CNN whose first layer has 4 filters, an MLP, a
  depthwise-separable CNN, and a Conv1D model;
- data that ships in scikit-learn: a binary digits task ({3, 5} against
  {8, 9}: small, binary, image), breast cancer (binary, 30 features) and
  wine (3 classes, 13 features). Feature vectors are standardized; the 2-D
  models see them as a zero-padded square image, the Conv1D model as a
  sequence;
- recipe: 30 float epochs (Adam 1e-3, batch 16), then PolynomialDecay
  from 0 to the target sparsity over 6 epochs (a mask update every 2
  steps), then 10 fine-tune epochs at 5e-4; accuracy of the stripped model
  on a fixed held-out 30%.

The comparison is paired, so that a difference is the pruning's and not
the training's:

- the float model of a (model, data, seed) is trained once, in Keras 3,
  and both frameworks prune the same weights (tf_keras takes them with
  `set_weights`). Keras 3 and tf_keras otherwise start from different
  initial weights at the same seed, and on the small sets here that alone
  moved a float model by up to 5 points;
- the pruning and fine-tuning see the same batches in the same order: each
  epoch is a permutation drawn from the seed, cut to whole batches, and
  `fit` runs with `shuffle=False` on the concatenated epochs.

It prints per-cell means, minimums and the differences, and the command
that made the table. The float models are trained first; then the two
frameworks run in two processes at once.

Run: `python benchmarks/pruning_parity.py` (about 30 minutes on 2 cores;
`--seeds=2 --sparsities=0.8` for a quick look).
"""

import json
import os
import subprocess
import sys
import tempfile
import types

import numpy as np
from absl import app
from absl import flags

_SEEDS = flags.DEFINE_integer("seeds", 5, "Seeds per cell.", lower_bound=1)
_SPARSITIES = flags.DEFINE_list("sparsities", ["0.5", "0.8", "0.9"],
                                "Target sparsities.")
_MODELS = flags.DEFINE_list("models", ["cnn", "mlp", "separable", "conv1d"],
                            "Architectures.")
_DATASETS = flags.DEFINE_list("datasets", ["digits35v89", "cancer", "wine"],
                              "Datasets.")
_TOOL = flags.DEFINE_enum("tool", None, ["float", "kcompress", "tfmot"],
                          "Run one stage and print JSON (internal).")
_WORK = flags.DEFINE_string("work_dir", None,
                            "Where the float weights are kept (internal).")

FLOAT_EPOCHS, PRUNE_EPOCHS, FINE_TUNE_EPOCHS = 30, 6, 10
BATCH, FREQUENCY = 16, 2


def load(name):
    """`(x_train, y_train, x_test, y_test, classes)`, features standardized."""
    from sklearn import datasets

    if name == "digits35v89":
        data = datasets.load_digits()
        keep = np.isin(data.target, (3, 5, 8, 9))
        x, y = data.data[keep] / 16.0, np.isin(data.target[keep], (3, 5))
    elif name == "cancer":
        x, y = datasets.load_breast_cancer(return_X_y=True)
    elif name == "wine":
        x, y = datasets.load_wine(return_X_y=True)
    else:
        raise ValueError(f"Received: dataset={name!r}.")
    x, y = x.astype("float32"), y.astype("int64")
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    split = int(0.7 * len(x))
    if name != "digits35v89":
        mean, std = x[:split].mean(0), x[:split].std(0) + 1e-6
        x = (x - mean) / std
    return x[:split], y[:split], x[split:], y[split:], int(y.max()) + 1


def as_image(x):
    side = int(np.ceil(np.sqrt(x.shape[1])))
    padded = np.zeros((len(x), side * side), "float32")
    padded[:, :x.shape[1]] = x
    return padded.reshape(len(x), side, side, 1)


def inputs_for(model_name, x):
    if model_name in ("cnn", "separable"):
        return as_image(x)
    if model_name == "conv1d":
        return x[..., None]
    return x


def build(layers, model_name, classes):
    """The layers after the input, from `layers` (keras.layers or
    tf_keras.layers)."""
    if model_name == "cnn":
        body = [layers.Conv2D(4, 3, padding="same", activation="relu"),
                layers.Conv2D(8, 3, padding="same", activation="relu"),
                layers.Flatten(), layers.Dense(16, activation="relu")]
    elif model_name == "mlp":
        body = [layers.Dense(32, activation="relu"),
                layers.Dense(16, activation="relu")]
    elif model_name == "separable":
        body = [layers.Conv2D(8, 3, padding="same", activation="relu"),
                layers.DepthwiseConv2D(3, padding="same", activation="relu"),
                layers.Conv2D(16, 1, activation="relu"),
                layers.GlobalAveragePooling2D(),
                layers.Dense(16, activation="relu")]
    elif model_name == "conv1d":
        body = [layers.Conv1D(8, 3, padding="same", activation="relu"),
                layers.Conv1D(16, 3, padding="same", activation="relu"),
                layers.GlobalAveragePooling1D(),
                layers.Dense(16, activation="relu")]
    else:
        raise ValueError(f"Received: model={model_name!r}.")
    return body + [layers.Dense(classes)]


def _compile(keras_module, model, lr):
    """`model` compiled with Adam at `lr`, in Keras 3 or tf_keras."""
    model.compile(keras_module.optimizers.Adam(lr),
                  keras_module.losses.SparseCategoricalCrossentropy(
                      from_logits=True))
    return model


def _accuracy(model, x, y):
    logits = model.predict(x, verbose=0, batch_size=256)
    return float(np.mean(logits.argmax(-1) == y))


def _weights_path(model_name, dataset, seed):
    return os.path.join(_WORK.value, f"{model_name}-{dataset}-{seed}.npz")


def batch_order(n, epochs, seed):
    """Indices of `epochs` epochs, each a permutation of `n` drawn from
    `seed` and cut to whole batches, so both frameworks see one order."""
    rng = np.random.default_rng(10_000 + seed)
    whole = n - n % BATCH
    return np.concatenate([rng.permutation(n)[:whole]
                           for _ in range(epochs)])


def train_floats(cells, seeds):
    """Trains each (model, data, seed) float model once in Keras 3, saves
    its weights for both frameworks, and returns the float accuracies."""
    import keras

    results = {}
    for model_name, dataset, _ in _groups(cells):
        x_train, y_train, x_test, y_test, classes = load(dataset)
        x_train, x_test = (inputs_for(model_name, x_train),
                           inputs_for(model_name, x_test))
        for seed in range(seeds):
            keras.utils.set_random_seed(seed)
            model = _compile(keras, keras.Sequential(
                [keras.Input(x_train.shape[1:])]
                + build(keras.layers, model_name, classes)), 1e-3)
            model.fit(x_train, y_train, batch_size=BATCH,
                      epochs=FLOAT_EPOCHS, verbose=0)
            np.savez(_weights_path(model_name, dataset, seed),
                     *model.get_weights())
            results.setdefault(f"{model_name}/{dataset}/float", []).append(
                _accuracy(model, x_test, y_test))
        print("float", model_name, dataset, file=sys.stderr)
    return results


def _sweep(cells, seeds, api):
    """Accuracies `{"model/data/sparsity": [one per seed]}` with one
    framework, described by `api` (see `run_kcompress`, `run_tfmot`), from
    the float weights `train_floats` saved."""
    results = {}
    for model_name, dataset, sparsities in _groups(cells):
        x_train, y_train, x_test, y_test, classes = load(dataset)
        x_train, x_test = (inputs_for(model_name, x_train),
                           inputs_for(model_name, x_test))
        steps = len(x_train) // BATCH
        if hasattr(api, "training_data"):  # a plan measured on it
            api.training_data(x_train, y_train)
        for seed in range(seeds):
            model = api.keras.Sequential(
                [api.input(x_train.shape[1:])]
                + build(api.keras.layers, model_name, classes))
            with np.load(_weights_path(model_name, dataset, seed)) as saved:
                model.set_weights([saved[f"arr_{i}"]
                                   for i in range(len(saved.files))])
            results.setdefault(f"{model_name}/{dataset}/float", []).append(
                _accuracy(model, x_test, y_test))
            order = batch_order(len(x_train), PRUNE_EPOCHS + FINE_TUNE_EPOCHS,
                                seed)
            prune_part = PRUNE_EPOCHS * steps * BATCH
            phases = ((order[:prune_part], 1e-3), (order[prune_part:], 5e-4))
            for sparsity in sparsities:
                api.keras.utils.set_random_seed(seed)
                schedule = api.sparsity.PolynomialDecay(
                    0.0, sparsity, 0, PRUNE_EPOCHS * steps,
                    frequency=FREQUENCY)
                pruned = api.sparsity.prune_low_magnitude(
                    api.copy(model), pruning_schedule=schedule)
                for indices, lr in phases:
                    _compile(api.keras, pruned, lr).fit(
                        x_train[indices], y_train[indices], batch_size=BATCH,
                        epochs=1, shuffle=False, verbose=0,
                        callbacks=[api.sparsity.UpdatePruningStep()])
                results.setdefault(f"{model_name}/{dataset}/{sparsity}",
                                   []).append(_accuracy(
                                       api.sparsity.strip_pruning(pruned),
                                       x_test, y_test))
        print(api.name, model_name, dataset, file=sys.stderr)
    return results


def run_kcompress(cells, seeds):
    import keras

    import kcompress as kc

    return _sweep(cells, seeds, types.SimpleNamespace(
        name="kcompress", keras=keras, sparsity=kc.pruning,
        input=keras.Input,
        copy=lambda model: model))  # prune_low_magnitude copies


def run_tfmot(cells, seeds):
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tensorflow as tf
    import tensorflow_model_optimization as tfmot
    import tf_keras_reference as ref

    return _sweep(cells, seeds, types.SimpleNamespace(
        name="tfmot", keras=tf.keras, sparsity=tfmot.sparsity.keras,
        copy=ref.copy_model,
        input=lambda shape: tf.keras.layers.InputLayer(input_shape=shape)))


def _groups(cells):
    """`(model, dataset, [sparsities])`: one float model serves each group."""
    groups = {}
    for model_name, dataset, sparsity in cells:
        groups.setdefault((model_name, dataset), []).append(sparsity)
    return [(m, d, s) for (m, d), s in groups.items()]


def _cells():
    return [(m, d, float(s)) for d in _DATASETS.value for m in _MODELS.value
            for s in _SPARSITIES.value]


def _table(floats, kc_results, tfmot_results):
    """The parity table; each row also shows the shared float model's mean
    accuracy, and as loaded by each framework."""
    from kcompress.tables import render

    rows, held, cells = [], 0, 0
    for key in kc_results:
        model_name, dataset, sparsity = key.split("/")
        if sparsity == "float":
            continue
        cells += 1
        ours, theirs = np.array(kc_results[key]), np.array(tfmot_results[key])
        float_key = f"{model_name}/{dataset}/float"
        loaded = (np.mean(kc_results[float_key]),
                  np.mean(tfmot_results[float_key]))
        mean_diff = 100 * (ours.mean() - theirs.mean())
        min_diff = 100 * (ours.min() - theirs.min())
        holds = mean_diff >= -0.5 and min_diff >= -3.0
        held += holds
        rows.append([model_name, dataset, f"{float(sparsity):.0%}",
                     f"{np.mean(floats[float_key]):.3f} "
                     f"({loaded[0]:.3f} / {loaded[1]:.3f})",
                     f"{ours.mean():.3f}", f"{ours.min():.3f}",
                     f"{theirs.mean():.3f}", f"{theirs.min():.3f}",
                     f"{mean_diff:+.1f}", f"{min_diff:+.1f}",
                     "yes" if holds else "NO"])
    return render(["model", "data", "sparsity",
                   "float (as loaded: kc / TFMOT)", "kcompress mean",
                   "kcompress min", "TFMOT mean", "TFMOT min",
                   "mean diff (pt)", "kc min - TFMOT min (pt)", "holds"],
                  rows) + (
        f"\n\n{held} of {cells} cells hold (kcompress mean >= "
        "TFMOT mean - 0.5 pt and kcompress min >= TFMOT min - 3 pt)")


def _run_stages(tools, passed, work, env):
    """Runs `tools` in parallel child processes; their JSON results."""
    processes = {}
    for tool in tools:
        out = open(os.path.join(work, f"{tool}.json"), "w")
        processes[tool] = (subprocess.Popen(
            [sys.executable, __file__, f"--tool={tool}",
             f"--work_dir={work}", *passed], stdout=out, env=env), out)
    results = {}
    for tool, (process, out) in processes.items():
        if process.wait() != 0:
            sys.exit(f"{tool} run failed (exit {process.returncode})")
        out.close()
        with open(out.name) as f:
            results[tool] = json.loads(f.read().strip().splitlines()[-1])
    return results


def main(argv):
    del argv
    if _TOOL.value:
        run = {"float": train_floats, "kcompress": run_kcompress,
               "tfmot": run_tfmot}[_TOOL.value]
        print(json.dumps(run(_cells(), _SEEDS.value)))
        return
    passed = [a for a in sys.argv[1:]
              if not a.startswith(("--tool", "--work_dir"))]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    with tempfile.TemporaryDirectory() as work:
        floats = _run_stages(["float"], passed, work, env)["float"]
        results = _run_stages(["kcompress", "tfmot"], passed, work, env)
    print(_table(floats, results["kcompress"], results["tfmot"]))
    print(f"\nCommand: python benchmarks/pruning_parity.py "
          f"{' '.join(passed)}".rstrip())


if __name__ == "__main__":
    app.run(main)
