"""`tfmot.quantization.keras.quantizers` on kcompress
(`kcompress.quantization.tfmot_quantizers`): the quantizer objects a
TFMOT-style `QuantizeConfig` hands out."""

from kcompress.quantization.tfmot_quantizers import AllValuesQuantizer
from kcompress.quantization.tfmot_quantizers import LastValueQuantizer
from kcompress.quantization.tfmot_quantizers import MovingAverageQuantizer
from kcompress.quantization.tfmot_quantizers import Quantizer

__all__ = ["AllValuesQuantizer", "LastValueQuantizer",
           "MovingAverageQuantizer", "Quantizer"]
