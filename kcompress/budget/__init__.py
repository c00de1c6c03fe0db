"""Compression to a budget: measure each layer, plan, search, measure the file.

Typical use::

    import kcompress as kc

    table = kc.budget.sensitivity(model, (x_val, y_val))
    table.plot()
    result = kc.budget.compress_to(model, (x_train, y_train),
                                   validation_data=(x_val, y_val),
                                   size_bytes=300_000)
    result.plan, result.measured, result.tflite

Or, in `fit`, per-layer sparsities from the table::

    plan = kc.budget.allocate_sparsity(table, 0.9)
    pruned = kc.pruning.prune_low_magnitude(
        model, {name: kc.pruning.PolynomialDecay(0, s, 0, steps)
                for name, s in plan.items()})
"""

from kcompress.budget.layer_sensitivity import sensitivity
from kcompress.budget.pareto import pareto_front
from kcompress.budget.pareto import pareto_table
from kcompress.budget.pareto import plot_pareto
from kcompress.budget.plan import CompressionPlan
from kcompress.budget.plan import allocate_channels
from kcompress.budget.plan import allocate_sparsity
from kcompress.budget.search import BudgetError
from kcompress.budget.search import BudgetResult
from kcompress.budget.search import compress_to
from kcompress.budget.sensitivity_table import SensitivityTable

__all__ = [
    "BudgetError",
    "BudgetResult",
    "CompressionPlan",
    "SensitivityTable",
    "allocate_channels",
    "allocate_sparsity",
    "compress_to",
    "pareto_front",
    "pareto_table",
    "plot_pareto",
    "sensitivity",
]
