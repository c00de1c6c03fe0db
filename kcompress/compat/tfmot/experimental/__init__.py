"""`tfmot.experimental`: its `combine` module (collaborative optimization)."""

from kcompress.compat.tfmot.experimental import combine

__all__ = ["combine"]
