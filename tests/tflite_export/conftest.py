"""Small untrained models and DATA files for the command's failure tests.

Nothing here is trained: these tests are about what the command accepts,
refuses and leaves behind, not about accuracy.
"""

import keras
import numpy as np
import pytest

import tflite_export as te


def _tiny_model():
    return keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(4, 3, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(3),
    ], name="tiny")


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """A folder with tiny.keras, tiny.tflite and good.npz (x and y)."""
    root = tmp_path_factory.mktemp("tiny")
    keras.utils.set_random_seed(0)
    model = _tiny_model()
    model.save(root / "tiny.keras")
    (root / "tiny.tflite").write_bytes(te.convert(model, "float32"))
    rng = np.random.default_rng(0)
    np.savez(root / "good.npz", x=rng.random((20, 8, 8, 1), "float32"),
             y=rng.integers(0, 3, 20))
    return root


@pytest.fixture(scope="session")
def slow_tflite(tmp_path_factory):
    """A float model slow enough (a few ms a run) to interrupt a bench."""
    root = tmp_path_factory.mktemp("slow")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((96, 96, 3)),
        keras.layers.Conv2D(32, 3, activation="relu"),
        keras.layers.Conv2D(32, 3),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(3),
    ])
    path = root / "slow.tflite"
    path.write_bytes(te.convert(model, "float32"))
    return path
