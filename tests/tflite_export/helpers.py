"""Running the command as a user runs it, and checking how it fails."""

import hashlib
import os
import subprocess
import sys


def cli(*args, env=None, timeout=900, cwd=None):
    """`python -m tflite_export ARGS` in a subprocess; the CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "tflite_export", *args],
                          capture_output=True, text=True, timeout=timeout,
                          cwd=cwd, env={**os.environ, **(env or {})})


def assert_bad_input(done, message):
    """Exit 2 and exactly one stderr line, the error, holding `message`."""
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr[-3000:]
    assert lines[0].startswith("tflite_export: error:"), lines
    assert message in lines[0], lines[0]
    assert "Traceback" not in done.stderr


def digests(folder):
    """`{relative path: sha256}` of every file below `folder`."""
    found = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                found[os.path.relpath(path, folder)] = hashlib.sha256(
                    f.read()).hexdigest()
    return found
