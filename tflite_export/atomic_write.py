"""`save_atomically`: outputs appear whole or not at all."""

from __future__ import annotations

import functools
import importlib.util
import os

from tflite_export.errors import OutputError

__all__ = ["save_atomically"]


@functools.cache
def _writer():
    """kcompress's writer, loaded from its file.

    `kcompress._atomic` needs the standard library only, but importing it
    as a submodule runs `kcompress/__init__`, which imports Keras and
    TensorFlow (ten seconds): `tflite_export bench` and `report` would pay
    that for every JSON they write.
    """
    package = importlib.util.find_spec("kcompress")  # does not import it
    path = os.path.join(package.submodule_search_locations[0], "_atomic.py")
    spec = importlib.util.spec_from_file_location("kcompress._atomic_file",
                                                  path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def save_atomically(data: bytes, path: str | os.PathLike) -> None:
    """Writes bytes to `path` via a synced temporary file and a rename.

    kcompress's one atomic writer (`kcompress._atomic.write_bytes`): a
    reader never sees a partial file, a failure leaves no file behind, and
    the file keeps the permissions of the one it replaces (a new file gets
    0666 less the umask, not `mkstemp`'s private 0600).

    Raises:
        OutputError: if the directory cannot be written, or `path` is a
            directory.
    """
    atomic = _writer()
    path = os.fspath(path)
    if os.path.isdir(path):
        raise OutputError(f"{path} is a directory; expected a file path")
    try:
        atomic.write_bytes(path, data)
    except atomic.DirectoryNotWritable as error:
        raise OutputError(f"cannot write to {error.filename}: "
                          f"{error.strerror}") from None
    except OSError as error:
        raise OutputError(f"cannot write {path}: "
                          f"{error.strerror or error}") from None
