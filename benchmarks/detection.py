"""A detector on real photos: float32, PTQ, QAT and pruned + QAT int8.

SSD-lite on MobileNetV2 (alpha 0.35, 96x96, trained from scratch for 30
epochs on 2,400 images of `kcompress_demo.photo_objects`), every file ending
in LiteRT's `TFLite_Detection_PostProcess`. For each: mAP@0.5 and
mAP@0.5:0.95 in Keras and in the file on 300 test images, the share of
boxes the two agree on, size, gzip size, int8 op share, and the median
latency on the host and on the emulated Raspberry Pi 4 (qemu: only the
ratios mean anything). A last table shows the cost of the post-processing
op: the QAT file with and without it.

Run: `python benchmarks/detection.py [--quick]` (`--quick`: 1,200 images
and fewer epochs, as notebook 06).
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tflite_export as te  # noqa: E402
from kcompress.tables import render  # noqa: E402
from kcompress_demo import detection  # noqa: E402


def postprocess_cost(model, data, settings, out_dir):
    """Size and latency of the QAT file with and without the NMS op."""
    rows = []
    for name, post in (("with TFLite_Detection_PostProcess",
                        detection.postprocessing()), ("head outputs only",
                                                      None)):
        tflite = te.convert(model, "qat", postprocess=post, batch_size=1)
        path = os.path.join(out_dir, f"cost_{'nms' if post else 'raw'}"
                            ".tflite")
        te.save_atomically(tflite, path)
        host, pi4 = detection._bench(path, settings.bench_runs,
                                     data.x_test[:1])
        rows.append((name, f"{len(tflite):,}", f"{host:.3f}",
                     "-" if pi4 is None else f"{pi4:.2f}"))
    return render(["QAT int8 file", "size (B)", "host ms",
                   "Pi 4 ms (emulated)"], rows)


def main():
    quick = "--quick" in sys.argv[1:]
    settings = detection.QUICK if quick else detection.Settings()
    out_dir = os.path.join("artifacts", "detection_benchmark")
    rows, models, data = detection.run(settings, out_dir=out_dir)
    print(f"\n`python benchmarks/detection.py{' --quick' if quick else ''}`"
          f": {settings}\n")
    print(detection.table(rows))
    print()
    print(postprocess_cost(models["qat_int8"], data, settings, out_dir))
    for row in rows:
        print(f"{row['name']}: float ops {', '.join(row['float_ops'])}; "
              f"mean IoU of matched boxes "
              f"{row['detection']['mean_iou']:.4f}")
    float_map = rows[0]["detection"]["keras_map50"]
    for row in rows[1:]:
        d = row["detection"]
        drop = 100 * (d["keras_map50"] - float_map)
        print(f"{row['name']}: Keras mAP@.5 {drop:+.1f} points vs float, "
              "TFLite vs Keras "
              f"{100 * (d['tflite_map50'] - d['keras_map50']):+.1f} points")


if __name__ == "__main__":
    main()
