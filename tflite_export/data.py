"""Reading DATA arguments: a `.npz` or `.npy` file, or a directory of images.

- `.npz`: an array `x` (inputs, first axis = samples) and optionally `y`
  (integer labels, one per sample).
- `.npy`: one array of inputs, no labels.
- A directory of images (`.png`, `.jpg`, `.jpeg`, `.bmp`, `.gif`): images are
  decoded, resized to the model's input height and width, converted to its
  channel count, and scaled to [0, 1]. If the directory holds
  subdirectories, each subdirectory is a class: labels are the indices of the
  sorted subdirectory names.

Every failure is a `DataError` that names the file and what was expected.
"""

from __future__ import annotations

import os
import zipfile

import numpy as np

from tflite_export.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
_EXPECTED = ("DATA is a .npz file with an array x (and optional integer "
             "labels y), a .npy file of inputs, or a directory of images")
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"


def load(path: str | os.PathLike, input_shape: tuple | None = None):
    """`(x, y or None)` from a DATA path, checked.

    Args:
        path: a `.npz` or `.npy` file, or an image directory.
        input_shape: the model input shape `(batch, h, w, c)`, needed for
            images.

    Raises:
        DataError: if the path is missing, unreadable, not numeric, holds
            NaN or infinite values, or has labels that are not one integer
            per sample.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataError(f"data file not found: {path}")
    if os.path.isdir(path):
        x, y = _load_images(path, input_shape)
    else:
        x, y = _load_arrays(path)
    return check_inputs(x, path), _check_labels(y, len(x), path)


def _load_arrays(path):
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except OSError as error:
        raise DataError(f"cannot read {path}: {error.strerror}") from None
    if not magic:
        raise DataError(f"{path} is empty. {_EXPECTED}.")
    if not (magic.startswith(_ZIP_MAGIC) or magic == _NPY_MAGIC):
        raise DataError(f"{path} is neither a .npz nor a .npy file. "
                        f"{_EXPECTED}.")
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            return loaded, None
        with loaded as archive:
            if "x" not in archive.files:
                raise DataError(
                    f"{path} has no array 'x' (found: "
                    f"{', '.join(archive.files) or 'none'}). {_EXPECTED}.")
            return archive["x"], archive["y"] if "y" in archive.files else None
    except DataError:
        raise
    except ValueError as error:
        if "pickle" in str(error):
            raise DataError(f"{path} holds object arrays, which are not "
                            "loaded (they would need pickle). Save numbers: "
                            "np.savez(path, x=x.astype('float32'), "
                            "y=y.astype('int64')).") from None
        raise DataError(f"{path} is truncated or corrupt: {error}") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as error:
        raise DataError(f"{path} is truncated or corrupt "
                        f"({type(error).__name__}: {error})") from None


def check_inputs(x, name="data"):
    """`x` as an array of numbers, at least one sample, all finite.

    The same checks, with the same messages, as `kcompress.inputs`
    (which serves everything that has a model to check against), kept here
    without it: importing kcompress loads Keras, and the command checks
    DATA files before it loads Keras.
    """
    x = np.asarray(x)
    if x.dtype.kind not in "fiub":
        raise DataError(f"Received: {name} of dtype {x.dtype}, which is not "
                        "numeric. Expected numbers.")
    if x.ndim == 0 or len(x) == 0:
        raise DataError(f"Received: {name} with no samples (shape "
                        f"{x.shape}). Expected at least one.")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise DataError(f"Received: {name} with NaN or infinite (non-finite) "
                        "values. Expected finite numbers.")
    return x


def _check_labels(y, count, name):
    if y is None:
        return None
    y = np.asarray(y)
    if (y.dtype.kind == "f" and np.isfinite(y).all()
            and np.all(y == np.round(y))):
        y = y.astype(np.int64)
    if y.dtype.kind not in "iu":
        raise DataError(f"{name}: labels y of dtype {y.dtype} are not "
                        "integers. Expected one integer class index per "
                        "sample.")
    y = y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y
    if y.ndim != 1 or len(y) != count:
        raise DataError(f"{name}: {count} samples but labels y of shape "
                        f"{y.shape}. Expected one integer label per sample, "
                        f"shape ({count},).")
    return y


def _load_images(path, input_shape):
    if input_shape is None or len(input_shape) != 4:
        raise DataError(
            f"an image directory needs a model with (h, w, c) input; got "
            f"input shape {input_shape}")
    _, height, width, channels = input_shape
    classes = sorted(d for d in os.listdir(path)
                     if os.path.isdir(os.path.join(path, d)))
    files = []
    for label, folder in enumerate(classes or [""]):
        folder_path = os.path.join(path, folder)
        for name in sorted(os.listdir(folder_path)):
            if name.lower().endswith(IMAGE_EXTENSIONS):
                files.append((os.path.join(folder_path, name), label))
    if not files:
        raise DataError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {path}")
    import tensorflow as tf  # Image decoding only.

    images = []
    for file, _ in files:
        try:
            image = tf.io.decode_image(tf.io.read_file(file),
                                       channels=channels,
                                       expand_animations=False)
        except tf.errors.OpError as error:
            raise DataError(f"cannot decode image {file}: "
                            f"{error.message}") from None
        image = tf.image.resize(tf.cast(image, tf.float32) / 255.0,
                                (height, width))
        images.append(image.numpy())
    labels = np.array([label for _, label in files]) if classes else None
    return np.stack(images).astype(np.float32), labels
