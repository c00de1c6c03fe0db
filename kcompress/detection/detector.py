"""`ssd_lite`: an SSD-lite detector on a `keras.applications` backbone.

The head reads the backbone's last two resolutions (strides 16 and 32).
At each, a 3x3 depthwise convolution, batch norm and ReLU6, then a 1x1
convolution predict, per anchor, four box regressions and one sigmoid
score per class (SSDLite, Sandler et al. 2018). The outputs are named
`box_encodings` `(N, 4)` and `class_scores` `(N, classes)`, the names
`tflite_export`'s detection post-processing recognizes.
"""

import keras

from kcompress.detection.anchors import AnchorBoxes

__all__ = ["BOX_OUTPUT", "SCORE_OUTPUT", "ssd_lite"]

BOX_OUTPUT = "box_encodings"
SCORE_OUTPUT = "class_scores"

# The backbone layers whose outputs have strides 16 and 32.
_FEATURES = {
    "mobilenet_v2": ("block_13_expand_relu", "out_relu"),
}


_BN_MOMENTUM = 0.9


def _backbone(name, inputs, alpha):
    if name not in _FEATURES:
        raise ValueError(
            f"Received: backbone={name!r}. Expected one of "
            f"{', '.join(sorted(_FEATURES))}; for another backbone, build "
            "the head on its stride-16 and stride-32 features and name the "
            f"outputs '{BOX_OUTPUT}' and '{SCORE_OUTPUT}'.")
    model = keras.applications.MobileNetV2(
        input_tensor=inputs, alpha=alpha, include_top=False, weights=None)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            # keras.applications' 0.999 suits ImageNet's million steps; from
            # scratch on a few thousand, the moving statistics would still
            # be far from the batches' when training ends.
            layer.momentum = _BN_MOMENTUM
    return [model.get_layer(layer).output for layer in _FEATURES[name]]


def _head(features, per_cell, width, name):
    x = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False,
                                     name=f"{name}_depthwise")(features)
    x = keras.layers.BatchNormalization(momentum=_BN_MOMENTUM,
                                        name=f"{name}_bn")(x)
    x = keras.layers.ReLU(6.0, name=f"{name}_relu")(x)
    x = keras.layers.Conv2D(per_cell * width, 1, name=f"{name}_conv")(x)
    return keras.layers.Reshape((-1, width), name=f"{name}_reshape")(x)


def ssd_lite(num_classes, anchors, backbone="mobilenet_v2", alpha=0.35,
             name="ssd_lite"):
    """An SSD-lite detector, untrained (`weights=None`: nothing is fetched).

    Args:
        num_classes: object classes (no background class).
        anchors: the `AnchorBoxes`; its `image_size` is the input's, its
            strides must be `(16, 32)`.
        backbone: `"mobilenet_v2"`.
        alpha: the backbone's width multiplier.
        name: the model's name.

    Returns:
        A functional `keras.Model` from `(h, w, 3)` images in [0, 1] to
        `[box_encodings, class_scores]`.

    Example:

    >>> anchors = AnchorBoxes((64, 64), (16, 32), ((.3,), (.6,)), (1., 2.))
    >>> model = ssd_lite(3, anchors)
    >>> [tuple(t.shape) for t in model.outputs]
    [(None, 40, 4), (None, 40, 3)]
    """
    if not isinstance(anchors, AnchorBoxes):
        raise ValueError(f"Received: anchors of type "
                         f"{type(anchors).__name__}. Expected an AnchorBoxes.")
    if anchors.strides != (16, 32):
        raise ValueError(
            f"Received: anchors with strides {anchors.strides}. Expected "
            "(16, 32), the strides of the features the head reads.")
    if int(num_classes) < 1:
        raise ValueError(f"Received: num_classes={num_classes}. Expected a "
                         "positive integer.")
    inputs = keras.Input(anchors.image_size + (3,), name="image")
    features = _backbone(backbone, inputs, alpha)
    boxes, scores = [], []
    for level, (feature, per_cell) in enumerate(zip(features,
                                                    anchors.per_cell)):
        boxes.append(_head(feature, per_cell, 4, f"box_{level}"))
        scores.append(_head(feature, per_cell, num_classes,
                            f"class_{level}"))
    box_encodings = keras.layers.Concatenate(axis=1, name=BOX_OUTPUT)(boxes)
    logits = keras.layers.Concatenate(axis=1, name="class_logits")(scores)
    class_scores = keras.layers.Activation("sigmoid", name=SCORE_OUTPUT)(
        logits)
    return keras.Model(inputs, [box_encodings, class_scores], name=name)
