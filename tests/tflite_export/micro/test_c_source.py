"""The generated C: it compiles warning-free, holds the file's bytes,
aligned, and registers exactly the file's ops."""

import shutil
import subprocess

import pytest

from tflite_export.errors import MicroError
from tflite_export.micro import c_source

# The trained models and their exports (conftest.py) are made once, on
# one worker: `make test` runs with --dist loadgroup.
pytestmark = pytest.mark.xdist_group("micro_models")

_CXX = shutil.which("c++") or shutil.which("g++")
needs_compiler = pytest.mark.skipif(_CXX is None, reason="no C++ compiler")

_DUMP = r"""
#include <cstdint>
#include <cstdio>
#include "model_data.h"
int main() {
  if (reinterpret_cast<std::uintptr_t>(g_model_data) % 16 != 0) return 3;
  std::fwrite(g_model_data, 1, g_model_data_len, stdout);
  return 0;
}
"""
# The shape of TFLM's resolver, enough to compile model_ops.h against: each
# AddX() prints its name, so the test reads what the header registers.
_RESOLVER_STUB = r"""
#include <cstdio>
typedef enum { kTfLiteOk = 0, kTfLiteError = 1 } TfLiteStatus;
namespace tflite {
template <unsigned int N> class MicroMutableOpResolver {
 public:
  unsigned int count = 0;
#define KC_OP(name)                                 \
  TfLiteStatus name() {                             \
    std::puts(#name);                               \
    return ++count <= N ? kTfLiteOk : kTfLiteError; \
  }
  %s
};
}  // namespace tflite
"""
_REGISTER = r"""
#include "model_ops.h"
int main() {
  ModelOpResolver resolver;
  return RegisterModelOps(resolver) == kTfLiteOk ? 0 : 4;
}
"""


def _compile(folder, sources, binary="prog"):
    done = subprocess.run(
        [_CXX, "-std=c++17", "-Wall", "-Wextra", "-Werror", "-I", str(folder),
         *map(str, sources), "-o", str(folder / binary)],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return folder / binary


@needs_compiler
@pytest.mark.parametrize("name", ["digits_cnn", "clustered"])
def test_model_data_compiles_and_holds_the_bytes(exports, name, tmp_path):
    result, out = exports[name]
    for generated in ("model_data.cc", "model_data.h"):
        (tmp_path / generated).write_bytes((out / generated).read_bytes())
    (tmp_path / "dump.cc").write_text(_DUMP)
    binary = _compile(tmp_path, [tmp_path / "model_data.cc",
                                 tmp_path / "dump.cc"])
    dumped = subprocess.run([str(binary)], capture_output=True, timeout=60)
    assert dumped.returncode == 0  # 3: the array is not 16-byte aligned
    assert dumped.stdout == result.tflite == (out / "model.tflite"
                                              ).read_bytes()


@needs_compiler
@pytest.mark.parametrize("name", ["mobilenet_v2_style", "clustered"])
def test_model_ops_registers_exactly_the_files_ops(exports, name, tmp_path):
    result, out = exports[name]
    header = (out / "model_ops.h").read_text()
    stub = tmp_path / "tensorflow" / "lite" / "micro"
    stub.mkdir(parents=True)
    methods = " ".join(f"KC_OP({m})" for m in result.resolver)
    (stub / "micro_mutable_op_resolver.h").write_text(
        _RESOLVER_STUB % methods)
    (tmp_path / "model_ops.h").write_text(header)
    (tmp_path / "register.cc").write_text(_REGISTER)
    binary = _compile(tmp_path, [tmp_path / "register.cc"])
    done = subprocess.run([str(binary)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0  # 4: more ops than the resolver's size
    registered = done.stdout.split()
    assert registered == [c_source.resolver_method(op) for op in result.ops]
    assert len(set(registered)) == len(registered) == len(
        set(c_source.ops(result.tflite)))
    assert f"kModelOpCount = {len(registered)};" in header


@pytest.mark.parametrize("op, method", [
    ("CONV_2D", "AddConv2D"), ("DEPTHWISE_CONV_2D", "AddDepthwiseConv2D"),
    ("FULLY_CONNECTED", "AddFullyConnected"), ("RELU6", "AddRelu6"),
    ("AVERAGE_POOL_2D", "AddAveragePool2D"), ("HARD_SWISH", "AddHardSwish"),
    ("BATCH_MATMUL", "AddBatchMatMul"), ("SPACE_TO_BATCH_ND",
                                         "AddSpaceToBatchNd"),
    ("TFLM_DECODE", "AddDecode"),
    ("TFLite_Detection_PostProcess", "AddDetectionPostprocess"),
])
def test_resolver_method_names(op, method):
    assert c_source.resolver_method(op) == method


def test_an_op_tflm_lacks_is_refused_by_name():
    with pytest.raises(MicroError, match="op RFFT2D, which TensorFlow Lite "
                       "Micro has no kernel for"):
        c_source.resolver_method("RFFT2D")
