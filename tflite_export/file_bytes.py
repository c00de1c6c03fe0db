"""Where a `.tflite` file's bytes go, and the strings it can do without.

Both read the flatbuffer with TensorFlow's own LiteRT tooling
(`tensorflow.lite.tools.flatbuffer_utils`, its object API over the schema),
so nothing here parses or writes flatbuffer bytes by hand.

- `strip_names` drops what the runtime never reads: tensor names (the
  converter names each tensor after every TensorFlow op fused into it, such
  as `'model_1/block_16_depthwise_relu_1/Relu6;...'`), subgraph names and the
  model description. The signature keeps its input and output names, so the
  interpreter's signature runner and `verify` work as before.
  The file is written once more with each distinct quantization vector
  (scales, zero points) stored once: a per-channel kernel and its bias carry
  the same all-zero int64 zero points, one 8-byte entry per channel, and
  layers of equal width repeat them again. Flatbuffer tables may point at
  the same vector; the runtime only reads them.
- `size_breakdown` splits the file into weight buffers, quantization
  parameters, strings and the graph itself, and counts shared buffers.
- `operators` lists the main graph's ops with their tensors, read from the
  file with LiteRT's generated schema reader (the interpreter has no
  public call for it).
"""

from __future__ import annotations

import dataclasses
import functools

# A flatbuffer vector or string: a 4-byte length before its elements.
_LENGTH = 4


def _utils():
    from tensorflow.lite.tools import flatbuffer_utils

    return flatbuffer_utils


def read_model(tflite_bytes):
    """The file as flatbuffer_utils' object tree (`ModelT`)."""
    return _utils().read_model_from_bytearray(bytearray(tflite_bytes))


def _sharing_builder():
    """A flatbuffers Builder that writes each distinct int64 or float32
    numpy vector once (the quantization parameters' zero points and scales)
    and points every later copy at it."""
    import flatbuffers
    import numpy as np

    class SharingBuilder(flatbuffers.Builder):
        def __init__(self, size):
            super().__init__(size)
            self._shared = {}

        def CreateNumpyVector(self, x):  # noqa: N802 (the library's name)
            if x.dtype not in (np.int64, np.float32):
                return super().CreateNumpyVector(x)
            key = (x.dtype.str, x.shape, x.tobytes())
            if key not in self._shared:
                self._shared[key] = super().CreateNumpyVector(x)
            return self._shared[key]

    return SharingBuilder(1024)


def _write(model):
    builder = _sharing_builder()
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def strip_names(tflite_bytes: bytes) -> bytes:
    """The file without tensor names, subgraph names and description.

    TensorFlow's `flatbuffer_utils.strip_strings` also drops the signature,
    which the signature runner needs; it is put back (its names are a few
    bytes, and refer to tensors by index).

    Identical quantization vectors are stored once (see the module
    docstring).

    Returns:
        The smaller flatbuffer. The ops, weights and quantization are
        unchanged, so the outputs are identical.
    """
    model = read_model(tflite_bytes)
    signatures = model.signatureDefs
    _utils().strip_strings(model)
    model.signatureDefs = signatures
    return _write(model)


def _string_size(value):
    if value is None:
        return 0
    return _LENGTH + len(value) + 1  # The terminating NUL.


def _vector_size(values, item_size):
    if values is None:
        return 0
    return _LENGTH + len(values) * item_size


@dataclasses.dataclass
class SizeBreakdown:
    """A file's bytes by what they hold (each part's flatbuffer encoding)."""

    total: int
    weights: int  # constant buffers: weights, biases, lookup tables
    quantization: int  # scales, zero points, min/max of every tensor
    strings: int  # tensor, subgraph, signature and metadata names
    graph: int  # the rest: operators, tensor tables, offsets, padding
    # Constant buffers the converter stored once for several tensors (it
    # shares identical ones, such as an untrained model's zero biases).
    shared_buffers: int = 0

    def to_dict(self):
        return dataclasses.asdict(self)


# Vtable offsets of QuantizationParameters' vectors, with their item sizes:
# min, max, scale (float32) and zero_point (int64).
_QUANTIZATION_VECTORS = ((4, 4), (6, 4), (8, 4), (10, 8))


def _quantization_size(tflite_bytes):
    """Bytes of the quantization vectors, each stored vector counted once
    (tables may share one; read through the schema's accessors, which see
    where each vector lies)."""
    from tensorflow.lite.python import schema_py_generated as schema

    root = schema.Model.GetRootAs(bytearray(tflite_bytes), 0)
    seen, size = set(), 0
    for s in range(root.SubgraphsLength()):
        subgraph = root.Subgraphs(s)
        for t in range(subgraph.TensorsLength()):
            params = subgraph.Tensors(t).Quantization()
            if params is None:
                continue
            for slot, item in _QUANTIZATION_VECTORS:
                if not params._tab.Offset(slot):  # noqa: SLF001 (accessor)
                    continue
                start = params._tab.Vector(params._tab.Offset(slot))
                if start not in seen:
                    seen.add(start)
                    size += _LENGTH + item * params._tab.VectorLen(
                        params._tab.Offset(slot))
    return size


def size_breakdown(tflite_bytes: bytes) -> SizeBreakdown:
    """Where the bytes of `tflite_bytes` go.

    Weights are the data of the constant buffers; quantization parameters
    are each tensor's float32 scales and min/max and int64 zero points (a
    per-channel tensor has one of each per channel; a vector several tensors
    share counts once); strings are every name and description. The graph is
    what remains.
    """
    model = read_model(tflite_bytes)
    weights = sum(
        _vector_size(buffer.data, 1) if buffer.data is not None
        else int(getattr(buffer, "size", 0) or 0)
        for buffer in model.buffers or [])
    quantization = _quantization_size(tflite_bytes)
    strings = _string_size(model.description)
    users = {}  # constant buffer -> how many tensors read it
    for subgraph in model.subgraphs or []:
        strings += _string_size(subgraph.name)
        for tensor in subgraph.tensors or []:
            strings += _string_size(tensor.name)
            data = model.buffers[tensor.buffer].data
            if data is not None and len(data):
                users[tensor.buffer] = users.get(tensor.buffer, 0) + 1
    for signature in model.signatureDefs or []:
        strings += _string_size(signature.signatureKey)
        for item in (signature.inputs or []) + (signature.outputs or []):
            strings += _string_size(item.name)
    for metadata in model.metadata or []:
        strings += _string_size(metadata.name)
    for code in model.operatorCodes or []:
        strings += _string_size(code.customCode)
    total = len(tflite_bytes)
    return SizeBreakdown(total, int(weights), int(quantization),
                         int(strings),
                         int(total - weights - quantization - strings),
                         sum(count > 1 for count in users.values()))


def tensor_names(tflite_bytes: bytes) -> list:
    """The non-empty tensor names of the file (none once stripped)."""
    return [tensor.name.decode()
            for subgraph in read_model(tflite_bytes).subgraphs or []
            for tensor in subgraph.tensors or [] if tensor.name]


@functools.cache
def _builtin_names():
    from ai_edge_litert import schema_py_generated as schema

    return {code: name for name, code in vars(schema.BuiltinOperator).items()
            if not name.startswith("_")}


def operators(tflite_bytes: bytes) -> list:
    """The ops of the file's main graph (subgraph 0), in execution order.

    Each is a dict `{"index", "op_name", "inputs", "outputs"}`, tensors by
    index as the interpreter numbers them (-1: an optional input left out);
    a custom op is named by its custom code
    (`TFLite_Detection_PostProcess`).
    """
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(bytearray(tflite_bytes), 0)
    names = _builtin_names()
    codes = []
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        custom = code.CustomCode()
        codes.append(custom.decode() if builtin == schema.BuiltinOperator.CUSTOM
                     and custom else names.get(builtin, str(builtin)))
    graph = model.Subgraphs(0)
    return [{"index": i, "op_name": codes[op.OpcodeIndex()],
             "inputs": [int(t) for t in op.InputsAsNumpy()]
             if op.InputsLength() else [],
             "outputs": [int(t) for t in op.OutputsAsNumpy()]
             if op.OutputsLength() else []}
            for i, op in ((i, graph.Operators(i))
                          for i in range(graph.OperatorsLength()))]
