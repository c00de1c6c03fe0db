"""Convert, verify and inspect TFLite (LiteRT) models made from Keras 3.

The library part: `convert(model, mode, ...)` returns `.tflite` bytes,
`verify(tflite_bytes, keras_model, x, y)` checks them against the Keras model
with `ai_edge_litert`, and `inspect(tflite_bytes)` reports ops, int8 coverage,
weight sparsity and sizes. This package is the only place in the project that
imports TensorFlow.
"""

from tflite_export.convert import MODES
from tflite_export.convert import ConversionError
from tflite_export.convert import convert
from tflite_export.convert import save_atomically
from tflite_export.inspection import gzip_size
from tflite_export.inspection import inspect
from tflite_export.verify import verify

__all__ = ["MODES", "ConversionError", "convert", "gzip_size", "inspect",
           "save_atomically", "verify"]
