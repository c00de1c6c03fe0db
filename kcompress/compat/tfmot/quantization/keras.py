"""`tfmot.quantization.keras` on kcompress (`kcompress.quantization`)."""

import contextlib

import keras

from kcompress.compat._unsupported import module_getattr
from kcompress.compat.tfmot.quantization import quantizers
from kcompress.quantization import QuantizeConfig
from kcompress.quantization import QuantizeWrapper
from kcompress.quantization import QuantizeWrapperV2
from kcompress.quantization import quantize_annotate_layer
from kcompress.quantization import quantize_annotate_model
from kcompress.quantization import quantize_apply as _quantize_apply
from kcompress.quantization import quantize_model as _quantize_model
from kcompress.quantization.schemes import Default8BitQuantizeScheme
from kcompress.quantization.schemes import QuantizeScheme

__all__ = ["QuantizeConfig", "QuantizeWrapper", "QuantizeWrapperV2",
           "quantize_annotate_layer",
           "quantize_annotate_model", "quantize_apply", "quantize_model",
           "quantize_scope", "quantizers"]

def _check_prefix(quantized_layer_name_prefix):
    if quantized_layer_name_prefix != "quant_":
        raise ValueError(
            f"Received: quantized_layer_name_prefix="
            f"{quantized_layer_name_prefix!r}. Expected 'quant_', the only "
            "prefix kcompress gives its QAT layers.")


def quantize_model(to_annotate, quantized_layer_name_prefix="quant_"):
    """TFMOT's `quantize_model`: QAT of every layer, zeros not kept (as in
    TFMOT; quantize a pruned model with `quantize_apply(annotated,
    Default8BitPrunePreserveQuantizeScheme())` to keep them, or with
    kcompress's own `kcompress.quantization.quantize_model`, which keeps
    them by default)."""
    _check_prefix(quantized_layer_name_prefix)
    return _quantize_model(to_annotate, preserve_sparsity=False)


def quantize_apply(model, scheme=None, quantized_layer_name_prefix="quant_"):
    """TFMOT's `quantize_apply(model, scheme)`: quantizes the annotated
    layers. As in TFMOT, zeros are kept only under a scheme that says so:
    `tfmot.experimental.combine`'s PQAT
    (`Default8BitPrunePreserveQuantizeScheme`) or PCQAT
    (`Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=True)`).
    The default scheme, and `Default8BitQuantizeScheme()`, lose them."""
    _check_prefix(quantized_layer_name_prefix)
    if scheme is not None and not isinstance(scheme, QuantizeScheme):
        raise ValueError(
            f"Received: scheme={scheme!r}. Expected a QuantizeScheme of "
            "tfmot.experimental.combine (or None for the default).")
    if scheme is None or type(scheme) is Default8BitQuantizeScheme:
        return _quantize_apply(model, preserve_sparsity=False)
    return _quantize_apply(model, scheme=scheme)


@contextlib.contextmanager
def quantize_scope(*args):
    """TFMOT's scope for loading QAT models and custom QuantizeConfigs.
    kcompress registers its classes; the objects given (dicts of custom
    objects, as in TFMOT) are added to the scope."""
    objects = {"QuantizeWrapper": QuantizeWrapper,
               "QuantizeWrapperV2": QuantizeWrapperV2,
               "QuantizeConfig": QuantizeConfig}
    for extra in args:
        objects.update(extra or {})
    with keras.saving.custom_object_scope(objects):
        yield


__getattr__ = module_getattr("tfmot.quantization.keras", {
    "experimental": "its default_n_bit schemes are not supported: TFLite "
    "runs int8; use the default scheme.",
    "QuantizeLayoutTransform": "not supported: the layout (which layers "
    "fuse) follows TFLite's kernels (kcompress.quantization.patterns).",
    "QuantizeRegistry": "not supported: give a layer its QuantizeConfig "
    "with quantize_annotate_layer(layer, quantize_config).",
    "QuantizeScheme": "not supported: kcompress has one scheme, TFLite's "
    "int8.",
    "default_8bit": "its scheme is kcompress's only one, TFLite's int8. In "
    "place of its QuantizeConfig classes, describe a layer with "
    "QuantizeConfig(weights={'kernel': axis}, quantize_output=True), or "
    "subclass QuantizeConfig with get_weights_and_quantizers (and the "
    "quantizers of tfmot.quantization.keras.quantizers), as TFMOT's "
    "guide does.",
})
