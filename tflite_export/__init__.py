"""Convert, verify and inspect TFLite (LiteRT) models made from Keras 3.

The library part: `convert(model, mode, ...)` returns `.tflite` bytes,
`verify(tflite_bytes, keras_model, x, y)` checks them against the Keras model
with `ai_edge_litert` (each output matched by name), `verify_detections(...)`
scores a detector's file and model in mAP, and `inspect(tflite_bytes)`
reports ops, int8 coverage, weight sparsity and sizes. TensorFlow is this
package's (kcompress reaches for it only in two fenced places: TensorBoard
event files and a `tf.distribute` check), and it loads lazily: `import
tflite_export` loads neither Keras nor TensorFlow. Every error it raises on
purpose is an `ExportError` (also a `ValueError`, `RuntimeError` or
`OSError`).
"""

from tflite_export import targets
from tflite_export.atomic_write import save_atomically
from tflite_export.conversion import MODES
from tflite_export.conversion import ConversionError
from tflite_export.conversion import convert
from tflite_export.conversion import input_specs
from tflite_export.detection_verification import DetectionVerification
from tflite_export.detection_verification import run_detections
from tflite_export.detection_verification import verify_detections
from tflite_export.errors import CommandFailed
from tflite_export.errors import DataError
from tflite_export.errors import ExportError
from tflite_export.errors import OutputError
from tflite_export.errors import TargetError
from tflite_export.inspection import Inspection
from tflite_export.inspection import ModelFileError
from tflite_export.inspection import gzip_size
from tflite_export.inspection import inspect
from tflite_export.inspection import kernel_weights
from tflite_export.verification import OutputAgreement
from tflite_export.verification import Verification
from tflite_export.verification import run_tflite
from tflite_export.verification import verify

__all__ = ["MODES", "CommandFailed", "ConversionError", "DataError",
           "DetectionVerification", "ExportError", "Inspection",
           "ModelFileError", "OutputAgreement", "OutputError", "TargetError",
           "Verification", "convert", "gzip_size", "input_specs", "inspect",
           "kernel_weights", "run_detections", "run_tflite",
           "save_atomically", "targets", "verify", "verify_detections"]
