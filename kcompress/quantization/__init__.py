"""Quantization-aware training for TFLite's int8 scheme, with TFMOT's names.

Typical use::

    import kcompress as kc

    qat = kc.quantization.quantize_model(model)
    qat.compile(...)
    qat.fit(x, y, epochs=5)
    tflite_bytes = tflite_export.convert(qat, "qat")
"""

from kcompress.quantization.fold_batchnorm import QuantizeConvBatchNorm
from kcompress.quantization.quantization_callbacks import (
    FreezeBatchNormStatistics,
)
from kcompress.quantization.quantization_callbacks import (
    FreezeQuantizationRanges,
)
from kcompress.quantization.quantize import calibrate
from kcompress.quantization.quantize import quantize_annotate_layer
from kcompress.quantization.quantize import quantize_annotate_model
from kcompress.quantization.quantize import quantize_apply
from kcompress.quantization.quantize import quantize_layers
from kcompress.quantization.quantize import quantize_model
from kcompress.quantization.quantize import quantized_layers
from kcompress.quantization.quantize import strip_quantization
from kcompress.quantization.quantize_annotate import QuantizeAnnotate
from kcompress.quantization.quantize_config import QuantizeConfig
from kcompress.quantization.quantize_wrapper import QuantizedConstant
from kcompress.quantization.quantize_wrapper import QuantizeLayer
from kcompress.quantization.quantize_wrapper import QuantizeWrapper
from kcompress.quantization.quantize_wrapper_v2 import QuantizeWrapperV2
from kcompress.quantization.schemes import (
    Default8BitClusterPreserveQuantizeScheme,
)
from kcompress.quantization.schemes import (
    Default8BitPrunePreserveQuantizeScheme,
)
from kcompress.quantization.schemes import Default8BitQuantizeScheme
from kcompress.quantization.schemes import QuantizeScheme

__all__ = [
    "Default8BitClusterPreserveQuantizeScheme",
    "Default8BitPrunePreserveQuantizeScheme",
    "Default8BitQuantizeScheme",
    "FreezeBatchNormStatistics",
    "FreezeQuantizationRanges",
    "QuantizeAnnotate",
    "QuantizeConfig",
    "QuantizeConvBatchNorm",
    "QuantizeLayer",
    "QuantizeScheme",
    "QuantizedConstant",
    "QuantizeWrapper",
    "QuantizeWrapperV2",
    "calibrate",
    "quantize_annotate_layer",
    "quantize_annotate_model",
    "quantize_apply",
    "quantize_layers",
    "quantized_layers",
    "quantize_model",
    "strip_quantization",
]
