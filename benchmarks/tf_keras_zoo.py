"""The zoo of `kcompress_demo.zoo` in tf_keras, and TFMOT's QAT and pruning
on it, for `model_zoo.py`.

Import this only after `TF_USE_LEGACY_KERAS=1` is set, so that `tf.keras` is
tf_keras (`model_zoo.py` sets it first).
"""

import numpy as np
import tensorflow as tf

from kcompress_demo import zoo

CLASSES = zoo.CLASSES
_SIZES = {"MobileNetV2": 96}
_KWARGS = {"MobileNetV2": {"alpha": 0.35}}


def _vit(size=32, patch=8, dim=32, heads=2, depth=2):
    layers = tf.keras.layers
    inputs = tf.keras.Input((size, size, 3))
    x = layers.Conv2D(dim, patch, strides=patch)(inputs)
    tokens = (size // patch) ** 2
    x = layers.Reshape((tokens, dim))(x)
    x = x + layers.Embedding(tokens, dim)(tf.range(tokens))
    for _ in range(depth):
        y = layers.LayerNormalization(epsilon=1e-6)(x)
        y = layers.MultiHeadAttention(heads, dim // heads)(y, y)
        x = layers.Add()([x, y])
        y = layers.LayerNormalization(epsilon=1e-6)(x)
        y = layers.Dense(dim * 2, activation="gelu")(y)
        x = layers.Add()([x, layers.Dense(dim)(y)])
    x = layers.LayerNormalization(epsilon=1e-6)(x)
    x = layers.GlobalAveragePooling1D()(x)
    return tf.keras.Model(inputs, layers.Dense(CLASSES,
                                               activation="softmax")(x))


def _conv1d_text(length=32, vocabulary=200):
    layers = tf.keras.layers
    inputs = tf.keras.Input((length,), dtype="int32")
    x = layers.Embedding(vocabulary, 16)(inputs)
    x = layers.Conv1D(32, 5, activation="relu")(x)
    x = layers.MaxPooling1D(2)(x)
    x = layers.Conv1D(32, 3, activation="relu")(x)
    x = layers.GlobalAveragePooling1D()(x)
    x = layers.Dropout(0.2)(x)
    return tf.keras.Model(inputs, layers.Dense(CLASSES,
                                               activation="softmax")(x))


def _recurrent(cell, length=16, features=8, units=32):
    layers = tf.keras.layers
    inputs = tf.keras.Input((length, features), batch_size=1)
    x = getattr(layers, cell)(units)(inputs)
    x = layers.Dense(32, activation="relu")(x)
    return tf.keras.Model(inputs, layers.Dense(CLASSES,
                                               activation="softmax")(x))


def build(name):
    """The tf_keras twin of `zoo.build(name)`."""
    if name == "ViTEncoder":
        return _vit()
    if name == "Conv1DText":
        return _conv1d_text()
    if name in ("LSTM", "GRU"):
        return _recurrent(name)
    size = _SIZES.get(name, 64)
    return getattr(tf.keras.applications, name)(
        input_shape=(size, size, 3), weights=None, classes=CLASSES,
        **_KWARGS.get(name, {}))


def _inputs(model, count):
    spec = model.inputs[0]
    rng = np.random.default_rng(0)
    shape = (count,) + tuple(spec.shape[1:])
    if spec.dtype.is_integer:
        return rng.integers(0, 100, size=shape).astype("int32")
    return rng.uniform(0, 1, size=shape).astype("float32")


def _convert(model, samples=None):
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if samples is not None:
        converter.representative_dataset = lambda: (
            [samples[i:i + 1]] for i in range(len(samples)))
    return converter.convert()


def _cell(tflite_bytes, model, x):
    import tflite_export
    from tflite_export import verification

    info = tflite_export.inspect(tflite_bytes)
    lite, scale = verification.run_tflite(tflite_bytes, [x])
    reference = np.asarray(model.predict(x, verbose=0)).reshape(lite.shape)
    steps = (float(np.max(np.abs(lite - reference))) / scale
             if scale else None)
    return {"status": "ok", "size": info.size,
            "int8": round(info.int8_coverage, 3),
            "steps": None if steps is None else round(steps, 2),
            "float_ops": sorted({op.name for op in info.float_ops})}


def cells(name, count, attempt):
    """`(QAT cell, prune cell)` for TFMOT on the model called `name`."""
    import tensorflow_model_optimization as tfmot

    tf.keras.utils.set_random_seed(0)
    model = build(name)
    x = _inputs(model, count)

    def qat():
        quantized = tfmot.quantization.keras.quantize_model(model)
        quantized(x[:1])
        return _cell(_convert(quantized), quantized, x)

    def prune():
        sparsity = tfmot.sparsity.keras
        pruned = sparsity.prune_low_magnitude(
            model,
            pruning_schedule=sparsity.ConstantSparsity(0.5, 0, frequency=1))
        pruned.compile("adam", "sparse_categorical_crossentropy")
        y = np.asarray(model.predict(x, verbose=0)).argmax(-1)
        pruned.fit(x, y, epochs=1, batch_size=len(x), verbose=0,
                   callbacks=[sparsity.UpdatePruningStep()])
        stripped = sparsity.strip_pruning(pruned)
        return _cell(_convert(stripped, x), stripped, x)

    return attempt(qat), attempt(prune)
