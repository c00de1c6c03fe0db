"""The errors of `tflite_export`, a leaf every other module may import.

Library code raises `ExportError` subclasses (which are also `ValueError`
or `RuntimeError`, so callers can catch the builtin they expect). Only
`cli.py` turns them into one line on stderr and exit status 2.
"""


class ExportError(Exception):
    """Base of every error `tflite_export` raises on purpose."""


class DataError(ExportError, ValueError):
    """A DATA file or array that cannot be used: the message says why."""


class TargetError(ExportError, RuntimeError):
    """A bench target that is missing, unreachable or failed."""


class CommandFailed(TargetError):
    """A helper program exited non-zero; `returncode` says how."""

    def __init__(self, message, returncode, stderr=""):
        super().__init__(message)
        self.returncode = returncode
        self.stderr = stderr


class OutputError(ExportError, OSError):
    """An output path that cannot be written, or must not be."""


class ConversionError(ExportError, ValueError):
    """The model cannot be converted as asked; the message says why."""


class MicroError(ExportError, ValueError):
    """A model a microcontroller cannot run as asked, or one that does not
    fit its budget; the message says why."""
