"""`python -m tflite_export ...`: the same command as `tflite_export`."""

from tflite_export.cli import run

if __name__ == "__main__":
    run()
