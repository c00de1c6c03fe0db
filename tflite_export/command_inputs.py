"""The command's input and output paths, checked before any slow work.

Every check raises `CliError` (an `ExportError`), which the command turns
into one line on stderr and exit status 2.
"""

import os
import tempfile
import zipfile

from tflite_export import reports
from tflite_export.errors import ExportError


class CliError(ExportError):
    """Bad input to the command line itself (arguments, flags, paths)."""


def check_input(path, extensions):
    """Refuses a missing, empty, non-regular or misnamed input file."""
    kind = " or ".join(extensions)
    if not os.path.lexists(path):
        raise CliError(f"file not found: {path}")
    if os.path.isdir(path):
        raise CliError(f"{path} is a directory; expected a {kind} file")
    if not path.endswith(extensions):
        raise CliError(f"{path} is not a {kind} model")
    if not os.path.isfile(path):
        raise CliError(f"{path} is not a regular file; expected a {kind} file")
    try:
        size = os.path.getsize(path)
        with open(path, "rb"):
            pass
    except OSError as error:
        raise CliError(f"cannot read {path}: {error.strerror}") from None
    if size == 0:
        raise CliError(f"{path} is empty (0 bytes); expected a {kind} file")


def _same_file(a, b):
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def check_writable(path, protected=()):
    """Refuses an output that is a directory, a protected (input) file, or
    in a directory we cannot create files in: checked before slow work."""
    if os.path.isdir(path):
        raise CliError(f"--out={path} is a directory; expected a .tflite file "
                       "path")
    for other in protected:
        if os.path.lexists(path) and _same_file(path, other):
            raise CliError(f"{path} is an input of this command; refusing to "
                           "overwrite it")
    directory = os.path.dirname(os.path.abspath(path))
    try:
        handle, probe = tempfile.mkstemp(dir=directory, prefix=".tmp-probe-")
        os.close(handle)
        os.remove(probe)
    except OSError as error:
        raise CliError(f"cannot write to {directory}: "
                       f"{error.strerror or error}") from None


def check_output(path, inputs):
    if not path:
        raise CliError("--out is required: the .tflite file to write")
    if not path.endswith(".tflite") or os.path.basename(path) == ".tflite":
        raise CliError(f"--out={path} does not end in .tflite; expected the "
                       ".tflite file to write (the input model is never "
                       "overwritten)")
    for output in (path, *reports.report_paths(path)):
        check_writable(output, protected=inputs)


def load_keras(path):
    """The model in `path`, which the caller has checked with
    `check_input`."""
    if not zipfile.is_zipfile(path):
        raise CliError(f"{path} is not a .keras archive (truncated or "
                       "corrupt?)")
    import keras

    import kcompress  # noqa: F401  (registers its layers for loading)

    try:
        return keras.saving.load_model(path)  # safe_mode: no Lambda code
    except Exception as error:  # noqa: BLE001 (any failure means unreadable)
        first = str(error).strip().splitlines()[:1] or [type(error).__name__]
        raise CliError(f"cannot load {path} (truncated or corrupt?): "
                       f"{first[0][:200]}") from None


def read_tflite(path):
    """The bytes of a `.tflite` file the runtime can load, or a CliError."""
    from tflite_export.inspection import interpreter_for

    check_input(path, (".tflite",))
    with open(path, "rb") as f:
        data = f.read()
    try:
        interpreter_for(data, delegates=False)
    except ExportError as error:
        raise CliError(f"{path}: {error}") from None
    return data
