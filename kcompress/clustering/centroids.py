"""Centroid initialization for weight clustering, with TFMOT's four methods.

Each function takes the values to cluster (a 1-D numpy array, zeros left
out when sparsity is preserved) and returns `number_of_clusters` centroids,
sorted. They run once, when a clustering wrapper is built, on the host.
"""

import enum

import numpy as np

__all__ = ["CentroidInitialization", "initial_centroids"]


class CentroidInitialization(str, enum.Enum):
    """How the cluster centroids start (TFMOT's names and meanings).

    - `LINEAR`: evenly spaced between the minimum and the maximum weight;
    - `RANDOM`: uniform samples between the minimum and the maximum;
    - `DENSITY_BASED`: evenly spaced quantiles of the weights' cumulative
      distribution;
    - `KMEANS_PLUS_PLUS`: k-means++ seeding.
    """

    LINEAR = "LINEAR"
    RANDOM = "RANDOM"
    DENSITY_BASED = "DENSITY_BASED"
    KMEANS_PLUS_PLUS = "KMEANS_PLUS_PLUS"


def _linear(values, count, rng):
    return np.linspace(values.min(), values.max(), count)


def _random(values, count, rng):
    return rng.uniform(values.min(), values.max(), count)


def _density(values, count, rng):
    # Quantiles at the middle of `count` equal slices of the CDF.
    return np.quantile(values, (np.arange(count) + 0.5) / count)


def _kmeans_plus_plus(values, count, rng):
    """Greedy k-means++, as TensorFlow's `KmeansPlusPlusInitialization`
    (which TFMOT calls) does it: every centroid, the first included, is the
    best of `3 + log(count)` candidates (the one leaving the smallest sum of
    squared distances), drawn uniformly for the first and then in
    proportion to the squared distance to the nearest centroid so far;
    a weight already chosen is not drawn again."""
    tries = 3 + int(np.log(count))
    distance = np.full(len(values), np.inf)
    chosen = np.zeros(len(values), bool)
    centroids = []
    for _ in range(count):
        weights = np.where(chosen, 0.0, distance if centroids else 1.0)
        total = weights.sum()
        if total == 0 or not np.isfinite(total):
            # Fewer distinct values than clusters: repeat the last one.
            centroids.append(centroids[-1] if centroids else values[0])
            continue
        picks = rng.choice(len(values), size=tries, p=weights / total)
        options = np.minimum(distance[None],
                             (values[None] - values[picks, None]) ** 2)
        best = int(np.argmin(options.sum(axis=1)))
        centroids.append(values[picks[best]])
        chosen[picks[best]] = True
        distance = options[best]
    return np.array(centroids)


_METHODS = {
    CentroidInitialization.LINEAR: _linear,
    CentroidInitialization.RANDOM: _random,
    CentroidInitialization.DENSITY_BASED: _density,
    CentroidInitialization.KMEANS_PLUS_PLUS: _kmeans_plus_plus,
}


def check_init(init):
    """`init` as a `CentroidInitialization`, or a ValueError naming the
    accepted values."""
    try:
        return CentroidInitialization(getattr(init, "value", init))
    except ValueError:
        raise ValueError(
            f"Received: cluster_centroids_init={init!r}. Expected one of "
            f"{[m.value for m in CentroidInitialization]}.") from None


def initial_centroids(values, count, init, seed=0):
    """`count` sorted centroids for `values` (any shape, flattened).

    Args:
        values: the weights to cluster.
        count: number of clusters.
        init: a `CentroidInitialization` (or its name).
        seed: seeds RANDOM and KMEANS_PLUS_PLUS.

    Example:

    >>> initial_centroids(np.array([0.0, 1.0, 2.0, 3.0]), 2, "LINEAR")
    array([0., 3.])
    """
    values = np.asarray(values, "float64").reshape(-1)
    if values.size == 0:
        return np.zeros(count)
    rng = np.random.default_rng(seed)
    return np.sort(_METHODS[check_init(init)](values, count, rng))


def sparse_centroids(values, count, init, seed=0):
    """`count + 1` sorted centroids for a pruned kernel, one of them 0.

    As TFMOT's sparsity-preserving clustering does: the zero centroid splits
    the non-zero weights into negative and positive ones, the `count`
    others are shared between the two sides in proportion to their sizes,
    and each side is initialized on its own.

    Example:

    >>> sparse_centroids(np.array([-2.0, 0.0, 1.0, 3.0]), 3, "LINEAR")
    array([-2.,  0.,  1.,  3.])
    """
    values = np.asarray(values, "float64").reshape(-1)
    negative, positive = values[values < 0], values[values > 0]
    total = negative.size + positive.size
    on_negative = int(round(count * negative.size / total)) if total else 0
    if negative.size and positive.size:
        on_negative = min(max(on_negative, 1), count - 1)
    return np.sort(np.concatenate([
        initial_centroids(negative, on_negative, init, seed),
        [0.0],
        initial_centroids(positive, count - on_negative, init, seed + 1)]))

