"""TFMOT's module layout on kcompress: `sparsity.keras`,
`quantization.keras` and `clustering.keras`."""

from kcompress.compat.tfmot import clustering
from kcompress.compat.tfmot import quantization
from kcompress.compat.tfmot import sparsity

__all__ = ["clustering", "quantization", "sparsity"]
