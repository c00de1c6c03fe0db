import keras
import numpy as np
import pytest

import tflite_export as te
from kcompress import quantization as q
from tflite_export import conversion
from tflite_export.inspection import interpreter_for

L = keras.layers


def _small_model():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((6, 6, 2)),
                             L.Conv2D(4, 3, activation="relu", name="c"),
                             L.Flatten(), L.Dense(3, name="d")], name="small")


def _x(n=40):
    return np.random.default_rng(0).uniform(size=(n, 6, 6, 2)).astype(
        "float32")


@pytest.mark.parametrize("mode, input_type", [
    ("float32", np.float32), ("float16", np.float32),
    ("dynamic", np.float32), ("int8", np.int8), ("int16x8", np.float32)])
def test_every_mode_converts_and_runs(mode, input_type):
    model = _small_model()
    data = _x() if mode in ("int8", "int16x8") else None
    tflite = te.convert(model, mode, representative_data=data)
    interpreter = interpreter_for(tflite)
    assert interpreter.get_input_details()[0]["dtype"] == input_type
    report = te.verify(tflite, model, _x())
    assert report.top1_agreement >= 0.9
    if mode in ("float32", "float16"):
        assert report.max_abs_diff < 1e-2
    # Measured: int8 1.3 steps; int16x8 94 steps of its int16 grid (0.37 of
    # an int8 step); dynamic 0.0 (the int8 file's step here: 0.012).
    bounds = {"int8": ("max_steps", 2.0), "int16x8": ("max_steps", 256.0),
              "dynamic": ("max_abs_diff", 0.03)}
    if mode in bounds:
        field, bound = bounds[mode]
        assert getattr(report, field) <= bound, report
    if mode == "int16x8":  # float I/O, int16 activations inside
        types = {t for op in te.inspect(tflite).ops for t in op.output_types}
        assert "int16" in types


def test_int8_float_io_on_request():
    model = _small_model()
    tflite = te.convert(model, "int8", representative_data=_x(),
                        float_io=True)
    interpreter = interpreter_for(tflite)
    assert interpreter.get_input_details()[0]["dtype"] == np.float32
    assert interpreter.get_output_details()[0]["dtype"] == np.float32


def test_convert_never_modifies_its_input():
    model = _small_model()
    qat = q.quantize_model(model, calibration_data=_x())
    before = [w.copy() for w in qat.get_weights()]
    te.convert(qat, "qat")
    te.convert(qat, "float32")
    for a, b in zip(before, qat.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert q.quantize_layers(qat)


def test_inspect_reports_ops_sizes_and_zeros():
    model = _small_model()
    kernel = model.get_layer("d").kernel
    values = kernel.numpy()
    values[: len(values) // 2] = 0
    kernel.assign(values)
    tflite = te.convert(model, "float32")
    report = te.inspect(tflite)
    names = [op.name for op in report.ops]
    assert "CONV_2D" in names and "FULLY_CONNECTED" in names
    assert report.int8_coverage == 0.0
    assert report.size == len(tflite)
    assert 0 < report.gzip_size < report.size
    assert max(report.weight_zero_fraction.values()) >= 0.5


def test_unknown_mode():
    with pytest.raises(te.ConversionError, match="Received: mode='int4'. "
                       "Expected one of float32"):
        te.convert(_small_model(), "int4")


def test_qat_mode_needs_qat_wrappers():
    with pytest.raises(te.ConversionError, match="no QAT wrappers"):
        te.convert(_small_model(), "qat")


def test_qat_mode_needs_ranges():
    with pytest.raises(te.ConversionError, match="no activation range yet"):
        te.convert(q.quantize_model(_small_model()), "qat")


@pytest.mark.parametrize("data, message", [
    (None, "needs representative_data"),
    (np.zeros((4, 5, 5, 2), "float32"), r"shape \(4, 5, 5, 2\). Expected "
     r"\(n, 6, 6, 2\)"),
    (np.full((4, 6, 6, 2), "x"), "dtype <U1"),
    (np.full((4, 6, 6, 2), np.nan, "float32"), "NaN"),
    ([_x(), _x()], "2 arrays. Expected 1"),
])
def test_bad_representative_data(data, message):
    with pytest.raises(te.ConversionError, match=message):
        te.convert(_small_model(), "int8", representative_data=data)


def test_flex_ops_are_refused_by_name():
    class Inverse(L.Layer):
        def call(self, x):
            return keras.ops.inv(x)

    model = keras.Sequential([keras.Input((3, 3)), Inverse()])
    with pytest.raises(te.ConversionError, match="Flex.*MatrixInverse"):
        te.convert(model, "float32")
    assert te.convert(model, "float32", allow_flex=True)


def test_save_atomically(tmp_path):
    path = tmp_path / "m.tflite"
    te.save_atomically(b"abc", path)
    assert path.read_bytes() == b"abc"
    assert [p.name for p in tmp_path.iterdir()] == ["m.tflite"]


def test_a_float_file_is_never_returned_for_an_integer_mode(monkeypatch):
    """If the converter leaves the fake quantization unfolded (as it does
    for a model traced on another backend), convert refuses the file."""
    import tflite_export as te

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    float_file = te.convert(model, "float32")
    monkeypatch.setattr(conversion, "_run_converter",
                        lambda *args, **kwargs: float_file)
    x = np.random.default_rng(0).random((8, 4), "float32")
    with pytest.raises(te.ConversionError, match="promised an int8 file, "
                       "but the converter left float compute ops: "
                       "FULLY_CONNECTED"):
        te.convert(model, "int8", representative_data=x)


class _Sine(keras.layers.Layer):
    """A layer with no int8 quantization: QAT leaves it in float."""

    def call(self, inputs):
        return keras.ops.sin(inputs)


def test_a_mostly_int8_file_converts_and_names_its_float_ops():
    """A layer left in float (here a sine) is reported, not fatal."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(6),
                              _Sine(), keras.layers.Dense(3)])
    with pytest.warns(UserWarning, match="left these layers in float"):
        qat = q.quantize_model(model)
    x = np.random.default_rng(0).random((16, 8), "float32")
    q.calibrate(qat, x)
    with pytest.warns(UserWarning, match="stay in float in the file: .*"
                      "SIN"):
        tflite = te.convert(qat, "qat")
    assert te.inspect(tflite).int8_coverage > 0


@pytest.mark.parametrize("verbose", [False, True])
def test_converter_output_is_held_back_unless_verbose(capfd, verbose):
    te.convert(_small_model(), "int8", representative_data=_x(),
               verbose=verbose)
    printed = capfd.readouterr()
    # The calibrator's C++ line, printed on every int8 conversion.
    assert ("fully_quantize" in printed.err) == verbose
    assert "Saved artifact" not in printed.out
