"""Running the helper programs (benches, ssh, scp, adb, apt) for the command.

Every child runs in its own process group and is ended with that group on
any exit of ours: an error, a timeout, Ctrl-C, or SIGTERM (the command turns
SIGTERM into an exception, so this cleanup runs). On Linux each child also
gets SIGKILL if we are killed outright (`PR_SET_PDEATHSIG`), so no bench is
left running reparented to PID 1.
"""

import ctypes
import json
import os
import signal
import subprocess
import sys

from tflite_export.errors import CommandFailed
from tflite_export.errors import TargetError

_PR_SET_PDEATHSIG = 1


def _die_with_parent():
    # Runs in the child between fork and exec; only async-signal-safe calls.
    ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _end_group(process, grace=3.0):
    """SIGTERM the child's process group, then SIGKILL what is left."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, grace)):
        try:
            os.killpg(process.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _jax_backend():
    keras = sys.modules.get("keras")
    try:
        return keras is not None and keras.backend.backend() == "jax"
    except AttributeError:  # Keras still importing
        return False


def _last_line(text, default):
    return (text.strip().splitlines() or [default])[-1]


def run_command(command, what, timeout=None, cwd=None, env=None,
                die_with_parent=None):
    """Runs `command` in its own process group; returns its stdout.

    `die_with_parent=False` skips `PR_SET_PDEATHSIG`, whose code runs between
    fork and exec: a multithreaded caller (JAX's) must not run Python there.
    The default (None) skips it when Keras runs on JAX (merely having jax
    imported, as Keras does when it is installed, does not count).

    Raises:
        TargetError: if it does not finish within `timeout` seconds.
        CommandFailed: if it exits non-zero (the message ends with the last
            line it printed on stderr).
    """
    linux = sys.platform.startswith("linux")
    if die_with_parent is None:
        die_with_parent = not _jax_backend()
    process = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, cwd=cwd, env=env,
        start_new_session=True,
        preexec_fn=_die_with_parent if linux and die_with_parent else None)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _end_group(process)
        raise TargetError(f"{what} did not finish within {timeout} s") from None
    except BaseException:
        _end_group(process)
        raise
    if process.returncode != 0:
        raise CommandFailed(
            f"{what} failed (exit {process.returncode}): "
            f"{_last_line(stderr, 'no output')}", process.returncode, stderr)
    return stdout


def last_json(stdout, what):
    """The last line of `stdout` that is a JSON object, parsed."""
    lines = [line.strip() for line in stdout.splitlines()
             if line.startswith("{")]
    if not lines:
        raise TargetError(f"{what} printed no result")
    try:
        return json.loads(lines[-1])
    except json.JSONDecodeError:
        raise TargetError(f"{what} printed a result that is not JSON: "
                          f"{lines[-1][:100]}") from None


def run_json(command, what, timeout=None):
    """Runs a bench command; returns the JSON object it printed last."""
    return last_json(run_command(command, what, timeout), what)
