"""What a budget search optimizes: a score computed from predictions.

A score is higher-is-better. `"accuracy"` compares the argmax of the model's
output with integer (or one-hot) labels; `"loss"` is the model's compiled
loss, negated; a callable `score(y_true, y_pred) -> float` is used as given
(return a higher-is-better number, e.g. mAP or negative error).
"""

import keras
import numpy as np

__all__ = ["resolve_metric", "check_data"]

METRICS = ("accuracy", "loss")


def check_data(data, argument="data"):
    """`(x, y)` from a tuple of two arrays (y may be None)."""
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise ValueError(
            f"Received: {argument} of type {type(data).__name__}. Expected a "
            "tuple (x, y) of arrays: the inputs, and the labels the metric "
            "reads.")
    x, y = data
    count = len(x[0]) if isinstance(x, (list, tuple)) else len(x)
    if count == 0:
        raise ValueError(f"Received: {argument} with no samples. Expected "
                         "at least one (x, y) pair.")
    if y is not None and len(y) != count:
        raise ValueError(
            f"Received: {argument} with {count} inputs and {len(y)} labels. "
            "Expected one label per input.")
    return x, y


def _accuracy(y_true, y_pred):
    y_pred = np.asarray(y_pred)
    y_true = np.asarray(y_true)
    if y_true.ndim == y_pred.ndim:  # one-hot
        y_true = y_true.argmax(-1)
    return float(np.mean(y_pred.argmax(-1) == y_true.reshape(-1)))


def resolve_metric(metric, model, y, predictions):
    """The score function for `metric`, checked on `predictions`.

    Args:
        metric: `"accuracy"`, `"loss"` or a callable.
        model: the model whose predictions are scored.
        y: the labels of the data.
        predictions: the model's outputs on the data, to check that the
            metric can be computed from them.

    Returns:
        `score(y_pred) -> float`, higher is better.
    """
    if callable(metric):
        def score(y_pred):
            return float(metric(y, y_pred))
    elif metric == "accuracy":
        shape = np.shape(predictions)
        ok = (y is not None and not isinstance(predictions, (list, dict))
              and len(shape) == 2 and shape[-1] > 1
              and (np.ndim(y) == 1 or tuple(np.shape(y)) == shape)
              and (np.ndim(y) != 1 or np.issubdtype(
                  np.asarray(y).dtype, np.integer)))
        if not ok:
            outputs = ("several" if isinstance(predictions, (list, dict))
                       else shape)
            raise ValueError(
                f"Received: metric='accuracy' with labels of shape "
                f"{None if y is None else np.shape(y)} for outputs of shape "
                f"{outputs}. Expected one output of class scores "
                "(batch, classes) and "
                "integer labels (batch,) or one-hot ones; for other models "
                "pass metric='loss' or a callable score(y_true, y_pred).")

        def score(y_pred):
            return _accuracy(y, y_pred)
    elif metric == "loss":
        loss = getattr(model, "loss", None)
        if loss is None or y is None:
            raise ValueError(
                "Received: metric='loss' with "
                f"{'no labels' if y is None else 'an uncompiled model'}. "
                "Expected a model compiled with its loss, and labels in "
                "data=(x, y).")
        loss_fn = loss if callable(loss) else keras.losses.get(loss)

        def score(y_pred):
            return -float(np.mean(np.asarray(loss_fn(y, y_pred))))
    else:
        raise ValueError(
            f"Received: metric={metric!r}. Expected one of {METRICS} or a "
            "callable score(y_true, y_pred) -> float, higher is better.")
    score(predictions)  # fails here, not halfway through a search
    return score
