"""The `tflite_export` command: convert, bench, report, setup-emulator, micro.

    tflite_export convert MODEL.keras --mode=MODE [--representative=DATA]
        [--verify=DATA] [--allow_flex] --out=MODEL.tflite
    tflite_export bench MODEL.tflite --target=TARGET [--threads=N] [--runs=N]
        [--warmup=N] [--data=DATA] [--noxnnpack] [--ssh_accept_new_host_key]
    tflite_export report A.tflite B.tflite ...
    tflite_export setup-emulator
    tflite_export micro MODEL.keras|MODEL.tflite --representative=DATA
        --out=DIR [--verify=DATA] [--board=NAME] [--max_flash=SIZE]
        [--max_ram=SIZE] [--compress]

Bad input (missing or corrupt files, wrong data, unknown target, missing
qemu, unwritable output, a flag of another command) exits with status 2 and
one line on stderr, `tflite_export: error: ...`, checked before any slow
work. Ctrl-C and SIGTERM end every child process and exit 2 the same way.
What libraries print on stderr (TensorFlow's start-up lines, converter
logs) is held back, and shown only with `--verbose` or after a crash.
"""

import json
import os
import signal
import sys
import traceback

from absl import app
from absl import flags

from tflite_export import command_inputs
from tflite_export import console
from tflite_export import reports
from tflite_export.command_inputs import CliError
from tflite_export.conversion import MODES
from tflite_export.errors import ExportError
from tflite_export.micro import command as micro_command
from tflite_export.targets import MAX_RUNS
from tflite_export.targets import MAX_THREADS
from tflite_export.targets import MAX_WARMUP

COMMANDS = ("convert", "bench", "report", "setup-emulator", "micro")

_MODE = flags.DEFINE_enum("mode", None, MODES, "convert: conversion mode.")
_OUT = flags.DEFINE_string("out", None, "convert: output .tflite path.")
_REPRESENTATIVE = flags.DEFINE_string(
    "representative", None, "convert: DATA for int8/int16x8 calibration.")
_VERIFY = flags.DEFINE_string("verify", None,
                              "convert: DATA to verify Keras against TFLite.")
_FLOAT_IO = flags.DEFINE_bool(
    "float_io", False, "convert: float (--float_io) or int8 (--nofloat_io) "
    "input/output; unset: int8 for mode int8, float for qat.")
_ALLOW_FLEX = flags.DEFINE_bool(
    "allow_flex", False,
    "convert: allow TensorFlow (Flex) ops the TFLite builtins lack; the app "
    "must then link the Flex delegate.")
_BATCH_SIZE = flags.DEFINE_integer(
    "batch_size", None,
    "convert: fixed batch size of the file's inputs (default: the model's "
    "own, dynamic unless it fixes one). 1 lets LSTM/GRU use builtin ops.",
    lower_bound=1, upper_bound=65536)
_KEEP_NAMES = flags.DEFINE_bool(
    "keep_names", False,
    "convert: keep tensor names in the file (dropped by default; the "
    "runtime never reads them).")
_TARGET = flags.DEFINE_string(
    "target", "host",
    "bench: host, rpi4-emu, rpi5-emu, ssh://user@host[:port] or adb[:SERIAL].")
_THREADS = flags.DEFINE_integer("threads", 1, "bench: CPU threads.",
                                lower_bound=1, upper_bound=MAX_THREADS)
_RUNS = flags.DEFINE_integer("runs", 50, "bench: timed runs.", lower_bound=1,
                             upper_bound=MAX_RUNS)
_WARMUP = flags.DEFINE_integer("warmup", 5, "bench: untimed runs first.",
                               lower_bound=0, upper_bound=MAX_WARMUP)
_XNNPACK = flags.DEFINE_bool("xnnpack", True, "bench: use XNNPACK.")
_DATA = flags.DEFINE_string("data", None,
                            "bench: DATA to compare target and host outputs.")
_SSH_IDENTITY = flags.DEFINE_string(
    "ssh_identity", None, "bench: private key for ssh:// targets.")
_SSH_ACCEPT_NEW = flags.DEFINE_bool(
    "ssh_accept_new_host_key", False,
    "bench: trust and record the host key of an ssh:// board not yet in "
    "known_hosts (StrictHostKeyChecking=accept-new). By default an unknown "
    "or changed key is refused.")
_REMOTE_PYTHON = flags.DEFINE_string(
    "remote_python", "python3",
    "bench: the board's Python for ssh:// targets (name or path).")
_BENCHMARK_BINARY = flags.DEFINE_string(
    "benchmark_binary", None,
    "bench: local path of LiteRT's benchmark_model to push to an adb "
    "device (else /data/local/tmp/benchmark_model on the device is used).")
_VERBOSE = flags.DEFINE_bool(
    "verbose", False, "Show what TensorFlow and the converter print.")

_COMMAND_FLAGS = {
    "convert": {"mode", "out", "representative", "verify", "float_io",
                "allow_flex", "batch_size", "keep_names"},
    "bench": {"target", "threads", "runs", "warmup", "xnnpack", "data",
              "ssh_identity", "ssh_accept_new_host_key", "remote_python",
              "benchmark_binary"},
    "report": set(),
    "setup-emulator": set(),
    "micro": {"out", "representative", "verify", *micro_command.FLAGS},
}


def _progress(total):
    from keras.utils import Progbar  # Keras loads slowly; only when needed.

    return Progbar(total, unit_name="step")


def convert_command(model_path):
    import tflite_export as te
    from tflite_export import data as data_lib

    if not _MODE.value:
        raise CliError(f"--mode is required: one of {', '.join(MODES)}")
    command_inputs.check_input(model_path, (".keras",))
    data_flags = [flag for flag in (_REPRESENTATIVE, _VERIFY) if flag.value]
    command_inputs.check_output(
        _OUT.value, [model_path] + [f.value for f in data_flags])
    datasets = {}
    for flag in data_flags:
        if not os.path.isdir(flag.value):  # Images need the model shape.
            datasets[flag.name] = data_lib.load(flag.value)
    progress = _progress(4)
    model = command_inputs.load_keras(model_path)
    progress.add(1)
    shape = tuple(te.input_specs(model)[0][0])
    for flag in data_flags:
        if flag.name not in datasets:
            datasets[flag.name] = data_lib.load(flag.value, shape)
    representative = datasets.get("representative", (None,))[0]
    tflite = te.convert(model, _MODE.value, representative_data=representative,
                        float_io=(_FLOAT_IO.value if _FLOAT_IO.present
                                  else None), allow_flex=_ALLOW_FLEX.value,
                        batch_size=_BATCH_SIZE.value,
                        keep_names=_KEEP_NAMES.value, verbose=_VERBOSE.value)
    progress.add(1)
    verification = None
    if "verify" in datasets:
        x, y = datasets["verify"]
        # Labels score a classifier's one output; several outputs are each
        # compared with Keras, one report row per output.
        y = y if len(model.outputs) == 1 else None
        verification = te.verify(tflite, model, x, y).to_dict()
    progress.add(1)
    report = {
        "model": os.path.abspath(model_path), "mode": _MODE.value,
        "tflite": os.path.abspath(_OUT.value), "size": len(tflite),
        "gzip_size": te.gzip_size(tflite), "int8_coverage": None,
        "ops": None, "weight_zero_fraction": {}, "verification": verification,
    }
    try:
        inspection = te.inspect(tflite)
        report.update(int8_coverage=inspection.int8_coverage,
                      ops=[op.name for op in inspection.ops],
                      weight_zero_fraction=inspection.weight_zero_fraction)
    except te.ModelFileError:
        if not _ALLOW_FLEX.value:
            raise
        # A file with Flex ops loads only where the Flex delegate is linked,
        # which the LiteRT Python runtime is not: size only.
    json_path, md_path = reports.report_paths(_OUT.value)
    markdown = reports.markdown_report(report)
    te.save_atomically(tflite, _OUT.value)
    te.save_atomically(json.dumps(report, indent=2).encode(), json_path)
    te.save_atomically(markdown.encode(), md_path)
    progress.add(1)
    print(markdown)
    print(f"Wrote {_OUT.value}, {json_path} and {md_path}.")


def bench_command(tflite_path):
    from tflite_export import data as data_lib
    from tflite_export import save_atomically
    from tflite_export import targets

    command_inputs.read_tflite(tflite_path)
    path = reports.bench_path(tflite_path, _TARGET.value)
    command_inputs.check_writable(path, protected=(tflite_path,))
    x = None
    if _DATA.value:
        x, _ = data_lib.load(_DATA.value, None)
    progress = _progress(1)
    result = targets.bench(_TARGET.value, tflite_path, threads=_THREADS.value,
                         runs=_RUNS.value, warmup=_WARMUP.value,
                         xnnpack=_XNNPACK.value, x=x,
                         ssh_identity=_SSH_IDENTITY.value,
                         benchmark_binary=_BENCHMARK_BINARY.value,
                         remote_python=_REMOTE_PYTHON.value,
                         ssh_accept_new_host_key=_SSH_ACCEPT_NEW.value)
    progress.add(1)
    result = reports.bench_record(result)
    label = " (EMULATED: use for correctness and relative comparisons only)" \
        if result.get("emulated") else ""
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


def report_command(paths):
    from tflite_export import reports

    if not paths:
        raise CliError("report needs one or more .tflite files")
    print(reports.table([(path, command_inputs.read_tflite(path))
                         for path in paths]))


def setup_emulator_command():
    from tflite_export import emulator

    sysroot = emulator.build()
    for cpu in emulator.EMULATED_CPUS:
        emulator.prefix_for(cpu, sysroot)
    print(f"Emulated Raspberry Pi ready in {sysroot} (qemu user-mode; "
          f"targets rpi4-emu = cortex-a72, rpi5-emu = cortex-a76).")


def _check_flags(command):
    for name, owned in _COMMAND_FLAGS.items():
        for flag in sorted(owned - _COMMAND_FLAGS[command]):
            if flags.FLAGS[flag].present:
                raise CliError(f"--{flag} is a flag of `{name}`, not of "
                               f"`{command}`")


def main(argv):
    if len(argv) < 2 or argv[1] not in COMMANDS:
        got = argv[1] if len(argv) > 1 else "nothing"
        raise CliError(f"expected a command ({', '.join(COMMANDS)}); got {got}")
    command, rest = argv[1], argv[2:]
    _check_flags(command)
    if command == "report":
        return report_command(rest)
    if command == "setup-emulator":
        if rest:
            raise CliError(f"setup-emulator takes no files; got {len(rest)}")
        return setup_emulator_command()
    if len(rest) != 1:
        raise CliError(f"{command} takes exactly one model file; got "
                       f"{len(rest)}")
    if command == "convert":
        return convert_command(rest[0])
    if command == "micro":
        return micro_command.micro_command(
            rest[0], _OUT.value, _REPRESENTATIVE.value, _VERIFY.value)
    return bench_command(rest[0])


def _one_line(error):
    text = " ".join(str(error).split())
    return text or type(error).__name__


def _exit_2(stderr, message):
    stderr.say(f"tflite_export: error: {_one_line(message)}")
    sys.exit(2)


def _parse_flags(argv):
    try:
        return flags.FLAGS(argv)
    except flags.Error as error:
        raise CliError(str(error).splitlines()[0]) from None


def _verbose():
    try:
        return _VERBOSE.value
    except flags.UnparsedFlagAccessError:
        return False


def run(argv=None):
    """Console-script entry point; `argv` defaults to `sys.argv`."""
    argv = sys.argv if argv is None else argv
    # The command converts with the TensorFlow backend whatever the caller's
    # environment says (JAX's export would leave the fake quantization as
    # float ops). A caller that already loaded Keras on another backend
    # converts through `backend_bridge` instead.
    if "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = "tensorflow"
    flags.FLAGS.unparse_flags()  # A fresh parse, also when called twice.
    with console.HeldStderr() as stderr, console.signals_as_interrupts():
        try:
            app.run(main, argv=argv, flags_parser=_parse_flags)
        except SystemExit as done:
            if _verbose() or done.code not in (None, 0):
                stderr.replay()
            raise
        except ExportError as error:
            _exit_2(stderr, error)
        except console.Interrupted as interrupt:
            how = ("by SIGTERM" if interrupt.signum == signal.SIGTERM
                   else "(Ctrl-C)")
            _exit_2(stderr, f"interrupted {how}; child processes ended, no "
                    "output written")
        except KeyboardInterrupt:  # before the handlers were installed
            _exit_2(stderr, "interrupted (Ctrl-C); child processes ended, no "
                    "output written")
        except Exception:  # noqa: BLE001  A bug: show everything we have.
            stderr.replay()
            stderr.say(traceback.format_exc())
            sys.exit(1)
