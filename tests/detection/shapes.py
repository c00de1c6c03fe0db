"""Detection data the tests draw themselves: filled squares, discs and
bars of three colours on noise, one or two per image, with true boxes."""

import numpy as np

from kcompress.detection import AnchorBoxes

SIZE = 64
CLASSES = 3


def anchors():
    return AnchorBoxes((SIZE, SIZE), (16, 32), ((0.3,), (0.55,)),
                       (1.0, 2.0))


def draw(count, seed=0):
    """`(images, truth)`: class 0 a red square, 1 a green disc, 2 a blue
    bar twice as wide as high."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 0.5, (count, SIZE, SIZE, 3)).astype(np.float32)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    truth = []
    for image in images:
        boxes, classes = [], []
        for _ in range(rng.integers(1, 3)):
            cls = int(rng.integers(CLASSES))
            h = int(rng.integers(14, 30))
            w = 2 * h if cls == 2 else h
            w = min(w, SIZE - 1)
            top, left = rng.integers(0, SIZE - h), rng.integers(0, SIZE - w)
            box = np.array([top, left, top + h, left + w]) / SIZE
            if any(_overlaps(box, b) for b in boxes):
                continue
            inside = (yy >= top) & (yy < top + h) & (xx >= left) & (
                xx < left + w)
            if cls == 1:
                inside &= ((yy - top - h / 2) ** 2 + (xx - left - w / 2) ** 2
                           <= (h / 2) ** 2)
            image[inside] = 0.1
            image[inside, cls] = 1.0
            boxes.append(box)
            classes.append(cls)
        truth.append((np.array(boxes, np.float32),
                      np.array(classes, np.int32)))
    return images, truth


def _overlaps(a, b):
    return not (a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1]
                or b[3] <= a[1])
