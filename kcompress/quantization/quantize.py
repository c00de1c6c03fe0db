"""Entry points of QAT, with TFMOT's names.

- `quantize_model(model)` quantizes every layer.
- `quantize_annotate_layer` and `quantize_annotate_model` mark layers, and
  `quantize_apply` quantizes only the marked ones (the rest stay float).
- `strip_quantization` returns a plain float model.
- `calibrate` sets activation ranges from data before training.

The rewrite itself (`rewrite.py`) clones the model; the input is never
modified. A pruned model, wrapped or stripped, keeps its zeros through QAT
(`preserve_sparsity=True`).
"""

from __future__ import annotations

import logging
import warnings

import keras

from kcompress import _coverage
from kcompress import _flatten
from kcompress import _model_utils
from kcompress.inputs import check_inputs
from kcompress.inputs import model_input
from kcompress.pruning.prune import pruning_wrappers
from kcompress.pruning.prune import strip_pruning
from kcompress.quantization import composite
from kcompress.quantization import fold_batchnorm
from kcompress.quantization import masked_softmax
from kcompress.quantization.activation_range import ActivationRange
from kcompress.quantization.quantize_annotate import QuantizeAnnotate
from kcompress.quantization.quantize_config import float_layer_warning
from kcompress.quantization.quantize_wrapper import QuantizedConstant
from kcompress.quantization.quantize_wrapper import QuantizeLayer
from kcompress.quantization.quantize_wrapper import QuantizeWrapper
from kcompress.quantization.quantize_wrapper_v2 import QuantizeWrapperV2
from kcompress.quantization.rewrite import as_functional
from kcompress.quantization.rewrite import rewrite
from kcompress.quantization.schemes import QuantizeScheme

__all__ = ["quantize_model", "quantize_annotate_layer",
           "quantize_annotate_model", "quantize_apply", "strip_quantization",
           "calibrate", "quantized_layers", "quantize_layers"]

logger = logging.getLogger(__name__)

_PER_LAYER_HINT = (
    "build the model functionally, or quantize its layers where the model "
    "creates them with kcompress.quantization.QuantizeWrapper(layer)."
)




def quantized_layers(model: keras.Model) -> list:
    """The QAT layers (wrappers, folded pairs, input quantizers) of `model`,
    and the ranges inside composite QAT layers (layer norm, attention)."""
    found = _model_utils.find_layers(model, ActivationRange)
    for layer in _model_utils.find_layers(model, composite._Composite):
        found.extend(layer.ranges.values())
        if hasattr(layer, "export_mode"):  # Traces differently for export.
            found.append(layer)
    return found


def quantize_annotate_layer(to_annotate, quantize_config=None):
    """Marks a layer to be quantized by `quantize_apply`.

    Args:
        to_annotate: a Keras layer.
        quantize_config: a `QuantizeConfig`; required for layers with no
            default (custom layers).

    Returns:
        A `QuantizeAnnotate` layer wrapping `to_annotate`.
    """
    if not isinstance(to_annotate, keras.layers.Layer) or isinstance(
            to_annotate, keras.Model):
        raise ValueError(
            f"Received: to_annotate={to_annotate!r}. Expected a "
            "keras.layers.Layer (use quantize_annotate_model for a model)."
        )
    return QuantizeAnnotate(to_annotate, quantize_config=quantize_config)


def _check_model(model, verb):
    _model_utils.check_model_argument(model, "model", verb, _PER_LAYER_HINT,
                                      accept_layers=False)
    if not model.built or not _has_inputs(model):
        raise ValueError(
            f"Model '{model.name}' is not built and has no input shape. "
            "Give it a keras.Input (or call it on data) before quantizing."
        )
    if quantized_layers(model):
        raise ValueError(
            f"Model '{model.name}' is already quantized: it holds QAT layers. "
            "Quantizing twice is not supported; call strip_quantization "
            "first."
        )


def _has_inputs(model):
    try:
        return bool(model.inputs)
    except (AttributeError, ValueError):
        return False


def quantize_annotate_model(model):
    """Marks every layer of `model` for `quantize_apply` (returns a clone).

    Composite layers are flattened into the graph first (see
    `quantize_model`), so their sublayers are marked.
    """
    _check_model(model, "quantize_annotate_model")
    model, _ = _flatten.flatten_composites(model)

    def clone_function(layer):
        if isinstance(layer, QuantizeAnnotate):
            # The config object is kept, not serialized and rebuilt: a
            # custom one need not be registered (TFMOT's guides register
            # theirs only for `quantize_apply`).
            return QuantizeAnnotate(_model_utils.clone_layer(layer.layer),
                                    layer.quantize_config, name=layer.name)
        return QuantizeAnnotate(_model_utils.clone_layer(layer))

    return _model_utils.transform_model(model, clone_function)


def quantize_apply(model: keras.Model, preserve_sparsity: bool = True,
                   calibration_data=None, *, preserve_clusters: bool = False,
                   scheme: QuantizeScheme | None = None,
                   strict: bool = False) -> keras.Model:
    """Quantizes the layers of `model` marked by the annotate functions.

    Args:
        model: a model from `quantize_annotate_model`, or one with layers from
            `quantize_annotate_layer`. It is not modified.
        preserve_sparsity: keep exactly-zero weights at zero through QAT.
        calibration_data: optional array of inputs; if given, activation
            ranges are set from it (see `calibrate`).
        preserve_clusters: keep the kernels of a stripped clustered model on
            their shared values (cluster-preserving QAT, CQAT; with
            `preserve_sparsity`, PCQAT).
        scheme: a `kcompress.quantization.schemes` object, TFMOT's way of
            saying the same: when given, it sets `preserve_sparsity` and
            `preserve_clusters`.
        strict: raise instead of warning when an annotated composite layer
            cannot be flattened into the graph and stays in float.

    Returns:
        The QAT model, ready to compile and `fit`.
    """
    return _quantize(model, True, _preserve(preserve_sparsity,
                                            preserve_clusters, scheme),
                     calibration_data, "quantize_apply", strict)


def _preserve(preserve_sparsity, preserve_clusters, scheme):
    if scheme is None:
        return QuantizeScheme(bool(preserve_sparsity),
                              bool(preserve_clusters)).options()
    if not isinstance(scheme, QuantizeScheme):
        raise ValueError(
            f"Received: scheme={scheme!r}. Expected a kcompress.quantization."
            "schemes.QuantizeScheme, such as "
            "Default8BitClusterPreserveQuantizeScheme().")
    return scheme.options()


def quantize_model(model: keras.Model, preserve_sparsity: bool = True,
                   calibration_data=None, *,
                   preserve_clusters: bool = False,
                   strict: bool = False) -> keras.Model:
    """Quantizes every layer of `model` for QAT with TFLite's int8 scheme.

    Args:
        model: a built Sequential or functional model, nested models
            included. A model pruned with `prune_low_magnitude` (wrapped or
            stripped) keeps its zeros. The model is not modified.
        preserve_sparsity: keep exactly-zero weights at zero through QAT (a
            dense model has no exact zeros, so this costs nothing there).
        calibration_data: optional array of inputs; if given, activation
            ranges are set from it before training (see `calibrate`).
            Otherwise the first training batch sets them.
        preserve_clusters: keep the kernels of a stripped clustered model on
            their shared values (CQAT; with `preserve_sparsity`, PCQAT).
        strict: raise instead of warning when a layer is left in float
            (no int8 kernel, or a composite layer that cannot be flattened
            into the graph).

    Composite layers (subclassed layers that own Conv2D, Dense, ...
    sublayers) are flattened into the graph first, so their sublayers are
    quantized, and folded with their BatchNorms, as at the top level.

    Returns:
        The QAT model, ready to compile and `fit`. Convert it with
        `tflite_export.convert(model, "qat")`.

    Example:

    >>> import keras
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> qat = quantize_model(model)
    >>> [type(layer).__name__ for layer in qat.layers]
    ['InputLayer', 'QuantizeLayer', 'QuantizeWrapper']
    """
    return _quantize(model, False, _preserve(preserve_sparsity,
                                             preserve_clusters, None),
                     calibration_data, "quantize_model", strict)


def _quantize(model, annotated_only, preserve, calibration_data, verb,
              strict=False):
    if isinstance(model, keras.layers.Layer) and not isinstance(
            model, keras.Model):
        raise ValueError(
            f"Received: model={model.name!r}, a {type(model).__name__} layer. "
            f"Expected a Sequential or functional keras.Model; {verb} "
            "rewrites whole models. Use QuantizeWrapper(layer) for one layer."
        )
    _check_model(model, verb)
    channel_pruned = [w.name for w in pruning_wrappers(model)
                      if getattr(w, "structure", None)]
    if channel_pruned:
        raise ValueError(
            f"Received: model '{model.name}' with channel-pruned layers "
            f"{channel_pruned}. Expected a shrunk model: call "
            "kcompress.pruning.shrink(model) first, then quantize the "
            "smaller model. QAT of the masked model would not keep the "
            "removed channels at zero."
        )
    if pruning_wrappers(model):
        model = strip_pruning(model)
    model, refused = _flatten.flatten_composites(model)
    model = masked_softmax.with_finite_softmaxes(model)
    left_float = []
    quantized = rewrite(as_functional(model), annotated_only, preserve,
                        left_float=left_float)
    if left_float:
        warnings.warn(float_layer_warning(left_float), stacklevel=3)
    types = {layer.name: type(layer).__name__
             for layer in _model_utils.iter_layers(model)}
    left = {name: refused.get(name, f"TFLite has no int8 kernel for a "
                                    f"{types.get(name, 'layer')}")
            for name in left_float}
    left.update({name: reason for name, reason in refused.items()
                 if name in types})
    _coverage.report_left_out(logger, verb, model, left, strict)
    if calibration_data is not None:
        calibrate(quantized, calibration_data)
    return quantized


def calibrate(model: keras.Model, data, batch_size: int = 32) -> None:
    """Sets every activation range of a QAT model to cover `data`.

    Runs the model eagerly in inference mode over `data` in batches; each
    range becomes the min/max it saw (including 0). Training then refines the
    ranges by moving average.

    Args:
        model: a QAT model.
        data: array of model inputs (or a list of arrays for several inputs).
        batch_size: batch size of the calibration passes.
    """
    layers = [layer for layer in quantized_layers(model)
              if isinstance(layer, ActivationRange) and layer.built]
    if not layers:
        raise ValueError(
            f"Model '{model.name}' has no QAT layers to calibrate. Pass the "
            "model returned by quantize_model or quantize_apply."
        )
    arrays = check_inputs(data, model, argument="calibration data")
    size = len(arrays[0])
    for layer in layers:
        layer.calibrating = True
    try:
        for start in range(0, size, batch_size):
            batch = [a[start:start + batch_size] for a in arrays]
            # In the structure the model takes (a dict, a list or one).
            model(model_input(model, batch), training=False)
    finally:
        for layer in layers:
            layer.calibrating = False


def strip_quantization(model: keras.Model) -> keras.Model:
    """A plain float copy of a QAT model.

    QAT wrappers become their float layers (with preserved zeros applied),
    folded Conv+BatchNorm pairs become one convolution holding the folded
    weights, SeparableConv2D stays split, and input quantizers are removed.
    The input model is not modified.
    """
    _model_utils.check_model_argument(model, "model", "strip_quantization",
                                      _PER_LAYER_HINT)
    dropped = set()
    constants = {}  # id(stand-in of a QuantizedConstant) -> its number

    def clone_function(layer):
        if isinstance(layer, keras.Model):
            return strip_quantization(layer)
        if isinstance(layer, QuantizeLayer):
            new = keras.layers.Identity(name=layer.name)
            dropped.add(id(new))
            return new
        if isinstance(layer, QuantizedConstant):
            new = keras.layers.Identity(name=layer.name)
            constants[id(new)] = layer.value
            return new
        if isinstance(layer, fold_batchnorm.QuantizeConvBatchNorm):
            return layer.to_float_conv()
        if isinstance(layer, QuantizeWrapper):
            weights = _model_utils.values_with(layer.layer.weights,
                                               layer.effective_weights())
            return masked_softmax.as_keras_softmax(
                _model_utils.clone_layer(layer.layer, weights=weights))
        if isinstance(layer, (QuantizeAnnotate, composite._Composite,
                              QuantizeWrapperV2)):
            return _model_utils.clone_layer(layer.layer)
        return _model_utils.clone_layer(layer)

    def call_function(layer, *args, **kwargs):
        if id(layer) in dropped:
            return args[0]
        if id(layer) in constants:
            return keras.ops.convert_to_numpy(constants[id(layer)])
        return layer(*args, **kwargs)

    if isinstance(model, keras.Sequential):
        return _model_utils.transform_model(model, clone_function)
    return _model_utils.clone(model, clone_function, call_function)


# The earlier name, which read as a verb; kept for code that uses it.
quantize_layers = quantized_layers
