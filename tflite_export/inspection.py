"""`inspect`: what is inside a `.tflite` file.

Reads the flatbuffer through `ai_edge_litert`'s interpreter: the ops and the
types they run in, the share of ops that run in integer arithmetic, the zero
fraction of each constant weight, and the size raw and gzipped.
"""

from __future__ import annotations

import dataclasses
import gzip
import os

import numpy as np

from tflite_export.errors import ExportError
from tflite_export.file_bytes import operators

_FLOAT = (np.float32, np.float16, np.float64)
_BOUNDARY_OPS = ("QUANTIZE", "DEQUANTIZE")


class ModelFileError(ExportError, ValueError):
    """Bytes that are not a TFLite flatbuffer the runtime can load."""


def check_tflite_bytes(tflite_bytes, argument="tflite_bytes"):
    """`tflite_bytes` as `bytes`, or a `ModelFileError` saying what it got."""
    if isinstance(tflite_bytes, (bytes, bytearray, memoryview)):
        return bytes(tflite_bytes)
    if isinstance(tflite_bytes, (str, os.PathLike)):
        raise ModelFileError(
            f"Received: {argument}={os.fspath(tflite_bytes)!r}, a path. "
            "Expected the .tflite flatbuffer as bytes: pass "
            "open(path, 'rb').read().")
    raise ModelFileError(
        f"Received: {argument} of type {type(tflite_bytes).__name__}. "
        "Expected the .tflite flatbuffer as bytes (what "
        "tflite_export.convert returns).")


def interpreter_for(tflite_bytes, num_threads=None, delegates=True,
                    reference_kernels=False):
    """An allocated `ai_edge_litert` interpreter for the flatbuffer.

    Args:
        tflite_bytes: the flatbuffer.
        num_threads: CPU threads, or None for the runtime's default.
        delegates: apply the default delegates (XNNPACK). Without them the
            interpreter shows the graph as the file holds it.
        reference_kernels: LiteRT's reference kernels (no delegates), the
            plain C++ that TFLM's kernels also follow.
    """
    from ai_edge_litert import interpreter as litert

    tflite_bytes = check_tflite_bytes(tflite_bytes)
    resolver = (litert.OpResolverType.AUTO if delegates else
                litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    if reference_kernels:
        resolver = litert.OpResolverType.BUILTIN_REF
    try:
        interpreter = litert.Interpreter(
            model_content=tflite_bytes, num_threads=num_threads,
            experimental_op_resolver_type=resolver)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as error:
        first = (str(error).strip().splitlines() or ["no message"])[0]
        raise ModelFileError(
            f"cannot load {len(tflite_bytes):,} bytes as a TFLite model "
            f"(truncated or corrupt?): {first[:200]}") from None
    return interpreter


@dataclasses.dataclass
class OpInfo:
    index: int
    name: str
    input_types: tuple
    output_types: tuple
    kind: str  # "integer" (int8/int16 data), "float", or "shape" (int32 only)

    @property
    def integer(self):
        return self.kind == "integer"


@dataclasses.dataclass
class Inspection:
    size: int
    gzip_size: int
    ops: list
    weight_zero_fraction: dict  # tensor name (or 'tensor N') -> zeros

    @property
    def int8_coverage(self):
        """Share of data ops (shape arithmetic left out) running in integer."""
        data_ops = [op for op in self.ops if op.kind != "shape"]
        return sum(op.integer for op in data_ops) / max(len(data_ops), 1)

    @property
    def float_ops(self):
        return [op for op in self.ops if op.kind == "float"]

    def to_dict(self):
        return {
            "size": self.size,
            "gzip_size": self.gzip_size,
            "int8_coverage": self.int8_coverage,
            "ops": [dataclasses.asdict(op) for op in self.ops],
            "weight_zero_fraction": self.weight_zero_fraction,
        }


def gzip_size(data: bytes) -> int:
    """Size of `data` after gzip at level 9."""
    return len(gzip.compress(bytes(data), compresslevel=9))


def inspect(tflite_bytes: bytes) -> Inspection:
    """Reports the ops, int8 coverage, weight sparsity and sizes.

    An op counts as float when any of its tensors is floating point, as
    integer when it moves int8/int16 data and no float, and as shape
    arithmetic when all its tensors are int32/int64 (left out of coverage). A
    float model therefore has coverage 0, and a QAT model with float input and
    output has every op but the input QUANTIZE and the output DEQUANTIZE in
    integer.

    Returns:
        An `Inspection`.
    """
    interpreter = interpreter_for(tflite_bytes, delegates=False)
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    ops = operators(tflite_bytes)
    produced = {i for op in ops for i in op["outputs"]}
    graph_inputs = {t["index"] for t in interpreter.get_input_details()}
    infos, zero_fraction = [], {}
    for op in ops:
        # -1 marks an optional tensor left out (an LSTM's unused gates).
        inputs = [i for i in op["inputs"] if i >= 0 and i in tensors]
        outputs = [i for i in op["outputs"] if i >= 0 and i in tensors]
        in_types = tuple(np.dtype(tensors[i]["dtype"]).name for i in inputs)
        out_types = tuple(np.dtype(tensors[i]["dtype"]).name
                          for i in outputs)
        types = {np.dtype(tensors[i]["dtype"]).type
                 for i in inputs + outputs}
        if types & set(_FLOAT):
            kind = "float"
        elif types & {np.int8, np.uint8, np.int16}:
            kind = "integer"
        else:
            kind = "shape"
        infos.append(OpInfo(op["index"], op["op_name"], in_types, out_types,
                            kind))
        for i in inputs:
            if i in produced or i in graph_inputs:
                continue
            detail = tensors[i]
            if len(detail["shape"]) < 2:
                continue  # biases, shapes, scalars
            try:
                values = interpreter.get_tensor(i)
            except ValueError:
                continue
            # Files converted without keep_names have no tensor names.
            name = detail["name"] or f"tensor {i}"
            zero_fraction[name] = float(np.mean(values == 0))
    return Inspection(len(tflite_bytes), gzip_size(tflite_bytes), infos,
                      zero_fraction)


def kernel_weights(tflite_bytes: bytes) -> dict:
    """The stored weights of each CONV_2D, DEPTHWISE_CONV_2D and
    FULLY_CONNECTED op: `{"OP_index": (op name, array)}`, as the file holds
    them (int8 in an int8 file), to check what survived conversion: zeros,
    2:4 groups, the values of a clustered kernel.
    """
    interpreter = interpreter_for(tflite_bytes, delegates=False)
    kernels = {}
    for op in operators(tflite_bytes):
        if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D",
                             "FULLY_CONNECTED"):
            kernels[f"{op['op_name']}_{op['index']}"] = (
                op["op_name"], interpreter.get_tensor(op["inputs"][1]))
    return kernels
