"""Real devices: a Linux board over ssh, and Android over adb.

- `ssh://user@host[:port]` copies the model and `bench_script.py` to a
  temporary directory on the board, runs the script with the board's
  `python3` (which needs numpy and `ai_edge_litert` or `tflite_runtime`),
  and brings the JSON result (and outputs) back.
- `adb[:SERIAL]` pushes the model to `/data/local/tmp` and runs LiteRT's
  `benchmark_model` binary: one given with `--benchmark_binary`, else one
  already at `/data/local/tmp/benchmark_model`. Its output is parsed.
"""

import os
import re
import shlex
import shutil
import subprocess

from tflite_export.errors import CliError
from tflite_export.process import CommandFailed
from tflite_export.process import run_command

# Seconds to wait for an ssh host to answer (TCP connect and SSH banner).
CONNECT_TIMEOUT = int(os.environ.get("TFLITE_EXPORT_SSH_TIMEOUT", "10"))
DEVICE_DIR = "/data/local/tmp"


def parse_ssh_target(target):
    """`(user, host, port)` from `ssh://user@host[:port]`."""
    match = re.fullmatch(r"ssh://([^@/:]+)@([^@/:]+)(?::(\d+))?", target)
    if not match:
        raise CliError(f"bad ssh target {target!r}; expected "
                       "ssh://user@host[:port]")
    user, host, port = match.groups()
    return user, host, int(port or 22)


def _ssh_options(identity):
    options = ["-o", "BatchMode=yes", "-o",
               f"ConnectTimeout={CONNECT_TIMEOUT}", "-o",
               "StrictHostKeyChecking=accept-new"]
    known_hosts = os.environ.get("TFLITE_EXPORT_SSH_KNOWN_HOSTS")
    if known_hosts:
        options += ["-o", f"UserKnownHostsFile={known_hosts}"]
    if identity:
        options += ["-i", identity, "-o", "IdentitiesOnly=yes"]
    return options


def _call(command, what, timeout):
    """`run_command`, naming an ssh host that does not answer as such."""
    try:
        return run_command(command, what, timeout)
    except CommandFailed as error:
        if error.returncode == 255 and command[0] in ("ssh", "scp"):
            raise CliError(
                f"{what}: the ssh host did not answer within "
                f"{CONNECT_TIMEOUT} s or refused us "
                f"({str(error).rpartition(': ')[2]})") from None
        raise


def run_ssh(target, script, args, files, fetch=None, identity=None,
            python="python3", timeout=1800):
    """Runs `script args` on the board; returns stdout.

    Args:
        files: local files to copy (the model, the script, inputs); `args`
            refer to them by their base names.
        fetch: `(remote base name, local path)` to copy back, or None.
        python: the board's Python (a name on its PATH or a path).
    """
    user, host, port = parse_ssh_target(target)
    options = _ssh_options(identity)
    address = f"{user}@{host}"
    ssh = ["ssh", *options, "-p", str(port), address]
    remote = _call(ssh + ["mktemp -d"], f"ssh to {host}:{port}",
                   CONNECT_TIMEOUT + 20).strip()
    try:
        _call(["scp", *options, "-P", str(port), *files,
               f"{address}:{remote}/"], f"copying to {host}", timeout)
        command = "cd {} && {} {} {}".format(
            shlex.quote(remote), shlex.quote(python),
            shlex.quote(os.path.basename(script)),
            " ".join(shlex.quote(a) for a in args))
        out = _call(ssh + [command], f"bench on {host}", timeout)
        if fetch:
            _call(["scp", *options, "-P", str(port),
                   f"{address}:{remote}/{fetch[0]}", fetch[1]],
                  f"copying results from {host}", timeout)
        return out
    finally:
        subprocess.run(ssh + [f"rm -rf {shlex.quote(remote)}"],
                       capture_output=True, timeout=CONNECT_TIMEOUT + 20)


def parse_benchmark_model(text):
    """The figures of LiteRT `benchmark_model` output, in milliseconds.

    Returns:
        A dict with `load_ms` (Init), `first_inference_ms`, `warmup_avg_ms`,
        `avg_ms`, and, when printed, `min_ms`, `median_ms`, `p90_ms` (the
        tool prints p95, given as `p95_ms`), `std_ms` and the memory
        footprint in MB (`init_mb`, `overall_mb`).
    """
    number = r"([0-9.]+(?:e[+-]?[0-9]+)?)"
    summary = re.search(
        rf"Inference timings in us: Init: {number}, First inference: "
        rf"{number}, Warmup \(avg\): {number}, Inference \(avg\): {number}",
        text)
    if not summary:
        raise CliError("benchmark_model printed no 'Inference timings' line")
    init, first, warmup, average = (float(v) / 1e3 for v in summary.groups())
    result = {"load_ms": init, "first_inference_ms": first,
              "warmup_avg_ms": warmup, "avg_ms": average}
    runs = re.findall(r"count=(\d+) first=\S+ curr=\S+ min=(\S+) max=\S+ "
                      r"avg=\S+ std=(\S+)(?: p5=\S+ median=(\S+) p95=(\S+))?",
                      text)
    if runs:
        count, low, std, median, p95 = runs[-1]  # the last is the real run
        result.update(runs=int(count), min_ms=float(low) / 1e3,
                      std_ms=float(std) / 1e3)
        if median:
            result.update(median_ms=float(median) / 1e3,
                          p95_ms=float(p95) / 1e3)
    memory = re.search(rf"(?:Peak memory footprint|Memory footprint delta "
                       rf"from the start of the tool) \(MB\): init={number} "
                       rf"overall={number}", text)
    if memory:
        result.update(init_mb=float(memory.group(1)),
                      overall_mb=float(memory.group(2)))
    result.setdefault("median_ms", average)
    return result


def adb_devices(adb):
    out = _call([adb, "devices"], "adb devices", 60)
    return [line.split("\t")[0] for line in out.splitlines()[1:]
            if line.strip().endswith("\tdevice")]


def run_adb(target, tflite_path, threads, runs, warmup, xnnpack,
            benchmark_binary=None, timeout=1800):
    adb = shutil.which("adb")
    if adb is None:
        raise CliError("adb is not installed; install it with "
                       "`sudo apt-get install adb`")
    serial = target.partition(":")[2] or None
    devices = adb_devices(adb)
    if not devices:
        raise CliError("no Android device attached (`adb devices` lists "
                       "none); connect one with USB debugging enabled")
    if serial and serial not in devices:
        raise CliError(f"Android device {serial} is not attached; attached: "
                       f"{', '.join(devices)}")
    base = [adb] + (["-s", serial] if serial else [])
    name = os.path.basename(tflite_path)
    _call(base + ["push", tflite_path, f"{DEVICE_DIR}/{name}"], "adb push",
          timeout)
    binary = f"{DEVICE_DIR}/benchmark_model"
    if benchmark_binary:
        _call(base + ["push", benchmark_binary, binary], "adb push", timeout)
        _call(base + ["shell", "chmod", "+x", binary], "adb chmod", 60)
    out = _call(base + ["shell", binary, f"--graph={DEVICE_DIR}/{name}",
                        f"--num_threads={threads}", f"--num_runs={runs}",
                        f"--warmup_runs={warmup}",
                        f"--use_xnnpack={'true' if xnnpack else 'false'}"],
                "benchmark_model on the device", timeout)
    return parse_benchmark_model(out)
