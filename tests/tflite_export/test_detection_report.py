"""`tflite_export report` and the Markdown report show a detector's mAP."""

import json

import keras

import tflite_export as te
from tflite_export import reports

from .helpers import cli

DETECTION = {"samples": 300, "keras_map50": 0.8123, "tflite_map50": 0.8101,
             "keras_map": 0.55, "tflite_map": 0.549, "matched_share": 0.991,
             "mean_iou": 0.998}


def test_report_table_and_markdown_show_map(tmp_path):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    path = tmp_path / "detector_qat.tflite"
    path.write_bytes(te.convert(model, "float32"))
    sidecar = {"model": "m", "mode": "qat", "tflite": str(path),
               "size": 1, "gzip_size": 1, "int8_coverage": 0.9,
               "ops": ["CONV_2D"], "weight_zero_fraction": {},
               "verification": None, "detection": DETECTION}
    json_path, _ = reports.report_paths(str(path))
    with open(json_path, "w") as f:
        json.dump(sidecar, f)
    markdown = reports.markdown_report(sidecar)
    assert "| mAP@0.5 Keras / TFLite | 0.8123 / 0.8101 |" in markdown
    assert "| boxes matched (same class, IoU >= 0.5) | 99.10%" in markdown
    done = cli("report", str(path))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "mAP@0.5 Keras / TFLite" in done.stdout
    assert "0.8123 / 0.8101" in done.stdout
