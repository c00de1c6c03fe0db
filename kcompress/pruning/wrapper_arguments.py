"""The checks of `PruneLowMagnitude`'s arguments, with Keras-style errors."""

from kcompress._arguments import as_int
from kcompress.pruning import masks as masks_lib
from kcompress.pruning.pruning_schedule import ConstantSparsity

__all__ = ["check_m_by_n", "check_block", "check_schedule"]


def check_m_by_n(value):
    if value is None:
        return None
    ok = (
        isinstance(value, (tuple, list)) and len(value) == 2
        and None not in [as_int(v) for v in value]
        and 0 < as_int(value[0]) < as_int(value[1])
    )
    if not ok:
        raise ValueError(
            f"Received: sparsity_m_by_n={value!r}. Expected a pair (m, n) of "
            "integers with 0 < m < n: m zeros in every n weights, e.g. (2, 4)."
        )
    return tuple(as_int(v) for v in value)


def check_block(block_size, pooling_type):
    ok = (
        isinstance(block_size, (tuple, list)) and len(block_size) == 2
        and all(as_int(v) is not None and as_int(v) > 0 for v in block_size)
    )
    if not ok:
        raise ValueError(
            f"Received: block_size={block_size!r}. Expected a pair of "
            "positive integers (rows, cols)."
        )
    if pooling_type not in masks_lib.BLOCK_POOLING_TYPES:
        raise ValueError(
            f"Received: block_pooling_type={pooling_type!r}. Expected one of "
            f"{masks_lib.BLOCK_POOLING_TYPES}."
        )
    return tuple(as_int(v) for v in block_size)


def check_schedule(schedule):
    if schedule is None:
        return ConstantSparsity(0.5, begin_step=0)
    if not callable(schedule):
        raise ValueError(
            f"Received: pruning_schedule={schedule!r}. Expected a "
            "kcompress.pruning schedule (ConstantSparsity, PolynomialDecay) or "
            "a callable step -> (should_update, sparsity)."
        )
    return schedule
