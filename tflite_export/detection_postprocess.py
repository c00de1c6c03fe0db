"""Box decoding and NMS in the file: `TFLite_Detection_PostProcess`.

`convert(model, mode, postprocess=SSDPostProcessing(...))` appends this op
to a detector whose outputs are `box_encodings` `(N, 4)` and
`class_scores` `(N, classes)` (`kcompress.detection.ssd_lite`'s names). The
device then gets final `detection_boxes` `(max, 4)`, `detection_classes`,
`detection_scores` and `num_detections`, as from a TF Object Detection API
SSD.

Why this op and not the NON_MAX_SUPPRESSION_V4/V5 builtins: it decodes the
boxes and suppresses in one op that every LiteRT runtime registers (the
Python interpreter, Android's, the Task Library's ObjectDetector), it takes
the int8 head's outputs after one DEQUANTIZE, and it handles several classes
(the builtins suppress one score vector, so the decoding, the per-anchor
best class and the padding would be a dozen float ops around them). The
converter emits it from a `tf.function` whose `experimental_implements`
names it, as the Object Detection API's TF2 export does; the function's
body is a placeholder the converter replaces. Its cost on the detector of
BUILD.md is measured there (size and latency with and without).
"""

from tflite_export.errors import ConversionError

BOX_OUTPUT = "box_encodings"
SCORE_OUTPUT = "class_scores"
OUTPUT_NAMES = ("detection_boxes", "detection_classes", "detection_scores",
                "num_detections")


_KEYS = ("anchors", "num_classes", "max_detections", "score_threshold",
         "iou_threshold", "box_scales")


def config_of(postprocess):
    """The JSON dict of an `SSDPostProcessing` (or of its config)."""
    config = postprocess if isinstance(postprocess, dict) else getattr(
        postprocess, "get_config", lambda: None)()
    if not isinstance(config, dict) or not set(_KEYS) <= set(config):
        raise ConversionError(
            f"Received: postprocess of type {type(postprocess).__name__}. "
            "Expected a kcompress.detection.SSDPostProcessing (or its "
            "get_config()).")
    return {key: config[key] for key in _KEYS}


def _output_named(names, wanted):
    """The model output that is `wanted`, also under a wrapper's prefix
    (`quant_box_encodings` after `quantize_model`)."""
    found = [name for name in names
             if name == wanted or name.endswith("_" + wanted)]
    return found[0] if len(found) == 1 else None


def check_detector(model, postprocess):
    """Refuses a model whose head the post-processing does not recognise.

    Returns:
        The post-processing's config, and under `"outputs"` the model's
        names of its `box_encodings` and `class_scores` outputs.
    """
    from kcompress.detection import SSDPostProcessing

    config = config_of(postprocess)
    post = SSDPostProcessing.from_config(config)
    names = list(getattr(model, "output_names", []) or [])
    shapes = {name: tuple(t.shape[1:]) for name, t in zip(names,
                                                           model.outputs)}
    anchors = len(post.anchors.boxes())
    expected = {BOX_OUTPUT: (anchors, 4),
                SCORE_OUTPUT: (anchors, post.num_classes)}
    outputs = {key: _output_named(names, key) for key in expected}
    if len(shapes) != 2 or any(
            outputs[key] is None or shapes[outputs[key]] != shape
            for key, shape in expected.items()):
        raise ConversionError(
            f"Model '{model.name}' has outputs {shapes}, which the detection "
            f"post-processing does not recognise. Expected exactly "
            f"{expected}: an SSD head (kcompress.detection.ssd_lite) with "
            "the anchors and classes of the SSDPostProcessing passed.")
    return {**config, "outputs": outputs}


def check_float_io(mode, float_io):
    """The ends of a detector's file: a float image in, float boxes out.

    The post-processing's outputs are float (boxes, class ids, scores, a
    count), so mode `int8` gets float ends here rather than its usual int8
    ones; the network inside stays int8.
    """
    if float_io is False:
        raise ConversionError(
            f"Received: float_io=False with a detection postprocess (mode "
            f"{mode!r}). Expected float_io=None or True: the post-processing "
            "outputs float boxes, classes and scores.")
    return True if mode in ("int8", "qat") else float_io


def _signature(config):
    ys, xs, hs, ws = config["box_scales"]
    attributes = [
        ("max_detections", "i", int(config["max_detections"])),
        ("max_classes_per_detection", "i", 1),
        ("use_regular_nms", "b", "false"),
        ("nms_score_threshold", "f", float(config["score_threshold"])),
        ("nms_iou_threshold", "f", float(config["iou_threshold"])),
        ("y_scale", "f", float(ys)), ("x_scale", "f", float(xs)),
        ("h_scale", "f", float(hs)), ("w_scale", "f", float(ws)),
        ("num_classes", "i", int(config["num_classes"])),
    ]
    return " ".join(['name: "TFLite_Detection_PostProcess"'] + [
        f'attr {{ key: "{key}" value {{ {kind}: {value} }} }}'
        for key, kind, value in attributes])


def apply(tf, outputs, config):
    """The op over the traced model's named outputs; a dict of its four."""
    from kcompress.detection import AnchorBoxes

    anchors = tf.constant(AnchorBoxes.from_config(config["anchors"]).boxes())

    @tf.function(experimental_implements=_signature(config), autograph=False)
    def detection_postprocess(box_encodings, class_scores, anchor_boxes):
        # A placeholder body: the converter replaces the whole function.
        del box_encodings, class_scores, anchor_boxes
        return tuple(tf.constant(0.0, name=name) for name in OUTPUT_NAMES)

    names = config["outputs"]
    found = detection_postprocess(outputs[names[BOX_OUTPUT]],
                                  outputs[names[SCORE_OUTPUT]], anchors)
    return dict(zip(OUTPUT_NAMES, found))
