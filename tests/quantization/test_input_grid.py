"""Biases on TFLite's int32 grid: the input's scale times the kernel's."""

import keras
import numpy as np
from keras import layers as L
from keras import ops

import kcompress as kc
from kcompress.quantization import input_grid
from kcompress.quantization import quantizers


def _model():
    inputs = keras.Input((8, 8, 2))
    x = L.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    x = L.MaxPooling2D(name="pool")(x)
    x = L.Dropout(0.1)(L.Flatten()(x))
    outputs = L.Dense(3, name="dense")(x)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if getattr(layer, "bias", None) is not None:
            layer.bias.assign(rng.normal(0, 0.3, layer.bias.shape))
    return model


def _data():
    return np.random.default_rng(1).normal(size=(16, 8, 8, 2)).astype(
        "float32")


def test_input_scale_walks_back_through_layers_that_keep_the_grid():
    qat = kc.quantization.quantize_model(_model(), calibration_data=_data())
    dense = qat.get_layer("quant_dense")
    conv = qat.get_layer("quant_conv")
    # Flatten, Dropout and MaxPooling keep the conv's (fused ReLU) grid.
    np.testing.assert_allclose(
        ops.convert_to_numpy(input_grid.input_scale(dense)),
        ops.convert_to_numpy(conv.output_scale()))
    assert float(ops.convert_to_numpy(conv.output_scale())) > 0
    quantize = qat.layers[1]  # The input's QuantizeLayer.
    np.testing.assert_allclose(
        ops.convert_to_numpy(input_grid.input_scale(conv)),
        ops.convert_to_numpy(quantize.output_scale()))


def test_bias_is_a_whole_number_of_int32_steps():
    qat = kc.quantization.quantize_model(_model(), calibration_data=_data())
    dense = qat.get_layer("quant_dense")
    (bias, rounded), = dense._int32_bias(dense.effective_weights(), [None])
    scale = input_grid.input_scale(dense) * quantizers.weight_magnitude(
        dense.layer.kernel) / 127.0
    steps = ops.convert_to_numpy(rounded / scale)
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-3)
    moved = ops.convert_to_numpy(rounded - bias)
    assert np.all(np.abs(moved) <= 0.5 * ops.convert_to_numpy(scale) + 1e-7)
    assert np.any(moved != 0)


def test_bias_stays_float_while_the_input_range_is_unset():
    bias = np.array([0.123, -0.456], "float32")
    kernel = np.ones((3, 2), "float32")
    kept = quantizers.fake_quant_bias(bias, kernel, None, 0.0)
    np.testing.assert_array_equal(ops.convert_to_numpy(kept), bias)
    assert quantizers.fake_quant_bias(bias, kernel, None, None) is bias


def test_a_layer_called_twice_has_no_single_input_grid():
    shared = L.Dense(2)
    a, b = keras.Input((3,)), keras.Input((3,))
    keras.Model([a, b], [shared(a), shared(b)])
    assert input_grid.input_scale(shared) is None
