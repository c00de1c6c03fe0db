"""`LiteRTExporter`: real files and real measurements for `kcompress.budget`.

Registered as the `"litert"` entry point of the `kcompress.exporters`
group (setup.cfg), so `kcompress.budget.compress_to` finds it without
`kcompress` importing this package. Every size it reports is the length of
a converted file, every latency a median of runs on the named target.
"""

import os
import shutil
import tempfile

import numpy as np

from tflite_export.errors import TargetError

__all__ = ["LiteRTExporter", "TARGETS", "save_budget_result"]

TARGETS = ("host", "rpi4-emu", "rpi5-emu", "pi4", "pi5", "ssh://user@host",
           "adb", "adb:<serial>")
_ALIASES = {"pi4": "rpi4-emu", "pi5": "rpi5-emu"}


class LiteRTExporter:
    """Converts with the TFLite converter (and AI Edge Quantizer for mixed
    precision), runs in LiteRT, times with `tflite_export bench`'s
    machinery.

    Args:
        runs: timed runs per latency measurement (the median is taken).
        threads: threads of the timed runs.
    """

    def __init__(self, runs=30, threads=1):
        self.runs, self.threads = runs, threads

    def check_target(self, target):
        """The target's canonical name; a clear error before any work when
        it is unknown or not configured."""
        target = _ALIASES.get(target, target)
        if target in ("host", "rpi4-emu", "rpi5-emu"):
            return target
        if isinstance(target, str) and target.startswith("ssh://"):
            if len(target) <= len("ssh://") or "@" not in target:
                raise TargetError(
                    f"Received: target={target!r}. Expected ssh://user@host "
                    "of a configured board (key-based login).")
            return target
        if target == "adb" or (isinstance(target, str)
                               and target.startswith("adb:")):
            if shutil.which("adb") is None:
                raise TargetError(
                    f"Received: target={target!r}, but adb is not on PATH. "
                    "Install Android platform tools and connect a device, or"
                    " use target='host' or 'pi4' (emulated).")
            return target
        raise TargetError(
            f"Received: target={target!r}. Expected one of "
            f"{', '.join(TARGETS)}.")

    def convert(self, model, mode, representative_data=None,
                int16_layers=()):
        """The file's bytes: `mode` as `tflite_export.convert` takes it,
        with `int16_layers` in int16x8 (mixed precision) when given."""
        if int16_layers:
            from tflite_export.mixed_precision import convert_mixed

            return convert_mixed(model, representative_data, int16_layers)
        from tflite_export.conversion import convert

        return convert(model, mode, representative_data, batch_size=1)

    def predict(self, tflite_bytes, x):
        """The file's first output on `x`, dequantized to float."""
        from tflite_export.inspection import interpreter_for
        from tflite_export.verification import run_outputs

        interpreter = interpreter_for(tflite_bytes)
        arrays = list(x) if isinstance(x, (list, tuple)) else [x]
        detail = interpreter.get_output_details()[0]
        return run_outputs(interpreter, [np.asarray(a) for a in arrays],
                           [detail])[0]

    def latency_ms(self, tflite_bytes, target):
        """The median latency of one inference on `target`, in ms."""
        from tflite_export import targets

        target = self.check_target(target)
        with tempfile.TemporaryDirectory(prefix="kcompress-budget-") as work:
            path = os.path.join(work, "model.tflite")
            with open(path, "wb") as f:
                f.write(tflite_bytes)
            result = targets.bench(target, path, threads=self.threads,
                                   runs=self.runs, warmup=3)
        return float(result["median_ms"])

    def layer_precisions(self, tflite_bytes, layer_names):
        """`{layer: "int8" | "int16x8" | ...}` as the file computes them."""
        from tflite_export.mixed_precision import layer_precisions

        return layer_precisions(tflite_bytes, layer_names)


def save_budget_result(result, tflite_path):
    """Writes a `compress_to` result's file and its report sidecars.

    `MODEL.tflite`, `MODEL.report.json` and `MODEL.report.md` are written
    atomically, as `tflite_export convert` writes them, with the plan, each
    planned layer's precision as read back from the file, and the search's
    measurements; `tflite_export report MODEL.tflite` then shows the plan.

    Returns:
        The report dict.
    """
    import json

    from tflite_export import reports
    from tflite_export.atomic_write import save_atomically
    from tflite_export.inspection import gzip_size
    from tflite_export.inspection import inspect

    data = result.tflite
    info = inspect(data)
    plan = result.plan.get_config()
    wide = [n for n, p in plan["precision"].items() if p != "int8"]
    precision = {}
    if wide:  # the mixed file keeps its names: read the layers back
        from tflite_export.mixed_precision import layer_precisions

        precision = layer_precisions(data, wide)
    report = {
        "model": None, "mode": "budget", "tflite": os.path.abspath(
            tflite_path), "size": len(data), "gzip_size": gzip_size(data),
        "int8_coverage": info.int8_coverage,
        "ops": [op.name for op in info.ops],
        "weight_zero_fraction": info.weight_zero_fraction,
        "verification": None, "plan": plan, "layer_precision": precision,
        "budget": {k: v for k, v in result.measured.items()
                   if isinstance(v, (int, float, str))},
    }
    json_path, md_path = reports.report_paths(tflite_path)
    save_atomically(data, tflite_path)
    save_atomically(json.dumps(report, indent=2).encode(), json_path)
    save_atomically(reports.markdown_report(report).encode(), md_path)
    return report
