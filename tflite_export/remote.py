"""Real devices: a Linux board over ssh, and Android over adb.

- `ssh://user@host[:port]` copies the model and `bench_script.py` to a
  temporary directory on the board, runs the script with the board's
  `python3` (which needs numpy and `ai_edge_litert` or `tflite_runtime`),
  brings the JSON result (and outputs) back, and removes the directory.
  The bench runs on a pseudo-terminal (`ssh -tt`), so it dies with the
  connection: an interrupted bench leaves nothing running on the board.
  The board's host key must already be in the user's known_hosts
  (`StrictHostKeyChecking=yes`) unless `accept_new_host_key` is given.
- `adb[:SERIAL]` pushes the model to a fixed name in `/data/local/tmp` and
  runs LiteRT's `benchmark_model` binary: one given with
  `--benchmark_binary`, else one already at
  `/data/local/tmp/benchmark_model`. Every argument of the device command is
  quoted for the device's shell, and what was pushed is removed afterwards.
"""

import os
import re
import shlex
import shutil

from tflite_export.errors import CommandFailed
from tflite_export.errors import TargetError
from tflite_export.process import run_command

# Seconds to wait for an ssh host to answer (TCP connect and SSH banner).
CONNECT_TIMEOUT = int(os.environ.get("TFLITE_EXPORT_SSH_TIMEOUT", "10"))
DEVICE_DIR = "/data/local/tmp"
DEVICE_MODEL = f"{DEVICE_DIR}/tflite_export_bench.tflite"
DEVICE_BINARY = f"{DEVICE_DIR}/benchmark_model"
# A user or host name: letters, digits, '.', '_' and '-', never first '-'
# (so it cannot be read as an ssh option, CVE-2017-1000117); IPv6 in [].
_NAME = r"[A-Za-z0-9_.][A-Za-z0-9_.-]*"
_SSH_TARGET = re.compile(
    rf"ssh://({_NAME})@({_NAME}|\[[0-9A-Fa-f:.]+\])(?::(\d{{1,5}}))?")


def parse_ssh_target(target):
    """`(user, host, port)` from `ssh://user@host[:port]`.

    Raises:
        TargetError: for anything else, including a user or host that
            starts with '-' or holds characters outside [A-Za-z0-9._-].
    """
    match = _SSH_TARGET.fullmatch(target)
    port = int(match.group(3) or 22) if match else 0
    if not match or not 0 < port < 65536:
        raise TargetError(
            f"bad ssh target {target!r}; expected ssh://user@host[:port], "
            "where user and host use letters, digits, '.', '_' and '-' and "
            "do not start with '-', and port is 1..65535")
    return match.group(1), match.group(2).strip("[]"), port


def _ssh_options(identity, accept_new_host_key=False):
    checking = "accept-new" if accept_new_host_key else "yes"
    options = ["-o", "BatchMode=yes", "-o",
               f"ConnectTimeout={CONNECT_TIMEOUT}", "-o",
               f"StrictHostKeyChecking={checking}", "-o", "LogLevel=ERROR"]
    known_hosts = os.environ.get("TFLITE_EXPORT_SSH_KNOWN_HOSTS")
    if known_hosts:
        options += ["-o", f"UserKnownHostsFile={known_hosts}"]
    if identity:
        options += ["-i", identity, "-o", "IdentitiesOnly=yes"]
    return options


def _ssh_failure(text, host, port):
    """What an ssh/scp exit 255 means, from what it printed."""
    if "Host key verification failed" in text or "HOST IDENTIFICATION HAS " \
            "CHANGED" in text:
        return (f"the host key of {host}:{port} is not in known_hosts, or it "
                "changed. Check the board, then add its key (ssh-keyscan, or "
                "one interactive ssh), or pass --ssh_accept_new_host_key to "
                "trust a new board's key on first contact")
    if "Permission denied" in text:
        return (f"{host}:{port} refused our login (Permission denied); "
                "check the user and --ssh_identity")
    if "timed out" in text or "Connection refused" in text or \
            "Could not resolve" in text or "banner exchange" in text:
        return (f"the ssh host {host}:{port} did not answer within "
                f"{CONNECT_TIMEOUT} s or refused the connection "
                f"({text.strip().splitlines()[-1]})")
    last = (text.strip().splitlines() or ["no output"])[-1]
    return f"ssh to {host}:{port} failed ({last})"


def _call(command, what, timeout, host=None, port=None):
    """`run_command`, saying what an ssh failure (exit 255) means."""
    try:
        return run_command(command, what, timeout)
    except CommandFailed as error:
        if error.returncode == 255 and command[0] in ("ssh", "scp"):
            reason = _ssh_failure(error.stderr, host, port)
            raise TargetError(f"{what}: {reason}") from None
        raise


def run_ssh(target, script, args, files, fetch=None, identity=None,
            python="python3", timeout=1800, accept_new_host_key=False):
    """Runs `script args` on the board; returns stdout.

    Args:
        files: local files to copy (the model, the script, inputs); `args`
            refer to them by their base names.
        fetch: `(remote base name, local path)` to copy back, or None.
        python: the board's Python (a name on its PATH or a path).
        accept_new_host_key: trust and record an unknown board's host key
            (`StrictHostKeyChecking=accept-new`) instead of refusing it.
    """
    user, host, port = parse_ssh_target(target)
    options = _ssh_options(identity, accept_new_host_key)
    address = f"{user}@{host}"
    # "--" ends the options: nothing after it is read as one.
    ssh = ["ssh", *options, "-p", str(port), "--", address]
    scp = ["scp", *options, "-P", str(port), "--"]
    remote = _call(ssh + ["mktemp -d"], f"ssh to {host}:{port}",
                   CONNECT_TIMEOUT + 20, host, port).strip()
    if not remote.startswith("/") or any(c.isspace() for c in remote):
        raise TargetError(f"mktemp -d on {host} printed {remote[:80]!r}, not "
                          "a directory path")
    try:
        _call(scp + [*files, f"{address}:{remote}/"], f"copying to {host}",
              timeout, host, port)
        command = "cd {} && exec {} {} {}".format(
            shlex.quote(remote), shlex.quote(python),
            shlex.quote(os.path.basename(script)),
            " ".join(shlex.quote(a) for a in args))
        # -tt: the bench gets a pseudo-terminal, so it is hung up (SIGHUP)
        # when the connection ends, however we end.
        out = _call(ssh[:1] + ["-tt"] + ssh[1:] + [command],
                    f"bench on {host}", timeout, host, port)
        if fetch:
            _call(scp + [f"{address}:{remote}/{fetch[0]}", fetch[1]],
                  f"copying results from {host}", timeout, host, port)
        return out
    finally:
        try:
            run_command(ssh + [f"rm -rf {shlex.quote(remote)}"],
                        f"removing {remote} on {host}", CONNECT_TIMEOUT + 20)
        except TargetError:
            pass  # The board went away; the error that got us here matters.


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
        raise TargetError(
            "benchmark_model printed no 'Inference timings' line")
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


def _device_shell(base, words, what, timeout):
    """`adb shell` with each word quoted: adb joins its arguments into one
    line for the device's `sh -c`, so an unquoted word would be code."""
    return _call(base + ["shell", " ".join(shlex.quote(w) for w in words)],
                 what, timeout)


def run_adb(target, tflite_path, threads, runs, warmup, xnnpack,
            benchmark_binary=None, timeout=1800):
    adb = shutil.which("adb")
    if adb is None:
        raise TargetError("adb is not installed; install it with "
                          "`sudo apt-get install adb`")
    serial = target.partition(":")[2] or None
    if serial is not None and not re.fullmatch(r"[A-Za-z0-9_.:-]+", serial):
        raise TargetError(f"bad adb serial {serial!r}; expected letters, "
                          "digits, '.', '_', ':' and '-'")
    devices = adb_devices(adb)
    if not devices:
        raise TargetError("no Android device attached (`adb devices` lists "
                          "none); connect one with USB debugging enabled")
    if serial and serial not in devices:
        raise TargetError(f"Android device {serial} is not attached; "
                          f"attached: {', '.join(devices)}")
    base = [adb] + (["-s", serial] if serial else [])
    pushed = [DEVICE_MODEL]
    try:
        # The model goes under a fixed name: its own name never reaches the
        # device's shell.
        _call(base + ["push", "--", os.path.abspath(tflite_path),
                      DEVICE_MODEL], "adb push", timeout)
        if benchmark_binary:
            pushed.append(DEVICE_BINARY)
            _call(base + ["push", "--", os.path.abspath(benchmark_binary),
                          DEVICE_BINARY], "adb push", timeout)
            _device_shell(base, ["chmod", "755", DEVICE_BINARY], "adb chmod",
                          60)
        out = _device_shell(
            base, [DEVICE_BINARY, f"--graph={DEVICE_MODEL}",
                   f"--num_threads={int(threads)}", f"--num_runs={int(runs)}",
                   f"--warmup_runs={int(warmup)}",
                   f"--use_xnnpack={'true' if xnnpack else 'false'}"],
            "benchmark_model on the device", timeout)
    finally:
        try:
            _device_shell(base, ["rm", "-f", *pushed], "adb cleanup", 60)
        except TargetError:
            pass  # The device went away; the error that got us here matters.
    return parse_benchmark_model(out)
