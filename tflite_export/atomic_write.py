"""`save_atomically`: outputs appear whole or not at all."""

from __future__ import annotations

import os
import tempfile

from tflite_export.errors import OutputError

__all__ = ["save_atomically"]


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_atomically(data: bytes, path: str | os.PathLike) -> None:
    """Writes bytes to `path` via a temporary file and a rename.

    The file gets the permissions any file the user writes gets (0666 less
    the umask), not `mkstemp`'s private 0600. A reader never sees a partial
    file, and a failure leaves no file behind.

    Raises:
        OutputError: if the directory cannot be written, or `path` is a
            directory.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise OutputError(f"{path} is a directory; expected a file path")
    try:
        handle, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-",
                                       suffix=os.path.basename(path))
    except OSError as error:
        raise OutputError(f"cannot write to {directory}: "
                          f"{error.strerror}") from None
    try:
        with os.fdopen(handle, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as error:
        if os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(error, OSError):
            raise OutputError(f"cannot write {path}: "
                              f"{error.strerror or error}") from None
        raise
