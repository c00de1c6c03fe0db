"""The masks of channel-group pruning during `fit`.

A `PruneLowMagnitude` wrapper with `structure="groups"` cannot choose its
channels alone: a residual `Add` ties them to other layers'. `GroupMasker`
sees the whole graph (`channel_groups`), and `UpdatePruningStep` asks it,
before each batch, whether a group's schedule updates; if so it ranks the
group's channels by their masked values (a pruned channel scores zero, so it
stays pruned) and assigns every member's mask: output columns, BatchNorm and
depthwise channels, and the reading layers' input rows. Host-side work, on
update steps only.
"""

import keras
import numpy as np

from kcompress.pruning import group_pruning
from kcompress.pruning.dependency_groups import channel_groups

__all__ = ["GroupMasker"]


class GroupMasker:
    """Assigns the masks of the `structure="groups"` wrappers of `model`.

    A group is pruned only when every layer whose weights it touches (the
    Conv/Dense layers that produce or read it) is wrapped; the others stay
    whole (`skipped` says why). Each group follows the schedule and
    `round_to` of its first producer's wrapper.
    """

    def __init__(self, model, wrappers):
        self.wrappers = {w.layer.name: w for w in wrappers
                         if w.structure == "groups"}
        self.groups, self.skipped = [], {}
        if not self.wrappers:
            return
        self.graph = channel_groups(model)
        for group in self.graph.groups:
            names = {name for (name, role), classes in
                     self.graph.members.items()
                     if role in ("in", "out", "heads")
                     and np.isin(classes, group.classes).any()}
            missing = sorted(names - set(self.wrappers))
            if not group.prunable:
                self.skipped[group.name] = group.reason
            elif missing:
                self.skipped[group.name] = (
                    f"layers {missing} are not wrapped for pruning")
            else:
                self.groups.append(group)

    def __bool__(self):
        return bool(self.wrappers)

    def _wrapper(self, group):
        return self.wrappers[group.name.split("+")[0]]

    def _masked(self, layer, variable):
        wrapper = self.wrappers.get(layer.name)
        value = keras.ops.convert_to_numpy(variable)
        if wrapper is not None:
            for weight, mask in zip(wrapper.pruned_weights, wrapper.masks):
                if weight is variable:
                    value = value * keras.ops.convert_to_numpy(mask)
        return value

    def due(self, step):
        """`[(group, sparsity)]` of the groups whose schedule updates at the
        1-based batch `step`."""
        updates, answers = [], {}
        for group in self.groups:
            schedule = self._wrapper(group).pruning_schedule
            # Every wrapper holds its own copy of the schedule, usually the
            # same one: ask each distinct schedule once per batch.
            key = repr(schedule.get_config()) if hasattr(
                schedule, "get_config") else id(schedule)
            if key not in answers:
                should, sparsity = schedule(step)
                answers[key] = (bool(keras.ops.convert_to_numpy(should)),
                                float(keras.ops.convert_to_numpy(sparsity)))
            should, sparsity = answers[key]
            if should:
                updates.append((group, sparsity))
        return updates

    def _removed_now(self):
        """The classes whose output columns are masked to zero now."""
        removed = set()
        for (name, role), classes in self.graph.members.items():
            if role not in ("out", "heads") or name not in self.wrappers:
                continue
            wrapper = self.wrappers[name]
            if role == "heads":  # the output kernel's rows of each head
                mask = keras.ops.convert_to_numpy(next(
                    m for w, m in zip(wrapper.pruned_weights, wrapper.masks)
                    if w.path.endswith("attention_output/kernel")))
                mask = mask.reshape(len(classes), -1).T
            else:
                mask = keras.ops.convert_to_numpy(wrapper.masks[0])
            dead = ~np.any(mask.reshape(-1, mask.shape[-1]) != 0, axis=0)
            removed.update(int(c) for c in np.asarray(classes)[dead])
        return removed

    def update(self, updates):
        """Re-ranks the groups of `updates` (from `due`) and assigns every
        wrapper's masks."""
        scores = self.graph.importance(self._masked)
        removed = self._removed_now()
        for group, sparsity in updates:
            removed.difference_update(group.classes)
            removed.update(group_pruning.lowest(
                group, scores, sparsity, self._wrapper(group).round_to))
        for name, wrapper in self.wrappers.items():
            layer = wrapper.layer
            keeps = group_pruning.slices(self.graph, name, removed)
            ones = [np.ones(w.shape, "float32") for w in layer.weights]
            values = dict(zip((id(w) for w in layer.weights),
                              group_pruning.zeroed(layer, ones, keeps)))
            for weight, mask in zip(wrapper.pruned_weights, wrapper.masks):
                mask.assign(values[id(weight)].astype(mask.dtype))
