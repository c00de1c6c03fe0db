"""Compression to a budget: measure each layer, plan, search, measure the file.

Typical use::

    import kcompress as kc

    table = kc.budget.sensitivity(model, (x_val, y_val))
    table.plot()
    result = kc.budget.compress_to(model, (x_train, y_train),
                                   validation_data=(x_val, y_val),
                                   size_bytes=300_000)
    result.plan, result.measured, result.tflite
"""

from kcompress.budget.sensitivity import sensitivity
from kcompress.budget.sensitivity_table import SensitivityTable

__all__ = ["SensitivityTable", "sensitivity"]
