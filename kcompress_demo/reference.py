"""The reference task: scikit-learn's digits and a small CNN.

Every test, benchmark, notebook and the demo measure on this one task, which
ships inside scikit-learn (1797 real 8x8 handwritten digits, no download).
The split and the model are fixed so that figures compare across runs and
against TFMOT's on the same data.
"""

import dataclasses

import keras
import numpy as np

__all__ = ["DigitsSplit", "load_digits_split", "reference_cnn",
           "compile_reference", "fit", "pruning_schedule", "FIT_ARGS"]

# Training settings of the reference model.
FIT_ARGS = {"batch_size": 32, "epochs": 30}
LEARNING_RATE = 1e-3


@dataclasses.dataclass(frozen=True)
class DigitsSplit:
    """Stratified 80/20 split; `x` float32 in [0, 1], shape (n, 8, 8, 1)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load_digits_split():
    """Loads digits with a stratified 80/20 split (`random_state=0`).

    Raises:
        ImportError: if scikit-learn is missing, with the command to install.
    """
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as error:
        raise ImportError(
            "The reference digits data comes from scikit-learn. Install it "
            "with `pip install 'kcompress[test]'` or `pip install "
            "scikit-learn`."
        ) from error
    digits = load_digits()
    x = (digits.images / 16.0).astype("float32")[..., None]
    y = digits.target.astype("int32")
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.2, stratify=y, random_state=0)
    return DigitsSplit(x_train, y_train, x_test, y_test)


def reference_cnn(seed=0):
    """The reference CNN: three convs, a hidden Dense and 10 logits.

    Args:
        seed: seeds the weight initializers, for repeatable runs.
    """
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu",
                                name="conv1"),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu",
                                name="conv2"),
            keras.layers.MaxPooling2D(2, name="pool"),
            keras.layers.Conv2D(64, 3, padding="same", activation="relu",
                                name="conv3"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(64, activation="relu", name="dense1"),
            keras.layers.Dense(10, name="logits"),
        ],
        name="digits_cnn",
    )


def compile_reference(model, learning_rate=LEARNING_RATE, **kwargs):
    """Compiles `model` with the reference optimizer, loss and metric."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        **kwargs,
    )
    return model


def fit(model, data, epochs, callbacks=(), compiled=False):
    """Fits `model` on `data.x_train` with the reference batch size, quietly.

    Compiles it with `compile_reference` first unless `compiled` (a
    Distiller, for instance, is compiled with its own loss). Returns it.
    """
    if not compiled:
        compile_reference(model)
    model.fit(data.x_train, data.y_train, batch_size=FIT_ARGS["batch_size"],
              epochs=epochs, verbose=0, callbacks=list(callbacks))
    return model


def pruning_schedule(data, final_sparsity, epochs):
    """The reference pruning schedule for a fine-tune of `epochs` epochs.

    PolynomialDecay from 0 to `final_sparsity` over the first 70% of the
    steps, with masks updated every 10 steps.
    """
    from kcompress.pruning import PolynomialDecay

    steps = -(-len(data.x_train) // FIT_ARGS["batch_size"])
    return PolynomialDecay(0.0, final_sparsity, begin_step=0,
                           end_step=int(steps * epochs * 0.7), frequency=10)


def accuracy(model, x, y, batch_size=256):
    """Top-1 accuracy of `model`'s logits on `(x, y)`."""
    logits = model.predict(x, batch_size=batch_size, verbose=0)
    return float(np.mean(np.argmax(logits, axis=-1) == y))
