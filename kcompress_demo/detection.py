"""A detector from `fit` to int8 with NMS in the file, on real photos.

`python -m kcompress_demo.detection` (and `benchmarks/detection.py`,
notebook 06) trains an SSD-lite on MobileNetV2 (alpha 0.35, 96x96, from
scratch) on `photo_objects`, then makes four files, each with
`TFLite_Detection_PostProcess` at its end:

- float32;
- PTQ int8: the converter's calibration on 200 training images;
- QAT int8: `quantize_model` and a few epochs of `fit`;
- pruned + QAT int8: `prune_low_magnitude` to the target sparsity in
  `fit`, then pruning-preserving QAT;
- channel groups + QAT int8: `prune_channel_groups`, `shrink`, fine-tune,
  QAT (a smaller network, not only sparse weights).

Each is scored in Keras and in the file (`tflite_export.verify_detections`)
and benched on the host and the emulated Raspberry Pi 4.
"""

import dataclasses
import json
import os

import numpy as np

NUM_CLASSES = 4
IMAGE_SIZE = 96


@dataclasses.dataclass
class Settings:
    """How much to train: the benchmark's full run, or a short one."""

    train_images: int = 2400
    test_images: int = 300
    epochs: int = 30
    qat_epochs: int = 4
    prune_epochs: int = 10
    sparsity: float = 0.5
    channel_fraction: float = 0.25
    bench_runs: int = 20


QUICK = Settings(train_images=1200, test_images=120, epochs=12, qat_epochs=2,
                 prune_epochs=4, bench_runs=5)


def anchors():
    """The anchors of the demo detector: 270 of them."""
    from kcompress.detection import AnchorBoxes

    return AnchorBoxes((IMAGE_SIZE, IMAGE_SIZE), (16, 32),
                       ((0.25, 0.35), (0.5, 0.7)), (1.0, 1.5, 0.67))


def postprocessing():
    from kcompress.detection import SSDPostProcessing

    return SSDPostProcessing(anchors(), NUM_CLASSES, max_detections=10,
                             score_threshold=0.3, iou_threshold=0.5)


@dataclasses.dataclass
class Data:
    x_train: np.ndarray
    truth_train: list
    x_test: np.ndarray
    truth_test: list
    targets: tuple


def load(settings):
    """The photo set: train (seed 0) and test (seed 1) images, targets."""
    from kcompress.detection import detection_targets
    from kcompress_demo import photo_objects

    x_train, truth_train = photo_objects.make_set(settings.train_images,
                                                  IMAGE_SIZE, seed=0)
    x_test, truth_test = photo_objects.make_set(settings.test_images,
                                                IMAGE_SIZE, seed=1)
    targets = detection_targets(truth_train, anchors(), NUM_CLASSES)
    return Data(x_train, truth_train, x_test, truth_test, targets)


def fit(model, data, epochs, learning_rate=2e-3, callbacks=()):
    """Compiles `model` with the SSD losses and trains it; returns it."""
    import keras

    from kcompress.detection import BoxRegressionLoss
    from kcompress.detection import FocalClassLoss

    # A constant rate. With a cosine decay, the notebook's 900 steps on
    # 1,600 photos reached mAP 0.18; a constant rate had reached 0.46 after
    # 900 steps on 2,400 (not the same set, so only a hint).
    model.compile(keras.optimizers.Adam(learning_rate),
                  loss=[BoxRegressionLoss(), FocalClassLoss()])
    model.fit(data.x_train, list(data.targets), batch_size=32, epochs=epochs,
              verbose=0, callbacks=list(callbacks))
    return model


def train_float(data, settings):
    import keras

    from kcompress.detection import ssd_lite

    keras.utils.set_random_seed(0)
    return fit(ssd_lite(NUM_CLASSES, anchors()), data, settings.epochs)


def qat(model, data, settings):
    import kcompress as kc

    return fit(kc.quantize_model(model), data, settings.qat_epochs,
               learning_rate=5e-4)


def pruned(model, data, settings):
    """Unstructured magnitude pruning to `settings.sparsity` in `fit`."""
    import kcompress as kc

    steps = settings.prune_epochs * int(np.ceil(len(data.x_train) / 32))
    schedule = kc.pruning.PolynomialDecay(0.0, settings.sparsity, 0,
                                          max(steps * 2 // 3, 1), frequency=10)
    wrapped = kc.prune_low_magnitude(model, schedule)
    fit(wrapped, data, settings.prune_epochs, learning_rate=1e-3,
        callbacks=[kc.pruning.UpdatePruningStep()])
    return kc.strip_pruning(wrapped)


def channel_pruned(model, data, settings):
    """`channel_fraction` of every channel group removed, then fine-tuned."""
    import kcompress as kc

    zeroed = kc.pruning.prune_channel_groups(
        model, settings.channel_fraction)
    return fit(kc.pruning.shrink(zeroed), data, settings.prune_epochs,
               learning_rate=1e-3)


def _bench(path, runs, x):
    """Median ms on the host and the emulated Pi 4 (None without qemu);
    each result is also written beside the file, where `tflite_export
    report` reads it."""
    import tflite_export as te
    from tflite_export import reports
    from tflite_export import targets
    from tflite_export.errors import TargetError

    medians = []
    for target, count in (("host", runs * 5), ("rpi4-emu", runs)):
        try:
            result = targets.bench(target, path, runs=count, warmup=2,
                                   x=None if target == "host" else x)
        except TargetError:
            medians.append(None)
            continue
        result = reports.bench_record(result)
        te.save_atomically(json.dumps(result, indent=2).encode(),
                           reports.bench_path(path, target))
        medians.append(result["median_ms"])
    return tuple(medians)


def export_and_measure(name, model, mode, data, settings, out_dir,
                       representative=None):
    """Converts with NMS in the file, verifies, benches, writes the file
    and its `tflite_export report` sidecar; returns the row's figures."""
    import tflite_export as te
    from tflite_export import reports

    post = postprocessing()
    tflite = te.convert(model, mode, representative_data=representative,
                        postprocess=post)
    check = te.verify_detections(tflite, model, data.x_test,
                                 data.truth_test, post)
    inspection = te.inspect(tflite)
    path = os.path.join(out_dir, f"detector_{name}.tflite")
    te.save_atomically(tflite, path)
    host, pi4 = _bench(path, settings.bench_runs, data.x_test[:1])
    float_ops = sorted({op.name for op in inspection.float_ops})
    row = {"name": name, "mode": mode, "size": len(tflite),
           "gzip_size": inspection.gzip_size,
           "int8_coverage": inspection.int8_coverage, "float_ops": float_ops,
           "detection": check.to_dict(), "host_ms": host, "pi4_emu_ms": pi4}
    sidecar = {"model": name, "mode": mode, "tflite": os.path.abspath(path),
               "size": len(tflite), "gzip_size": inspection.gzip_size,
               "int8_coverage": inspection.int8_coverage,
               "ops": [op.name for op in inspection.ops],
               "weight_zero_fraction": inspection.weight_zero_fraction,
               "verification": None, "detection": check.to_dict()}
    json_path, md_path = reports.report_paths(path)
    te.save_atomically(json.dumps(sidecar, indent=2).encode(), json_path)
    te.save_atomically(reports.markdown_report(sidecar).encode(), md_path)
    return row


def run(settings=None, out_dir="artifacts/detection", print_fn=print,
        variants=("float32", "ptq_int8", "qat_int8", "pruned_qat_int8",
                  "channels_qat_int8")):
    """The whole pipeline; returns `(rows, models)`."""
    settings = settings or Settings()
    os.makedirs(out_dir, exist_ok=True)
    data = load(settings)
    print_fn(f"Training SSD-lite/MobileNetV2 for {settings.epochs} epochs "
             f"on {len(data.x_train)} photos...")
    model = train_float(data, settings)
    models = {"float32": (model, "float32", None)}
    if "ptq_int8" in variants:
        models["ptq_int8"] = (model, "int8", data.x_train[:200])
    if "qat_int8" in variants:
        print_fn("QAT...")
        models["qat_int8"] = (qat(model, data, settings), "qat", None)
    if "pruned_qat_int8" in variants:
        print_fn(f"Pruning to {settings.sparsity:.0%}, then QAT...")
        models["pruned_qat_int8"] = (
            qat(pruned(model, data, settings), data, settings), "qat", None)
    if "channels_qat_int8" in variants:
        print_fn(f"Removing {settings.channel_fraction:.0%} of the channel "
                 "groups, then QAT...")
        models["channels_qat_int8"] = (
            qat(channel_pruned(model, data, settings), data, settings), "qat",
            None)
    for name, (keras_model, _, _) in models.items():
        keras_model.save(os.path.join(out_dir, f"detector_{name}.keras"))
    rows = []
    for name, (keras_model, mode, representative) in models.items():
        print_fn(f"Exporting, verifying and benching {name}...")
        rows.append(export_and_measure(name, keras_model, mode, data,
                                       settings, out_dir, representative))
    return rows, {name: entry[0] for name, entry in models.items()}, data


def table(rows):
    """The benchmark's Markdown table."""
    from kcompress.tables import render

    def ms(value):
        return "-" if value is None else f"{value:.2f}"

    float_gzip = rows[0]["gzip_size"]
    return render(
        ["model", "mAP@.5 Keras", "mAP@.5 TFLite", "mAP@.5:.95 Keras / "
         "TFLite", "matched boxes", "size (B)", "gzip (B)", "gzip vs float",
         "int8 ops", "host ms", "Pi 4 ms (emulated)"],
        [(r["name"], f"{r['detection']['keras_map50']:.3f}",
          f"{r['detection']['tflite_map50']:.3f}",
          f"{r['detection']['keras_map']:.3f} / "
          f"{r['detection']['tflite_map']:.3f}",
          f"{r['detection']['matched_share']:.1%}", f"{r['size']:,}",
          f"{r['gzip_size']:,}", f"{r['gzip_size'] / float_gzip:.2f}x",
          f"{r['int8_coverage']:.0%}", ms(r["host_ms"]), ms(r["pi4_emu_ms"]))
         for r in rows])


def main(argv=None):
    import sys

    quick = "--quick" in (argv or sys.argv)[1:]
    rows, _, _ = run(QUICK if quick else Settings())
    print(table(rows))


if __name__ == "__main__":
    main()
