"""Does pruning pay off on the device? Structured against unstructured.

Two models, each trained on the reference digits split from the same start:
- the reference CNN (three convs, a hidden Dense, logits);
- a MobileNet-style chain (conv, two depthwise-separable blocks with
  BatchNorm and ReLU6, global pooling, logits).

Variants of each, all int8 (PTQ, int8 input and output):
- `dense`;
- `unstructured 80%`: PolynomialDecay magnitude pruning, 10 epochs;
- `... + sparse encoding`: the same file converted with the converter's
  EXPERIMENTAL_SPARSITY optimization;
- `2:4`: M:N pruning, 10 epochs (reference CNN only);
- `structured 50%`: channel pruning of half of every prunable layer's
  channels, 10 epochs, then `shrink`.

Then three graphs with merges (kcompress_demo/residual.py), pruned by
channel dependency group during the same fine-tune to 70%, 50% and 30% of
the dense MACs (`channel_fraction_for(macs=...)`), plus 50% with
`round_to=8`: a MobileNetV2-style network (inverted residuals), a
ResNet-style one (basic blocks, projection shortcuts) and a ViT-style
encoder (heads and MLP units; its residual stream keeps its width).

Latency is the median of `--runs` single-sample invocations, 1 thread, with
XNNPACK and with TFLite's built-in kernels (`--noxnnpack`), measured
`--rounds` times with the variants interleaved; ratios are taken against the
dense file round by round and the median ratio is quoted. A file the runtime
cannot run is reported with the runtime's error.
The emulated Raspberry Pi 4 (qemu, Cortex-A72) is measured once per variant
and labelled as emulated.

Run: `python benchmarks/structured_pruning.py [--rounds=7 --runs=200]
[--only_groups]`.
"""

import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

import kcompress as kc  # noqa: E402
import tflite_export as te  # noqa: E402
from kcompress_demo import reference  # noqa: E402
from kcompress_demo import residual  # noqa: E402
from tflite_export import targets  # noqa: E402
from tflite_export.process import CommandFailed  # noqa: E402
from tflite_export.verification import run_tflite  # noqa: E402

_ROUNDS = flags.DEFINE_integer("rounds", 7, "Interleaved host rounds.")
_RUNS = flags.DEFINE_integer("runs", 200, "Timed runs per host measurement.")
_EMULATED = flags.DEFINE_bool("emulated", True, "Also bench on rpi4-emu.")
_ONLY_GROUPS = flags.DEFINE_bool("only_groups", False,
                                 "Only the graphs pruned by group.")
_REAL_SIZES = flags.DEFINE_bool(
    "real_sizes", False, "Instead: latency of keras.applications "
    "MobileNetV2 (alpha 0.35, 96x96) and ResNet50 (64x64), untrained, "
    "pruned once by group to half their MACs.")

L = keras.layers
EPOCHS = 10


def mobilenet_chain():
    """A MobileNet-style chain of depthwise-separable blocks, no merges."""
    keras.utils.set_random_seed(0)

    def block(layers, filters, stride):
        layers += [L.DepthwiseConv2D(3, strides=stride, padding="same",
                                     use_bias=False),
                   L.BatchNormalization(), L.ReLU(6.0),
                   L.Conv2D(filters, 1, use_bias=False),
                   L.BatchNormalization(), L.ReLU(6.0)]

    layers = [keras.Input((8, 8, 1)), L.Conv2D(32, 3, padding="same",
                                               use_bias=False),
              L.BatchNormalization(), L.ReLU(6.0)]
    block(layers, 64, 1)
    block(layers, 128, 2)
    layers += [L.GlobalAveragePooling2D(), L.Dense(10)]
    return keras.Sequential(layers, name="mobilenet_chain")


def variants(name, model, data):
    """`[(variant, Keras model, int8 bytes)]` for one trained model."""
    rep = data.x_train[:300]
    callbacks = [kc.pruning.UpdatePruningStep()]
    rows = [("dense", model, te.convert(model, "int8",
                                        representative_data=rep))]
    keras.utils.set_random_seed(1)
    unstructured = kc.strip_pruning(reference.fit(kc.prune_low_magnitude(
        model, reference.pruning_schedule(data, 0.8, EPOCHS)), data, EPOCHS,
        callbacks))
    rows.append(("unstructured 80%", unstructured, te.convert(
        unstructured, "int8", representative_data=rep)))
    rows.append(("unstructured 80% + sparse encoding", unstructured,
                 te.convert(unstructured, "int8", representative_data=rep,
                            sparse_encoding=True)))
    if name == "reference CNN":
        keras.utils.set_random_seed(1)
        m_by_n = kc.strip_pruning(reference.fit(kc.prune_low_magnitude(
            model, kc.pruning.ConstantSparsity(0.5, 0, frequency=50),
            sparsity_m_by_n=(2, 4)), data, EPOCHS, callbacks))
        rows.append(("2:4", m_by_n, te.convert(m_by_n, "int8",
                                               representative_data=rep)))
        rows.append(("2:4 + sparse encoding", m_by_n, te.convert(
            m_by_n, "int8", representative_data=rep, sparse_encoding=True)))
    keras.utils.set_random_seed(1)
    structured = kc.pruning.shrink(reference.fit(kc.prune_low_magnitude(
        model, reference.pruning_schedule(data, 0.5, EPOCHS),
        structure="channels"), data, EPOCHS, callbacks))
    rows.append(("structured 50% (shrunk)", structured, te.convert(
        structured, "int8", representative_data=rep)))
    return rows


def group_variants(model, data):
    """`[(variant, Keras model, int8 bytes)]`: dense, then pruned by group
    to 70/50/30% of the dense MACs (and 50% with round_to=8), shrunk."""
    rep = data.x_train[:300]
    rows = [("dense", model, te.convert(model, "int8",
                                        representative_data=rep))]
    macs = sum(row.macs for row in kc.layer_stats(model))
    for share, round_to in ((0.7, 1), (0.5, 1), (0.5, 8), (0.3, 1)):
        variant = f"{share:.0%} of MACs" + (
            f", round_to={round_to}" if round_to > 1 else "")
        try:
            fraction = kc.pruning.channel_fraction_for(
                model, macs=int(share * macs), round_to=round_to)
        except ValueError:
            print(f"{model.name}: {variant} is out of reach (the layers "
                  "that are not pruned take more)")
            continue
        keras.utils.set_random_seed(1)
        pruned = reference.fit(kc.prune_low_magnitude(
            model, reference.pruning_schedule(data, fraction, EPOCHS),
            structure="channels", round_to=round_to), data, EPOCHS,
            [kc.pruning.UpdatePruningStep()])
        shrunk = kc.pruning.shrink(pruned)
        rows.append((f"{variant} (fraction {fraction:.3f})", shrunk,
                     te.convert(shrunk, "int8", representative_data=rep)))
    return rows


def real_size_rows():
    """`{name: rows}` for keras.applications graphs at sizes where compute,
    not per-op overhead, sets the latency. Untrained: only the latency,
    size and MAC columns mean something."""
    A = keras.applications
    builds = {
        "MobileNetV2 (alpha 0.35, 96x96)": lambda: A.MobileNetV2(
            (96, 96, 3), alpha=0.35, weights=None),
        "ResNet50 (64x64)": lambda: A.ResNet50(input_shape=(64, 64, 3),
                                               weights=None)}
    result = {}
    for name, build in builds.items():
        model = build()
        rep = np.random.default_rng(0).uniform(
            0, 255, (32,) + model.input_shape[1:]).astype("float32")
        rows = [("dense", model, te.convert(model, "int8",
                                            representative_data=rep))]
        macs = sum(row.macs for row in kc.layer_stats(model))
        for round_to in (1, 8):
            fraction = kc.pruning.channel_fraction_for(
                model, macs=macs // 2, round_to=round_to)
            shrunk = kc.pruning.shrink(kc.pruning.prune_channel_groups(
                model, fraction, round_to=round_to))
            rows.append((f"50% of MACs (fraction {fraction:.3f})" + (
                f", round_to={round_to}" if round_to > 1 else ""), shrunk,
                te.convert(shrunk, "int8", representative_data=rep)))
        result[name] = (rows, rep)
    return result


def _failure(error):
    """The runtime's one-line reason, from a failed bench."""
    return str(error).split(": ", 1)[-1].split("Node number")[0].strip()


def _host(path, runs, xnnpack):
    """Median ms on the host, or None when the runtime cannot run the file."""
    try:
        return targets.bench("host", path, runs=runs, warmup=20,
                           xnnpack=xnnpack)["median_ms"]
    except CommandFailed as error:
        return _failure(error)


def _paired(values, base):
    pairs = [(v, b) for v, b in zip(values, base)
             if isinstance(v, float) and isinstance(b, float)]
    if not pairs:
        return None, None
    return (float(np.median([v for v, _ in pairs])),
            float(np.median([v / b for v, b in pairs])))


def measure(rows, data, work, rounds, runs, emulated):
    """Latency, accuracy, size and MACs of each row; `data` None for
    untrained rows (accuracy not measured)."""
    paths = []
    for i, (_, _, tflite) in enumerate(rows):
        paths.append(os.path.join(work, f"{i}.tflite"))
        te.save_atomically(tflite, paths[-1])
    host = {True: [[] for _ in rows], False: [[] for _ in rows]}
    progress = keras.utils.Progbar(rounds, unit_name="round")
    for r in range(rounds):
        order = list(range(len(rows)))
        order = order[r % len(order):] + order[:r % len(order)]
        for i in order:
            for xnnpack in (True, False):
                host[xnnpack][i].append(_host(paths[i], runs, xnnpack))
        progress.add(1)
    results = []
    for i, (variant, model, tflite) in enumerate(rows):
        accuracy = None
        if data is not None:
            outputs, _ = run_tflite(tflite, [data.x_test], delegates=False)
            accuracy = float(np.mean(outputs.argmax(-1) == data.y_test))
        result = {
            "variant": variant,
            "accuracy": accuracy,
            "params": model.count_params(),
            "macs": sum(row.macs for row in kc.layer_stats(model)),
            "size": len(tflite), "gzip": te.gzip_size(tflite), "pi4": None,
        }
        for xnnpack, key in ((True, "xnn"), (False, "ref")):
            median, ratio = _paired(host[xnnpack][i], host[xnnpack][0])
            failure = next((v for v in host[xnnpack][i]
                            if not isinstance(v, float)), None)
            result[key] = (median, ratio, failure)
        if emulated:
            try:
                result["pi4"] = targets.bench("rpi4-emu", paths[i], runs=20,
                                            warmup=3)["median_ms"]
            except CommandFailed as error:
                result["pi4"] = _failure(error)
        results.append(result)
    return results


def _cell(entry):
    median, ratio, failure = entry
    if median is None:
        return f"fails: {failure}", "-"
    return f"{median:.4f}", f"{ratio:.3f}"


def table(results):
    from kcompress.tables import render

    lines = []
    base = results[0]["pi4"]
    for r in results:
        pi4 = r["pi4"]
        if isinstance(pi4, float) and isinstance(base, float):
            pi4 = f"{pi4:.3f} ({pi4 / base:.2f}x)"
        else:
            pi4 = "-" if pi4 is None else f"fails: {pi4}"
        xnn, xnn_ratio = _cell(r["xnn"])
        ref, ref_ratio = _cell(r["ref"])
        accuracy = "-" if r["accuracy"] is None else f"{r['accuracy']:.4f}"
        lines.append([r["variant"], accuracy, f"{r['params']:,}",
                      f"{r['macs']:,}", f"{r['size']:,}", f"{r['gzip']:,}",
                      xnn, xnn_ratio, ref, ref_ratio, pi4])
    return render(["variant", "int8 acc", "params", "MACs", "int8 size",
                   "gzip", "host ms, XNNPACK", "x dense (paired)",
                   "host ms, built-in kernels", "x dense (paired)",
                   "Pi 4 ms (emulated, XNNPACK)"], lines)


def main(argv):
    del argv
    if _REAL_SIZES.value:
        output = []
        with tempfile.TemporaryDirectory(prefix="structured-bench-") as work:
            for name, (rows, _) in real_size_rows().items():
                results = measure(rows, None, work, _ROUNDS.value,
                                  _RUNS.value, _EMULATED.value)
                output.append(f"\n{name} (untrained):\n")
                output.append(table(results))
        print("\nCommand: python benchmarks/structured_pruning.py "
              f"--real_sizes --rounds={_ROUNDS.value} --runs={_RUNS.value}")
        print("\n".join(output))
        return
    data = reference.load_digits_split()
    models = {} if _ONLY_GROUPS.value else {
        "reference CNN": reference.fit(reference.reference_cnn(seed=0),
                                       data, reference.FIT_ARGS["epochs"]),
        "MobileNet-style chain": reference.fit(mobilenet_chain(), data, 20),
    }
    for build in (residual.mobilenet_v2_style, residual.resnet_style,
                  residual.vit_style):
        model = build()
        models[model.name] = reference.fit(model, data, 20)
    output = []
    with tempfile.TemporaryDirectory(prefix="structured-bench-") as work:
        for name, model in models.items():
            rows = (variants(name, model, data) if name in (
                "reference CNN", "MobileNet-style chain")
                else group_variants(model, data))
            results = measure(rows, data, work, _ROUNDS.value, _RUNS.value,
                              _EMULATED.value)
            output.append(f"\n{name} (digits test split, n=360):\n")
            output.append(table(results))
    print("\nCommand: python benchmarks/structured_pruning.py "
          f"--rounds={_ROUNDS.value} --runs={_RUNS.value}"
          + (" --only_groups" if _ONLY_GROUPS.value else ""))
    print("\n".join(output))


if __name__ == "__main__":
    app.run(main)
