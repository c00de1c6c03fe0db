"""A small trained digits CNN, shared by the budget tests (trained once)."""

import keras
import pytest

from tests._digits import digit_images


def small_cnn():
    return keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(8, 3, padding="same", activation="relu",
                            name="conv1"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu",
                            name="conv2"),
        keras.layers.Conv2D(32, 1, activation="relu", name="conv3"),
        keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu", name="hidden"),
        keras.layers.Dense(10, name="logits")])


@pytest.fixture(scope="session")
def budget_data():
    x, y = digit_images()
    return (x[:1200], y[:1200]), (x[1200:1500], y[1200:1500])


@pytest.fixture(scope="session")
def _trained_cnn(budget_data, tmp_path_factory):
    (x, y), _ = budget_data
    keras.utils.set_random_seed(0)
    model = small_cnn()
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    model.fit(x, y, epochs=12, batch_size=32, verbose=0)
    path = tmp_path_factory.mktemp("budget") / "cnn.keras"
    model.save(path)
    return path


@pytest.fixture
def trained_cnn(_trained_cnn):
    return keras.saving.load_model(_trained_cnn)
