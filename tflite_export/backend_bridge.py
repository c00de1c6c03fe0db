"""Converting a model of the JAX or PyTorch backend in a TensorFlow child.

The TFLite converter reads TensorFlow graphs. On JAX, Keras's export goes
through jax2tf, which leaves every fake quantization as float arithmetic
(FLOOR, ROUND, MUL...): a float file several times larger than the int8 one
the TensorFlow backend gives. The `.keras` format is backend-independent, so
`convert_in_tensorflow` saves the model into a private temporary directory
and a child Python with `KERAS_BACKEND=tensorflow` loads and converts it
(`python -m tflite_export.bridge_child DIR`). The file is the one the
TensorFlow backend gives for the same weights.

The protocol is three files in DIR: the parent writes `model.keras`,
`request.json` and, for calibrated modes, `data.npz`; the child writes
`model.tflite` and `result.json` (`{"warnings": [...]}`, or
`{"error": message}` for a refusal the parent raises as its own).
"""

import json
import os
import sys
import tempfile
import warnings

import numpy as np

from tflite_export.errors import CommandFailed
from tflite_export.errors import ConversionError
from tflite_export.process import run_command

MODEL_FILE = "model.keras"
REQUEST_FILE = "request.json"
DATA_FILE = "data.npz"
OUTPUT_FILE = "model.tflite"
RESULT_FILE = "result.json"


def child_environment():
    """The caller's environment with the TensorFlow backend forced."""
    environment = dict(os.environ)
    environment["KERAS_BACKEND"] = "tensorflow"
    environment.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return environment


def _save(model, path):
    try:
        model.save(path)
    except Exception as error:  # noqa: BLE001  Any failure means the same.
        raise ConversionError(
            f"Model '{model.name}' cannot be saved as .keras "
            f"({type(error).__name__}: {str(error).splitlines()[0][:300]}), "
            "and a JAX or PyTorch model converts through a .keras file. Make "
            "its custom layers serializable (get_config), or build and "
            "convert it with KERAS_BACKEND=tensorflow.") from None


def convert_in_tensorflow(model, mode, samples=None, **options):
    """Converts `model` in a TensorFlow-backend child process.

    Args:
        model: a Keras model of any backend. It is saved, not modified.
        mode: a `tflite_export.MODES` entry.
        samples: the checked representative arrays (one per input), or None.
        **options: the other keyword arguments of `convert` (`float_io`,
            `allow_flex`, `sparse_encoding`, `batch_size`, `keep_names`), JSON
            values.

    Returns:
        The `.tflite` bytes. The child's warnings are warned again here.

    Raises:
        ConversionError: the child's refusal, word for word; or a child that
            could not load the model (a custom layer not registered with
            `keras.saving.register_keras_serializable` in an importable
            module) or crashed.
    """
    with tempfile.TemporaryDirectory(prefix="kcompress-bridge-") as work:
        _save(model, os.path.join(work, MODEL_FILE))
        with open(os.path.join(work, REQUEST_FILE), "w") as f:
            json.dump({"mode": mode, "options": options}, f)
        if samples is not None:
            np.savez(os.path.join(work, DATA_FILE),
                     *[np.asarray(array) for array in samples])
        command = [sys.executable, "-m", "tflite_export.bridge_child", work]
        try:
            run_command(command, "the TensorFlow-backend conversion",
                        env=child_environment())
        except CommandFailed as error:
            raise ConversionError(
                "Converting in a TensorFlow-backend child process failed: "
                f"{str(error).split(': ', 1)[-1]}") from None
        with open(os.path.join(work, RESULT_FILE)) as f:
            result = json.load(f)
        if result.get("error"):
            raise ConversionError(result["error"])
        for message in result.get("warnings", []):
            warnings.warn(message, stacklevel=3)
        with open(os.path.join(work, OUTPUT_FILE), "rb") as f:
            return f.read()
