"""Pure mask functions: weight tensor in, 0/1 mask of the same shape out.

Every function here is written in `keras.ops`, has no state and is safe to
trace under XLA (`jit_compile=True`): the number of weights to prune may be a
traced tensor, so `top_k` (which needs a static `k`) is not used. The
threshold is found by bisection over the magnitudes' bit patterns (32 cheap
passes, no sort), and ties at the threshold are broken by position, so the
zero count is exact. (Sorting gave the same masks but made pruned training
slower on a CPU; `benchmarks/training_overhead.py` measures the overhead.)
"""

import math

from keras import ops

BLOCK_POOLING_TYPES = ("AVG", "MAX")


def _rank_mask(scores, num_zeros):
    """1 where an entry of the last axis is not among its `num_zeros` smallest.

    Used for M:N groups, where the last axis is short (`n` entries).

    Args:
        scores: tensor whose last axis holds the candidates.
        num_zeros: scalar (Python or tensor) count of entries to zero per row.

    Returns:
        A tensor of `scores.dtype`, 0 for pruned entries and 1 for kept ones.
    """
    order = ops.argsort(scores, axis=-1)
    ranks = ops.argsort(order, axis=-1)
    num_zeros = ops.cast(num_zeros, ranks.dtype)
    return ops.cast(ops.greater_equal(ranks, num_zeros), scores.dtype)


def _kth_smallest_bits(bits, k):
    """The `k`-th smallest (0-based) of non-negative int32 `bits`.

    Bisection over the integer range: 32 linear passes, no sort. For
    non-negative float32 values the int32 bit pattern orders like the value,
    so this is an exact order statistic of the magnitudes, cheap under XLA
    (an XLA sort of 65k values costs about 30 such passes on a CPU).
    """
    target = ops.add(ops.cast(k, "int32"), 1)

    def body(_, bounds):
        low, high = bounds
        middle = low + (high - low) // 2
        enough = ops.greater_equal(
            ops.sum(ops.cast(ops.less_equal(bits, middle), "int32")), target)
        return (ops.where(enough, low, middle),
                ops.where(enough, middle, high))

    bounds = (ops.convert_to_tensor(-1, "int32"), ops.max(bits))
    return ops.fori_loop(0, 32, body, bounds)[1]


def _threshold_mask(scores, num_zeros):
    """1 where an entry of the 1-D, non-negative float `scores` is not among
    its `num_zeros` smallest.

    Ties at the threshold are kept in index order until exactly
    `size - num_zeros` entries are kept.
    """
    size = scores.shape[0]
    num_zeros = ops.cast(num_zeros, "int32")
    bits = ops.view(ops.cast(scores, "float32"), "int32")
    threshold = _kth_smallest_bits(bits, num_zeros)
    above = ops.greater(bits, threshold)
    ties = ops.equal(bits, threshold)
    room = ops.subtract(ops.subtract(size, num_zeros),
                        ops.sum(ops.cast(above, "int32")))
    tie_order = ops.cumsum(ops.cast(ties, "int32"))
    kept = ops.logical_or(
        above, ops.logical_and(ties, ops.less_equal(tie_order, room)))
    return ops.cast(kept, scores.dtype)


def num_zeros_for(size, sparsity):
    """The number of weights to zero so that `size` weights reach `sparsity`.

    Follows TFMOT: keep `round(size * (1 - sparsity))` weights.
    """
    sparsity = ops.cast(sparsity, "float32")
    keep = ops.round(ops.multiply(float(size), ops.subtract(1.0, sparsity)))
    return ops.subtract(size, ops.cast(keep, "int32"))


def magnitude_mask(weight, sparsity):
    """Zeroes the `sparsity` fraction of `weight` with the smallest magnitude.

    Args:
        weight: a tensor of any shape.
        sparsity: scalar in [0, 1), a float or a tensor.

    Returns:
        A mask of the shape and dtype of `weight`.

    Example:

    >>> import numpy as np
    >>> w = np.array([[0.1, -3.0], [2.0, -0.2]], "float32")
    >>> ops.convert_to_numpy(magnitude_mask(w, 0.5)).tolist()
    [[0.0, 1.0], [1.0, 0.0]]
    """
    size = math.prod(weight.shape)
    flat = ops.reshape(ops.abs(weight), (size,))
    mask = _threshold_mask(flat, num_zeros_for(size, sparsity))
    return ops.reshape(mask, weight.shape)


def block_mask(weight, sparsity, block_size=(1, 1), pooling_type="AVG"):
    """Magnitude mask over blocks of a 2D view of `weight`.

    The weight is viewed as `(prod(shape[:-1]), shape[-1])` (inputs by output
    channels), padded to whole blocks, and each `block_size` block is scored by
    the average (or maximum) magnitude of its entries. Whole blocks are pruned.

    Args:
        weight: a tensor of rank 1 or more.
        sparsity: scalar in [0, 1): the fraction of blocks to zero.
        block_size: `(rows, cols)` of one block.
        pooling_type: `"AVG"` or `"MAX"`.

    Returns:
        A mask of the shape and dtype of `weight`.
    """
    block_rows, block_cols = block_size
    if (block_rows, block_cols) == (1, 1):
        return magnitude_mask(weight, sparsity)
    shape = tuple(weight.shape)
    cols = shape[-1]
    rows = math.prod(shape[:-1])
    padded_rows = -(-rows // block_rows) * block_rows
    padded_cols = -(-cols // block_cols) * block_cols
    view = ops.reshape(ops.abs(weight), (rows, cols))
    view = ops.pad(view, ((0, padded_rows - rows), (0, padded_cols - cols)))
    blocks = ops.reshape(
        view,
        (padded_rows // block_rows, block_rows, padded_cols // block_cols,
         block_cols),
    )
    pool = ops.mean if pooling_type == "AVG" else ops.max
    scores = pool(blocks, axis=(1, 3))
    grid = scores.shape
    num_blocks = grid[0] * grid[1]
    flat = ops.reshape(scores, (num_blocks,))
    kept = ops.reshape(
        _threshold_mask(flat, num_zeros_for(num_blocks, sparsity)), grid)
    kept = ops.repeat(ops.repeat(kept, block_rows, axis=0), block_cols, axis=1)
    return ops.reshape(kept[:rows, :cols], shape)


def m_by_n_mask(weight, m_by_n=(2, 4), axis=-2):
    """Zeroes the `m` smallest of every `n` consecutive weights along `axis`.

    `axis` is the reduction (input-channel) axis, the one sparse kernels group
    along. Like TFMOT, a trailing partial group is padded: the padding counts
    among the zeros, so such a group keeps at most `n - m` real weights.

    Args:
        weight: a tensor of rank 2 or more.
        m_by_n: `(m, n)` with `0 < m < n`: `m` zeros in every `n` weights.
        axis: the axis the groups run along.

    Returns:
        A mask of the shape and dtype of `weight`.

    Example:

    >>> import numpy as np
    >>> w = np.array([[1.0], [-4.0], [0.5], [3.0]], "float32")
    >>> ops.convert_to_numpy(m_by_n_mask(w, (2, 4), axis=0)).ravel().tolist()
    [0.0, 1.0, 0.0, 1.0]
    """
    num_zeros, group = m_by_n
    rank = len(weight.shape)
    axis = axis % rank
    perm = [i for i in range(rank) if i != axis] + [axis]
    moved = ops.transpose(ops.abs(weight), perm)
    moved_shape = tuple(moved.shape)
    channels = moved_shape[-1]
    padded = -(-channels // group) * group
    rows = math.prod(moved_shape[:-1])
    flat = ops.reshape(moved, (rows, channels))
    # Padding scores below any magnitude, so it is always pruned first.
    flat = ops.pad(flat, ((0, 0), (0, padded - channels)), constant_values=-1)
    groups = ops.reshape(flat, (rows, padded // group, group))
    mask = ops.reshape(_rank_mask(groups, num_zeros), (rows, padded))
    mask = ops.reshape(mask[:, :channels], moved_shape)
    inverse = [perm.index(i) for i in range(rank)]
    return ops.cast(ops.transpose(mask, inverse), weight.dtype)


def sparsity_of(mask):
    """The fraction of zeros in a mask or weight, as a Python float."""
    values = ops.convert_to_numpy(mask)
    if values.size == 0:
        return 0.0
    return float((values == 0).sum() / values.size)


def channel_mask(kernel, sparsity, depthwise=False):
    """Zeroes whole output channels of `kernel` with the smallest L2 norm.

    The output channels of a Conv or Dense kernel `(..., in, out)` are its
    last axis; those of a depthwise kernel `(kh, kw, in, multiplier)` are the
    `in * multiplier` outputs, channel `c * multiplier + m`.

    Args:
        kernel: a Dense, Conv or depthwise kernel.
        sparsity: scalar in [0, 1): the fraction of channels to zero.
        depthwise: whether `kernel` is a depthwise kernel.

    Returns:
        `(kernel mask, channel mask)`: the first of the kernel's shape, the
        second 1-D over the output channels (for the bias).

    Example:

    >>> import numpy as np
    >>> w = np.array([[0.1, 3.0, -2.0], [0.1, 1.0, 0.5]], "float32")
    >>> ops.convert_to_numpy(channel_mask(w, 1 / 3)[1]).tolist()
    [0.0, 1.0, 1.0]
    """
    shape = tuple(kernel.shape)
    channels = shape[-2] * shape[-1] if depthwise else shape[-1]
    matrix = ops.reshape(kernel, (-1, channels))
    scores = ops.sqrt(ops.sum(ops.square(matrix), axis=0))
    keep = _threshold_mask(scores, num_zeros_for(channels, sparsity))
    trailing = shape[-2:] if depthwise else shape[-1:]
    return ops.broadcast_to(ops.reshape(keep, trailing), shape), keep
