"""kcompress: pruning, quantization-aware training and int8 TFLite for Keras 3.

`import kcompress as kc` gives the subpackages (`kc.pruning`,
`kc.quantization`, `kc.clustering`, `kc.distillation`, `kc.lowrank`,
`kc.detection`, `kc.budget`) and
the top-level verbs `kc.prune_low_magnitude`, `kc.strip_pruning`,
`kc.quantize_model`, `kc.strip_quantization` and `kc.summary`. Importing
the package sets no environment variables.
"""

from kcompress import budget
from kcompress import clustering
from kcompress import detection
from kcompress import distillation
from kcompress import lowrank
from kcompress import pruning
from kcompress import quantization
from kcompress.profiling import layer_stats
from kcompress.profiling import summary
from kcompress.pruning import prune_low_magnitude
from kcompress.pruning import strip_pruning
from kcompress.quantization import quantize_model
from kcompress.quantization import strip_quantization

__version__ = "0.1.0"

__all__ = [
    "budget",
    "clustering",
    "detection",
    "distillation",
    "lowrank",
    "layer_stats",
    "prune_low_magnitude",
    "pruning",
    "quantization",
    "quantize_model",
    "strip_pruning",
    "strip_quantization",
    "summary",
]
