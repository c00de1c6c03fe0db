"""What TFMOT's guides start from: a small trained float model.

The guides train a Conv/MaxPool/Dense classifier on MNIST (a download); here
the same architecture trains on scikit-learn's digits (8x8, shipped in the
package), once per session, and every guide test starts from a copy.
"""

import types

import keras
import numpy as np
import pytest

import tflite_export as te

L = keras.layers


def guide_model():
    """The guides' classifier (Reshape, Conv2D, MaxPooling2D, Flatten,
    Dense) on 8x8 digits: 32 filters with "same" padding in place of 12, so
    that the Dense layer has as many weights to spare as the guides'."""
    return keras.Sequential([
        keras.Input((8, 8)), L.Reshape((8, 8, 1)),
        L.Conv2D(32, 3, padding="same", activation="relu", name="conv"),
        L.MaxPooling2D(2), L.Flatten(), L.Dense(10, name="logits")])


def compile_guide(model, learning_rate=1e-3):
    model.compile(keras.optimizers.Adam(learning_rate),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def tflite_accuracy(tflite_bytes, data):
    """Top-1 accuracy of a `.tflite` file on the test split."""
    outputs, _ = te.run_tflite(tflite_bytes, [data.x_test])
    return float(np.mean(np.argmax(outputs, -1) == data.y_test))


def reload(model, path, scope, x):
    """`model` saved to `path` and loaded inside `scope`; asserts that the
    loaded model gives the same outputs on `x`."""
    model.save(path)
    with scope:
        loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0),
                               model.predict(x, verbose=0), atol=1e-5)
    return loaded


@pytest.fixture(scope="session")
def guide():
    """The trained float model (`guide.model`, never modified: tests copy
    it with `guide.copy()`), its data and its test accuracy."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype("float32")
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], digits.target[order]
    data = types.SimpleNamespace(x_train=x[:1437], y_train=y[:1437],
                                 x_test=x[1437:], y_test=y[1437:])
    keras.utils.set_random_seed(0)
    model = compile_guide(guide_model())
    model.fit(data.x_train, data.y_train, batch_size=32, epochs=12,
              verbose=0)
    accuracy = model.evaluate(data.x_test, data.y_test, verbose=0)[1]

    def copy():
        clone = keras.models.clone_model(model)
        clone.set_weights(model.get_weights())
        return clone

    return types.SimpleNamespace(model=model, data=data, accuracy=accuracy,
                                 copy=copy)
