"""kcompress: pruning, quantization-aware training and int8 TFLite for Keras 3.

`import kcompress as kc` gives the subpackages (`kc.pruning`) and the
top-level verbs `kc.prune_low_magnitude`, `kc.strip_pruning` and
`kc.summary`. Importing the package sets no environment variables.
"""

from kcompress import pruning
from kcompress.pruning import prune_low_magnitude
from kcompress.pruning import strip_pruning
from kcompress.summary import layer_stats
from kcompress.summary import summary

__version__ = "0.1.0"

__all__ = [
    "layer_stats",
    "prune_low_magnitude",
    "pruning",
    "strip_pruning",
    "summary",
]
