"""`tfmot.experimental.combine`: the schemes of collaborative optimization.

Pass one to `tfmot.quantization.keras.quantize_apply(annotated, scheme)`:
PQAT keeps a pruned model's zeros, CQAT a clustered model's shared values,
and PCQAT (`preserve_sparsity=True`) both.
"""

from kcompress.quantization.schemes import (
    Default8BitClusterPreserveQuantizeScheme,
)
from kcompress.quantization.schemes import (
    Default8BitPrunePreserveQuantizeScheme,
)

__all__ = ["Default8BitClusterPreserveQuantizeScheme",
           "Default8BitPrunePreserveQuantizeScheme"]
