"""Shared fixtures: the reference digits split and a trained float model.

The float model is trained once per test session (30 epochs, seed 0) and
tests get clones of it, so no test can change another's starting point.
"""

import keras
import pytest

from kcompress_demo import reference


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same random state, whatever ran before."""
    keras.utils.set_random_seed(1234)


@pytest.fixture(scope="session")
def digits():
    return reference.load_digits_split()


@pytest.fixture(scope="session")
def _trained_float(digits, tmp_path_factory):
    model = reference.compile_reference(reference.reference_cnn(seed=0))
    model.fit(digits.x_train, digits.y_train, verbose=0, **reference.FIT_ARGS)
    path = tmp_path_factory.mktemp("float") / "digits_float.keras"
    model.save(path)
    return path, reference.accuracy(model, digits.x_test, digits.y_test)


@pytest.fixture
def float_model(_trained_float):
    """A fresh copy of the trained reference model."""
    return keras.saving.load_model(_trained_float[0])


@pytest.fixture(scope="session")
def float_accuracy(_trained_float):
    return _trained_float[1]


@pytest.fixture
def steps_per_epoch(digits):
    return -(-len(digits.x_train) // reference.FIT_ARGS["batch_size"])
