"""The command's terminal: only its own lines on stderr, signals as errors.

`HeldStderr` points file descriptor 2 at a temporary file for the whole run,
so what TensorFlow's C++ start-up, the converter and Python warnings print
is held back; `say` writes to the real stderr, and `replay` shows what was
held (with `--verbose`, or after a crash). `sigterm_as_interrupt` turns
SIGTERM into `Terminated`, raised like Ctrl-C, so every cleanup runs.
"""

import contextlib
import os
import signal
import sys
import tempfile


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that every cleanup runs."""


class HeldStderr:
    """Points fd 2 at a temporary file, so only our own lines reach the
    terminal; `say` writes to the real stderr, `replay` shows what was held."""

    def __enter__(self):
        sys.stderr.flush()
        self.real = os.dup(2)
        self.held = tempfile.TemporaryFile()
        os.dup2(self.held.fileno(), 2)
        return self

    def say(self, text):
        sys.stderr.flush()
        os.write(self.real, (text.rstrip("\n") + "\n").encode())

    def replay(self):
        sys.stderr.flush()
        self.held.seek(0)
        os.write(self.real, self.held.read())

    def __exit__(self, *exc_info):
        sys.stderr.flush()
        os.dup2(self.real, 2)
        os.close(self.real)
        self.held.close()


def _raise_terminated(signum, frame):
    raise Terminated()


@contextlib.contextmanager
def sigterm_as_interrupt():
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
