"""`verify_detections`: does the file find the boxes the Keras model finds?

A detector's file ends in `TFLite_Detection_PostProcess`
(`convert(..., postprocess=...)`), the Keras model in `box_encodings` and
`class_scores`, decoded by the same `SSDPostProcessing` in numpy. Both run
on the same images and are scored against the true boxes: mAP@0.5 and
mAP@0.5:0.95 for each, the share of boxes the two agree on (same class,
IoU >= 0.5) and the mean IoU of those pairs.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tflite_export.conversion import ConversionError
from tflite_export.conversion import check_data
from tflite_export.conversion import check_model
from tflite_export.detection_postprocess import OUTPUT_NAMES
from tflite_export.detection_postprocess import check_detector
from tflite_export.input_matching import match_inputs
from tflite_export.inspection import check_tflite_bytes
from tflite_export.inspection import interpreter_for
from tflite_export.output_matching import signature_outputs
from tflite_export.verification import quantize


@dataclasses.dataclass
class DetectionVerification:
    """mAP in Keras and in the file, and how their boxes agree."""

    samples: int
    keras_map50: float
    tflite_map50: float
    keras_map: float
    tflite_map: float
    matched_share: float
    mean_iou: float

    def to_dict(self):
        return dataclasses.asdict(self)


def run_detections(tflite_bytes, images, num_threads=None):
    """The file's detections, image by image (`Detections` each)."""
    from kcompress.detection import Detections

    interpreter = interpreter_for(check_tflite_bytes(tflite_bytes),
                                  num_threads=num_threads)
    by_name = signature_outputs(interpreter)
    if set(OUTPUT_NAMES) - set(by_name):
        raise ConversionError(
            f"The file's outputs are {sorted(by_name) or 'unnamed'}, not a "
            f"detector's {list(OUTPUT_NAMES)}. Convert the detector with "
            "tflite_export.convert(..., postprocess=SSDPostProcessing(...)).")
    # A detector has one input; this checks the images fit it.
    (detail,) = match_inputs(interpreter, [np.shape(images)[1:]])
    found = []
    for image in images:
        interpreter.set_tensor(detail["index"],
                               quantize(image[None], detail))
        interpreter.invoke()
        boxes, classes, scores, count = (
            interpreter.get_tensor(by_name[name])[0] for name in OUTPUT_NAMES)
        count = int(np.ravel(count)[0]) if np.ndim(count) else int(count)
        found.append(Detections(np.asarray(boxes[:count], np.float32),
                                np.asarray(classes[:count], np.int32),
                                np.asarray(scores[:count], np.float32)))
    return found


def keras_detections(keras_model, images, postprocess):
    """The Keras model's detections, decoded by `postprocess`."""
    boxes, scores = keras_model.predict(images, verbose=0, batch_size=64)
    return postprocess(boxes, scores)


def verify_detections(tflite_bytes: bytes, keras_model, images,
                      ground_truth, postprocess) -> DetectionVerification:
    """Scores a detector's file and its Keras model on the same images.

    Args:
        tflite_bytes: the file, converted with `postprocess`.
        keras_model: the model it came from (for `qat` files, the QAT
            model), with `box_encodings` and `class_scores` outputs.
        images: `(n, h, w, c)` float images.
        ground_truth: one `(boxes, classes)` pair per image.
        postprocess: the `kcompress.detection.SSDPostProcessing` the file
            was converted with.

    Returns:
        A `DetectionVerification`.

    Raises:
        ConversionError: a model whose head is not recognised, a file
            without detection outputs, or images that do not fit.
        ValueError: bad ground truth (an image without boxes, a box
            outside the image, a class id out of range).
    """
    from kcompress.detection import COCO_IOUS
    from kcompress.detection import agreement
    from kcompress.detection import mean_average_precision

    check_model(keras_model, argument="keras_model")
    check_detector(keras_model, postprocess)
    (images,) = check_data(images, keras_model, argument="images")
    if len(ground_truth) != len(images):
        raise ConversionError(
            f"Received: {len(images)} images and {len(ground_truth)} ground "
            "truth entries. Expected one (boxes, classes) pair per image.")
    classes = postprocess.num_classes
    reference = keras_detections(keras_model, images, postprocess)
    lite = run_detections(tflite_bytes, images)
    share, mean_iou = agreement(reference, lite)
    return DetectionVerification(
        samples=len(images),
        keras_map50=mean_average_precision(reference, ground_truth, classes),
        tflite_map50=mean_average_precision(lite, ground_truth, classes),
        keras_map=mean_average_precision(reference, ground_truth, classes,
                                         COCO_IOUS),
        tflite_map=mean_average_precision(lite, ground_truth, classes,
                                          COCO_IOUS),
        matched_share=share, mean_iou=mean_iou)
