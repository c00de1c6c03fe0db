"""`micro_export`: a Keras model to what a microcontroller's firmware needs.

The file is fully integer (int8 input and output, no float op: a QAT
model keeps its learned ranges, a float one is calibrated on the
representative data), has a fixed batch of 1 (TFLM plans memory for
static shapes), and optionally stores few-valued kernels as LUT indices.
Then TFLM's own interpreter measures its arena and checks its answers,
and the budget says whether it fits the board.
"""

from __future__ import annotations

import dataclasses
import json
import os

from tflite_export import inspection
from tflite_export.atomic_write import save_atomically
from tflite_export.errors import MicroError
from tflite_export.errors import OutputError
from tflite_export.input_matching import input_names
from tflite_export.micro import agreement as agreement_lib
from tflite_export.micro import boards
from tflite_export.micro import c_source
from tflite_export.micro import lut
from tflite_export.micro import runtime
from tflite_export.micro.report import markdown

_BOUNDARY = ("QUANTIZE", "DEQUANTIZE")


@dataclasses.dataclass
class MicroExport:
    """What `micro_export` made and measured.

    `flash` is the file's bytes (what the firmware stores); `arena` its
    TFLM tensor arena, which is all the RAM TFLM takes for the model
    (activations, input, output and the interpreter's own structures).
    With compression, `int8_tflite`, `int8_size` and `int8_arena` are the
    uncompressed file's (which LiteRT can run, where TFLM_DECODE is
    unknown): TFLM_DECODE expands each compressed kernel into the arena
    just before the op that reads it, so compression trades RAM for flash.
    """

    tflite: bytes = dataclasses.field(repr=False)
    int8_tflite: bytes = dataclasses.field(repr=False)
    name: str
    mode: str
    ops: list
    resolver: list
    int8_size: int
    flash: int
    compressed_tensors: list
    arena: runtime.Arena
    int8_arena: runtime.Arena | None
    agreement: agreement_lib.Agreement | None
    fit: dict

    @property
    def fits(self):
        return self.fit["fits"]

    def to_dict(self):
        result = {field.name: getattr(self, field.name) for field in
                  dataclasses.fields(self)
                  if field.name not in ("tflite", "int8_tflite")}
        result.update(
            arena=self.arena.to_dict(),
            int8_arena=self.int8_arena and self.int8_arena.to_dict(),
            agreement=self.agreement and self.agreement.to_dict(),
            compressed_tensors=[dataclasses.asdict(c)
                                for c in self.compressed_tensors])
        return result


def _integer_mode(model):
    from kcompress.quantization import quantized_layers

    return "qat" if quantized_layers(model) else "int8"


def check_integer(tflite_bytes):
    """Refuses a file that keeps a float op or float input or output."""
    ops = inspection.inspect(tflite_bytes).ops
    floating = sorted({op.name for op in ops if op.kind == "float"})
    if floating:
        raise MicroError(
            f"The file keeps float ops, which a microcontroller's int8 "
            f"kernels cannot run: {', '.join(floating)}. Quantize the layers "
            "that make them (kcompress.quantize_model, or int8 "
            "representative data that covers them).")
    lite = inspection.interpreter_for(tflite_bytes, delegates=False)
    for kind, details in (("input", lite.get_input_details()),
                          ("output", lite.get_output_details())):
        for detail in details:
            if detail["dtype"].__name__ not in ("int8", "int16"):
                raise MicroError(
                    f"The file's {kind} {detail['name']!r} is "
                    f"{detail['dtype'].__name__}; a microcontroller file "
                    "takes and gives int8. Convert with float_io=False.")


def check_out_dir(out_dir):
    """Refuses an `out_dir` that exists and is not a directory."""
    if out_dir is not None and os.path.exists(out_dir) and not os.path.isdir(
            out_dir):
        raise OutputError(f"--out={out_dir} is a file; expected a directory "
                          "for the micro files")


def micro_export(model, representative_data, out_dir=None, *, board=None,
                 max_flash=None, max_ram=None, compress=False,
                 verify_data=None, labels=None, name="model"):
    """Converts `model` for TFLM, measures it, and writes the firmware files.

    Args:
        model: a Keras model (QAT, pruned, clustered or float), or the
            bytes of a fully integer `.tflite` file.
        representative_data: typical inputs (array, or list per input):
            they calibrate a float model's int8 ranges, and the first one
            sizes the arena.
        out_dir: directory for `<name>.tflite`, `<name>_data.cc`,
            `<name>_data.h`, `<name>_ops.h` and `micro_report.{json,md}`,
            each written atomically; None writes nothing.
        board: a name in `boards.BOARDS`, or None.
        max_flash, max_ram: budgets in bytes, alone or tightening `board`'s.
        compress: store kernels of few distinct values (clustered ones) with
            TFLM's LUT compression (`lut`).
        verify_data: inputs to compare TFLM with LiteRT and Keras on
            (default: `representative_data`).
        labels: integer labels of `verify_data`, for accuracy.
        name: the stem of the files and C symbols.

    Returns:
        A `MicroExport`. Whether it fits is `result.fits`; the command line
        exits 2 when it does not.

    Raises:
        MicroError: a float op, an op TFLM has no kernel for, an unknown
            board, nothing to compress.
        OutputError: an `out_dir` that is a file.
    """
    import numpy as np

    from tflite_export.conversion import check_data
    from tflite_export.conversion import check_model
    from tflite_export.conversion import convert

    limits = boards.budget(board, max_flash, max_ram)
    check_out_dir(out_dir)
    if not name.isidentifier():
        raise MicroError(f"Received: name={name!r}. Expected a C identifier "
                         "(letters, digits and _).")
    keras_model = None
    if isinstance(model, (bytes, bytearray)):
        int8_bytes, mode = inspection.check_tflite_bytes(bytes(model)), "file"
        arrays = [np.asarray(representative_data, np.float32)]
    else:
        check_model(model)
        keras_model, mode = model, _integer_mode(model)
        arrays = check_data(representative_data, model)
        int8_bytes = convert(model, mode, representative_data=arrays,
                             float_io=False, batch_size=1)
    check_integer(int8_bytes)
    choices = lut.plan(int8_bytes) if compress else []
    micro_bytes = lut.compress(int8_bytes, choices) if compress else (
        int8_bytes)
    ops = c_source.ops(micro_bytes)
    resolver = [c_source.resolver_method(op) for op in ops]
    names = input_names(keras_model) if keras_model is not None else None
    sample = agreement_lib.first_sample(int8_bytes, arrays, names)
    arena = runtime.minimum_arena(micro_bytes, sample)
    int8_arena = (runtime.minimum_arena(int8_bytes, sample) if compress
                  else None)
    check_arrays = arrays
    if verify_data is not None:
        check_arrays = (check_data(verify_data, keras_model, "verify_data")
                        if keras_model is not None
                        else [np.asarray(verify_data, np.float32)])
    agreement = agreement_lib.compare(
        micro_bytes, int8_bytes, keras_model, check_arrays, arena.size,
        labels, litert_arena_size=int8_arena and int8_arena.size)
    result = MicroExport(
        tflite=micro_bytes, int8_tflite=int8_bytes, name=name, mode=mode,
        ops=ops, resolver=resolver,
        int8_size=len(int8_bytes), flash=len(micro_bytes),
        compressed_tensors=choices, arena=arena, int8_arena=int8_arena,
        agreement=agreement,
        fit=boards.check(len(micro_bytes), arena.size, limits))
    if out_dir is not None:
        write(result, out_dir)
    return result


def write(result, out_dir):
    """Writes the files of a `MicroExport` into `out_dir`, each atomically;
    returns their paths."""
    check_out_dir(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    source, header = c_source.model_data(result.tflite, result.name)
    files = {
        f"{result.name}.tflite": result.tflite,
        f"{result.name}_data.cc": source.encode(),
        f"{result.name}_data.h": header.encode(),
        f"{result.name}_ops.h": c_source.model_ops(
            result.tflite, result.name).encode(),
        "micro_report.json": json.dumps(result.to_dict(), indent=2).encode(),
        "micro_report.md": markdown(result.to_dict()).encode(),
    }
    paths = []
    for filename, data in files.items():
        path = os.path.join(out_dir, filename)
        save_atomically(data, path)
        paths.append(path)
    return paths
