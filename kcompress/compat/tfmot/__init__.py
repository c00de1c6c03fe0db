"""TFMOT's module layout on kcompress: `sparsity.keras`,
`quantization.keras`, `clustering.keras` and `experimental.combine`."""

from kcompress.compat.tfmot import clustering
from kcompress.compat.tfmot import experimental
from kcompress.compat.tfmot import quantization
from kcompress.compat.tfmot import sparsity

__all__ = ["clustering", "experimental", "quantization", "sparsity"]
