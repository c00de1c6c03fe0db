"""Compression to a budget against uniform settings and TFMOT (issue 32).

Four parts, each printing a table (`--parts` picks them):

- `sparsity`: global pruning (magnitude and LAMP ranking) and
  sensitivity-planned pruning against TFMOT's uniform pruning at 80% and
  90%, on the cells of `benchmarks/pruning_parity.py`, 5 seeds
  (`benchmarks/budget_sparsity.py`, run as a child);
- `size`: on the MobileNetV2-style and ResNet-style digits models
  (`kcompress_demo/residual.py`) and pruning_parity's CNN and separable
  CNN (widened to 10 digits classes), `compress_to(size_bytes=r * float
  file)` for r in 0.1 ... 0.5, against the uniform channel cut whose int8
  file is the same size (within 2%), fine-tuned and QAT-trained with the
  same recipe (`search._fine_tune`), `--size_seeds` seeds each. Every size
  is a converted file's length; every accuracy the file's own, in LiteRT,
  on test digits the search never saw (it measures sensitivities and
  probes its candidate plans on a separate validation split);
- `latency`: `compress_to(latency_ms=T, target="pi4")` with T a ratio of
  the dense int8 file's median latency on the emulated Raspberry Pi 4,
  measured in the same run; the returned file is measured again there;
- `mixed`: the layers whose int8 activations cost the most (from the
  sensitivity table) in int16x8, the rest int8, through AI Edge Quantizer;
  the per-layer precision read back from the file.

Run: `python benchmarks/budget.py` (about two and a half hours on 2 cores;
`--parts=size --size_seeds=1` for a quick look).
"""

import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

import kcompress as kc  # noqa: E402
from kcompress.budget import search  # noqa: E402
from kcompress.tables import render  # noqa: E402
from kcompress_demo import residual  # noqa: E402
from tflite_export.budget_export import LiteRTExporter  # noqa: E402

_PARTS = flags.DEFINE_list("parts", ["sparsity", "size", "latency", "mixed"],
                           "Which parts to run.")
_SEEDS = flags.DEFINE_integer("size_seeds", 2, "Seeds per size cell.",
                              lower_bound=1)
_RATIOS = flags.DEFINE_list("size_ratios", ["0.1", "0.2", "0.3", "0.5"],
                            "Budgets as fractions of the float file.")
_MODELS = flags.DEFINE_list(
    "size_models", ["mobilenet_v2_style", "resnet_style", "cnn", "separable"],
    "Models of the size part.")
_LATENCY_RATIO = flags.DEFINE_float(
    "latency_ratio", 0.6, "Latency budget, as a fraction of the dense int8 "
    "file's latency on the emulated Pi 4.")

EPOCHS, QAT_EPOCHS, FLOAT_EPOCHS = 4, 2, 15
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def digits():
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.images / 16.0)[..., None].astype("float32")
    y = data.target
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    # train, validation (the search's sensitivities and probes), test.
    return ((x[:1100], y[:1100]), (x[1100:1300], y[1100:1300]),
            (x[1300:], y[1300:]))


def build(name, seed):
    keras.utils.set_random_seed(seed)
    if name in ("mobilenet_v2_style", "resnet_style"):
        return getattr(residual, name)(seed=seed)
    import pruning_parity as parity

    return keras.Sequential([keras.Input((8, 8, 1))]
                            + parity.build(keras.layers, name, 10))


def trained(name, seed, train):
    model = build(name, seed)
    model.compile(keras.optimizers.Adam(1e-3), LOSS)
    model.fit(*train, epochs=FLOAT_EPOCHS, batch_size=32, verbose=0)
    return model


def accuracy_of(exporter, tflite, val):
    return float(np.mean(exporter.predict(tflite, val[0]).argmax(-1)
                         == val[1]))


def uniform_at(model, size, exporter, samples):
    """The uniform channel fraction whose int8 file is closest to `size`
    from below."""
    def bytes_at(fraction):
        return len(exporter.convert(kc.pruning.shrink(
            kc.pruning.prune_channel_groups(model, fraction)), "int8",
            samples))

    low, high = 0.0, 0.95
    for _ in range(10):
        middle = (low + high) / 2
        if bytes_at(middle) <= size:
            high = middle
        else:
            low = middle
    return high


def size_part():
    exporter = LiteRTExporter()
    train, val, test = digits()
    samples = train[0][:300]
    rows, wins, ties_or_better, cells = [], 0, 0, 0
    for name in _MODELS.value:
        per_ratio = {}
        for seed in range(_SEEDS.value):
            model = trained(name, seed, train)
            float_bytes = len(exporter.convert(model, "float32"))
            table = kc.budget.sensitivity(model, val, sparsities=(0.5,),
                                          precisions=(), verbose=0)
            for ratio in map(float, _RATIOS.value):
                budget = int(ratio * float_bytes)
                keras.utils.set_random_seed(100 + seed)
                try:
                    result = kc.budget.compress_to(
                        model, train, validation_data=val,
                        size_bytes=budget, table=table, epochs=EPOCHS,
                        qat_epochs=QAT_EPOCHS, verbose=0)
                except (kc.budget.BudgetError, ValueError) as error:
                    # A BudgetError, or a budget under 1 KB, which
                    # compress_to refuses as a unit mistake.
                    per_ratio.setdefault(ratio, []).append(
                        ("unreachable", str(error)[:60]))
                    continue
                searched = (result.measured["size_bytes"],
                            accuracy_of(exporter, result.tflite, test),
                            result.measured["plan_family"])
                fraction = uniform_at(model, searched[0] * 1.02, exporter,
                                      samples)
                every = {group.name: fraction for group in
                         kc.pruning.channel_groups(model).groups
                         if group.prunable}
                keras.utils.set_random_seed(100 + seed)
                _, tflite, _ = search._fine_tune(
                    model, every, table, *train, LOSS, EPOCHS, QAT_EPOCHS,
                    32, 1e-3, False, False, 0.0, samples, exporter, 0)
                uniform = (len(tflite), accuracy_of(exporter, tflite, test))
                per_ratio.setdefault(ratio, []).append(
                    (budget, float_bytes, searched, fraction, uniform))
        for ratio, runs in per_ratio.items():
            done = [r for r in runs if r[0] != "unreachable"]
            if not done:
                rows.append([name, f"{ratio:.1f}x", "unreachable", "", "",
                             "", "", "", "", ""])
                continue
            budget = np.median([r[0] for r in done])
            s_size = np.median([r[2][0] for r in done])
            s_acc = np.mean([r[2][1] for r in done])
            u_size = np.median([r[4][0] for r in done])
            u_acc = np.mean([r[4][1] for r in done])
            fits = all(r[2][0] <= r[0] for r in done)
            diff = 100 * (s_acc - u_acc)
            cut = np.mean([r[3] for r in done])
            chosen = sum(r[2][2] == "sensitivity" for r in done)
            cells += 1
            wins += diff > 0
            ties_or_better += diff >= 0
            rows.append([name, f"{ratio:.1f}x", f"{int(budget):,}",
                         f"{int(s_size):,}", "yes" if fits else "NO",
                         f"{s_acc:.3f}",
                         f"{int(u_size):,} (-{cut:.0%})",
                         f"{u_acc:.3f}", f"{diff:+.1f}",
                         f"{chosen} of {len(done)}"])
        print(f"({name} done: " + "; ".join(
            " ".join(map(str, row[1:])) for row in rows if row[0] == name)
            + ")", flush=True)
    print(render(["model", "budget", "budget (B)", "searched file (B)",
                  "fits", "searched acc", "uniform file (B, cut)",
                  "uniform acc", "diff (pt)", "sensitivity plan chosen"],
                 rows))
    print(f"\nSearched plan >= uniform at the same size in {ties_or_better}"
          f" of {cells} cells, strictly better in {wins}. Accuracy: the "
          f"int8 file in LiteRT on the {len(test[0])} test digits (the "
          f"search saw only the {len(val[0])} validation ones), mean of "
          f"{_SEEDS.value} seeds; sizes: medians. The last column: how "
          "often the search's probe chose the sensitivity plan over its "
          "own uniform candidate.")


def latency_part():
    exporter = LiteRTExporter(runs=30)
    train, val, test = digits()
    model = trained("mobilenet_v2_style", 0, train)
    samples = train[0][:300]
    dense = exporter.convert(model, "int8", samples)
    dense_ms = exporter.latency_ms(dense, "pi4")
    limit = _LATENCY_RATIO.value * dense_ms
    started = time.time()
    result = kc.budget.compress_to(model, train, validation_data=val,
                                   latency_ms=limit, target="pi4",
                                   epochs=EPOCHS, qat_epochs=QAT_EPOCHS,
                                   verbose=0)
    again = exporter.latency_ms(result.tflite, "pi4")
    print(render(
        ["file", "size (B)", "Pi 4 ms (emulated)", "ratio to dense",
         "accuracy (file)"],
        [["dense int8", f"{len(dense):,}", f"{dense_ms:.2f}", "1.00",
          f"{accuracy_of(exporter, dense, test):.3f}"],
         [f"compress_to(latency_ms={limit:.2f})",
          f"{len(result.tflite):,}", f"{again:.2f} (search: "
          f"{result.measured['latency_ms']:.2f})", f"{again / dense_ms:.2f}",
          f"{accuracy_of(exporter, result.tflite, test):.3f}"]]))
    print(f"\nBudget: {_LATENCY_RATIO.value:.2f}x the dense file's median; "
          f"measured again: {again / dense_ms:.2f}x "
          f"({'met' if again <= limit else 'MISSED'}). Search took "
          f"{time.time() - started:.0f} s.")


def mixed_part():
    exporter = LiteRTExporter()
    train, val, test = digits()
    model = trained("mobilenet_v2_style", 0, train)
    samples = train[0][:300]
    table = kc.budget.sensitivity(model, val, sparsities=(0.5,),
                                  channel_fractions=(), verbose=0)
    ranked = sorted(table.layers("precision"), key=lambda n: -table.drop(
        n, "precision", "int8"))
    chosen = tuple(ranked[:3])
    plan = kc.budget.CompressionPlan(precision=dict.fromkeys(chosen,
                                                             "int16x8"))
    int8 = exporter.convert(model, "int8", samples)
    mixed = exporter.convert(model, "int8", samples, chosen)
    read = exporter.layer_precisions(mixed, table.layers("precision"))
    agree = all(read[n] == plan.precision_of(n) for n in chosen) and all(
        read[n] in ("int8", "unknown") for n in read if n not in chosen)
    keras_acc = float(np.mean(model.predict(test[0], verbose=0).argmax(-1)
                              == test[1]))
    print(render(["file", "size (B)", "accuracy (file)", "host ms"], [
        ["float (Keras)", "", f"{keras_acc:.3f}", ""],
        ["int8", f"{len(int8):,}",
         f"{accuracy_of(exporter, int8, test):.3f}",
         f"{exporter.latency_ms(int8, 'host'):.3f}"],
        [f"mixed: {', '.join(chosen)} int16x8", f"{len(mixed):,}",
         f"{accuracy_of(exporter, mixed, test):.3f}",
         f"{exporter.latency_ms(mixed, 'host'):.3f}"]]))
    print("\nPer-layer precision read back from the mixed file: "
          + ", ".join(f"{n}={p}" for n, p in read.items() if n in chosen)
          + f"; every other layer int8: {agree}.")


def main(argv):
    del argv
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    for part in _PARTS.value:
        print(f"\n## {part}\n", flush=True)
        if part == "sparsity":
            subprocess.run([sys.executable,
                            os.path.join(here, "budget_sparsity.py")],
                           check=True)
        elif part == "size":
            size_part()
        elif part == "latency":
            latency_part()
        elif part == "mixed":
            mixed_part()
        else:
            raise app.UsageError(f"Received: --parts={part}. Expected "
                                 "sparsity, size, latency or mixed.")
    print(f"\nCommand: python benchmarks/budget.py "
          f"{' '.join(sys.argv[1:])}".rstrip())


if __name__ == "__main__":
    app.run(main)
