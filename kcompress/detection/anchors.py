"""`AnchorBoxes`: the SSD anchor grid a detector's head predicts against.

Each feature map of stride `s` gets, at every cell, one anchor per
(scale, aspect ratio) pair, centred on the cell. Anchors are
`(y_center, x_center, height, width)`, normalized to the image (the layout
of TFLite's `TFLite_Detection_PostProcess`), in the order a head's
`Reshape((-1, 4))` of an `(H, W, A * 4)` map gives: level, row, column,
anchor.
"""

import keras
import numpy as np

from kcompress._arguments import as_int

__all__ = ["AnchorBoxes"]


def _positive_int(name, value):
    number = as_int(value)
    if number is None or number < 1:
        raise ValueError(f"Received: {name}={value!r}. Expected a positive "
                         "integer.")
    return number


def _positive_floats(name, values):
    values = tuple(float(v) for v in values)
    if not values or any(not (v > 0) for v in values):
        raise ValueError(f"Received: {name}={values!r}. Expected a non-empty "
                         "sequence of positive floats.")
    return values


@keras.saving.register_keras_serializable(package="kcompress")
class AnchorBoxes:
    """An SSD anchor grid.

    Args:
        image_size: `(height, width)` of the detector's input, in pixels.
        strides: the stride of each feature map the head reads, e.g.
            `(16, 32)` for MobileNetV2's last two resolutions.
        scales: for each feature map, the anchor sizes as fractions of the
            image side, e.g. `((0.2, 0.35), (0.5, 0.8))`.
        aspect_ratios: width / height of the anchors at every scale.

    Example:

    >>> anchors = AnchorBoxes((96, 96), (16, 32), ((0.25,), (0.5,)), (1.0,))
    >>> anchors.boxes().shape  # 6 * 6 + 3 * 3 cells, one anchor each
    (45, 4)
    >>> anchors.per_cell
    (1, 1)
    """

    def __init__(self, image_size, strides, scales, aspect_ratios=(1.0,)):
        if len(tuple(image_size)) != 2:
            raise ValueError(f"Received: image_size={image_size!r}. Expected "
                             "(height, width) in pixels.")
        self.image_size = tuple(_positive_int("image_size", v)
                                for v in image_size)
        self.strides = tuple(_positive_int("strides", s) for s in strides)
        scales = tuple(_positive_floats("scales", level) for level in scales)
        if len(scales) != len(self.strides):
            raise ValueError(
                f"Received: {len(scales)} lists of scales for "
                f"{len(self.strides)} strides. Expected one list per "
                "feature map.")
        self.scales = scales
        self.aspect_ratios = _positive_floats("aspect_ratios", aspect_ratios)
        for stride in self.strides:
            if any(size % stride for size in self.image_size):
                raise ValueError(
                    f"Received: image_size={self.image_size} and stride "
                    f"{stride}. Expected sides divisible by every stride.")

    @property
    def per_cell(self):
        """Anchors at each cell of each feature map."""
        return tuple(len(level) * len(self.aspect_ratios)
                     for level in self.scales)

    @property
    def feature_sizes(self):
        """`(rows, columns)` of each feature map."""
        return tuple((self.image_size[0] // s, self.image_size[1] // s)
                     for s in self.strides)

    def boxes(self):
        """All anchors, `(N, 4)` float32 `(y_center, x_center, h, w)`."""
        levels = []
        aspect = self.image_size[1] / self.image_size[0]
        for (rows, cols), scales in zip(self.feature_sizes, self.scales):
            cy, cx = np.meshgrid((np.arange(rows) + 0.5) / rows,
                                 (np.arange(cols) + 0.5) / cols,
                                 indexing="ij")
            shapes = [(scale / np.sqrt(ratio), scale * np.sqrt(ratio) / aspect)
                      for scale in scales for ratio in self.aspect_ratios]
            grid = np.zeros((rows, cols, len(shapes), 4), np.float32)
            grid[..., 0] = cy[..., None]
            grid[..., 1] = cx[..., None]
            grid[..., 2] = [h for h, _ in shapes]
            grid[..., 3] = [w for _, w in shapes]
            levels.append(grid.reshape(-1, 4))
        return np.concatenate(levels)

    def get_config(self):
        return {"image_size": list(self.image_size),
                "strides": list(self.strides),
                "scales": [list(level) for level in self.scales],
                "aspect_ratios": list(self.aspect_ratios)}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return (isinstance(other, AnchorBoxes)
                and self.get_config() == other.get_config())

    def __repr__(self):
        return (f"AnchorBoxes(image_size={self.image_size}, strides="
                f"{self.strides}, scales={self.scales}, aspect_ratios="
                f"{self.aspect_ratios})")
