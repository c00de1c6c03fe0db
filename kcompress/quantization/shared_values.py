"""Kernels that train as shared values: cluster-preserving QAT in the graph.

A clustered kernel (from `kcompress.clustering.strip_clustering`) holds a
few distinct values, per tensor or per output channel. `layout` numbers
them once, when the QAT layer is built, and a `SharedValues` keeps the
kernel on shared values on every call, as TFMOT's cluster-preserving QAT
does:

- the distinct values become trainable centroids (per channel where the
  kernel was clustered per channel), and the forward pass sees each weight
  as its centroid, so a kernel never holds more values than the clustering
  left;
- each centroid's gradient is the sum of its weights' gradients, and every
  weight keeps its own float value, trained straight through;
- on each training call every weight joins its nearest centroid, so
  weights can change clusters as they train;
- a centroid at zero (pruned weights, with `preserve_sparsity`) stays at
  exactly zero, and pruned weights stay in it (PCQAT).

An earlier version kept the clustering's assignment and replaced each
weight by its cluster's mean. Over three seeds of the digits CNN (16
clusters, 80% sparse) its PCQAT files gzipped 0.3-6% larger than TFMOT's:
keeping the assignment keeps the clustering's spread of weights over the
clusters, while re-assigning lets them gather in fewer (BUILD.md).

Everything is `keras.ops` (an argmin and a gather); on export the converter
folds the gather of the constant centroids.
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


def layout_config(weight):
    """`{"count": n, "per_channel": bool}` of a clustered weight (the
    arguments of `SharedValues`), or None if it is not clustered."""
    found = layout(ops.convert_to_numpy(weight))
    if found is None:
        return None
    return {"count": found[1], "per_channel": found[2]}


def nearest_centroids(weight, table):
    """The number of each weight's nearest centroid.

    Args:
        weight: a tensor whose last axis holds `groups` channels clustered
            apart (or any shape, with one group).
        table: `(groups, count)` centroids.

    Returns:
        int32 numbers in `[0, count)`, of `weight`'s shape.
    """
    groups = table.shape[0]
    columns = ops.reshape(ops.stop_gradient(weight), (-1, groups, 1))
    distance = ops.abs(ops.subtract(columns, ops.stop_gradient(table)))
    nearest = ops.cast(ops.argmin(distance, axis=-1), "int32")
    return ops.reshape(nearest, weight.shape)


def gather_centroids(table, ids):
    """The centroids `ids` (from `nearest_centroids`) name, shaped like
    `ids`; the gradient reaches each centroid as the sum of its weights'."""
    flat = ops.reshape(ops.cast(ids, "int32"), (-1, table.shape[0]))
    values = ops.take_along_axis(ops.transpose(table), flat, axis=0)
    return ops.reshape(values, ids.shape)


# Centroid slots a channel does not use (it held fewer distinct values than
# the layer's count) sit here, never the nearest to any weight.
_UNUSED = 1e9


class SharedValues:
    """Keeps one weight of a QAT layer on shared, trainable values.

    Built by the layer in its `build`, which owns the variables it adds:
    the centroids (trainable), each weight's centroid number, and which
    centroids are pinned at zero.

    Args:
        layer: the layer that owns the weight.
        weight: the weight variable, holding the clustered values.
        count: the most clusters in the tensor (or in one channel).
        per_channel: whether each output channel (last axis) has its own.
    """

    def __init__(self, layer, weight, count, per_channel):
        self.count = int(count)
        self.per_channel = bool(per_channel)
        self.groups = int(weight.shape[-1]) if per_channel else 1
        shape = (self.groups, self.count)
        self.centroids = layer.add_weight(
            name=f"{weight.name}_centroids", shape=shape,
            initializer="zeros", trainable=True)
        self.free = layer.add_weight(  # 0 for a centroid pinned at zero
            name=f"{weight.name}_centroid_free", shape=shape,
            initializer="ones", trainable=False,
            aggregation="only_first_replica")
        self.ids = layer.add_weight(
            name=f"{weight.name}_cluster", shape=weight.shape, dtype="int32",
            initializer="zeros", trainable=False,
            aggregation="only_first_replica")
        self._initialize(ops.convert_to_numpy(weight))

    def _initialize(self, values):
        found = layout(values, self.count)
        if found is None or found[2] != self.per_channel:
            return  # not clustered now: the values come from a file
        ids = found[0]
        columns = values.reshape(-1, self.groups)
        groups = ids.reshape(-1, self.groups)
        centroids = np.full((self.groups, self.count), _UNUSED, "float32")
        for g in range(self.groups):
            centroids[g, groups[:, g]] = columns[:, g]
        self.centroids.assign(centroids)
        self.free.assign((centroids != 0).astype("float32"))
        self.ids.assign(ids)

    def _table(self):
        """The centroids with the pinned ones at exactly zero."""
        return ops.multiply(self.centroids, self.free)

    def value(self, weight, mask=None, training=False):
        """The weight as its centroids (times `mask`, the zero mask); on a
        training call, each weight first joins its nearest centroid."""
        weight = ops.convert_to_tensor(weight)
        table = self._table()
        ids = ops.convert_to_tensor(self.ids)
        if training:  # pruned weights sit at zero, in the zero centroid
            ids = nearest_centroids(
                weight if mask is None else ops.multiply(weight, mask),
                table)
            self.ids.assign(ids)
        clustered = gather_centroids(table, ids)
        if training:  # every weight trains on, straight through
            clustered = ops.add(clustered, ops.subtract(
                weight, ops.stop_gradient(weight)))
        if mask is not None:
            clustered = ops.multiply(clustered, mask)
        return clustered
