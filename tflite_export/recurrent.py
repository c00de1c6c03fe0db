"""Recurrent layers (LSTM, GRU, SimpleRNN) and what the converter needs of
them: a fixed batch size for builtin ops, and no calibrated mode."""

from tflite_export.errors import ConversionError


def _keras():
    import keras

    return keras


# The modes whose calibration runs the model in the converter.
_CALIBRATED = ("int8", "int16x8")


def recurrent_layers(model):
    from kcompress._model_utils import find_layers

    return [layer.name for layer in find_layers(model,
                                                _keras().layers.RNN)]


def recurrent_batch(model):
    """The fixed input batch size of a recurrent model, else None."""
    if not recurrent_layers(model):
        return None
    sizes = {tuple(t.shape)[0] for t in model.inputs}
    return sizes.pop() if len(sizes) == 1 and None not in sizes else None


def check_recurrent(model, mode, batch_size, allow_flex):
    """Refuses calibrated modes for recurrent models, before the converter
    crashes the process.

    TensorFlow 2.21's converter lowers LSTM/GRU/SimpleRNN to a WHILE loop,
    and its calibration of that loop ends in a segmentation fault: a
    crash of the caller's process (a notebook kernel, say), not an error.
    """
    recurrent = recurrent_layers(model)
    if recurrent and mode in _CALIBRATED:
        raise ConversionError(
            f"Received: mode={mode!r} for model '{model.name}' with recurrent "
            f"layers {recurrent}. The converter's calibration crashes on the "
            "loop they lower to. Use mode 'qat' (quantize_model keeps them "
            "in float and quantizes the rest), 'dynamic' or 'float16'; give "
            "the model a fixed batch size (keras.Input(..., batch_size=1)) "
            "or pass batch_size=1.")
    dynamic = batch_size is None and recurrent_batch(model) is None
    if recurrent and dynamic and not allow_flex:
        raise ConversionError(
            f"Model '{model.name}' has recurrent layers {recurrent} and a "
            "dynamic batch size. TFLite's builtin ops run them only with a "
            "fixed batch size: pass batch_size=1 (command line: "
            "--batch_size=1), or allow_flex=True to keep them as TensorFlow "
            "ops.")
