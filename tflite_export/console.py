"""The command's terminal: only its own lines on stderr, signals as errors.

`HeldStderr` points file descriptor 2 at a temporary file for the whole run,
so what TensorFlow's C++ start-up, the converter and Python warnings print
is held back; `say` writes to the real stderr, and `replay` shows what was
held (with `--verbose`, or after a crash). `signals_as_interrupts` turns
SIGINT and SIGTERM into `Interrupted`, so every cleanup runs.

`Interrupted` is deliberately not a `KeyboardInterrupt`: when a
KeyboardInterrupt passes through code a C extension runs during an import
(TensorFlow's), CPython records it as unhandled and ends the process by
SIGINT at exit, even after the command caught it and chose exit status 2.
"""

import contextlib
import os
import signal
import sys
import tempfile


class Interrupted(BaseException):
    """SIGINT or SIGTERM, raised so that every cleanup runs."""

    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


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


def _raise_interrupted(signum, frame):
    raise Interrupted(signum)


@contextlib.contextmanager
def signals_as_interrupts():
    """Within the block, SIGINT and SIGTERM raise `Interrupted`."""
    previous = {sig: signal.signal(sig, _raise_interrupted)
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
