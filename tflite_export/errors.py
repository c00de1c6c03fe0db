"""The error the command line turns into one line and exit status 2."""


class CliError(Exception):
    """Bad input to `tflite_export`: reported as one line, exit status 2."""
