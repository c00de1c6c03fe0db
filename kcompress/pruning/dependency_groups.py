"""Channel dependency groups of a functional graph.

Removing an output channel of a convolution is only exact if everything that
reads the channel loses it too, and everything the channel is tied to loses
the same channel: both inputs of a residual `Add` and its output, a
depthwise conv after its producer, the BatchNorm after it, the
squeeze-excite gate multiplied into it. `channel_groups` finds those ties in
the functional graph.

Every channel of every tensor is an atom; a layer that keeps channel `k` as
channel `k` (BatchNorm, activations, pooling, padding, dropout, a depthwise
conv with multiplier 1, elementwise merges and `keras.ops` nodes) ties its
input atoms to its output atoms; `Concatenate` ties each input to its slice
of the output; `Flatten` ties channel `k` to every position's copy of it.
The connected atoms form a *class*: channels removed together. Classes with
the same producing layers (the Conv/Dense layers whose output columns they
are) form a *group*, which channel pruning thins by one fraction.

A group is unprunable, with a reason, when one of its tensors is a model
output or input, or reaches a layer the grouping does not understand (a
LayerNormalization or softmax over channels, attention, a reshape that moves
channels). That is reported (`ChannelGroup.reason`), never raised.
"""

import dataclasses

import keras
import numpy as np

from kcompress import _keras_internals
from kcompress.pruning.pruning_wrapper import PruneLowMagnitude

__all__ = ["ChannelGroup", "ChannelGraph", "channel_groups"]

L = keras.layers
_PRODUCERS = (L.Conv1D, L.Conv2D, L.Dense)
_DEPTHWISE = (L.DepthwiseConv1D, L.DepthwiseConv2D)
_FOLLOW = (
    L.Activation, L.ReLU, L.LeakyReLU, L.ELU, L.Dropout, L.SpatialDropout1D,
    L.SpatialDropout2D, L.GaussianNoise, L.GaussianDropout, L.Identity,
    L.MaxPooling1D, L.MaxPooling2D, L.AveragePooling1D, L.AveragePooling2D,
    L.GlobalAveragePooling1D, L.GlobalAveragePooling2D,
    L.GlobalMaxPooling1D, L.GlobalMaxPooling2D, L.ZeroPadding1D,
    L.ZeroPadding2D, L.Cropping1D, L.Cropping2D, L.UpSampling1D,
    L.UpSampling2D)
_MERGES = (L.Add, L.Subtract, L.Multiply, L.Average, L.Maximum, L.Minimum)
# keras.ops nodes that act on each channel alone (by class name).
_ELEMENTWISE_OPS = {
    "Add", "Subtract", "Multiply", "Divide", "TrueDivide", "Maximum",
    "Minimum", "Relu", "Relu6", "Sigmoid", "HardSigmoid", "Silu", "HardSilu",
    "Gelu", "Tanh", "Negative", "Abs", "Clip", "Elu", "LeakyRelu",
    "Softplus", "Square", "Sqrt", "Exp"}
_MIXING_ACTIVATIONS = ("softmax", "log_softmax")


@dataclasses.dataclass
class ChannelGroup:
    """Channels that are pruned together.

    Attributes:
        name: the group's producing layers, joined by "+".
        classes: global class ids (see `ChannelGraph.members`); each class
            is one channel of the group, present in every member.
        reason: why the group cannot be pruned, or None.
    """

    name: str
    classes: list
    reason: str = None

    @property
    def prunable(self):
        return self.reason is None


class _Heads:
    """Stands for the heads of a MultiHeadAttention: a channel space of its
    own, one atom per head."""

    def __init__(self, layer):
        self.shape = (layer.num_heads,)


class _Atoms:
    """Union-find over the channels of the graph's tensors."""

    def __init__(self):
        self.parent = []
        self.spaces = {}  # id(tensor) -> (offset, channels)
        self.blocked = {}  # id(tensor) -> reason

    def space(self, tensor):
        key = id(tensor)
        if key not in self.spaces:
            if tensor.shape and tensor.shape[-1] is None:
                history = _keras_internals.keras_history(tensor)
                where = (f"the output of '{history.operation.name}'"
                         if history else f"tensor '{tensor.name}'")
                raise ValueError(
                    f"Received: a model in which {where} has shape "
                    f"{tuple(tensor.shape)}, with no fixed channel count. "
                    "Expected a known last dimension on every tensor that "
                    "channel grouping follows; give the model's inputs "
                    "fixed shapes (for token inputs, a fixed sequence "
                    "length).")
            channels = int(tensor.shape[-1]) if tensor.shape else 1
            self.spaces[key] = (len(self.parent), channels)
            self.parent.extend(range(len(self.parent),
                                     len(self.parent) + channels))
        return self.spaces[key]

    def find(self, atom):
        while self.parent[atom] != atom:
            self.parent[atom] = self.parent[self.parent[atom]]
            atom = self.parent[atom]
        return atom

    def union(self, a, b):
        a, b = self.find(a), self.find(b)
        if a != b:
            self.parent[max(a, b)] = min(a, b)

    def tie(self, source, target, offset=0, repeat=1):
        """Ties channel k of `source` to channel `offset + p * C + k` of
        `target` for each of `repeat` positions p (C: source channels)."""
        (s, channels), (t, _) = self.space(source), self.space(target)
        for p in range(repeat):
            for k in range(channels):
                self.union(s + k, t + offset + p * channels + k)

    def block(self, tensor, reason):
        self.space(tensor)
        self.blocked.setdefault(id(tensor), reason)


class ChannelGraph:
    """The channel ties of a functional model (see the module docstring).

    A `PruneLowMagnitude` node counts as the layer it wraps.

    Attributes:
        model: the analysed model.
        layers: `{name: layer}` of the members (the wrapped layers).
        members: `{(layer name, role): class id per channel}`; role is "out"
            (output columns of a Conv/Dense kernel and its bias), "in" (input
            rows of a Conv/Dense kernel), "bn" (BatchNorm parameters), "dw"
            (depthwise kernel channels and bias) or "heads" (the heads of a
            MultiHeadAttention: their query, key and value projections and
            their rows of the output projection).
        groups: the `ChannelGroup`s, prunable or not.
        space_classes: `{id(tensor): class id per channel}`.
    """

    def __init__(self, model):
        self.model = model
        self._atoms = _Atoms()
        self._members = []  # (layer, role, tensor)
        self._heads = []  # keeps each _Heads (keyed by id) alive
        for node in _nodes(model):
            self._visit(node)
        for tensor in model.inputs:
            self._atoms.block(tensor, "it starts at a model input")
        for tensor in model.outputs:
            self._atoms.block(tensor, "it reaches a model output")
        self._classes()

    # -- the graph walk -----------------------------------------------------

    def _visit(self, node):
        op = node.operation
        calls = len(_keras_internals.inbound_nodes_if_any(op))
        if isinstance(op, PruneLowMagnitude):
            op = op.layer
        ins, outs = list(node.input_tensors), list(node.output_tensors)
        atoms = self._atoms
        for tensor in ins + outs:
            atoms.space(tensor)
        name = getattr(op, "name", type(op).__name__)
        if isinstance(op, L.InputLayer):
            return
        if isinstance(op, keras.Model):
            self._block_all(ins + outs, f"nested model '{name}'")
        elif isinstance(op, L.MultiHeadAttention):
            self._attention(op, ins, outs, calls)
        elif isinstance(op, _DEPTHWISE) and len(ins) == 1:
            if op.depth_multiplier == 1:
                atoms.tie(ins[0], outs[0])
                self._members.append((op, "dw", outs[0]))
            else:
                self._block_all(ins + outs, f"'{name}' has depth_multiplier "
                                f"{op.depth_multiplier}")
        elif (isinstance(op, _PRODUCERS) and len(ins) == 1
              and getattr(op, "groups", 1) == 1
              and getattr(op, "data_format", "channels_last")
              == "channels_last"):
            self._members.append((op, "in", ins[0]))
            self._members.append((op, "out", outs[0]))
        elif isinstance(op, L.BatchNormalization) and len(ins) == 1 and (
                op.axis in (-1, len(ins[0].shape) - 1)):
            atoms.tie(ins[0], outs[0])
            self._members.append((op, "bn", outs[0]))
        elif isinstance(op, L.Activation) and getattr(
                op.activation, "__name__", "") in _MIXING_ACTIVATIONS:
            self._block_all(ins + outs, f"'{name}' applies a softmax over "
                            "the channels")
        elif isinstance(op, _FOLLOW) and len(ins) == 1:
            atoms.tie(ins[0], outs[0])
        elif isinstance(op, _MERGES) or (
                not isinstance(op, L.Layer)
                and type(op).__name__ in _ELEMENTWISE_OPS):
            self._merge(name, ins, outs[0])
        elif isinstance(op, L.Concatenate):
            self._concatenate(op, ins, outs[0])
        elif isinstance(op, L.Reshape) and len(ins) == 1 and (
                ins[0].shape[-1] == outs[0].shape[-1]):
            atoms.tie(ins[0], outs[0])
        elif isinstance(op, L.Flatten) and len(ins) == 1 and all(
                d is not None for d in ins[0].shape[1:]):
            positions = int(np.prod(ins[0].shape[1:-1]))
            atoms.tie(ins[0], outs[0], repeat=positions)
        else:
            self._block_all(ins + outs, f"layer '{name}' "
                            f"({type(op).__name__}) is not understood by the "
                            "channel grouping")

    def _attention(self, op, ins, outs, calls):
        self._block_all(ins + outs, f"attention '{op.name}' keeps its input "
                        "and output widths (its heads are pruned instead)")
        config = op.get_config()
        if (config.get("use_gate") or config.get("output_shape") is not None
                or calls != 1):
            return
        heads = _Heads(op)
        self._heads.append(heads)
        self._atoms.space(heads)
        self._members.append((op, "heads", heads))

    def _block_all(self, tensors, reason):
        for tensor in tensors:
            self._atoms.block(tensor, reason)

    def _merge(self, name, ins, out):
        channels = out.shape[-1]
        for tensor in ins:
            if tensor.shape[-1] == channels:
                self._atoms.tie(tensor, out)
            elif tensor.shape[-1] == 1:
                self._atoms.block(tensor, f"'{name}' broadcasts it over the "
                                  "channels")
            else:
                self._block_all(ins + [out], f"'{name}' joins tensors of "
                                "different channel counts")

    def _concatenate(self, op, ins, out):
        axis = op.axis % len(out.shape)
        if axis != len(out.shape) - 1:
            for tensor in ins:
                self._atoms.tie(tensor, out)
            return
        offset = 0
        for tensor in ins:
            self._atoms.tie(tensor, out, offset=offset)
            offset += tensor.shape[-1]

    # -- classes and groups -------------------------------------------------

    def _classes(self):
        atoms = self._atoms
        roots = [atoms.find(a) for a in range(len(atoms.parent))]
        ids = {}
        atom_class = np.array([ids.setdefault(r, len(ids)) for r in roots],
                              int)
        self.space_classes = {
            key: atom_class[offset:offset + channels]
            for key, (offset, channels) in atoms.spaces.items()}
        blocked = {}
        for key, reason in atoms.blocked.items():
            for c in self.space_classes[key]:
                blocked.setdefault(int(c), reason)
        self.members, self.layers = {}, {}
        producers = {}
        for layer, role, tensor in self._members:
            # "in" members hold their input tensor, the others their output.
            classes = self.space_classes[id(tensor)]
            self.members[(layer.name, role)] = classes
            self.layers[layer.name] = layer
            if role in ("out", "heads"):
                for c in classes:
                    producers.setdefault(int(c), set()).add(layer.name)
        by_key = {}
        for c in range(len(ids)):
            key = tuple(sorted(producers.get(c, ())))
            by_key.setdefault(key, []).append(c)
        self.groups = []
        for key, classes in by_key.items():
            reasons = [blocked[c] for c in classes if c in blocked]
            if not key:
                reasons.insert(0, "no Conv or Dense layer produces it")
            self.groups.append(ChannelGroup(
                "+".join(key) or "(unproduced)", classes,
                reasons[0] if reasons else None))

    # -- scores -------------------------------------------------------------

    def importance(self, value=None):
        """`{class id: score}`: the sum of |gamma| of the class's BatchNorm
        channels where it has any, else of its output columns' L2 norms.

        Args:
            value: `(layer, variable) -> array`, the values to score (the
                variable's own by default; masked ones during pruning).
        """
        value = value or (lambda layer, v: keras.ops.convert_to_numpy(v))
        norms, gammas = {}, {}
        for (name, role), classes in self.members.items():
            layer = self.layers[name]
            if role == "out":
                kernel = value(layer, layer.kernel)
                scores = np.linalg.norm(kernel.reshape(-1, kernel.shape[-1]),
                                        axis=0)
                target = norms
            elif role == "heads":  # each head's rows of the output kernel
                kernel = value(layer, layer.output_dense.kernel)
                scores = np.linalg.norm(kernel.reshape(len(classes), -1),
                                        axis=1)
                target = norms
            elif role == "bn" and layer.scale:
                scores = np.abs(value(layer, layer.gamma))
                target = gammas
            else:
                continue
            for c, score in zip(classes, scores):
                target[int(c)] = target.get(int(c), 0.0) + float(score)
        return {c: gammas.get(c, norms.get(c, 0.0))
                for c in set(norms) | set(gammas)}


def _nodes(model):
    if isinstance(model, keras.Sequential):
        model = _keras_internals.sequential_functional(model)
    by_depth = _keras_internals.nodes_by_depth(model)
    if by_depth is None:
        raise ValueError(
            f"Received: model '{model.name}' ({type(model).__name__}), which "
            "has no functional graph. Channel groups are found in functional "
            "and Sequential models; rebuild a subclassed model as a "
            "functional one first."
        )
    depths = sorted(by_depth, reverse=True)
    return [node for depth in depths for node in by_depth[depth]]


def channel_groups(model):
    """The `ChannelGraph` of `model`: its groups, classes and members."""
    if isinstance(model, keras.Sequential) and not model.built:
        raise ValueError(
            f"Received: an unbuilt Sequential model '{model.name}'. Expected "
            "a built model: give it an Input first.")
    return ChannelGraph(model)
