"""Reading DATA arguments: a `.npz` file or a directory of images.

- `.npz`: an array `x` (inputs, first axis = samples) and optionally `y`
  (integer labels).
- A directory of images (`.png`, `.jpg`, `.jpeg`, `.bmp`, `.gif`): images are
  decoded, resized to the model's input height and width, converted to its
  channel count, and scaled to [0, 1]. If the directory holds
  subdirectories, each subdirectory is a class: labels are the indices of the
  sorted subdirectory names.
"""

import os

import numpy as np

from tflite_export.errors import CliError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


def load(path, input_shape=None):
    """`(x, y or None)` from a DATA path.

    Args:
        path: a `.npz` file or an image directory.
        input_shape: the model input shape `(batch, h, w, c)`, needed for
            images.
    """
    if not os.path.exists(path):
        raise CliError(f"data file not found: {path}")
    if os.path.isdir(path):
        return _load_images(path, input_shape)
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "x" not in archive:
                raise CliError(
                    f"{path} has no array 'x' (found: "
                    f"{', '.join(archive.files) or 'none'}); expected x and "
                    "optionally y")
            x = archive["x"]
            y = archive["y"] if "y" in archive else None
    except (OSError, ValueError) as error:
        raise CliError(f"cannot read {path} as .npz: {error}") from None
    return x, y


def _load_images(path, input_shape):
    import tensorflow as tf

    if input_shape is None or len(input_shape) != 4:
        raise CliError(
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
        raise CliError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {path}")
    images = []
    for file, _ in files:
        try:
            image = tf.io.decode_image(tf.io.read_file(file),
                                       channels=channels,
                                       expand_animations=False)
        except tf.errors.OpError as error:
            raise CliError(f"cannot decode image {file}: "
                           f"{error.message}") from None
        image = tf.image.resize(tf.cast(image, tf.float32) / 255.0,
                                (height, width))
        images.append(image.numpy())
    labels = np.array([label for _, label in files]) if classes else None
    return np.stack(images).astype(np.float32), labels
