"""Kernels that train as shared values: cluster-preserving QAT in the graph.

A clustered kernel (from `kcompress.clustering.strip_clustering`) holds a
few distinct values, per tensor or per output channel. `layout` numbers
them once, when the QAT layer is built, and a `SharedValues` keeps the
kernel clustered on every call: each weight is replaced by the mean of its
cluster. The forward pass therefore never sees more values per kernel (per
channel) than the clustering left; every weight of a cluster receives the
cluster's mean gradient, so the weights of a cluster stay equal and the
cluster trains as one value (CQAT). Pruned zeros form their own cluster,
which the zero mask keeps at zero (PCQAT).

TFMOT's cluster-preserving QAT also lets weights change clusters during QAT
(it re-assigns every weight to its nearest centroid on each step). kcompress
keeps the assignment the clustering made: tried on the digits CNN (16
clusters, 80% sparse, three seeds), re-assignment gave no better accuracy
and a 0-2% larger gzip of the int8 file, at the cost of a distance matrix
per kernel and step.

Everything is `keras.ops` (segment sums and a gather); on export the
converter folds it with the constant weights.
"""

import numpy as np
from keras import ops

# Above this many distinct values (per tensor, and in some channel) a kernel
# is not clustered: int8 has only 256 levels per tensor or channel.
MAX_SHARED = 256


def layout(values, max_count=MAX_SHARED):
    """How a kernel is clustered, or None if it is not.

    Args:
        values: the kernel, a numpy array.
        max_count: the most distinct values a clustered kernel holds per
            tensor, or else in every output channel (last axis).

    Returns:
        `(ids, count, per_channel)`: int32 cluster numbers in `[0, count)`
        of `values.shape` (numbered within each channel when `per_channel`,
        that is when the tensor as a whole holds more than `max_count`
        values), or None.
    """
    values = np.asarray(values)
    unique, inverse = np.unique(values.reshape(-1), return_inverse=True)
    if len(unique) <= max_count:
        return (inverse.reshape(values.shape).astype("int32"),
                max(len(unique), 1), False)
    columns = values.reshape(-1, values.shape[-1])
    ids = np.empty(columns.shape, "int32")
    count = 1
    for channel in range(columns.shape[1]):
        unique, inverse = np.unique(columns[:, channel], return_inverse=True)
        if len(unique) > max_count:
            return None
        ids[:, channel] = inverse
        count = max(count, len(unique))
    return ids.reshape(values.shape), count, True


def cluster_ids(values, max_count=MAX_SHARED):
    """Cluster numbers of a kernel's equal values, unique across channels
    (so one number is one shared value), or None if not clustered."""
    found = layout(values, max_count)
    if found is None:
        return None
    ids, count, per_channel = found
    if per_channel:
        ids = ids + count * np.arange(ids.shape[-1], dtype="int32")
    return ids


class SharedValues:
    """Keeps one weight of a QAT layer on its shared values.

    Built by the layer in its `build`, which owns the variable it adds.

    Args:
        layer: the layer that owns the weight.
        weight: the weight variable.
        count: the most clusters in the tensor (or in one channel).
        per_channel: whether each output channel (last axis) has its own.
    """

    def __init__(self, layer, weight, count, per_channel):
        self.count = int(count)
        self.per_channel = bool(per_channel)
        self.groups = int(weight.shape[-1]) if per_channel else 1
        self.ids = layer.add_weight(
            name=f"{weight.name}_cluster", shape=weight.shape, dtype="int32",
            initializer="zeros", trainable=False,
            aggregation="only_first_replica")
        found = layout(ops.convert_to_numpy(weight), self.count)
        if found is not None and found[1] <= self.count and (
                found[2] == self.per_channel or not found[2]):
            self.ids.assign(found[0])

    def _segments(self):
        """Cluster numbers unique across channels, flattened."""
        ids = ops.convert_to_tensor(self.ids)
        if self.per_channel:
            ids = ops.add(ids, ops.multiply(
                ops.arange(self.groups, dtype="int32"), self.count))
        return ops.reshape(ids, (-1,))

    def value(self, weight, mask=None):
        """The weight as its cluster means (times `mask`, the zero mask)."""
        weight = ops.convert_to_tensor(weight)
        flat = ops.reshape(weight, (-1,))
        segments = self._segments()
        total = self.groups * self.count
        sums = ops.segment_sum(flat, segments, num_segments=total)
        sizes = ops.segment_sum(ops.ones_like(flat), segments,
                                num_segments=total)
        means = ops.divide(sums, ops.maximum(sizes, 1.0))
        clustered = ops.reshape(ops.take(means, segments), weight.shape)
        if mask is not None:
            clustered = ops.multiply(clustered, mask)
        return clustered
