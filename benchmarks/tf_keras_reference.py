"""The reference digits CNN in tf_keras, for TFMOT side-by-side runs.

Import this only after `TF_USE_LEGACY_KERAS=1` is set (the benchmark scripts
set it first), so that `tf.keras` is tf_keras.
"""

import tensorflow as tf


def build_cnn(seed=0):
    """The same architecture as `kcompress_demo.reference.reference_cnn`."""
    tf.keras.utils.set_random_seed(seed)
    layers = tf.keras.layers
    return tf.keras.Sequential([
        layers.Conv2D(16, 3, padding="same", activation="relu",
                      input_shape=(8, 8, 1)),
        layers.Conv2D(32, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(64, 3, padding="same", activation="relu"),
        layers.Flatten(),
        layers.Dense(64, activation="relu"),
        layers.Dense(10),
    ])


def compile_reference(model, learning_rate=1e-3, **kwargs):
    """Adam (1e-3 unless given), sparse categorical cross-entropy on logits,
    accuracy; `kwargs` go to `compile` (`jit_compile=`, for instance)."""
    model.compile(
        tf.keras.optimizers.Adam(learning_rate),
        tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"], **kwargs)
    return model


def copy_model(model):
    """A new tf_keras model with `model`'s architecture and weights. TFMOT's
    wrappers wrap a model's own layers (and prune them in place), so each
    technique gets its own copy."""
    copy = tf.keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy
