"""Names dropped by default, and where a file's bytes go."""

import keras
import numpy as np

import kcompress as kc
import tflite_export as te
from tflite_export import file_bytes
from tflite_export.verification import run_tflite

L = keras.layers


def _model():
    keras.utils.set_random_seed(0)
    return keras.Sequential([
        keras.Input((8, 8, 3)),
        L.Conv2D(8, 3, activation="relu", name="conv"),
        L.DepthwiseConv2D(3, activation="relu", name="depthwise"),
        L.GlobalAveragePooling2D(), L.Dense(4, name="logits")])


def _x():
    return np.random.default_rng(0).uniform(size=(32, 8, 8, 3)).astype(
        "float32")


def test_names_are_dropped_unless_kept_and_outputs_do_not_change():
    model, x = _model(), _x()
    named = te.convert(model, "int8", representative_data=x, keep_names=True)
    lean = te.convert(model, "int8", representative_data=x)
    assert file_bytes.tensor_names(named)
    assert file_bytes.tensor_names(lean) == []
    assert len(lean) < len(named)
    np.testing.assert_array_equal(run_tflite(lean, [x])[0],
                                  run_tflite(named, [x])[0])
    # The signature survives: verify runs on the lean file, with the same
    # figures as on the named one.
    assert te.verify(lean, model, x) == te.verify(named, model, x)
    # float32 files too: a clustered or pruned float32 file is shipped
    # gzipped, and the names were 450 bytes of the digits CNN's gzip size.
    lean = te.convert(model, "float32")
    named = te.convert(model, "float32", keep_names=True)
    assert file_bytes.tensor_names(lean) == []
    assert file_bytes.tensor_names(named)
    np.testing.assert_array_equal(run_tflite(lean, [x])[0],
                                  run_tflite(named, [x])[0])


def test_qat_file_drops_names_too():
    qat = kc.quantization.quantize_model(_model())
    qat(_x(), training=True)  # sets the ranges
    lean = te.convert(qat, "qat")
    assert file_bytes.tensor_names(lean) == []
    assert te.verify(lean, qat, _x()).top1_agreement == 1.0


def test_breakdown_parts_add_up_and_strings_shrink():
    model, x = _model(), _x()
    named = file_bytes.size_breakdown(
        te.convert(model, "int8", representative_data=x, keep_names=True))
    lean = file_bytes.size_breakdown(
        te.convert(model, "int8", representative_data=x))
    for parts in (named, lean):
        assert (parts.weights + parts.quantization + parts.strings
                + parts.graph == parts.total)
        assert min(parts.weights, parts.quantization, parts.graph) > 0
    # 8 + 8 + 4 int8 weights per channel set, 3x3 kernels: > 300 bytes.
    assert lean.weights == named.weights > 300
    # The lean file stores each distinct quantization vector once.
    assert lean.quantization < named.quantization
    assert lean.strings < named.strings / 2


def test_breakdown_counts_buffers_the_converter_shares():
    keras.utils.set_random_seed(0)
    # Two untrained 1x1 convolutions of one width: their all-zero int32
    # biases are identical, and the converter stores them once.
    model = keras.Sequential([keras.Input((6, 6, 4)), L.Conv2D(8, 1),
                              L.Conv2D(8, 1)])
    x = np.random.default_rng(0).normal(size=(32, 6, 6, 4)).astype("float32")
    parts = file_bytes.size_breakdown(
        te.convert(model, "int8", representative_data=x))
    assert parts.shared_buffers == 1


def test_identical_quantization_vectors_are_stored_once():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6, 6, 4)),
                              L.Conv2D(16, 3, name="c1"),
                              L.Conv2D(16, 1, name="c2")])
    x = np.random.default_rng(0).normal(size=(32, 6, 6, 4)).astype("float32")
    named = te.convert(model, "int8", representative_data=x,
                       keep_names=True)
    lean = te.convert(model, "int8", representative_data=x)
    # Two kernels and two biases with 16 per-channel int64 zero points each,
    # all zeros: one vector instead of four saves 3 x (4 + 16 x 8) bytes.
    saved = (file_bytes.size_breakdown(named).quantization
             - file_bytes.size_breakdown(lean).quantization)
    assert saved >= 3 * (4 + 16 * 8)
    reference, _ = te.run_tflite(named, [x])
    outputs, _ = te.run_tflite(lean, [x])
    np.testing.assert_array_equal(outputs, reference)


def _reshaping_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(4, 3, activation="relu")(inputs)
    gate = L.Reshape((1, 1, 4))(L.GlobalAveragePooling2D()(x))
    x = L.Flatten()(L.Multiply()([x, L.Activation("sigmoid")(gate)]))
    nested = keras.Sequential([keras.Input((6, 6, 4)), L.Flatten()])
    y = nested(L.Conv2D(4, 3, activation="relu")(inputs))
    return keras.Model(inputs, L.Dense(3)(L.Concatenate()([x, y])))


def test_static_reshapes_need_no_shape_ops_and_keep_the_outputs():
    model, x = _reshaping_model(), _x()
    for mode in ("float32", "int8", "qat"):
        source = model
        if mode == "qat":
            source = kc.quantization.quantize_model(model, calibration_data=x)
        tflite = te.convert(source, mode, representative_data=x)
        names = [op.name for op in te.inspect(tflite).ops]
        # Keras 3 reads the dynamic batch at run time (SHAPE, STRIDED_SLICE,
        # PACK); -1 for the batch makes each reshape one RESHAPE.
        assert names.count("RESHAPE") == 3, (mode, names)
        assert not {"SHAPE", "STRIDED_SLICE", "PACK"} & set(names), names
        for batch in (1, 5):
            np.testing.assert_allclose(
                run_tflite(tflite, [x[:batch]])[0],
                keras.ops.convert_to_numpy(source(x[:batch])),
                atol=1e-5 if mode == "float32" else 0.05)
    # The layers are back to Keras's own call.
    nested = [layer for layer in model.layers
              if isinstance(layer, keras.Model)][0]
    reshapes = [layer for layer in model.layers + nested.layers
                if isinstance(layer, (L.Flatten, L.Reshape))]
    assert len(reshapes) == 3
    assert not [layer for layer in reshapes if "call" in vars(layer)]
