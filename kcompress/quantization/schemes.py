"""QAT schemes with TFMOT's names, for `quantize_apply(..., scheme=...)`.

kcompress has one quantization, TFLite's int8. A scheme chooses only what
QAT keeps of the weights it starts from:

- `Default8BitQuantizeScheme` and `Default8BitPrunePreserveQuantizeScheme`:
  the zeros of a pruned model (PQAT). kcompress keeps zeros by default, so
  both are the same; TFMOT's default scheme loses them.
- `Default8BitClusterPreserveQuantizeScheme`: the shared values of a
  clustered model (CQAT) and, with `preserve_sparsity=True` (the default, as
  in TFMOT), its zeros too (PCQAT).
"""

import keras

__all__ = ["QuantizeScheme", "Default8BitQuantizeScheme",
           "Default8BitPrunePreserveQuantizeScheme",
           "Default8BitClusterPreserveQuantizeScheme"]


@keras.saving.register_keras_serializable(package="kcompress")
class QuantizeScheme:
    """What QAT keeps of the weights: their zeros, their clusters.

    Args:
        preserve_sparsity: keep exactly-zero weights at zero.
        preserve_clusters: keep clustered kernels on their shared values.
    """

    def __init__(self, preserve_sparsity=True, preserve_clusters=False):
        for name, value in (("preserve_sparsity", preserve_sparsity),
                            ("preserve_clusters", preserve_clusters)):
            if not isinstance(value, bool):
                raise ValueError(f"Received: {name}={value!r}. Expected a "
                                 "bool.")
        self.preserve_sparsity = preserve_sparsity
        self.preserve_clusters = preserve_clusters

    def options(self):
        """The keyword arguments of the QAT layers that this scheme sets."""
        return {"preserve_sparsity": self.preserve_sparsity,
                "preserve_clusters": self.preserve_clusters}

    def get_config(self):
        return self.options()

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return type(self) is type(other) and self.options() == other.options()

    def __repr__(self):
        arguments = ", ".join(f"{k}={v}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({arguments})"


@keras.saving.register_keras_serializable(package="kcompress")
class Default8BitQuantizeScheme(QuantizeScheme):
    """TFLite's int8 QAT. Zeros are kept (TFMOT's default loses them)."""

    def __init__(self):
        super().__init__(preserve_sparsity=True, preserve_clusters=False)

    def get_config(self):
        return {}


@keras.saving.register_keras_serializable(package="kcompress")
class Default8BitPrunePreserveQuantizeScheme(Default8BitQuantizeScheme):
    """Pruning-preserving QAT (PQAT): a pruned model keeps its zeros."""


@keras.saving.register_keras_serializable(package="kcompress")
class Default8BitClusterPreserveQuantizeScheme(QuantizeScheme):
    """Cluster-preserving QAT (CQAT), and with zeros kept PCQAT.

    Every kernel of a stripped clustered model (at most 256 distinct values
    per tensor, or per output channel) trains as its shared values, so the
    int8 file holds no more values per kernel than the clustering left.

    Args:
        preserve_sparsity: also keep the zero cluster at zero (PCQAT).
    """

    def __init__(self, preserve_sparsity=True):
        super().__init__(preserve_sparsity=preserve_sparsity,
                         preserve_clusters=True)

    def get_config(self):
        return {"preserve_sparsity": self.preserve_sparsity}
