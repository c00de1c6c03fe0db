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


def tiny_detector(name="tiny_detector"):
    """A small SSD of the same head layout as `ssd_lite` (outputs
    `box_encodings` and `class_scores`, strides 16 and 32) on a six-conv
    backbone: the prune, QAT and export paths at a fraction of
    MobileNetV2's tracing time."""
    import keras

    anchors_ = anchors()
    inputs = keras.Input((SIZE, SIZE, 3))
    x = inputs
    features = []
    for i, filters in enumerate((16, 24, 32, 48, 64)):
        x = keras.layers.Conv2D(filters, 3, strides=2, padding="same",
                                use_bias=False, name=f"conv{i}")(x)
        x = keras.layers.BatchNormalization(momentum=0.9, name=f"bn{i}")(x)
        x = keras.layers.ReLU(6.0, name=f"relu{i}")(x)
        if i >= 3:
            features.append(x)
    boxes, scores = [], []
    for level, (feature, per_cell) in enumerate(zip(features,
                                                    anchors_.per_cell)):
        for kind, width, out in (("box", 4, boxes), ("class", CLASSES,
                                                     scores)):
            y = keras.layers.Conv2D(per_cell * width, 3, padding="same",
                                    name=f"{kind}_{level}_conv")(feature)
            out.append(keras.layers.Reshape((-1, width))(y))
    box_encodings = keras.layers.Concatenate(axis=1, name="box_encodings")(
        boxes)
    logits = keras.layers.Concatenate(axis=1)(scores)
    class_scores = keras.layers.Activation("sigmoid", name="class_scores")(
        logits)
    return keras.Model(inputs, [box_encodings, class_scores], name=name)
