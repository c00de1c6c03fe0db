"""TFMOT's quantization-aware training example and comprehensive guide, run
through `kcompress.compat.tfmot` on Keras 3.

The guides claim: QAT costs little or no accuracy; the int8 file keeps the
QAT model's accuracy and is about 4x smaller than the float file; some
layers can be quantized alone; QAT models save and load; a custom layer is
quantized through a QuantizeConfig.
"""

import keras
import numpy as np

import tflite_export as te
from kcompress.compat import tfmot
from tests.tfmot_guides.conftest import compile_guide
from tests.tfmot_guides.conftest import reload
from tests.tfmot_guides.conftest import tflite_accuracy
from tflite_export.file_bytes import size_breakdown

L = keras.layers
# "Minimal to no loss" on MNIST's 10,000 test images; on these 360, allow
# 3 points.
TOLERANCE = 0.03


def _compute_ops_are_int8(tflite_bytes):
    """Every op but the float input's QUANTIZE and the output's DEQUANTIZE
    runs on int8 (the file keeps float input and output, as the guide's)."""
    kinds = {op.name: op.kind for op in te.inspect(tflite_bytes).ops
             if op.name not in ("QUANTIZE", "DEQUANTIZE")}
    assert "FULLY_CONNECTED" in kinds, kinds
    return set(kinds.values()) <= {"integer", "shape"}


def test_qat_example_keeps_accuracy_into_a_4x_smaller_int8_file(guide):
    """The example: quantize_model, fit one epoch on a subset, evaluate,
    convert with the int8 optimizations, evaluate the file."""
    keras.utils.set_random_seed(1)
    data = guide.data
    q_aware_model = compile_guide(
        tfmot.quantization.keras.quantize_model(guide.copy()))
    q_aware_model.fit(data.x_train[:1000], data.y_train[:1000],
                      batch_size=500, epochs=1, verbose=0)
    q_aware_accuracy = q_aware_model.evaluate(data.x_test, data.y_test,
                                              verbose=0)[1]
    assert q_aware_accuracy >= guide.accuracy - TOLERANCE
    quantized_tflite_model = te.convert(q_aware_model, "qat")
    assert _compute_ops_are_int8(quantized_tflite_model)
    assert abs(tflite_accuracy(quantized_tflite_model, data)
               - q_aware_accuracy) <= 0.01
    # "4x smaller": the weights are; this model's graph is a larger share.
    float_weights = size_breakdown(te.convert(guide.model, "float32")).weights
    int8_weights = size_breakdown(quantized_tflite_model).weights
    assert int8_weights < float_weights / 3.5, (int8_weights, float_weights)


def test_quantize_some_layers_then_save_and_load(guide, tmp_path):
    """Comprehensive guide: annotate only the Dense layers through
    `clone_model`, quantize_apply, save, load under quantize_scope."""
    def apply_quantization_to_dense(layer):
        copy = layer.__class__.from_config(layer.get_config())
        if isinstance(layer, L.Dense):
            return tfmot.quantization.keras.quantize_annotate_layer(copy)
        return copy

    annotated_model = keras.models.clone_model(
        guide.copy(), clone_function=apply_quantization_to_dense)
    quant_aware_model = tfmot.quantization.keras.quantize_apply(
        annotated_model)
    names = [layer.name for layer in quant_aware_model.layers]
    assert "quant_logits" in names and "conv" in names
    compile_guide(quant_aware_model)
    quant_aware_model.fit(guide.data.x_train[:64], guide.data.y_train[:64],
                          verbose=0)
    reload(quant_aware_model, str(tmp_path / "qat.keras"),
           tfmot.quantization.keras.quantize_scope(), guide.data.x_test[:16])


def test_annotate_in_sequential_and_functional_models():
    """Comprehensive guide: annotate layers where the model is built."""
    annotate = tfmot.quantization.keras.quantize_annotate_layer
    inputs = keras.Input((20,))
    hidden = annotate(L.Dense(10, activation="relu"))(inputs)
    functional = keras.Model(inputs, L.Flatten()(hidden))
    sequential = keras.Sequential([
        keras.Input((20,)), annotate(L.Dense(10, activation="relu")),
        L.Flatten()])
    x = np.random.default_rng(0).normal(size=(32, 20)).astype("float32")
    for model in (functional, sequential):
        quantized = tfmot.quantization.keras.quantize_apply(model)
        kinds = [type(layer).__name__ for layer in quantized.layers]
        assert "QuantizeWrapper" in kinds, kinds
        assert quantized.predict(x, verbose=0).shape == (32, 10)


def test_custom_layer_with_a_quantize_config(tmp_path):
    """Comprehensive guide, "quantize custom Keras layer": a layer with no
    default gets a QuantizeConfig (kcompress describes its weights in the
    constructor instead of TFMOT's subclass methods) and a scope to load."""

    class CustomLayer(L.Dense):
        pass

    config = tfmot.quantization.keras.QuantizeConfig(
        weights={"kernel": None}, quantize_output=True)
    model = keras.Sequential([
        keras.Input((20,)),
        tfmot.quantization.keras.quantize_annotate_layer(CustomLayer(8),
                                                         config),
        L.Flatten()])
    with tfmot.quantization.keras.quantize_scope(
            {"CustomLayer": CustomLayer}):
        quantized = tfmot.quantization.keras.quantize_apply(model)
        compile_guide(quantized)
        x = np.random.default_rng(0).normal(size=(64, 20)).astype("float32")
        quantized.fit(x, np.arange(64) % 8, verbose=0)
        path = str(tmp_path / "custom.keras")
        quantized.save(path)
        loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0),
                               quantized.predict(x, verbose=0), atol=1e-5)
    tflite = te.convert(quantized, "qat")
    assert _compute_ops_are_int8(tflite)
