"""Files written whole or not at all: a temporary file, then a rename."""

import os
import tempfile


def write_text(path, text):
    """Writes `text` to `path` through a temporary file in its directory."""
    directory = os.path.dirname(os.path.abspath(path))
    handle, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        with os.fdopen(handle, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
