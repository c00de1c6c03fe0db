"""Compression variants of the reference digits CNN, side by side.

Every variant starts from the same trained float model (30 epochs, seed 0)
and is measured the same way: accuracy on its int8 `.tflite` file with
`ai_edge_litert`, parameters (and how many are non-zero), MACs per sample, the
int8 file size and its gzip-9 size. Variants:
- `dense`: the float model, PTQ int8;
- `lowrank`: `factorize(energy=0.9, data=x_train)` on the two Dense layers,
  5 fine-tune epochs, PTQ int8;
- `pruned90`: 90% PolynomialDecay pruning, 10 epochs of plain fine-tuning,
  PTQ int8;
- `pruned90_distilled`: the same pruning and epochs, distilled from the float
  model with `kcompress.distillation.distill`, PTQ int8;
- `lowrank_pruned_qat`: factorize all layers (energy 0.9, data-aware), prune
  50% over 5 epochs, QAT 3 epochs, mode `qat`.

Run: `python benchmarks/compression_table.py [--variants=a,b]`.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

import kcompress as kc  # noqa: E402
import tflite_export as te  # noqa: E402
from kcompress_demo import reference  # noqa: E402
from tflite_export.verification import run_tflite  # noqa: E402

VARIANTS = ("dense", "lowrank", "pruned90", "pruned90_distilled",
            "lowrank_pruned_qat")
_VARIANTS = flags.DEFINE_list("variants", list(VARIANTS),
                              f"Which rows, from {VARIANTS}.")
_SEED = flags.DEFINE_integer("seed", 1, "Seed of every fine-tuning run.")


def _ptq(model, data):
    return te.convert(model, "int8", representative_data=data.x_train)


def build(name, float_model, data):
    """`(Keras model to count, int8 .tflite bytes)` of one variant."""
    callbacks = [kc.pruning.UpdatePruningStep()]
    if name == "dense":
        return float_model, _ptq(float_model, data)
    if name == "lowrank":
        small = kc.lowrank.factorize(float_model, energy=0.9,
                                     layers=["dense1", "logits"],
                                     data=data.x_train)
        reference.fit(small, data, 5)
        return small, _ptq(small, data)
    if name == "pruned90":
        schedule = reference.pruning_schedule(data, 0.9, 10)
        pruned = reference.fit(kc.prune_low_magnitude(float_model, schedule),
                               data, 10, callbacks)
        final = kc.strip_pruning(pruned)
        return final, _ptq(final, data)
    if name == "pruned90_distilled":
        student = kc.prune_low_magnitude(
            float_model, reference.pruning_schedule(data, 0.9, 10))
        distiller = kc.distillation.distill(student, float_model)
        distiller.compile(optimizer=keras.optimizers.Adam(1e-3),
                          loss=keras.losses.SparseCategoricalCrossentropy(
                              from_logits=True))
        reference.fit(distiller, data, 10, callbacks, compiled=True)
        final = kc.strip_pruning(distiller.student)
        return final, _ptq(final, data)
    if name == "lowrank_pruned_qat":
        small = kc.lowrank.factorize(float_model, energy=0.9,
                                     data=data.x_train)
        schedule = reference.pruning_schedule(data, 0.5, 5)
        pruned = reference.fit(kc.prune_low_magnitude(small, schedule), data,
                               5, callbacks)
        qat = reference.fit(kc.quantize_model(pruned), data, 3)
        return kc.strip_pruning(pruned), te.convert(qat, "qat")
    raise ValueError(f"Received: variant={name!r}. Expected one of "
                     f"{VARIANTS}.")


def measure(name, model, tflite, data):
    stats = kc.layer_stats(model)
    outputs, _ = run_tflite(tflite, [data.x_test])
    return {
        "variant": name,
        "accuracy": float(np.mean(outputs.argmax(-1) == data.y_test)),
        "params": sum(row.params for row in stats),
        "nonzero": sum(row.params - row.zeros for row in stats),
        "macs": sum(row.macs for row in stats),
        "size": len(tflite),
        "gzip": te.gzip_size(tflite),
    }


def table(rows):
    base = rows[0]
    from kcompress.tables import render

    return render(
        ["variant", "int8 acc", "params (non-zero)", "MACs", "int8 size",
         "gzip (x first row)"],
        [(row["variant"], f"{row['accuracy']:.4f}",
          f"{row['params']:,} ({row['nonzero']:,})", f"{row['macs']:,}",
          f"{row['size']:,}",
          f"{row['gzip']:,} ({row['gzip'] / base['gzip']:.3f})")
         for row in rows])


def main(argv):
    del argv
    unknown = sorted(set(_VARIANTS.value) - set(VARIANTS))
    if unknown:
        print(f"Received: --variants with {unknown}. Expected names from "
              f"{VARIANTS}.", file=sys.stderr)
        sys.exit(2)
    data = reference.load_digits_split()
    float_model = reference.fit(reference.reference_cnn(seed=0), data,
                                reference.FIT_ARGS["epochs"])
    rows = []
    progress = keras.utils.Progbar(len(_VARIANTS.value), unit_name="variant")
    for name in _VARIANTS.value:
        keras.utils.set_random_seed(_SEED.value)
        model, tflite = build(name, float_model, data)
        rows.append(measure(name, model, tflite, data))
        progress.add(1)
    print("\nReference digits CNN, test split (n=360); accuracy measured on "
          "the int8 .tflite file.")
    print("Command: python benchmarks/compression_table.py "
          f"--variants={','.join(_VARIANTS.value)} --seed={_SEED.value}\n")
    print(table(rows))


if __name__ == "__main__":
    app.run(main)
