"""The `tflite_export` command: convert, bench, report, setup-emulator.

    tflite_export convert MODEL.keras --mode=MODE [--representative=DATA]
        [--verify=DATA] --out=MODEL.tflite
    tflite_export bench MODEL.tflite --target=TARGET [--threads=N] [--runs=N]
        [--warmup=N] [--data=DATA] [--noxnnpack]
    tflite_export report A.tflite B.tflite ...
    tflite_export setup-emulator

Bad input (missing or corrupt files, wrong data, unknown target, missing
qemu, unwritable output) exits with status 2 and one line on stderr.
"""

import json
import os
import sys

from absl import app
from absl import flags

from tflite_export.errors import CliError

COMMANDS = ("convert", "bench", "report", "setup-emulator")

_MODE = flags.DEFINE_string("mode", None, "convert: conversion mode.")
_OUT = flags.DEFINE_string("out", None, "convert: output .tflite path.")
_REPRESENTATIVE = flags.DEFINE_string(
    "representative", None, "convert: DATA for int8/int16x8 calibration.")
_VERIFY = flags.DEFINE_string("verify", None,
                              "convert: DATA to verify Keras against TFLite.")
_FLOAT_IO = flags.DEFINE_bool("float_io", False,
                              "convert: float input/output for mode int8.")
_TARGET = flags.DEFINE_string(
    "target", "host",
    "bench: host, rpi4-emu, rpi5-emu, ssh://user@host[:port] or adb[:SERIAL].")
_THREADS = flags.DEFINE_integer("threads", 1, "bench: CPU threads.")
_RUNS = flags.DEFINE_integer("runs", 50, "bench: timed runs.")
_WARMUP = flags.DEFINE_integer("warmup", 5, "bench: untimed runs first.")
_XNNPACK = flags.DEFINE_bool("xnnpack", True, "bench: use XNNPACK.")
_DATA = flags.DEFINE_string("data", None,
                            "bench: DATA to compare target and host outputs.")
_SSH_IDENTITY = flags.DEFINE_string(
    "ssh_identity", None, "bench: private key for ssh:// targets.")
_REMOTE_PYTHON = flags.DEFINE_string(
    "remote_python", "python3",
    "bench: the board's Python for ssh:// targets (name or path).")
_BENCHMARK_BINARY = flags.DEFINE_string(
    "benchmark_binary", None,
    "bench: local path of LiteRT's benchmark_model to push to an adb "
    "device (else /data/local/tmp/benchmark_model on the device is used).")


def _progress(total):
    from keras.utils import Progbar  # Keras loads slowly; only when needed.

    return Progbar(total, unit_name="step")


def _check_input(path, extensions):
    if not os.path.exists(path):
        raise CliError(f"file not found: {path}")
    if not path.endswith(extensions):
        raise CliError(f"{path} is not a {' or '.join(extensions)} model")


def _check_output(path):
    if not path:
        raise CliError("--out is required: the .tflite file to write")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory) or not os.access(directory, os.W_OK):
        raise CliError(f"cannot write to {directory}")


def _load_keras(path):
    _check_input(path, (".keras",))
    import keras

    import kcompress  # noqa: F401  (registers its layers for loading)

    try:
        return keras.saving.load_model(path)
    except Exception as error:  # noqa: BLE001 (any failure means unreadable)
        first = str(error).strip().splitlines()[:1] or [type(error).__name__]
        raise CliError(f"cannot load {path} (truncated or corrupt?): "
                       f"{first[0][:200]}") from None


def _read_tflite(path):
    _check_input(path, (".tflite",))
    with open(path, "rb") as f:
        data = f.read()
    try:
        from tflite_export.inspection import interpreter_for

        interpreter_for(data, delegates=False)
    except Exception as error:  # noqa: BLE001
        raise CliError(f"cannot read {path} as a TFLite model (truncated or "
                       f"corrupt?): {str(error).splitlines()[0][:200]}")
    return data


def _report_paths(tflite_path):
    base = tflite_path[:-len(".tflite")]
    return base + ".report.json", base + ".report.md"


def convert_command(model_path):
    import tflite_export as te
    from tflite_export import data as data_lib

    if not _MODE.value:
        raise CliError(f"--mode is required: one of {', '.join(te.MODES)}")
    _check_output(_OUT.value)
    progress = _progress(4)
    model = _load_keras(model_path)
    progress.add(1)
    shape = tuple(model.inputs[0].shape)
    representative = None
    if _REPRESENTATIVE.value:
        representative, _ = data_lib.load(_REPRESENTATIVE.value, shape)
    try:
        tflite = te.convert(model, _MODE.value,
                            representative_data=representative,
                            float_io=_FLOAT_IO.value)
        progress.add(1)
        verification = None
        if _VERIFY.value:
            x, y = data_lib.load(_VERIFY.value, shape)
            verification = te.verify(tflite, model, x, y).to_dict()
    except te.ConversionError as error:
        raise CliError(str(error)) from None
    progress.add(1)
    inspection = te.inspect(tflite)
    te.save_atomically(tflite, _OUT.value)
    report = {
        "model": os.path.abspath(model_path), "mode": _MODE.value,
        "tflite": os.path.abspath(_OUT.value), "size": inspection.size,
        "gzip_size": inspection.gzip_size,
        "int8_coverage": inspection.int8_coverage,
        "ops": [op.name for op in inspection.ops],
        "weight_zero_fraction": inspection.weight_zero_fraction,
        "verification": verification,
    }
    json_path, md_path = _report_paths(_OUT.value)
    te.save_atomically(json.dumps(report, indent=2).encode(), json_path)
    te.save_atomically(_markdown_report(report).encode(), md_path)
    progress.add(1)
    print(_markdown_report(report))
    print(f"Wrote {_OUT.value}, {json_path} and {md_path}.")


def _markdown_report(report):
    rows = [("mode", report["mode"]), ("size (B)", f"{report['size']:,}"),
            ("gzip -9 (B)", f"{report['gzip_size']:,}"),
            ("int8 coverage", f"{report['int8_coverage']:.0%}"),
            ("ops", ", ".join(sorted(set(report["ops"]))))]
    zeros = report["weight_zero_fraction"]
    if zeros:
        rows.append(("weight sparsity (min..max)",
                     f"{min(zeros.values()):.1%}..{max(zeros.values()):.1%}"))
    check = report.get("verification")
    if check:
        rows.append(("top-1 agreement", f"{check['top1_agreement']:.2%}"))
        if check["max_steps"] is not None:
            rows.append(("max diff (quant steps)", f"{check['max_steps']:.1f}"))
        rows.append(("max abs diff", f"{check['max_abs_diff']:.3g}"))
        if check["keras_accuracy"] is not None:
            rows.append(("accuracy Keras / TFLite",
                         f"{check['keras_accuracy']:.4f} / "
                         f"{check['tflite_accuracy']:.4f}"))
    lines = [f"## {os.path.basename(report['tflite'])}", "",
             "| | |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in rows]
    return "\n".join(lines) + "\n"


def bench_command(tflite_path):
    import numpy as np

    from tflite_export import data as data_lib
    from tflite_export import targets

    _read_tflite(tflite_path)
    progress = _progress(2)
    x = None
    if _DATA.value:
        x, _ = data_lib.load(_DATA.value, None)
    progress.add(1)
    result = targets.run(_TARGET.value, tflite_path, threads=_THREADS.value,
                         runs=_RUNS.value, warmup=_WARMUP.value,
                         xnnpack=_XNNPACK.value, x=x,
                         ssh_identity=_SSH_IDENTITY.value,
                         benchmark_binary=_BENCHMARK_BINARY.value,
                         remote_python=_REMOTE_PYTHON.value)
    progress.add(1)
    if x is not None:
        outputs = result.pop("outputs")
        host = result.pop("host_outputs", outputs)
        diff = np.abs(outputs.astype(np.float64) - host.astype(np.float64))
        result["max_abs_diff_vs_host"] = float(diff.max())
        result["bit_identical_to_host"] = bool(np.array_equal(outputs, host))
    label = " (EMULATED: use for correctness and relative comparisons only)" \
        if result.get("emulated") else ""
    path = f"{tflite_path[:-len('.tflite')]}.bench.{_safe(_TARGET.value)}.json"
    from tflite_export import save_atomically

    save_atomically(json.dumps(result, indent=2).encode(), path)
    figures = [f"median {result['median_ms']:.3f} ms"]
    for key, name in (("p90_ms", "p90"), ("min_ms", "min"),
                      ("load_ms", "load")):
        if key in result:
            figures.append(f"{name} {result[key]:.3f} ms")
    if "peak_rss_kib" in result:
        figures.append(f"peak RSS of the bench process "
                       f"{result['peak_rss_kib']:,} KiB")
    if "overall_mb" in result:
        figures.append(f"memory footprint {result['overall_mb']:.1f} MB")
    print(f"{os.path.basename(tflite_path)} on {_TARGET.value}{label}: "
          + ", ".join(figures))
    if "bit_identical_to_host" in result:
        print(f"outputs vs host: bit-identical="
              f"{result['bit_identical_to_host']}, max abs diff "
              f"{result['max_abs_diff_vs_host']:.3g}")
    print(f"Wrote {path}.")


def _safe(target):
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in target)


def report_command(paths):
    import glob

    if not paths:
        raise CliError("report needs one or more .tflite files")
    rows, targets = [], []
    for path in paths:
        _check_input(path, (".tflite",))
        json_path, _ = _report_paths(path)
        info = {}
        if os.path.exists(json_path):
            with open(json_path) as f:
                info = json.load(f)
        benches = {}
        for bench in sorted(glob.glob(f"{path[:-len('.tflite')]}.bench.*.json")):
            with open(bench) as f:
                result = json.load(f)
            benches[result["target"]] = result
            if result["target"] not in targets:
                targets.append(result["target"])
        rows.append((path, info, benches))
    header = ["file", "mode", "size (B)", "gzip (B)", "TFLite acc"] + [
        f"{t} median ms" + (" (emulated)" if t.endswith("-emu") else "")
        for t in targets] + ["outputs vs host"]
    lines = ["| " + " | ".join(header) + " |",
             "|" + "---|" * len(header)]
    for path, info, benches in rows:
        from tflite_export.inspection import gzip_size

        with open(path, "rb") as f:
            data = f.read()
        check = info.get("verification") or {}
        accuracy = check.get("tflite_accuracy")
        cells = [os.path.basename(path), info.get("mode", "?"),
                 f"{len(data):,}", f"{gzip_size(data):,}",
                 f"{accuracy:.4f}" if accuracy is not None else "-"]
        cells += [f"{benches[t]['median_ms']:.3f}" if t in benches else "-"
                  for t in targets]
        checks = [f"{t}: " + ("bit-identical" if b["bit_identical_to_host"]
                              else f"max diff {b['max_abs_diff_vs_host']:.3g}")
                  for t, b in benches.items()
                  if "bit_identical_to_host" in b and t != "host"]
        cells.append("; ".join(checks) or "-")
        lines.append("| " + " | ".join(cells) + " |")
    print("\n".join(lines))


def setup_emulator_command():
    from tflite_export import emulator

    sysroot = emulator.build()
    for cpu in emulator.EMULATED_CPUS:
        emulator.prefix_for(cpu, sysroot)
    print(f"Emulated Raspberry Pi ready in {sysroot} (qemu user-mode; "
          f"targets rpi4-emu = cortex-a72, rpi5-emu = cortex-a76).")


def main(argv):
    if len(argv) < 2 or argv[1] not in COMMANDS:
        got = argv[1] if len(argv) > 1 else "nothing"
        raise CliError(f"expected a command ({', '.join(COMMANDS)}); got {got}")
    command, rest = argv[1], argv[2:]
    if command == "report":
        return report_command(rest)
    if command == "setup-emulator":
        return setup_emulator_command()
    if len(rest) != 1:
        raise CliError(f"{command} takes exactly one model file; got "
                       f"{len(rest)}")
    if command == "convert":
        return convert_command(rest[0])
    return bench_command(rest[0])


def _fail(message):
    print(f"tflite_export: error: {message}", file=sys.stderr)
    sys.exit(2)


def _parse_flags(argv):
    try:
        return flags.FLAGS(argv)
    except flags.Error as error:
        _fail(str(error).splitlines()[0])


def _main_or_exit_2(argv):
    try:
        main(argv)
    except CliError as error:
        _fail(str(error))


def run():
    """Console-script entry point."""
    app.run(_main_or_exit_2, flags_parser=_parse_flags)
