"""Running the helper programs (benches, ssh, adb, apt) for the command.

Every failure becomes a `CommandFailed`, a `CliError`, so the command
reports it as one line and exits with status 2.
"""

import json
import subprocess

from tflite_export.errors import CliError


class CommandFailed(CliError):
    """A helper program exited non-zero; `returncode` says how."""

    def __init__(self, message, returncode):
        super().__init__(message)
        self.returncode = returncode


def _last_line(text, default):
    return (text.strip().splitlines() or [default])[-1]


def run_command(command, what, timeout=None, cwd=None):
    """Runs `command`; returns its stdout.

    Raises:
        CliError: if it does not finish within `timeout` seconds.
        CommandFailed: if it exits non-zero (the message ends with the last
            line it printed on stderr).
    """
    try:
        done = subprocess.run(command, capture_output=True, text=True,
                              timeout=timeout, cwd=cwd)
    except subprocess.TimeoutExpired:
        raise CliError(f"{what} did not finish within {timeout} s") from None
    if done.returncode != 0:
        raise CommandFailed(
            f"{what} failed (exit {done.returncode}): "
            f"{_last_line(done.stderr, 'no output')}", done.returncode)
    return done.stdout


def last_json(stdout, what):
    """The last line of `stdout` that is a JSON object, parsed."""
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise CliError(f"{what} printed no result")
    return json.loads(lines[-1])
