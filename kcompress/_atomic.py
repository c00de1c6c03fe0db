"""Files written whole or not at all: a temporary file, `fsync`, a rename.

The one atomic writer of the project (`tflite_export.save_atomically`
calls it). A reader never sees a partial file, a crash after the call
returns leaves the new contents on disk, and a failure leaves no
temporary file behind. The file keeps the permissions of the file it
replaces; a new file gets what any file the user writes gets (0666 less
the umask), not `mkstemp`'s private 0600.
"""

import os
import stat
import tempfile


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _mode(path):
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return 0o666 & ~_umask()


class DirectoryNotWritable(OSError):
    """The temporary file could not be made beside the destination."""


def write_bytes(path, data):
    """Writes `data` to `path` through a synced temporary file and a rename.

    Raises:
        IsADirectoryError: if `path` is a directory.
        DirectoryNotWritable: if no file can be made in its directory.
        OSError: if writing or renaming fails.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(
            f"Received: path={path!r}, a directory. Expected a file path.")
    directory = os.path.dirname(os.path.abspath(path))
    try:
        handle, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-",
                                       suffix=os.path.basename(path))
    except OSError as error:
        raise DirectoryNotWritable(error.errno, error.strerror,
                                   directory) from None
    try:
        with os.fdopen(handle, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _mode(path))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    _sync_directory(directory)


def _sync_directory(directory):
    # The rename itself is durable once the directory entry is synced
    # (POSIX; Windows has no directory handles to sync).
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_text(path, text):
    """Writes `text` (UTF-8) to `path` as `write_bytes` does."""
    write_bytes(path, text.encode("utf-8"))
