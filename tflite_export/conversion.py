"""`convert`: a Keras 3 model to TFLite (LiteRT) flatbuffer bytes.

The TensorFlow code of the project lives in this package. `convert` strips
kcompress wrappers where the mode needs it, traces the model into a
`tf.function` with a dynamic batch dimension, and runs
`tf.lite.TFLiteConverter` with the settings of the mode.
"""

from __future__ import annotations

import contextlib
import re
import tempfile
import warnings
from typing import TYPE_CHECKING

from tflite_export import console
from tflite_export import detection_postprocess
from tflite_export import file_bytes
from tflite_export import finite_masks
from tflite_export import finite_ranges
from tflite_export import recurrent
from tflite_export.backend_bridge import convert_in_tensorflow
from tflite_export.errors import ConversionError
from tflite_export.input_matching import input_names
from tflite_export.output_matching import output_names

if TYPE_CHECKING:  # Keras loads lazily here; only for the hints.
    import keras

MODES = ("float32", "float16", "dynamic", "int8", "int16x8", "qat")
_NEEDS_DATA = ("int8", "int16x8")
_REPRESENTATIVE_SAMPLES = 300


def _tf():
    import tensorflow as tf

    return tf


def _keras():
    # Keras (and with it TensorFlow) loads only when a model is handled, so
    # `import tflite_export` and the command's argument checks stay fast.
    import keras

    return keras


def check_model(model, argument="model"):
    """Raises a `ConversionError` unless `model` is a `keras.Model`."""
    keras = _keras()
    if not isinstance(model, keras.Model):
        raise ConversionError(
            f"Received: {argument} of type {type(model).__name__}. Expected "
            "a keras.Model (load a .keras file with keras.saving.load_model)."
        )


def input_specs(model):
    """`[(shape, dtype)]` of the model's inputs.

    Raises:
        ConversionError: for a model with no symbolic inputs: an unbuilt
            Sequential, or a subclassed model (built or not).
    """
    keras = _keras()
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None
    if not inputs:
        if isinstance(model, keras.Sequential) or type(model) in (
                keras.Model, keras.models.Model):
            raise ConversionError(
                f"Model '{model.name}' is not built and has no input shape. "
                "Give it a keras.Input as its first layer before converting."
            )
        raise ConversionError(
            f"Model '{model.name}' is a subclassed model "
            f"({type(model).__name__}), which has no symbolic inputs to trace"
            ", built or not. Wrap it in a functional model: inputs = "
            "keras.Input(shape); keras.Model(inputs, model(inputs))."
        )
    return [(tuple(t.shape), keras.backend.standardize_dtype(t.dtype))
            for t in inputs]


def check_data(data, model, argument="representative_data"):
    """Validates an input array (or list of arrays) for `model`.

    Returns:
        The list of arrays, one per model input, in the inputs' dtypes.

    Raises:
        ConversionError: on wrong count, shape, dtype, no samples, or
            non-finite values (`kcompress.inputs.check_inputs`).
    """
    from kcompress.inputs import check_inputs

    specs = input_specs(model)
    try:
        arrays = check_inputs(data, model, argument)
    except ValueError as error:
        raise ConversionError(str(error)) from None
    return [array.astype(dtype) for array, (_, dtype) in zip(arrays, specs)]


@contextlib.contextmanager
def _export_mode(model):
    """Traces QAT layers without their float pass-through (ActivationRange)."""
    from kcompress.quantization import quantized_layers

    layers = [layer for layer in quantized_layers(model)
              if hasattr(layer, "export_mode")]
    for layer in layers:
        layer.export_mode = True
    try:
        yield
    finally:
        for layer in layers:
            layer.export_mode = False


def prepare(model, mode):
    """The model to trace for `mode`: kcompress wrappers stripped as needed."""
    from kcompress.pruning import pruning_wrappers
    from kcompress.pruning import strip_pruning
    from kcompress.quantization import quantized_layers
    from kcompress.quantization import strip_quantization

    keras = _keras()
    check_model(model)
    if pruning_wrappers(model):
        model = strip_pruning(model)
    qat_layers = quantized_layers(model)
    if mode == "qat":
        if not qat_layers:
            raise ConversionError(
                f"Mode 'qat' needs a QAT model, and model '{model.name}' has "
                "no QAT wrappers. Train it with "
                "kcompress.quantization.quantize_model first, or use mode "
                "'int8' with representative data."
            )
        unset = [layer.name for layer in qat_layers
                 if hasattr(layer, "range_initialized") and float(
                     keras.ops.convert_to_numpy(layer.range_initialized)) < .5]
        if unset:
            raise ConversionError(
                f"QAT layers {unset} have no activation range yet. Train the "
                "model (one batch sets them) or call "
                "kcompress.quantization.calibrate(model, x) before "
                "converting."
            )
        return model
    if qat_layers:
        model = strip_quantization(model)
    return model


def _flex_error(error):
    message = str(error)
    # The converter quotes each op it could not lower: 'tf.TensorListReserve'.
    ops = sorted(set(re.findall(r"'tf\.([A-Za-z0-9_]+)'", message)))
    if "Select TF" in message or "flex" in message.lower() or ops:
        return ConversionError(
            "The model needs TensorFlow (Flex) ops that the built-in TFLite "
            f"runtime lacks: {', '.join(ops) or 'see the converter log'}. "
            "Replace those layers, or allow them with allow_flex=True "
            "(command line: --allow_flex); the app must then link the Flex "
            "delegate."
        )
    first = (message.strip().splitlines() or ["no message"])[0]
    return ConversionError(f"TFLite conversion failed: {first[:500]}")


def convert(model: keras.Model, mode: str, representative_data=None,
            float_io: bool | None = None, allow_flex: bool = False,
            sparse_encoding: bool = False, batch_size=None,
            keep_names: bool = False, verbose: bool = False,
            postprocess=None) -> bytes:
    """Converts a Keras 3 model to TFLite bytes.

    Args:
        model: a Keras model; may hold kcompress pruning or QAT layers.
        mode: one of `"float32"`, `"float16"`, `"dynamic"` (int8 weights,
            float activations), `"int8"` (full-integer post-training
            quantization; needs `representative_data`), `"int16x8"` (int16
            activations, int8 weights; needs `representative_data`) or
            `"qat"` (int8 from the ranges learned in QAT; no data needed).
        representative_data: array (or list of arrays, one per input) of
            typical inputs, for `int8` and `int16x8`. Up to 300 samples are
            used.
        float_io: float (True) or int8 (False) input and output, for
            `int8` and `qat`. None, the default, gives each mode its usual
            ends: int8 for `int8`; float for `qat`, with QUANTIZE and
            DEQUANTIZE at the ends. A fully integer `qat` file
            (`float_io=False`) is what a microcontroller runs
            (`tflite_export.micro`). Other modes ignore it.
        allow_flex: allow SELECT_TF_OPS (Flex) for ops TFLite lacks.
        sparse_encoding: also apply the converter's experimental sparsity
            optimization, which stores sufficiently sparse weights in a
            sparse format (and adds DENSIFY ops where the kernels need them
            dense). Measured in BUILD.md: XNNPACK, the default delegate,
            fails to prepare the sparse int8 FULLY_CONNECTED it makes, and
            TFLite's built-in kernels run it no faster than the dense file.
        batch_size: a fixed batch size for the file's inputs, or None for a
            dynamic one (but a recurrent model whose `keras.Input` fixes its
            batch size keeps it). A fixed size lets the converter lower LSTM
            and GRU layers to builtin ops, and drops the shape ops a dynamic
            batch needs.
        keep_names: keep the tensor names, subgraph names and description
            (for debugging, or to read intermediate tensors by name). By
            default they are dropped (`file_bytes.strip_names`), in every
            mode: the runtime never reads them, and they are a few percent
            of a small int8 file and of a clustered or pruned float32
            file's gzip size. The signature and the outputs are unchanged.
        verbose: let the converter's own output through to stderr (its
            C++ log lines and Python warnings). By default it is held back,
            and shown only if the conversion fails.
        postprocess: a `kcompress.detection.SSDPostProcessing`, for a
            detector with `box_encodings` and `class_scores` outputs: box
            decoding and NMS are appended to the file as LiteRT's
            `TFLite_Detection_PostProcess` (`detection_postprocess`), whose
            runtime takes one image at a time, so the batch size is fixed
            to 1.

    Returns:
        The `.tflite` flatbuffer as bytes. The input model is not modified.
        A model of the JAX or PyTorch backend is saved and converted in a
        TensorFlow-backend child process (`backend_bridge`), so its file is
        the one the TensorFlow backend gives for the same weights.
    """
    if mode not in MODES:
        raise ConversionError(
            f"Received: mode={mode!r}. Expected one of {', '.join(MODES)}."
        )
    if batch_size is not None and (isinstance(batch_size, bool) or not (
            isinstance(batch_size, int) and batch_size >= 1)):
        raise ConversionError(
            f"Received: batch_size={batch_size!r}. Expected None or an "
            "integer >= 1.")
    if mode in _NEEDS_DATA and representative_data is None:
        raise ConversionError(
            f"Mode {mode!r} needs representative_data: a few hundred typical "
            "inputs to calibrate the activation ranges."
        )
    keras = _keras()
    check_model(model)
    input_specs(model)  # Refuses a model with no symbolic inputs, here.
    recurrent.check_recurrent(model, mode, batch_size, allow_flex)
    if postprocess is not None:
        postprocess = detection_postprocess.check_detector(model, postprocess)
        float_io = detection_postprocess.check_float_io(mode, float_io)
        batch_size = 1
    samples = None
    if representative_data is not None and mode in _NEEDS_DATA:
        samples = check_data(representative_data, model)
    if keras.backend.backend() != "tensorflow":
        return convert_in_tensorflow(
            model, mode, samples, float_io=float_io, allow_flex=allow_flex,
            sparse_encoding=sparse_encoding, batch_size=batch_size,
            keep_names=keep_names, verbose=verbose, postprocess=postprocess)
    from kcompress.inputs import model_input
    from tflite_export.static_shapes import static_reshapes

    # Named in the signature after the Keras inputs, so the file's inputs
    # are fed by name (`input_matching`): the converter reorders them.
    inputs = input_names(model)
    model = prepare(model, mode)
    if samples is not None:
        model, _ = finite_ranges.with_finite_padding(model, samples)
    tf = _tf()
    batch_size = batch_size or recurrent.recurrent_batch(model)
    specs = [tf.TensorSpec((batch_size,) + shape[1:], dtype, name=name)
             for name, (shape, dtype) in zip(inputs, input_specs(model))]

    names = output_names(model)

    def serve(*args):
        # In the structure the model takes (a dict for KerasHub's models).
        outputs = model(model_input(model, args), training=False)
        if len(names) > 1 and not isinstance(outputs, dict):
            # Named in the signature, so verify matches them by name.
            outputs = dict(zip(names, outputs))
        if postprocess is not None:
            return detection_postprocess.apply(tf, outputs, postprocess)
        return outputs

    # Keras 3's own path to TFLite: ExportArchive -> SavedModel -> converter,
    # which freezes the variables into constants.
    archive = keras.export.ExportArchive()
    archive.track(model)
    with tempfile.TemporaryDirectory(prefix="kcompress-export-") as saved:
        # write_out traces again.
        # PTQ: masked softmaxes filled with a finite value (finite_masks).
        masks = (finite_masks.finite_masked_softmaxes(model)
                 if samples is not None else contextlib.nullcontext())
        with _export_mode(model), static_reshapes(model), masks:
            archive.add_endpoint("serve", serve, input_signature=specs)
            archive.write_out(saved, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved)
        # TFLite_Detection_PostProcess is a custom op (built into LiteRT).
        converter.allow_custom_ops = postprocess is not None
        with held_output(verbose):
            tflite = _run_converter(tf, converter, mode, samples, float_io,
                                    allow_flex, sparse_encoding, inputs)
    if mode in _INTEGER_MODES and not allow_flex:
        check_integer(tflite, mode)
        finite_ranges.check_ranges(tflite)
    if not keep_names:
        tflite = file_bytes.strip_names(tflite)
    return tflite


@contextlib.contextmanager
def held_output(verbose):
    """Holds back what the converter prints unless `verbose`; shows it if
    the conversion fails."""
    if verbose:
        yield
        return
    with console.HeldStderr() as held:
        try:
            yield
        except BaseException:
            held.replay()
            raise


_INTEGER_MODES = ("int8", "qat")
# Float by design: the ends, and the detection post-processing (which
# LiteRT runs on the dequantized head outputs).
_BOUNDARY_OPS = ("QUANTIZE", "DEQUANTIZE", "TFLite_Detection_PostProcess")


def check_integer(tflite, mode):
    """Refuses a file for modes `int8`/`qat` that computes in float.

    A fake quantization the converter did not fold is emulated in float
    arithmetic; such a file must not pass for an int8 model, so a file with
    no integer compute op raises a `ConversionError`. A file that is int8
    but for some float compute ops (a layer left in float, such as a
    softmax head) converts, with a warning naming those ops.
    """
    from tflite_export.inspection import inspect

    ops = inspect(tflite).ops
    floating = sorted({op.name for op in ops if op.kind == "float"
                       and op.name not in _BOUNDARY_OPS})
    if floating and any(op.integer for op in ops):
        warnings.warn(
            f"Mode {mode!r}: these ops stay in float in the file: "
            f"{', '.join(floating)} (the rest is int8; "
            "`tflite_export.inspect` shows each op's types).", stacklevel=3)
    elif not any(op.integer for op in ops):
        raise ConversionError(
            f"Mode {mode!r} promised an int8 file, but the converter left "
            f"float compute ops: {', '.join(floating) or 'all of them'}. "
            "The fake quantization was not folded into int8 kernels. Use "
            "mode 'int8' with representative data, or report the model; "
            "`tflite_export.inspect` lists every op and its types.")


def _run_converter(tf, converter, mode, samples, float_io, allow_flex,
                   sparse_encoding=False, inputs=()):
    builtins = tf.lite.OpsSet.TFLITE_BUILTINS
    optimizations = []
    if mode != "float32":
        optimizations.append(tf.lite.Optimize.DEFAULT)
    if sparse_encoding:
        optimizations.append(tf.lite.Optimize.EXPERIMENTAL_SPARSITY)
    if optimizations:
        converter.optimizations = optimizations
    if mode == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if samples is not None:
        count = min(len(samples[0]), _REPRESENTATIVE_SAMPLES)

        def representative():
            for i in range(count):
                sample = [array[i:i + 1] for array in samples]
                # Several inputs go by signature name: a list would feed
                # them in the converter's order, not Keras's.
                yield dict(zip(inputs, sample)) if len(sample) > 1 else sample

        converter.representative_dataset = representative
    if mode == "int8":
        builtins = tf.lite.OpsSet.TFLITE_BUILTINS_INT8
    if (mode == "int8" and not float_io) or (mode == "qat"
                                             and float_io is False):
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    if mode == "int16x8":
        builtins = (tf.lite.OpsSet
                    .EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8)
    ops_sets = [builtins]
    if allow_flex:
        ops_sets.append(tf.lite.OpsSet.SELECT_TF_OPS)
        # Keep TensorList ops (recurrent layers) as Flex ops instead of
        # failing to lower them, as the converter's own error advises.
        converter._experimental_lower_tensor_list_ops = False
    converter.target_spec.supported_ops = ops_sets
    try:
        return converter.convert()
    except Exception as error:  # The converter raises several error types.
        raise _flex_error(error) from error
