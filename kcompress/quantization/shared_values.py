"""Kernels that train as shared values: cluster-preserving QAT in the graph.

A clustered kernel (from `kcompress.clustering.strip_clustering`) holds a
few distinct values, per tensor or per output channel. `cluster_ids` numbers
them once, when the QAT layer is built, and `project` runs on every call:
each weight becomes the mean of its cluster. The forward pass therefore sees
at most that many values per kernel (per channel), and every weight of a
cluster receives the cluster's mean gradient, so the weights of a cluster
stay equal through training (CQAT). With the zero mask applied after the
projection, a cluster at zero stays at zero (PCQAT).

The projection is two `segment_sum`s and a `take` on the kernel, in
`keras.ops`; on export the converter folds them with the constant weights.
"""

import numpy as np
from keras import ops

# Above this many distinct values (per tensor, and in some channel) a kernel
# is not clustered: int8 has only 256 levels per tensor or channel.
MAX_SHARED = 256


def cluster_ids(values, max_count=MAX_SHARED):
    """Cluster numbers of a kernel's values, or None if it is not clustered.

    Args:
        values: the kernel, a numpy array.
        max_count: the most distinct values a clustered kernel holds per
            tensor, or else in every output channel (last axis).

    Returns:
        An int32 array of `values.shape` numbering equal values (per channel
        when the tensor as a whole holds more than `max_count`, with
        different numbers in each channel), or None.
    """
    values = np.asarray(values)
    flat = values.reshape(-1)
    unique, inverse = np.unique(flat, return_inverse=True)
    if len(unique) <= max_count:
        return inverse.reshape(values.shape).astype("int32")
    columns = values.reshape(-1, values.shape[-1])
    ids = np.empty(columns.shape, "int32")
    for channel in range(columns.shape[1]):
        unique, inverse = np.unique(columns[:, channel], return_inverse=True)
        if len(unique) > max_count:
            return None
        ids[:, channel] = inverse + channel * max_count
    # Renumber densely so that every id is below the kernel's size.
    return np.unique(ids, return_inverse=True)[1].reshape(
        values.shape).astype("int32")


def ids_variable(layer, weight):
    """A non-trainable int32 variable of `layer` holding `weight`'s cluster
    numbers (each its own cluster until loaded, if `weight` is not
    clustered now)."""
    values = ops.convert_to_numpy(weight)
    ids = cluster_ids(values)
    if ids is None:
        ids = np.arange(values.size, dtype="int32").reshape(values.shape)
    variable = layer.add_weight(
        name=f"{weight.name}_cluster", shape=weight.shape, dtype="int32",
        initializer="zeros", trainable=False,
        aggregation="only_first_replica")
    variable.assign(ids)
    return variable


def project(weight, ids):
    """`weight` with every entry replaced by the mean of its cluster.

    Args:
        weight: a float tensor.
        ids: an integer tensor of the same shape (from `cluster_ids`).

    Returns:
        A tensor of `weight`'s shape and dtype.
    """
    size = int(np.prod(weight.shape))
    flat = ops.reshape(weight, (size,))
    segments = ops.reshape(ops.cast(ids, "int32"), (size,))
    sums = ops.segment_sum(flat, segments, num_segments=size)
    counts = ops.segment_sum(ops.ones_like(flat), segments,
                             num_segments=size)
    means = ops.divide(sums, ops.maximum(counts, 1.0))
    return ops.reshape(ops.take(means, segments), weight.shape)
