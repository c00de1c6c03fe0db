"""The micro report as Markdown: flash, arena, fit and agreement."""

from __future__ import annotations


def _bytes(value):
    return f"{value:,} B ({value / 1024:.1f} KB)"


def _steps(value):
    return "-" if value != value else f"{value:.1f}"  # NaN: no Keras model


def markdown(report):
    """The Markdown of a `MicroExport.to_dict()`."""
    arena = report["arena"]
    lines = [
        f"# {report['name']}.tflite for TensorFlow Lite Micro", "",
        "| | |", "|---|---|",
        f"| conversion | {report['mode']} (int8 input and output) |",
        f"| flash (model bytes) | {_bytes(report['flash'])} |",
    ]
    if report["compressed_tensors"]:
        lines.append(f"| flash before LUT compression | "
                     f"{_bytes(report['int8_size'])}, "
                     f"{len(report['compressed_tensors'])} kernels "
                     f"compressed, {report['flash'] / report['int8_size']:.2f}"
                     "x |")
    lines += [
        f"| RAM (TFLM arena, measured) | {_bytes(arena['size'])}: head "
        f"{arena['head']:,} B (activations), tail {arena['tail']:,} B "
        "(persistent) |",
    ]
    if report["int8_arena"]:
        lines.append(
            f"| RAM before LUT compression | "
            f"{_bytes(report['int8_arena']['size'])} (TFLM_DECODE expands "
            "each kernel into the arena before its op) |")
    lines += [
        f"| ops ({len(report['ops'])}) | {', '.join(report['ops'])} |",
    ]
    fit = report["fit"]
    if fit["budget"] is not None:
        verdict = "fits" if fit["fits"] else "DOES NOT FIT: " + "; ".join(
            fit["shortfalls"])
        headroom = ", ".join(
            f"{kind} headroom {fit[kind + '_headroom']:,} B"
            for kind in ("flash", "ram") if kind + "_headroom" in fit)
        lines.append(f"| {fit['budget']['source']} | {verdict} "
                     f"({headroom}) |")
    agreement = report["agreement"]
    if agreement:
        lines += [
            "", f"TFLM on {agreement['samples']} inputs:", "",
            "| against | top-1 agreement | max steps | identical |",
            "|---|---|---|---|",
            f"| Keras | {agreement['top1_vs_keras']:.2%} | "
            f"{_steps(agreement['max_steps_vs_keras'])} | - |",
            f"| LiteRT, reference kernels | - | "
            f"{agreement['max_steps_vs_litert_reference']:.1f} | "
            f"{agreement['identical_to_litert_reference']:.2%} |",
            f"| LiteRT, built-in kernels | - | "
            f"{agreement['max_steps_vs_litert_builtin']:.1f} | - |",
            f"| LiteRT, XNNPACK | - | "
            f"{agreement['max_steps_vs_litert_xnnpack']:.1f} | - |",
        ]
        if agreement["identical_to_uncompressed"] is not None:
            lines.append(
                "| TFLM, uncompressed file | - | - | "
                f"{'yes' if agreement['identical_to_uncompressed'] else 'NO'}"
                " |")
        if agreement["tflm_accuracy"] is not None:
            keras = agreement["keras_accuracy"]
            lines += ["", f"Accuracy: TFLM {agreement['tflm_accuracy']:.4f}"
                      + (f", Keras {keras:.4f}" if keras is not None else "")]
    return "\n".join(lines) + "\n"
