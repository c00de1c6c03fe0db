"""Weights stored as small indices into a table: TFLM's LUT compression.

A clustered kernel holds at most 16 distinct float values per tensor, so
its int8 kernel holds at most 16 per channel (each channel has its own
scale). TFLM's look-up-table compression
(`tflite_micro.tensorflow.lite.micro.compression`) stores such a tensor as
`k`-bit indices plus one table of `2**k` values per channel, and inserts a
`TFLM_DECODE` op before each consumer that expands it into the arena at run
time. The values the kernels see are unchanged, so the outputs are too.

`plan` picks the kernels (the filters of CONV_2D, DEPTHWISE_CONV_2D and
FULLY_CONNECTED, at most 2**7 values per channel) where the indices and
tables are smaller than the int8 bytes; `compress` applies it.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np

from tflite_export import file_bytes
from tflite_export.errors import MicroError
from tflite_export.micro import c_source

_KERNEL_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
_MAX_BITS = 7
_HEADER = 16  # the decode metadata before each tensor's tables


@dataclasses.dataclass(frozen=True)
class Choice:
    """One kernel to compress: its tensor, the index width and the table
    axis (None: one table for the tensor), and the bytes before and after
    (estimated: indices, tables and header)."""

    tensor: int
    bits: int
    axis: int | None
    before: int
    after: int


def _choice(index, tensor, buffer):
    from tensorflow.lite.python import schema_py_generated as schema

    if tensor.type != schema.TensorType.INT8 or buffer.data is None:
        return None
    values = np.frombuffer(bytes(buffer.data), np.int8).reshape(tensor.shape)
    quantization = tensor.quantization
    channels = 1 if quantization is None or quantization.scale is None else (
        len(quantization.scale))
    axis = quantization.quantizedDimension if channels > 1 else None
    if axis is not None and axis not in (0, values.ndim - 1):
        return None  # TFLM's DECODE takes tables along these axes only
    slices = [values] if axis is None else list(np.moveaxis(values, axis, 0))
    distinct = max(len(np.unique(part)) for part in slices)
    bits = max(1, math.ceil(math.log2(distinct)))
    if bits > _MAX_BITS:
        return None
    after = (math.ceil(values.size * bits / 8) + len(slices) * 2 ** bits
             + _HEADER)
    if after >= values.size:
        return None
    return Choice(index, bits, axis, values.size, after)


def plan(tflite_bytes):
    """The `Choice`s for the file's kernels where compression pays."""
    model = file_bytes.read_model(tflite_bytes)
    if len(model.subgraphs) != 1:
        return []
    subgraph = model.subgraphs[0]
    kernels = set()
    for op in subgraph.operators:
        name = c_source.op_name(model.operatorCodes[op.opcodeIndex])
        if name in _KERNEL_OPS and len(op.inputs) > 1 and op.inputs[1] >= 0:
            kernels.add(int(op.inputs[1]))
    choices = []
    for index in sorted(kernels):
        tensor = subgraph.tensors[index]
        choice = _choice(index, tensor, model.buffers[tensor.buffer])
        if choice is not None:
            choices.append(choice)
    return choices


def compress(tflite_bytes, choices):
    """The file with the `choices` (from `plan`) LUT-compressed.

    Raises:
        MicroError: when no kernel is worth compressing (none has few
            enough distinct values: cluster it first), or TFLM's compressor
            refuses the file.
    """
    if not choices:
        raise MicroError(
            "--compress found no kernel with at most 2**7 distinct values "
            "per channel where a look-up table pays. Cluster the model "
            "first (kcompress.clustering.cluster_weights, 16 clusters), or "
            "export it without --compress.")
    from tflite_micro.tensorflow.lite.micro.compression import compress
    from tflite_micro.tensorflow.lite.micro.compression import spec

    specs = [spec.Tensor(subgraph=0, tensor=choice.tensor, compression=[
        spec.LookUpTableCompression(
            index_bitwidth=choice.bits,
            mode=spec.PerTensor() if choice.axis is None
            else spec.PerChannel(axis=choice.axis))]) for choice in choices]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its size notes; we report sizes
        try:
            packed = bytes(compress(bytes(tflite_bytes), specs))
        except Exception as error:  # noqa: BLE001 (its own error types)
            raise MicroError(f"TFLM's compressor refused the file: "
                             f"{str(error).splitlines()[0][:300]}") from None
    # The compressor rewrites the whole flatbuffer, with one copy of the
    # quantization vectors per tensor again (38 KB of the MobileNetV2-style
    # file's 88 KB); store each distinct one once, as `convert` does.
    return file_bytes.strip_names(packed)
