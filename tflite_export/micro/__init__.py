"""TensorFlow Lite Micro: a model for a microcontroller, measured by TFLM.

`micro_export(model, representative_data, out_dir)` writes what the
firmware needs (`export`):

- `model.tflite`, fully integer: int8 input and output, no float op (a
  model that would keep one is refused, the op named), batch 1;
- `model_data.cc` and `model_data.h`: the bytes as a 16-byte-aligned C
  array and its length (`c_source`);
- `model_ops.h`: a `tflite::MicroMutableOpResolver<N>` for exactly the ops
  the file uses, one `AddX()` each (`c_source`);
- `micro_report.json` and `micro_report.md`: flash (the file's bytes), the
  arena TFLM needs, measured by TFLM's own interpreter (`runtime`: the
  smallest size that runs, by bisection), whether it fits a board
  (`boards`), and TFLM's answers against LiteRT's and Keras's
  (`agreement`).

With `compress=True`, kernels with few distinct values per channel (a
clustered model's) are stored as LUT indices with TFLM's own compressor
(`lut`); TFLM's outputs stay those of the uncompressed file.

TFLM's interpreter comes from the `tflite-micro` wheel: `pip install
'kcompress[micro]'`. The command line is `tflite_export micro`.
"""

from tflite_export.micro.boards import BOARDS
from tflite_export.micro.boards import Board
from tflite_export.micro.export import MicroExport
from tflite_export.micro.export import micro_export
from tflite_export.micro.runtime import Arena
from tflite_export.micro.runtime import minimum_arena

__all__ = ["BOARDS", "Arena", "Board", "MicroExport", "micro_export",
           "minimum_arena"]
