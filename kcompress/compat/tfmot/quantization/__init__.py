"""`tfmot.quantization`: its `keras` module."""

from kcompress.compat.tfmot.quantization import keras

__all__ = ["keras"]
