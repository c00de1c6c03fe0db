"""kcompress against TFMOT on the reference digits task: accuracy and size.

The comparison is paired: the float CNN is trained once, in Keras 3 (30
epochs), and TFMOT's rows start from a tf_keras copy of the same weights, so
a difference is the technique's, not the float model's (trained apart, the
two frameworks' float models differ, and so did every row after them: the
pruned float32 file gzipped 3% smaller for TFMOT in every seed). From that
model, both frameworks run with the same settings: PTQ int8 (int8 input and
output); 5 QAT epochs; 80% PolynomialDecay pruning over 10 epochs;
pruning-preserving QAT (PQAT, 5 epochs after pruning); weight clustering
(16 clusters, k-means++, 3 epochs at 1e-4); and sparsity- and
cluster-preserving QAT (PCQAT: the pruned model clustered with its zeros
kept, 3 epochs at 1e-4, then 5 QAT epochs that keep both). Every accuracy is
measured on the `.tflite` file with `ai_edge_litert`, so the two columns are
measured the same way. "Values" is the most distinct values any kernel of
the file holds (per output channel for convolutions, whose int8 scales are
per channel).

Run: `make compare` or `python benchmarks/compare_tfmot.py`.
"""

import os
import sys

# tf_keras (for TFMOT) is reached through tf.keras only with this set, before
# TensorFlow is imported. Keras 3 (`import keras`) is not affected.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

_SKIP_TFMOT = flags.DEFINE_bool("skip_tfmot", False, "kcompress rows only.")
_SEED = flags.DEFINE_integer(
    "seed", 0, "Seeds both frameworks' initial weights and training.")
_SAVE_DIR = flags.DEFINE_string(
    "save_dir", None, "Also write every .tflite file here, named "
    "<framework>_<variant>.tflite.")

EPOCHS = 30
PRUNE_EPOCHS = 10
QAT_EPOCHS = 5
SPARSITY = 0.8
BATCH = 32
CLUSTERS = 16
CLUSTER_EPOCHS = 3
# Clustering fine-tunes at a lower rate, as TFMOT's clustering guide does.
CLUSTER_LEARNING_RATE = 1e-4
FAILURES = []


def _values(tflite):
    from tflite_export import kernel_weights

    most = 0
    for op_name, kernel in kernel_weights(tflite).values():
        rows = (kernel.reshape(kernel.shape[0], -1)
                if op_name == "CONV_2D" else kernel.reshape(1, -1))
        most = max(most, max(len(np.unique(row)) for row in rows))
    return most


def _row(name, tflite, data, framework):
    from tflite_export import gzip_size
    from tflite_export.verification import run_tflite

    if _SAVE_DIR.value:
        os.makedirs(_SAVE_DIR.value, exist_ok=True)
        stem = f"{framework}_{name}".replace(" ", "_").replace("%", "")
        with open(os.path.join(_SAVE_DIR.value, f"{stem}.tflite"), "wb") as f:
            f.write(tflite)

    outputs, _ = run_tflite(tflite, [data.x_test])
    accuracy = float(np.mean(outputs.argmax(-1) == data.y_test))
    return {"variant": name, "accuracy": accuracy, "size": len(tflite),
            "gzip": gzip_size(tflite), "values": _values(tflite)}


def kcompress_rows(data):
    import kcompress as kc
    import tflite_export as te
    from kcompress_demo import reference

    framework = "kcompress"

    def fit(model, epochs, callbacks=(), learning_rate=None):
        if learning_rate is not None:
            reference.compile_reference(model, learning_rate)
        return reference.fit(model, data, epochs, callbacks,
                             compiled=learning_rate is not None)

    model = fit(reference.reference_cnn(seed=_SEED.value), EPOCHS)
    rows = [_row("float32", te.convert(model, "float32"), data, framework)]
    rows.append(_row("PTQ int8", te.convert(
        model, "int8", representative_data=data.x_train), data, framework))
    qat = fit(kc.quantize_model(model), QAT_EPOCHS)
    rows.append(_row("QAT int8", te.convert(qat, "qat"), data, framework))
    schedule = reference.pruning_schedule(data, SPARSITY, PRUNE_EPOCHS)
    pruned = fit(kc.prune_low_magnitude(model, schedule), PRUNE_EPOCHS,
                 [kc.pruning.UpdatePruningStep()])
    rows.append(_row("pruned 80% float32",
                     te.convert(pruned, "float32"), data, framework))
    pqat = fit(kc.quantize_model(pruned), QAT_EPOCHS)
    rows.append(_row("PQAT 80% int8", te.convert(pqat, "qat"), data, framework))
    clustered = fit(kc.clustering.cluster_weights(model, CLUSTERS),
                    CLUSTER_EPOCHS, learning_rate=CLUSTER_LEARNING_RATE)
    rows.append(_row(f"clustered {CLUSTERS} float32", te.convert(
        kc.clustering.strip_clustering(clustered), "float32"), data, framework))
    sparse_clustered = fit(kc.clustering.cluster_weights(
        kc.strip_pruning(pruned), CLUSTERS, preserve_sparsity=True),
        CLUSTER_EPOCHS, learning_rate=CLUSTER_LEARNING_RATE)
    sparse_clustered = kc.clustering.strip_clustering(sparse_clustered)
    rows.append(_row(f"pruned 80% + {CLUSTERS} clusters float32",
                     te.convert(sparse_clustered, "float32"), data,
                     framework))
    pcqat = fit(kc.quantize_model(sparse_clustered, preserve_clusters=True),
                QAT_EPOCHS)
    rows.append(_row(f"PCQAT 80% + {CLUSTERS} clusters int8",
                     te.convert(pcqat, "qat"), data, framework))
    return rows, model.get_weights()


def tfmot_rows(data, float_weights):
    import tensorflow as tf
    import tensorflow_model_optimization as tfmot
    import tf_keras_reference as ref

    framework = "tfmot"

    def compile_fit(model, epochs, callbacks=(), learning_rate=1e-3):
        ref.compile_reference(model, learning_rate)
        model.fit(data.x_train, data.y_train, batch_size=BATCH,
                  epochs=epochs, verbose=0, callbacks=list(callbacks))
        return model

    def convert(model, mode):
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        if mode != "float32":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if mode == "ptq":
            def representative():
                for i in range(300):
                    yield [data.x_train[i:i + 1]]

            converter.representative_dataset = representative
            converter.target_spec.supported_ops = [
                tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        return converter.convert()

    def fresh(source=None):
        # TFMOT prunes the caller's model in place: every technique starts
        # from its own copy, as kcompress's rows do.
        return ref.copy_model(model if source is None else source)

    model = ref.compile_reference(ref.build_cnn(seed=_SEED.value))
    model.set_weights(float_weights)  # kcompress's float model, paired
    rows = [_row("float32", convert(model, "float32"), data, framework)]
    rows.append(_row("PTQ int8", convert(model, "ptq"), data, framework))
    qat = compile_fit(tfmot.quantization.keras.quantize_model(fresh()),
                      QAT_EPOCHS)
    rows.append(_row("QAT int8", convert(qat, "qat"), data, framework))
    steps = -(-len(data.x_train) // BATCH)
    schedule = tfmot.sparsity.keras.PolynomialDecay(
        0.0, SPARSITY, begin_step=0, end_step=int(steps * PRUNE_EPOCHS * .7),
        frequency=10)
    pruned = compile_fit(
        tfmot.sparsity.keras.prune_low_magnitude(fresh(), schedule),
        PRUNE_EPOCHS, [tfmot.sparsity.keras.UpdatePruningStep()])
    stripped = tfmot.sparsity.keras.strip_pruning(pruned)
    rows.append(_row("pruned 80% float32", convert(stripped, "float32"),
                     data, framework))
    annotated = tfmot.quantization.keras.quantize_annotate_model(stripped)
    pqat = compile_fit(tfmot.quantization.keras.quantize_apply(
        annotated,
        tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme()),
        QAT_EPOCHS)
    rows.append(_row("PQAT 80% int8", convert(pqat, "qat"), data, framework))
    try:
        clustering = tfmot.clustering.keras
        init = clustering.CentroidInitialization.KMEANS_PLUS_PLUS
        clustered = compile_fit(clustering.cluster_weights(
            fresh(), number_of_clusters=CLUSTERS, cluster_centroids_init=init),
            CLUSTER_EPOCHS, learning_rate=CLUSTER_LEARNING_RATE)
        rows.append(_row(f"clustered {CLUSTERS} float32", convert(
            clustering.strip_clustering(clustered), "float32"), data,
            framework))
        from tensorflow_model_optimization.python.core.clustering.keras.\
            experimental import cluster as experimental_cluster

        sparse_clustered = compile_fit(experimental_cluster.cluster_weights(
            fresh(stripped), number_of_clusters=CLUSTERS,
            cluster_centroids_init=init, preserve_sparsity=True),
            CLUSTER_EPOCHS, learning_rate=CLUSTER_LEARNING_RATE)
        sparse_clustered = clustering.strip_clustering(sparse_clustered)
        rows.append(_row(f"pruned 80% + {CLUSTERS} clusters float32",
                         convert(sparse_clustered, "float32"), data,
                         framework))
        annotated = tfmot.quantization.keras.quantize_annotate_model(
            sparse_clustered)
        pcqat = compile_fit(tfmot.quantization.keras.quantize_apply(
            annotated, tfmot.experimental.combine.
            Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=True)),
            QAT_EPOCHS)
        rows.append(_row(f"PCQAT 80% + {CLUSTERS} clusters int8",
                         convert(pcqat, "qat"), data, framework))
    except Exception as error:  # noqa: BLE001 (reported in the table)
        # (TFMOT 0.8.1's experimental clustering failed with StopIteration
        # in ClusterWeights.build when given layers an earlier wrapper had
        # wrapped; every technique now gets its own copy.)
        FAILURES.append(f"TFMOT clustering fails: {type(error).__name__}: "
                        f"{error} (tensorflow-model-optimization 0.8.1, "
                        "tf_keras 2.21)")
        rows.extend([None] * (8 - len(rows)))
    return rows


def table(ours, theirs):
    float_size = {name: rows[0]["size"] for name, rows in
                  (("k", ours), ("t", theirs or ours))}
    from kcompress.tables import render

    lines = []
    for i, mine in enumerate(ours):
        other = theirs[i] if theirs else None

        def cell(row, key, fmt):
            return format(row[key], fmt) if row else "-"

        def ratio(row, key):
            return f"{row['gzip']:,} ({row['gzip'] / float_size[key]:.3f})" \
                if row else "-"

        lines.append([mine["variant"], cell(mine, "accuracy", ".4f"),
                      cell(other, "accuracy", ".4f"), cell(mine, "size", ","),
                      cell(other, "size", ","), ratio(mine, "k"),
                      ratio(other, "t"), cell(mine, "values", ","),
                      cell(other, "values", ",")])
    return render(["variant", "kcompress acc", "TFMOT acc", "kcompress size",
                   "TFMOT size", "kcompress gzip (x float)",
                   "TFMOT gzip (x float)", "kcompress values",
                   "TFMOT values"], lines)


def main(argv):
    del argv
    from kcompress_demo import reference

    if not _SKIP_TFMOT.value:
        try:
            import tensorflow_model_optimization  # noqa: F401
        except ImportError:
            print("tensorflow-model-optimization is not installed; install "
                  "the bench extra or pass --skip_tfmot.", file=sys.stderr)
            sys.exit(2)
    data = reference.load_digits_split()
    ours, float_weights = kcompress_rows(data)
    theirs = None if _SKIP_TFMOT.value else tfmot_rows(data, float_weights)
    print("\nReference digits CNN, test split (n=360); every accuracy is "
          "measured on the .tflite file.")
    print("Command: python benchmarks/compare_tfmot.py"
          + (f" --seed={_SEED.value}" if _SEED.value else "") + "\n")
    print(table(ours, theirs))
    for failure in FAILURES:
        print(f"\n{failure}.")


if __name__ == "__main__":
    app.run(main)
