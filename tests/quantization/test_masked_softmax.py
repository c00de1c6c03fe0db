"""A masked softmax with finite fills: Keras's values in float, and int8
files (PTQ and QAT) in which the mask holds."""

import keras
import numpy as np
import pytest
from keras import ops

import kcompress as kc
import tflite_export as te
from kcompress import _keras_internals
from kcompress.quantization import int8_kernels
from kcompress.quantization import masked_softmax
from kcompress_demo import hub_checks
from tflite_export.inspection import interpreter_for

_TOKENS, _CHANNELS = 8, 16


def _keras_softmax(scores, mask, axis=-1):
    return ops.convert_to_numpy(
        keras.layers.Softmax(axis=axis)(scores, mask=mask))


@pytest.mark.parametrize("axis", [-1, (2, 3)])
def test_float_values_are_keras_masked_softmax(axis):
    rng = np.random.default_rng(0)
    # Scores spanning far more than the fill's 16, so that the shift by
    # the largest unmasked score matters.
    scores = rng.normal(0.0, 20.0, (3, 2, 4, 6)).astype("float32")
    mask = rng.random((3, 1, 4, 6)) > 0.4
    mask[0] = False  # A sample with every position masked.
    mask[1, :, :, 0] = True  # A masked score above every kept one.
    scores[1, :, :, 1:] += 100.0 * ~mask[1, :, :, 1:]
    got = ops.convert_to_numpy(
        masked_softmax.finite_masked_softmax(scores, mask, axis))
    expected = _keras_softmax(scores, mask, axis)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert np.all(got[~np.broadcast_to(mask, got.shape)] == 0.0)


def test_a_numeric_mask_keeps_values_above_one_half():
    scores = np.array([[0.5, 1.0, 2.0, -1.0]], "float32")
    mask = np.array([[1, 0, 1, 1]], "int32")
    got = ops.convert_to_numpy(
        masked_softmax.finite_masked_softmax(scores, mask))
    np.testing.assert_allclose(got, _keras_softmax(scores, mask), atol=1e-7)


def test_qat_fake_quantizes_the_shifted_scores_on_the_fixed_range():
    scores = np.array([[0.0, -0.7, -3.0, 9.0]], "float32")
    mask = np.array([[True, True, True, False]])
    got = ops.convert_to_numpy(
        masked_softmax.finite_masked_softmax(scores, mask, num_bits=8))
    low, high = int8_kernels.exact_range(masked_softmax.FILL, 0.0)
    step = (float(high) - float(low)) / 255.0
    shifted = np.round(np.array([0.0, -0.7, -3.0]) / step) * step
    expected = np.exp(shifted) / np.exp(shifted).sum()
    np.testing.assert_allclose(got[0, :3], expected, rtol=1e-5)
    assert got[0, 3] == 0.0


def test_a_mask_with_more_dimensions_is_refused():
    with pytest.raises(ValueError, match="Received: mask of shape"):
        masked_softmax.finite_masked_softmax(
            np.zeros((2, 3), "float32"), np.ones((1, 2, 3), bool))


def test_attention_softmax_is_the_layers_own():
    mha = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4)
    rng = np.random.default_rng(1)
    query = rng.normal(size=(2, 5, 6)).astype("float32")
    mha(query, query)
    scores = rng.normal(0, 3, (2, 2, 5, 5)).astype("float32")
    mask = rng.random((2, 1, 5)) > 0.3
    expected = ops.convert_to_numpy(
        _keras_internals.masked_softmax(mha, scores, mask))
    got = ops.convert_to_numpy(
        masked_softmax.attention_softmax(mha, scores, mask))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    unmasked = masked_softmax.attention_softmax(mha, scores, None)
    np.testing.assert_allclose(
        ops.convert_to_numpy(unmasked),
        ops.convert_to_numpy(_keras_internals.masked_softmax(mha, scores)),
        atol=1e-7)


def _padded_attention():
    """A model whose output is one masked self-attention over padded token
    vectors, and inputs whose rows have 3 to 8 real tokens."""
    tokens = keras.Input((_TOKENS, _CHANNELS), name="tokens")
    padding = keras.Input((_TOKENS,), dtype="int32", name="padding_mask")
    mask = keras.layers.Reshape((1, _TOKENS))(padding)
    outputs = keras.layers.MultiHeadAttention(num_heads=2, key_dim=8)(
        tokens, tokens, attention_mask=mask)
    model = keras.Model([tokens, padding], outputs)
    rng = np.random.default_rng(0)
    n = 32
    lengths = rng.integers(3, _TOKENS + 1, (n, 1))
    kept = (np.arange(_TOKENS)[None, :] < lengths).astype("int32")
    # Small tokens: scores within about +-1, where a fill at the bottom of
    # their grid is no mask at all.
    x = rng.normal(0.0, 0.5, (n, _TOKENS, _CHANNELS)).astype("float32")
    return model, [x, kept]


def _other_padding(arrays):
    """The same inputs with other values at the padded tokens."""
    x, kept = arrays
    noise = np.random.default_rng(5).normal(0.0, 1.0, x.shape)
    return [np.where(kept[..., None] > 0, x, noise).astype("float32"), kept]


def _real_positions(values, kept):
    return values[np.broadcast_to(kept[..., None] > 0, values.shape)]


def _ignores_padding(tflite, arrays):
    """The file's outputs at real tokens, for two paddings, and its step."""
    first, scale = te.run_tflite(tflite, arrays)
    second, _ = te.run_tflite(tflite, _other_padding(arrays))
    return (np.abs(_real_positions(first - second, arrays[1])).max()
            / scale)


def test_ptq_file_of_masked_attention_loads_and_answers_as_keras():
    # Keras's -1e9 fill would give the filled scores a scale of about 4e6,
    # which convert refuses (and the fused attention's lowest-float fill,
    # 1e36).
    model, arrays = _padded_attention()
    before = model.predict(arrays, verbose=0)
    tflite = te.convert(model, "int8", representative_data=arrays)
    interpreter_for(tflite, delegates=False)  # Loads without XNNPACK too.
    _assert_int8(tflite)
    # Measured 2.5 on TensorFlow and 3.9 on JAX (its random weights
    # differ); the same attention without a mask is 2.1 steps from Keras
    # on TensorFlow.
    assert te.verify(tflite, model, arrays).max_steps <= 5
    assert _ignores_padding(tflite, arrays) <= 1
    # The model is as it was: its softmax computes Keras's fill again.
    softmaxes = [layer for layer in _keras_internals.descendants(model)
                 if isinstance(layer, keras.layers.Softmax)]
    assert softmaxes and all("call" not in vars(s) for s in softmaxes)
    np.testing.assert_array_equal(model.predict(arrays, verbose=0), before)


def _assert_int8(tflite):
    compute = [op for op in te.inspect(tflite).ops
               if op.name in hub_checks.COMPUTE_OPS]
    assert compute and all(op.integer for op in compute), compute


def test_qat_file_of_masked_attention_keeps_the_mask():
    # With Keras's fill, the converter put -1e9 at the bottom of the
    # scores' grid: the padded tokens took a share of the file's softmax
    # and none of Keras's (23 steps apart here).
    model, arrays = _padded_attention()
    quantized = kc.quantize_model(model)
    kc.quantization.calibrate(quantized, arrays)
    tflite = te.convert(quantized, "qat")
    interpreter_for(tflite, delegates=False)  # Loads without XNNPACK too.
    _assert_int8(tflite)
    assert te.verify(tflite, quantized, arrays).max_steps <= 2
    assert _ignores_padding(tflite, arrays) == 0
    keras_first = quantized.predict(arrays, verbose=0)
    keras_second = quantized.predict(_other_padding(arrays), verbose=0)
    np.testing.assert_array_equal(
        _real_positions(keras_first, arrays[1]),
        _real_positions(keras_second, arrays[1]))


def test_finite_masked_softmax_layer_round_trips_its_config(tmp_path):
    layer = masked_softmax.FiniteMaskedSoftmax(axis=(1, 2), num_bits=8,
                                               name="probabilities")
    again = masked_softmax.FiniteMaskedSoftmax.from_config(layer.get_config())
    assert (again.axis, again.num_bits, again.name) == (
        layer.axis, 8, "probabilities")
    inputs = keras.Input((4,))
    model = keras.Model(inputs, masked_softmax.FiniteMaskedSoftmax()(inputs))
    model.save(tmp_path / "softmax.keras")
    loaded = keras.saving.load_model(tmp_path / "softmax.keras")  # No scope.
    assert type(loaded.layers[-1]) is masked_softmax.FiniteMaskedSoftmax
    assert loaded.layers[-1].num_bits is None
    assert masked_softmax.as_keras_softmax(layer).get_config() == (
        keras.layers.Softmax(axis=(1, 2), name="probabilities").get_config())


def test_qat_of_a_softmax_layer_called_with_a_mask(tmp_path):
    # Keras's fill fell to the bottom of the logits' grid in the file: 156
    # steps from Keras on this model.
    scores = keras.Input((4, 8), name="scores")
    mask = keras.Input((4, 8), dtype="bool", name="mask")
    logits = keras.layers.Dense(8)(scores)
    model = keras.Model([scores, mask],
                        keras.layers.Softmax()(logits, mask=mask))
    rng = np.random.default_rng(0)
    arrays = [rng.normal(0, 0.3, (32, 4, 8)).astype("float32"),
              rng.random((32, 4, 8)) > 0.3]
    quantized = kc.quantize_model(model)
    kc.quantization.calibrate(quantized, arrays)
    inner = [getattr(layer, "layer", None) for layer in quantized.layers]
    assert any(type(layer) is masked_softmax.FiniteMaskedSoftmax
               and layer.num_bits == 8 for layer in inner), inner
    assert type(model.layers[-1]) is keras.layers.Softmax  # Not modified.
    tflite = te.convert(quantized, "qat")
    _assert_int8(tflite)
    assert te.verify(tflite, quantized, arrays).max_steps <= 1
    path = tmp_path / "qat.keras"
    quantized.save(path)
    np.testing.assert_array_equal(
        keras.saving.load_model(path).predict(arrays, verbose=0),
        quantized.predict(arrays, verbose=0))
    plain = kc.quantization.strip_quantization(quantized)
    assert type(plain.layers[-1]) is keras.layers.Softmax
    np.testing.assert_allclose(plain.predict(arrays, verbose=0),
                               model.predict(arrays, verbose=0), atol=1e-6)
