"""Whether a QAT layer is traced for export, by kcompress or by the stock
path TFMOT taught.

A QAT layer traces two ways. In inference it computes as the int8 kernels
do (`int8_kernels`): exact integer sums, roundings and clips, so that
`predict` gives the file's answers. For export it must trace the float
graph with FakeQuant ops instead, which the TFLite converter folds into
int8 kernels. `tflite_export.convert` sets `export_mode` on every QAT layer
while it traces. TFMOT's guides convert with the stock
`tf.lite.TFLiteConverter.from_keras_model(qat_model)`, which traces
`model(x, training=False)` through Keras's `ExportArchive`; so does
`model.export()`. Traced the inference way, that file held the emulation's
float ROUND, MUL and MAXIMUM ops and no int8 kernel, larger than the float
file. So a trace made inside Keras's export code counts as an export trace
too, and the stock converter gives a real int8 file.
"""

import os
import sys

__all__ = ["ExportMode", "in_keras_export"]

_KERAS_EXPORT = os.path.join("keras", "src", "export") + os.sep
# Far deeper than Keras's export code calls a layer from.
_MAX_FRAMES = 400


def in_keras_export():
    """Whether the current call runs inside Keras's export code
    (`keras.export.ExportArchive`: `model.export`, the TFLite converter's
    `from_keras_model`)."""
    frame = sys._getframe(1)
    for _ in range(_MAX_FRAMES):
        if frame is None:
            return False
        if _KERAS_EXPORT in frame.f_code.co_filename:
            return True
        frame = frame.f_back
    return False


class ExportMode:
    """The `export_mode` flag of a QAT layer: set by `tflite_export` while
    it traces, and True inside Keras's export code (`in_keras_export`)."""

    def __set_name__(self, owner, name):
        self._slot = f"_{name}_set"

    def __get__(self, layer, owner=None):
        if layer is None:
            return self
        return layer.__dict__.get(self._slot, False) or in_keras_export()

    def __set__(self, layer, value):
        layer.__dict__[self._slot] = bool(value)
