"""Namespaces that let scripts written for other toolkits run on kcompress.

`kcompress.compat.tfmot` has TFMOT's module layout: change

    import tensorflow_model_optimization as tfmot

to

    from kcompress.compat import tfmot

and `tfmot.sparsity.keras`, `tfmot.quantization.keras` and
`tfmot.clustering.keras` resolve to kcompress, on Keras 3.
"""

from kcompress.compat import tfmot

__all__ = ["tfmot"]
