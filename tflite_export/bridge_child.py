"""The child side of `backend_bridge`: load a `.keras` file, convert it.

Run as `python -m tflite_export.bridge_child DIR` with
`KERAS_BACKEND=tensorflow`; DIR holds the files `backend_bridge` names.
"""

import json
import os
import sys
import warnings

import numpy as np

from tflite_export import backend_bridge
from tflite_export.errors import ExportError


def _load(path):
    import keras

    import kcompress  # noqa: F401  Registers kcompress's classes.

    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as error:  # noqa: BLE001  Reported as one message.
        raise ExportError(
            "The TensorFlow backend cannot load the model "
            f"({type(error).__name__}: "
            f"{str(error).strip().splitlines()[0][:300]}). Register its "
            "custom layers with keras.saving.register_keras_serializable in "
            "an importable module, or convert with KERAS_BACKEND=tensorflow."
        ) from None


def convert_directory(work):
    """Converts DIR's request; writes the output and the result files."""
    from tflite_export.conversion import convert

    with open(os.path.join(work, backend_bridge.REQUEST_FILE)) as f:
        request = json.load(f)
    samples = None
    data_path = os.path.join(work, backend_bridge.DATA_FILE)
    if os.path.exists(data_path):
        with np.load(data_path, allow_pickle=False) as data:
            samples = [data[f"arr_{i}"] for i in range(len(data.files))]
    result = {"warnings": []}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model = _load(os.path.join(work, backend_bridge.MODEL_FILE))
            tflite = convert(model, request["mode"],
                             representative_data=samples,
                             **request["options"])
        except ExportError as error:
            result["error"] = str(error)
        else:
            with open(os.path.join(work, backend_bridge.OUTPUT_FILE),
                      "wb") as f:
                f.write(tflite)
    # Only our own warnings (a float op left in the file...), not the
    # loading chatter of Keras and TensorFlow.
    ours = (f"{os.sep}tflite_export{os.sep}", f"{os.sep}kcompress{os.sep}")
    result["warnings"] = [str(w.message) for w in caught
                          if any(part in w.filename for part in ours)]
    with open(os.path.join(work, backend_bridge.RESULT_FILE), "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    convert_directory(sys.argv[1])
