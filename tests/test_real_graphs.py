"""Every technique on functional graphs built the way real models are.

The graph here has what keras.applications and user models have and a
single chain of layers has not: `keras.ops` nodes (`x + 3.0`, `x * gate`,
`ops.mean`), a hard-swish written with ops, a squeeze-excite gate, a layer
called twice, residual adds, a GELU Dense and a softmax head.
"""

import contextlib
import warnings

import keras
import numpy as np
import pytest
from keras import layers
from keras import ops

import kcompress as kc
import tflite_export

# The ops every acceptance file must run in int8.
INT8_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "MUL",
            "CONCATENATION", "MEAN", "BATCH_MATMUL"}


@contextlib.contextmanager
def nothing_left_in_float():
    """Fails on kcompress's and tflite_export's float warnings only (JAX and
    NumPy warn about other things)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    ours = [str(w.message) for w in caught
            if "left these layers in float" in str(w.message)
            or "stay in float in the file" in str(w.message)]
    assert not ours, ours


def hard_swish(x):
    return x * layers.ReLU(6.0)(x + 3.0) * (1.0 / 6.0)


def op_graph(classes=4):
    inputs = keras.Input((12, 12, 3))
    x = layers.Conv2D(8, 3, padding="same", name="stem")(inputs)
    x = hard_swish(x)
    shared = layers.Conv2D(8, 3, padding="same", name="shared")
    y = shared(x)
    y = shared(layers.ReLU()(y))  # One layer, two calls.
    gate = layers.GlobalAveragePooling2D(keepdims=True)(y)
    gate = layers.Conv2D(8, 1, activation="sigmoid", name="gate")(gate)
    x = x + y * gate  # Squeeze-excite and a residual add, both as ops.
    x = layers.Concatenate()([x, layers.DepthwiseConv2D(3, padding="same",
                                                        name="dw")(x)])
    x = ops.mean(x, axis=(1, 2))
    x = layers.Dense(16, activation="gelu", name="mlp")(x)
    outputs = layers.Dense(classes, activation="softmax", name="head")(x)
    return keras.Model(inputs, outputs, name="op_graph")


def _numpy_initialized(model, seed=0):
    """`model` with kernels drawn by NumPy: the same on every backend (each
    Keras backend draws its own initial weights), so that the files, and
    their differences from Keras, are the same too."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        kernel = getattr(layer, "kernel", None)
        if kernel is not None:
            fan_in = int(np.prod(kernel.shape[:-1]))
            kernel.assign(rng.normal(0, np.sqrt(2 / fan_in), kernel.shape)
                          .astype("float32"))
    return model


def _data(count=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (count, 12, 12, 3)).astype("float32")
    y = (x[:, :6].mean((1, 2, 3)) > x[:, 6:].mean((1, 2, 3))).astype("int32")
    return x, y


def _operation_nodes(model):
    return [type(op).__name__ for op in model.operations
            if not isinstance(op, keras.layers.Layer)]


def _reloaded(model, x, path):
    """`model` saved to and loaded from `path`, asserting equal outputs."""
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0),
                               model.predict(x, verbose=0), atol=1e-6)
    return loaded


def test_the_graph_really_has_op_nodes():
    assert {"Add", "Multiply", "Mean"} <= set(_operation_nodes(op_graph()))


def test_prune_strip_save_load_keep_op_nodes_and_outputs(tmp_path):
    model = op_graph()
    x, y = _data()
    pruned = kc.pruning.prune_low_magnitude(
        model, kc.pruning.ConstantSparsity(0.5, 0, frequency=1))
    pruned.compile("adam", "sparse_categorical_crossentropy")
    pruned.fit(x, y, epochs=1, batch_size=32, verbose=0,
               callbacks=[kc.pruning.UpdatePruningStep()])
    # The shared layer, called twice per batch, steps once per batch too.
    steps = {wrapper.name: int(keras.ops.convert_to_numpy(
        wrapper.pruning_step)) for wrapper in kc.pruning.pruning_wrappers(
            pruned)}
    assert set(steps.values()) == {2}, steps  # 64 samples, batches of 32
    stripped = kc.pruning.strip_pruning(pruned)
    assert sorted(_operation_nodes(stripped)) == sorted(
        _operation_nodes(model))
    shared = stripped.get_layer("shared")
    assert len(shared._inbound_nodes) == 2  # Still one layer, two calls.
    kernel = keras.ops.convert_to_numpy(shared.kernel)
    assert abs(np.mean(kernel == 0) - 0.5) < 0.02
    _reloaded(stripped, x, tmp_path / "stripped.keras")


def test_factorize_and_distill_carry_op_nodes():
    model = op_graph()
    x, y = _data()
    small = kc.lowrank.factorize(model, energy=0.5)
    assert sorted(_operation_nodes(small)) == sorted(_operation_nodes(model))
    assert small.count_params() < model.count_params()
    logits = keras.Model(model.inputs, model.get_layer("head").input)
    distiller = kc.distillation.distill(logits, logits)
    distiller.compile("adam", keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    history = distiller.fit(x, y, epochs=1, batch_size=32, verbose=0)
    assert np.isfinite(history.history["loss"][-1])


def test_qat_file_of_op_graph_is_int8_and_matches_keras():
    model = op_graph()
    x, y = _data()
    with nothing_left_in_float():  # Nothing is left in float.
        qat = kc.quantization.quantize_model(model, calibration_data=x)
    qat.compile("adam", "sparse_categorical_crossentropy")
    qat.fit(x, y, epochs=1, batch_size=32, verbose=0)
    with nothing_left_in_float():  # No float compute op in the file.
        tflite = tflite_export.convert(qat, "qat")
    info = tflite_export.inspect(tflite)
    names = {op.name for op in info.ops}
    assert {"ADD", "MUL", "MEAN", "CONCATENATION", "GELU"} <= names
    assert not [op for op in info.ops if op.name in INT8_OPS
                and op.kind == "float"]
    check = tflite_export.verify(tflite, qat, x)
    assert check.top1_agreement >= 0.99
    assert check.max_steps <= 2.0


def test_strip_quantization_restores_the_float_graph():
    model = op_graph()
    x, _ = _data()
    qat = kc.quantization.quantize_model(model, calibration_data=x)
    names = [type(layer).__name__ for layer in qat.layers]
    assert "QuantizedConstant" in names  # The 3.0 and 1/6 of hard-swish.
    plain = kc.quantization.strip_quantization(qat)
    assert not kc.quantization.quantized_layers(plain)
    assert "QuantizedConstant" not in [type(layer).__name__
                                       for layer in plain.layers]
    np.testing.assert_allclose(plain.predict(x, verbose=0),
                               model.predict(x, verbose=0), atol=1e-5)


def test_qat_model_with_op_nodes_round_trips_through_keras_file(tmp_path):
    model = op_graph()
    x, _ = _data()
    qat = kc.quantization.quantize_model(model, calibration_data=x)
    _reloaded(qat, x, tmp_path / "qat.keras")


def test_integer_token_inputs_are_not_quantized():
    inputs = keras.Input((10,), dtype="int32")
    x = layers.Embedding(50, 8)(inputs)
    x = layers.Conv1D(8, 3, activation="relu")(x)
    outputs = layers.Dense(3)(layers.GlobalAveragePooling1D()(x))
    model = keras.Model(inputs, outputs)
    tokens = np.random.default_rng(0).integers(0, 50, (32, 10)).astype(
        "int32")
    qat = kc.quantization.quantize_model(model, calibration_data=tokens)
    assert not [layer for layer in qat.layers if isinstance(
        layer, kc.quantization.QuantizeLayer)]
    tflite = tflite_export.convert(qat, "qat")
    check = tflite_export.verify(tflite, qat, tokens)
    assert check.max_steps <= 1.0


@pytest.mark.parametrize("activation, grid", [("softmax", 1 / 256),
                                              ("sigmoid", 1 / 256),
                                              ("tanh", 1 / 128)])
def test_fixed_output_grids_match_tflite_kernels(activation, grid):
    inputs = keras.Input((6,))
    outputs = layers.Dense(5, activation=activation)(inputs)
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(0).normal(size=(32, 6)).astype("float32")
    qat = kc.quantization.quantize_model(model, calibration_data=x)
    tflite = tflite_export.convert(qat, "qat")
    check = tflite_export.verify(tflite, qat, x)
    assert check.output_scale == pytest.approx(grid)
    assert check.max_steps <= 1.0


def test_transformer_block_qat_file_is_int8_and_matches_keras(tmp_path):
    from kcompress_demo import zoo

    model = zoo.vit_encoder(size=16, patch=4, dim=16, heads=2, depth=1)
    x = np.random.default_rng(0).uniform(0, 1, (32, 16, 16, 3)).astype(
        "float32")
    with nothing_left_in_float():  # Nothing is left in float.
        qat = kc.quantization.quantize_model(model, calibration_data=x)
    kinds = {type(layer).__name__ for layer in qat.layers}
    assert {"QuantizeLayerNormalization",
            "QuantizeMultiHeadAttention"} <= kinds
    loaded = _reloaded(qat, x, tmp_path / "vit_qat.keras")
    with nothing_left_in_float():
        tflite = tflite_export.convert(loaded, "qat")
    info = tflite_export.inspect(tflite)
    names = {op.name for op in info.ops}
    assert {"BATCH_MATMUL", "SOFTMAX", "RSQRT", "MEAN"} <= names
    assert not [op for op in info.ops if op.name in INT8_OPS | {
        "SOFTMAX", "RSQRT"} and op.kind == "float"]
    check = tflite_export.verify(tflite, loaded, x)
    assert check.top1_agreement >= 0.99
    assert check.max_steps <= 2.0
    plain = kc.quantization.strip_quantization(qat)
    np.testing.assert_allclose(plain.predict(x, verbose=0),
                               model.predict(x, verbose=0), atol=1e-5)


def test_activation_ranges_are_exact_in_float32_and_float64():
    from kcompress.quantization import int8_kernels

    rng = np.random.default_rng(0)
    for low, high in zip(-rng.exponential(3, 200), rng.exponential(3, 200)):
        a, b = (float(keras.ops.convert_to_numpy(v))
                for v in int8_kernels.exact_range(low, high))
        scale32 = np.float32(np.float32(b) - np.float32(a)) / np.float32(255)
        scale64 = (float(b) - float(a)) / 255.0
        assert float(scale32) == scale64
        assert a <= 0 <= b and abs((b - a) - (high - low)) <= (
            high - low) * 2.0 ** -11 + 1e-9


def test_batchnorm_without_conv_and_swish_run_int8_and_match():
    """DenseNet's pre-activation BatchNorm and EfficientNet's swish."""
    inputs = keras.Input((8, 8, 4))
    x = layers.BatchNormalization(name="pre_bn")(inputs)
    x = layers.Activation("relu")(x)
    x = layers.Conv2D(8, 3, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("swish", name="swish")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.BatchNormalization(name="post_bn")(x)
    outputs = layers.Dense(3, activation="swish")(x)
    model = _numpy_initialized(keras.Model(inputs, outputs))
    rng = np.random.default_rng(0)
    x_data = rng.normal(1.0, 2.0, (64, 8, 8, 4)).astype("float32")
    y_data = rng.integers(0, 3, 64).astype("int32")
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    model.fit(x_data, y_data, epochs=2, verbose=0, shuffle=False)  # Stats.
    with nothing_left_in_float():
        qat = kc.quantization.quantize_model(model, calibration_data=x_data)
    kinds = [type(layer).__name__ for layer in qat.layers]
    assert kinds.count("QuantizeBatchNormalization") == 2
    assert kinds.count("QuantizeSwish") == 2  # The layer and the Dense's.
    plain = kc.quantization.strip_quantization(qat)  # Before QAT training.
    np.testing.assert_allclose(plain.predict(x_data, verbose=0),
                               model.predict(x_data, verbose=0), atol=1e-4)
    qat.compile("adam", keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    qat.fit(x_data, y_data, epochs=1, verbose=0, shuffle=False)
    with nothing_left_in_float():
        tflite = tflite_export.convert(qat, "qat")
    ops_ = tflite_export.inspect(tflite).ops
    assert not [op.name for op in ops_ if op.kind == "float"
                and op.name not in ("QUANTIZE", "DEQUANTIZE")]
    assert "LOGISTIC" in {op.name for op in ops_}
    check = tflite_export.verify(tflite, qat, x_data)
    # TFLite fuses the ReLU into the lone BatchNorm's ADD and rounds once;
    # QAT rounds there too, and biases sit on TFLite's int32 grid. This was
    # 4 steps, mean 0.9, when QAT rounded the ADD's output twice.
    assert check.max_steps <= 1.0 + 1e-3
    assert check.mean_steps <= 0.05


def test_decoder_layers_qat_file_is_int8_and_matches_keras():
    """Conv2DTranspose, UpSampling2D, Cropping2D, ZeroPadding2D, Permute,
    Reshape, AveragePooling2D, Subtract, Maximum, Average, LeakyReLU."""
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(
        inputs)
    x = layers.Conv2DTranspose(8, 3, strides=2, padding="same")(x)
    y = layers.UpSampling2D()(layers.AveragePooling2D(2)(x))
    x = layers.Subtract()([x, y])
    x = layers.Maximum()([x, layers.LeakyReLU(0.1)(y)])
    x = layers.Average()([x, y])
    x = layers.Cropping2D(1)(layers.ZeroPadding2D(1)(x))
    x = layers.Permute((2, 1, 3))(x)
    x = layers.Reshape((64, 8))(x)
    outputs = layers.Dense(3)(layers.GlobalAveragePooling1D()(x))
    model = _numpy_initialized(keras.Model(inputs, outputs))
    x_data = np.random.default_rng(0).normal(size=(32, 8, 8, 3)).astype(
        "float32")
    with nothing_left_in_float():
        qat = kc.quantization.quantize_model(model, calibration_data=x_data)
        tflite = tflite_export.convert(qat, "qat")
    ops_ = tflite_export.inspect(tflite).ops
    assert "TRANSPOSE_CONV" in {op.name for op in ops_}
    assert not [op.name for op in ops_ if op.kind == "float"
                and op.name not in ("QUANTIZE", "DEQUANTIZE")]
    # QAT rounds the AveragePooling2D's mean onto its input's grid, ties
    # away from zero, as TFLite does: 4 steps (mean 1.2) before, 2 now.
    check = tflite_export.verify(tflite, qat, x_data)
    assert check.max_steps <= 2.0 + 1e-3
    assert check.mean_steps <= 0.6


def test_dense_block_convolutions_write_onto_the_concatenation_grid():
    """DenseNet: each block's 3x3 conv feeds only a Concatenate. TFLite's
    int8 CONCATENATION keeps one scale, so the converter has the conv write
    onto the concatenation's grid; QAT must round once there too."""
    inputs = keras.Input((8, 8, 4))
    x = layers.Conv2D(8, 3, padding="same", activation="relu",
                      name="stem")(inputs)
    # As DenseNet's stem: the pooled tensor feeds a BatchNorm and a
    # Concatenate, through layers that keep the stem's grid.
    x = layers.MaxPooling2D(2, 1, padding="same", name="pool")(
        layers.ZeroPadding2D(1)(x))
    for block in range(3):
        y = layers.BatchNormalization()(x)
        y = layers.Activation("relu")(y)
        y = layers.Conv2D(8, 1, use_bias=False)(y)
        y = layers.BatchNormalization()(y)
        y = layers.Activation("relu")(y)
        y = layers.Conv2D(4, 3, padding="same", use_bias=False,
                          name=f"grow{block}")(y)
        x = layers.Concatenate()([x, y])
    outputs = layers.Dense(3)(layers.GlobalAveragePooling2D()(x))
    model = _numpy_initialized(keras.Model(inputs, outputs))
    rng = np.random.default_rng(0)
    x_data = rng.normal(0.5, 1.0, (64, 8, 8, 4)).astype("float32")
    y_data = rng.integers(0, 3, 64).astype("int32")
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile("adam", loss)
    model.fit(x_data, y_data, epochs=2, verbose=0, shuffle=False)
    with nothing_left_in_float():
        qat = kc.quantization.quantize_model(model, calibration_data=x_data)
    for block in range(3):
        grow = qat.get_layer(f"quant_grow{block}")
        assert not grow.quantize_config.quantize_output
    assert qat.get_layer("quant_stem").quantize_config.quantize_output
    # The pool is wrapped only to pin its grid at export.
    assert not qat.get_layer("quant_pool").quantize_config.quantizes_anything
    qat.compile("adam", loss)
    qat.fit(x_data, y_data, epochs=1, verbose=0, shuffle=False)
    with nothing_left_in_float():
        tflite = tflite_export.convert(qat, "qat")
    ops_ = tflite_export.inspect(tflite).ops
    assert [op.name for op in ops_].count("CONCATENATION") == 3
    assert not [op.name for op in ops_ if op.name in INT8_OPS
                and op.kind == "float"]
    check = tflite_export.verify(tflite, qat, x_data)
    # Rounding each conv on a grid of its own first, and the converter
    # moving the stem and pool onto the first concatenation's grid (which
    # the next BatchNorm then read), gave a mean of 0.93 steps; 0.30 now.
    # What is left is rare 1-step roundings the layers after multiply (fed
    # the file's own MEAN output, the Dense gives the file's logits
    # exactly).
    assert check.mean_steps <= 0.45
    assert check.max_steps <= 4.0 + 1e-3
