"""scikit-learn's digits as 8x8x1 float images in [0, 1], and labels."""

import numpy as np


def digit_images(count=None):
    """The first `count` digits (all 1797 when None): `(x, y)`."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0)[..., None].astype("float32")
    return x[:count], np.asarray(digits.target)[:count]
