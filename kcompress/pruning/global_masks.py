"""Global magnitude pruning: one threshold for the whole model.

`prune_low_magnitude(model, schedule, scope="global")` ranks the weights of
every wrapped layer together, by magnitude, and zeroes the smallest
`schedule`'s sparsity of them all: a wide 1x1 convolution whose weights are
small gives up far more than a first convolution whose few weights are
large. A per-layer ceiling (`max_sparsity`, 0.95 by default) keeps every
layer from being emptied; what a full layer cannot give is taken from the
others, so the model's overall sparsity is still the schedule's.

With `ranking="lamp"`, weights are ranked by their LAMP score instead (Lee
et al., "Layer-adaptive sparsity for the magnitude-based pruning", ICLR
2021): a weight's square over the sum of the squares of the weights of its
layer that are at least as large. It is scale-free (a layer whose weights
are all small, or that a BatchNorm rescales, is not emptied for it), and
each layer's largest weight scores 1, so no layer loses everything.

As for channel groups (`group_masks.GroupMasker`), no single layer sees the
ranking: `UpdatePruningStep` asks `GlobalMasker`, before each batch, whether
the schedule updates, and if so assigns every wrapper's masks. Host-side
work, on update steps only; the compiled train step reads the mask
variables, on every backend.
"""

import keras
import numpy as np

__all__ = ["GlobalMasker", "global_zero_counts", "lamp_scores",
           "lowest_mask"]


def global_zero_counts(scores, total_zeros, caps):
    """How many weights of each tensor to zero, by one global threshold.

    Args:
        scores: list of 1-D non-negative arrays (the magnitudes).
        total_zeros: the number of weights to zero over all of them.
        caps: list of ints, the most each tensor may lose.

    Returns:
        A list of ints, one per tensor, summing to
        `min(total_zeros, sum(caps))`: each tensor gives its entries below
        the threshold up to its cap; ties at the threshold go to the earliest
        tensors.
    """
    total_zeros = min(int(total_zeros), int(sum(caps)))
    ordered = [np.sort(s) for s in scores]
    candidates = np.unique(np.concatenate(ordered)) if ordered else []

    def below(t):
        return [min(int(np.searchsorted(s, t, "left")), c)
                for s, c in zip(ordered, caps)]

    # The largest candidate whose strictly-below count stays <= total.
    low, high = 0, len(candidates)  # invariant: sum(below(cand[low])) <= tot
    while high - low > 1:
        middle = (low + high) // 2
        if sum(below(candidates[middle])) <= total_zeros:
            low = middle
        else:
            high = middle
    if not len(candidates):
        return [0] * len(scores)
    threshold = candidates[low]
    counts = below(threshold)
    room = total_zeros - sum(counts)
    for i, s in enumerate(ordered):  # the ties at the threshold
        if room <= 0:
            break
        ties = int(np.searchsorted(s, threshold, "right")) - counts[i]
        take = max(0, min(ties, caps[i] - counts[i], room))
        counts[i] += take
        room -= take
    return counts


def lamp_scores(magnitudes):
    """LAMP scores of one tensor's magnitudes (same shape): `w**2` over the
    sum of `v**2` for the weights `v` at least as large; 0 stays 0."""
    flat = np.ravel(magnitudes).astype("float64")
    order = np.argsort(flat, kind="stable")
    squares = flat[order] ** 2
    tails = np.cumsum(squares[::-1])[::-1]
    scores = np.zeros_like(flat)
    scores[order] = np.divide(squares, tails, out=np.zeros_like(squares),
                              where=tails > 0)
    return scores.reshape(np.shape(magnitudes))


def lowest_mask(scores, num_zeros):
    """A 0/1 mask of the shape of `scores`: 0 on its `num_zeros` smallest
    entries, ties broken by position."""
    flat = np.ravel(scores)
    mask = np.ones(flat.shape, "float32")
    mask[np.argsort(flat, kind="stable")[:num_zeros]] = 0.0
    return mask.reshape(np.shape(scores))


class GlobalMasker:
    """Assigns the masks of the `scope="global"` wrappers of a model.

    The wrappers share the schedule and ceiling of the first one (
    `prune_low_magnitude` gives them all the same).
    """

    def __init__(self, wrappers):
        self.wrappers = [w for w in wrappers if w.scope == "global"]

    def __bool__(self):
        return bool(self.wrappers)

    def due(self, step):
        """The sparsity to reach before the 1-based batch `step`, or None
        when the schedule does not update there."""
        should, sparsity = self.wrappers[0].pruning_schedule(step)
        if not bool(keras.ops.convert_to_numpy(should)):
            return None
        return float(keras.ops.convert_to_numpy(sparsity))

    def update(self, sparsity):
        """Ranks every wrapped weight by its masked magnitude and assigns
        the masks that zero `sparsity` of them all."""
        pairs = [(weight, mask) for w in self.wrappers
                 for weight, mask in zip(w.pruned_weights, w.masks)]
        scored = [np.abs(keras.ops.convert_to_numpy(weight)
                         * keras.ops.convert_to_numpy(mask))
                  for weight, mask in pairs]
        if self.wrappers[0].ranking == "lamp":
            scored = [lamp_scores(s) for s in scored]
        sizes = [s.size for s in scored]
        ceiling = self.wrappers[0].max_sparsity
        caps = [int(np.floor(ceiling * size + 1e-9)) for size in sizes]
        total = sum(sizes) - int(round(sum(sizes) * (1.0 - sparsity)))
        counts = global_zero_counts([s.ravel() for s in scored], total, caps)
        for (_, mask), score, count in zip(pairs, scored, counts):
            mask.assign(lowest_mask(score, count).astype(mask.dtype))

    def layer_sparsities(self):
        """`{layer name: fraction of its pruned weights masked}` now."""
        result = {}
        for wrapper in self.wrappers:
            masks = [keras.ops.convert_to_numpy(m) for m in wrapper.masks]
            zeros = sum(int((m == 0).sum()) for m in masks)
            result[wrapper.layer.name] = zeros / max(
                sum(m.size for m in masks), 1)
        return result


SCOPES = ("layer", "global")
RANKINGS = ("magnitude", "lamp")


def check_scope(scope, max_sparsity, layer_name, structured,
                ranking="magnitude"):
    """Validates the `scope`, `max_sparsity` and `ranking` of a wrapper."""
    if ranking not in RANKINGS:
        raise ValueError(
            f"Received: ranking={ranking!r}. Expected one of {RANKINGS}: how"
            " global pruning compares weights of different layers.")
    if scope not in SCOPES:
        raise ValueError(
            f"Received: scope={scope!r}. Expected one of {SCOPES}: 'layer' "
            "prunes each layer to the schedule's sparsity, 'global' ranks "
            "the weights of all wrapped layers together.")
    if isinstance(max_sparsity, bool) or not isinstance(
            max_sparsity, (int, float)) or not 0.0 < max_sparsity < 1.0:
        raise ValueError(
            f"Received: max_sparsity={max_sparsity!r}. Expected a float in "
            "(0, 1): the most of one layer's weights global pruning may "
            "zero.")
    if scope == "global" and structured:
        raise ValueError(
            f"Layer '{layer_name}': scope='global' ranks single weights and "
            "cannot take structure, block_size or sparsity_m_by_n. Use the "
            "defaults, or scope='layer'.")
    return float(max_sparsity)
