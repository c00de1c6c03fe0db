"""Low-rank factorization of Dense and Conv2D layers (truncated SVD).

Typical use::

    import kcompress as kc

    small = kc.lowrank.factorize(model, energy=0.9)
    kc.summary(small, baseline=model)   # parameters and MACs per layer
"""

from kcompress.lowrank.factorization import factorize
from kcompress.lowrank.factorization import factorized_parameters
from kcompress.lowrank.factorization import rank_for_energy

__all__ = ["factorize", "factorized_parameters", "rank_for_energy"]
