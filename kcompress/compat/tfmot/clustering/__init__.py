"""`tfmot.clustering`: its `keras` module."""

from kcompress.compat.tfmot.clustering import keras

__all__ = ["keras"]
