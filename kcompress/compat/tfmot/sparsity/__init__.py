"""`tfmot.sparsity`: its `keras` module."""

from kcompress.compat.tfmot.sparsity import keras

__all__ = ["keras"]
