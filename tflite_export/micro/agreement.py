"""Does TFLM answer as LiteRT and the Keras model do, on the same inputs?

TFLM runs its reference kernels. LiteRT has three sets: XNNPACK's (its
default delegate, what a phone or a Pi runs), its optimized built-in
kernels, and its reference kernels. The int8 arithmetic is specified the
same way, but the optimized kernels round each requantization in their own
code, so an output can move by a step per layer, and the steps add up
along a deep graph. `compare` measures TFLM against all three and against
Keras, in output quantization steps. Measured in BUILD.md: TFLM agrees
with LiteRT's reference kernels within a step, and on the MobileNetV2-style
digits model differs from XNNPACK's by up to 5 steps (top-1 unchanged).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tflite_export.input_matching import feed_order
from tflite_export.input_matching import input_names
from tflite_export.inspection import interpreter_for
from tflite_export.micro import runtime
from tflite_export.verification import quantize
from tflite_export.verification import run_tflite


@dataclasses.dataclass
class Agreement:
    """TFLM's outputs against Keras's and LiteRT's on `samples` inputs.

    Steps are output quantization steps. `identical_to_litert_reference`
    is the share of samples whose TFLM outputs equal those of LiteRT's
    reference kernels, value for value; `identical_to_uncompressed` (None
    without compression) says whether the compressed file's TFLM outputs
    equal the uncompressed file's, value for value.
    """

    samples: int
    top1_vs_keras: float
    max_steps_vs_keras: float
    mean_steps_vs_keras: float
    max_steps_vs_litert_reference: float
    max_steps_vs_litert_builtin: float
    max_steps_vs_litert_xnnpack: float
    identical_to_litert_reference: float
    identical_to_uncompressed: bool | None
    keras_accuracy: float | None
    tflm_accuracy: float | None

    def to_dict(self):
        return dataclasses.asdict(self)


def tflm_outputs(micro_bytes, litert_bytes, arrays, arena_size,
                 names=None):
    """TFLM's first output for float `arrays`, dequantized, and its step.

    `litert_bytes` is the same model without TFLM's compression (LiteRT
    reads the input and output quantization from it); `names` are the
    arrays' input names (`quantized`).
    """
    lite = interpreter_for(litert_bytes, delegates=False)
    raw = runtime.run(micro_bytes, quantized(litert_bytes, arrays, names),
                      arena_size)[0]
    scale, zero_point = lite.get_output_details()[0]["quantization"]
    return (raw.astype(np.float32) - zero_point) * scale, float(scale)


def compare(micro_bytes, litert_bytes, keras_model, arrays, arena_size,
            y=None, litert_arena_size=None):
    """An `Agreement` for the file on float input `arrays` (one per input).

    Args:
        micro_bytes: the file TFLM runs (compressed or not).
        litert_bytes: the same file before TFLM's compression, which
            LiteRT runs (the same bytes when there is none).
        keras_model: the model the file came from, or None (a file given
            alone: the Keras figures are then NaN).
        arrays: float inputs, one array per input, in the Keras model's
            input order (each feeds the file's input of its name).
        arena_size: the arena TFLM runs `micro_bytes` in.
        y: integer labels, or None.
        litert_arena_size: for a compressed `micro_bytes`, the arena TFLM
            runs `litert_bytes` in, to check that compression changed no
            output; None when there is no compression.
    """
    names = input_names(keras_model) if keras_model is not None else None
    micro, scale = tflm_outputs(micro_bytes, litert_bytes, arrays,
                                arena_size, names)
    uncompressed = None
    if litert_arena_size is not None:
        plain, _ = tflm_outputs(litert_bytes, litert_bytes, arrays,
                                litert_arena_size, names)
        uncompressed = bool(np.array_equal(plain, micro))
    flat = micro.reshape(len(micro), -1)
    steps, identical = {}, None
    for kernels, options in (
            ("reference", dict(delegates=False, reference_kernels=True)),
            ("builtin", dict(delegates=False)),
            ("xnnpack", dict(delegates=True))):
        other, _ = run_tflite(litert_bytes, arrays, names=names, **options)
        other = other.reshape(flat.shape)
        steps[kernels] = float(np.abs(flat - other).max() / scale)
        if kernels == "reference":
            identical = float(np.mean(np.all(flat == other, axis=-1)))
    top1 = max_keras = mean_keras = float("nan")
    keras_accuracy = tflm_accuracy = None
    if keras_model is not None:
        from kcompress.inputs import model_input  # Loads Keras.

        reference = np.asarray(keras_model.predict(
            model_input(keras_model, arrays), verbose=0,
            batch_size=256), np.float32).reshape(flat.shape)
        diff = np.abs(flat - reference) / scale
        top1 = float(np.mean(flat.argmax(-1) == reference.argmax(-1)))
        max_keras, mean_keras = float(diff.max()), float(diff.mean())
        if y is not None:
            labels = np.asarray(y).reshape(-1)
            keras_accuracy = float(np.mean(reference.argmax(-1) == labels))
    if y is not None:
        tflm_accuracy = float(np.mean(flat.argmax(-1)
                                      == np.asarray(y).reshape(-1)))
    return Agreement(
        samples=len(flat), top1_vs_keras=top1, max_steps_vs_keras=max_keras,
        mean_steps_vs_keras=mean_keras,
        max_steps_vs_litert_reference=steps["reference"],
        max_steps_vs_litert_builtin=steps["builtin"],
        max_steps_vs_litert_xnnpack=steps["xnnpack"],
        identical_to_litert_reference=identical,
        identical_to_uncompressed=uncompressed, keras_accuracy=keras_accuracy,
        tflm_accuracy=tflm_accuracy)


def quantized(litert_bytes, arrays, names=None):
    """Float `arrays` (one per input) in the file's input types and order.

    Each array goes to the file's input of its name (`names`, the Keras
    model's `input_matching.input_names`), and the result is in the
    file's input order, which TFLM's `set_input` indexes.
    """
    lite = interpreter_for(litert_bytes, delegates=False)
    return [quantize(array, detail)
            for detail, array in feed_order(lite, arrays, names)]


def first_sample(litert_bytes, arrays, names=None):
    """The first sample of float `arrays`, quantized to the file's inputs
    and in their order (what `runtime.minimum_arena` runs)."""
    return quantized(litert_bytes, [array[:1] for array in arrays], names)
