"""The reports the command writes and reads back.

`convert` writes `MODEL.report.json` and `MODEL.report.md` beside the
`.tflite` file, `bench` writes `MODEL.bench.TARGET.json`, and `report` reads
them back into one Markdown table.
"""

import glob
import json
import os

from tflite_export.errors import ExportError
from tflite_export.inspection import gzip_size


class SidecarError(ExportError, ValueError):
    """A report or bench JSON file that cannot be read back."""


def report_paths(tflite_path):
    """The `.report.json` and `.report.md` beside a `.tflite` path."""
    base = os.path.splitext(tflite_path)[0]
    return base + ".report.json", base + ".report.md"


def bench_path(tflite_path, target):
    """The `.bench.TARGET.json` beside a `.tflite` path."""
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in target)
    return f"{os.path.splitext(tflite_path)[0]}.bench.{safe}.json"


def bench_record(result):
    """A bench result as its sidecar holds it: the outputs a `data` run
    returned are replaced by how they compare with the host's."""
    import numpy as np

    result = dict(result)
    if "outputs" in result:
        outputs = result.pop("outputs")
        host = result.pop("host_outputs", outputs)
        diff = np.abs(outputs.astype(np.float64) - host.astype(np.float64))
        result["max_abs_diff_vs_host"] = float(diff.max())
        result["bit_identical_to_host"] = bool(np.array_equal(outputs, host))
    return result


def markdown_report(report):
    """The Markdown table of one `convert` report dict."""
    rows = [("mode", report["mode"]), ("size (B)", f"{report['size']:,}"),
            ("gzip -9 (B)", f"{report['gzip_size']:,}")]
    if report["ops"] is None:
        rows.append(("ops", "not inspected: Flex ops need the Flex delegate"))
    else:
        rows += [("int8 coverage", f"{report['int8_coverage']:.0%}"),
                 ("ops", ", ".join(sorted(set(report["ops"]))))]
    zeros = report["weight_zero_fraction"]
    if zeros:
        rows.append(("weight sparsity (min..max)",
                     f"{min(zeros.values()):.1%}..{max(zeros.values()):.1%}"))
    check = report.get("verification")
    if check:
        rows += _verification_rows(check)
    detection = report.get("detection")
    if detection:
        rows += _detection_rows(detection)
    rows += _plan_rows(report)
    from kcompress.tables import render  # Keras is loaded by then.

    return (f"## {os.path.basename(report['tflite'])}\n\n"
            + render(["", ""], rows) + "\n")


def _steps(value):
    return "-" if value is None else f"{value:.1f}"


def _verification_rows(check):
    outputs = check.get("outputs") or []
    if len(outputs) > 1:
        # One row per output, matched to the file's tensor by name.
        return [(f"output {o['name']} {tuple(o['shape'])} {o['dtype']}",
                 f"top-1 agreement {o['top1_agreement']:.2%}, max diff "
                 f"{_steps(o['max_steps'])} steps (mean "
                 f"{_steps(o['mean_steps'])}), max abs diff "
                 f"{o['max_abs_diff']:.3g}") for o in outputs]
    rows = [("top-1 agreement", f"{check['top1_agreement']:.2%}")]
    if check["max_steps"] is not None:
        rows.append(("max diff (quant steps)", f"{check['max_steps']:.1f}"))
    rows.append(("max abs diff", f"{check['max_abs_diff']:.3g}"))
    if check["keras_accuracy"] is not None:
        rows.append(("accuracy Keras / TFLite",
                     f"{check['keras_accuracy']:.4f} / "
                     f"{check['tflite_accuracy']:.4f}"))
    precision = check.get("layer_precision")
    if precision:
        rows.append(("layer precision", precision_text(precision)))
    return rows


def precision_text(precision):
    """`{layer: precision}` in a line: the common precision, and the
    layers that differ from it."""
    kinds = list(precision.values())
    common = max(set(kinds), key=kinds.count)
    others = [f"{name} {kind}" for name, kind in precision.items()
              if kind != common]
    return f"{common}" + (f" except {', '.join(others)}" if others else
                          f" (all {len(kinds)} layers)")


def _detection_rows(check):
    return [
        ("mAP@0.5 Keras / TFLite",
         f"{check['keras_map50']:.4f} / {check['tflite_map50']:.4f}"),
        ("mAP@0.5:0.95 Keras / TFLite",
         f"{check['keras_map']:.4f} / {check['tflite_map']:.4f}"),
        ("boxes matched (same class, IoU >= 0.5)",
         f"{check['matched_share']:.2%}, mean IoU {check['mean_iou']:.4f}"),
        ("images", f"{check['samples']:,}")]


def _plan_rows(report):
    """The rows of a budget search's report (`budget_report`): its plan,
    each layer's precision in the file, and what it measured."""
    plan = report.get("plan")
    if not plan:
        return []
    rows = [(f"plan: channels of {name}", f"-{fraction:.0%}")
            for name, fraction in plan["channels"].items()]
    rows += [(f"plan: sparsity of {name}", f"{value:.0%}")
             for name, value in plan["sparsity"].items()]
    rows.append(("plan: precision", ", ".join(
        f"{name} {kind}" for name, kind in
        (report.get("layer_precision") or {}).items())
        or f"every layer {plan['default_precision']}"))
    measured = report.get("budget") or {}
    if "metric_keras" in measured:
        rows.append(("budget metric Keras / TFLite (original)",
                     f"{measured['metric_keras']:.4f} / "
                     f"{measured['metric_tflite']:.4f} "
                     f"({measured['baseline_metric']:.4f})"))
    return rows


def plan_summary(report):
    """A short cell for `table`: what the plan changed."""
    plan = report.get("plan")
    if not plan:
        return "-"
    parts = []
    if plan["channels"]:
        parts.append(f"channels cut in {len(plan['channels'])} groups")
    if plan["sparsity"]:
        parts.append(f"sparsity in {len(plan['sparsity'])} layers")
    wide = [n for n, p in plan["precision"].items() if p == "int16x8"]
    parts.append(f"int16x8: {', '.join(wide)}" if wide else
                 f"all {plan['default_precision']}")
    return "; ".join(parts)


def _read_json(path, required):
    """A sidecar JSON object with the `required` keys, or a SidecarError."""
    try:
        with open(path) as f:
            value = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SidecarError(f"cannot read {path} as JSON ({error}); delete it "
                           "or write it again with tflite_export") from None
    missing = [key for key in required
               if not isinstance(value, dict) or key not in value]
    if missing:
        raise SidecarError(f"{path} has no {', '.join(missing)}; delete it "
                           "or write it again with tflite_export")
    return value


def table(files):
    """One Markdown table over `[(tflite path, its bytes)]`: mode, sizes,
    accuracy (a detector's mAP) and every bench's median, from the sidecar
    files."""
    rows, targets = [], []
    for path, data in files:
        json_path, _ = report_paths(path)
        info = _read_json(json_path, ("mode",)) if os.path.exists(
            json_path) else {}
        benches = {}
        pattern = glob.escape(os.path.splitext(path)[0]) + ".bench.*.json"
        for bench in sorted(glob.glob(pattern)):
            result = _read_json(bench, ("target", "median_ms"))
            benches[result["target"]] = result
            if result["target"] not in targets:
                targets.append(result["target"])
        rows.append((path, data, info, benches))
    header = ["file", "mode", "size (B)", "gzip (B)", "TFLite acc",
              "mAP@0.5 Keras / TFLite"] + [
        f"{t} median ms" + (" (emulated)" if t.endswith("-emu") else "")
        for t in targets] + ["outputs vs host"]
    planned = any(info.get("plan") for _, _, info, _ in rows)
    if planned:
        header.append("plan")
    from kcompress.tables import render  # The one table renderer.

    lines = []
    for path, data, info, benches in rows:
        check = info.get("verification") or {}
        accuracy = check.get("tflite_accuracy")
        detection = info.get("detection") or {}
        cells = [os.path.basename(path), info.get("mode", "?"),
                 f"{len(data):,}", f"{gzip_size(data):,}",
                 f"{accuracy:.4f}" if accuracy is not None else "-",
                 f"{detection['keras_map50']:.4f} / "
                 f"{detection['tflite_map50']:.4f}" if detection else "-"]
        cells += [f"{benches[t]['median_ms']:.3f}" if t in benches else "-"
                  for t in targets]
        checks = [f"{t}: " + ("bit-identical" if b["bit_identical_to_host"]
                              else f"max diff {b['max_abs_diff_vs_host']:.3g}")
                  for t, b in benches.items()
                  if "bit_identical_to_host" in b and t != "host"]
        cells.append("; ".join(checks) or "-")
        if planned:
            cells.append(plan_summary(info))
        lines.append(cells)
    return render(header, lines)


