"""`PruneLowMagnitude`: the layer wrapper that prunes during `fit`."""

import keras
from keras import ops

from kcompress import _keras_internals
from kcompress import _model_utils
from kcompress._arguments import as_int
from kcompress._substitute import call_with_values
from kcompress.pruning import masks as masks_lib
from kcompress.pruning import prunable_layer
from kcompress.pruning import wrapper_arguments as arguments
from kcompress.pruning.global_masks import check_scope

__all__ = ["PruneLowMagnitude"]

STRUCTURES = (None, "channels", "groups")
CHANNEL_LAYERS = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D,
                  keras.layers.Dense, keras.layers.BatchNormalization)

MISSING_CALLBACK = (
    "A model with PruneLowMagnitude layers was trained without the pruning "
    "step callback, so pruning would silently never happen. Add "
    "`kcompress.pruning.UpdatePruningStep()` to the callbacks of `fit`. In a "
    "custom training loop, call `callback.set_model(model)` and "
    "`callback.on_train_begin()` once before the first step."
)


def _can_assign_in_branch():
    """Whether variable updates may run inside an `ops.cond` branch."""
    if keras.backend.backend() != "tensorflow":
        return False
    # The one question only TensorFlow can answer: are we in a replica of a
    # tf.distribute strategy? (Its mirrored updates must not sit in a cond.)
    import tensorflow as tf

    return not tf.distribute.has_strategy()


@keras.saving.register_keras_serializable(package="kcompress")
class PruneLowMagnitude(keras.layers.Wrapper):
    """Prunes the weights of `layer` by magnitude while it trains.

    The wrapper holds one 0/1 mask per prunable weight and a step counter. In
    the forward pass the layer sees `weight * mask`, so a pruned weight gets
    no gradient. In a training call, when `pruning_schedule(step)` says so,
    the masks are recomputed from the magnitudes of `weight * mask`: as in
    TFMOT, a pruned weight stays pruned (the stored value is not rewritten,
    which keeps the update free of state changes on JAX and in
    `tf.distribute` replicas). The step counter counts training batches;
    the schedule sees the 1-based number of the current batch, as in TFMOT
    (with `begin_step=0, frequency=f` the first update is on batch `f`, and
    a fit of `end_step` batches ends on the final sparsity).
    `strip_pruning` bakes the zeros into a plain layer.

    Most users call `kcompress.pruning.prune_low_magnitude` instead, and must
    pass `UpdatePruningStep()` to `fit`.

    Args:
        layer: the layer to prune: a built-in prunable layer or one that
            implements `PrunableLayer`.
        pruning_schedule: a `PruningSchedule` or any callable
            `step -> (should_update, sparsity)`. Defaults to
            `ConstantSparsity(0.5, begin_step=0)`.
        block_size: `(rows, cols)` of the blocks pruned together, on the
            `(inputs, outputs)` view of each weight. `(1, 1)` prunes single
            weights.
        block_pooling_type: `"AVG"` or `"MAX"`, how a block is scored.
        sparsity_m_by_n: `(m, n)` to prune `m` of every `n` consecutive
            weights along the input-channel axis (e.g. `(2, 4)`) whenever the
            schedule updates, ignoring its sparsity value. `None` for plain
            magnitude pruning.
        structure: `None` to prune single weights (or blocks), or
            `"channels"` to prune whole output channels: the schedule's
            sparsity is then the fraction of channels zeroed. Conv2D,
            DepthwiseConv2D and Dense channels go lowest kernel L2 norm
            first, bias included; BatchNormalization channels lowest
            |gamma| first, gamma and beta zeroed, so the channel outputs
            zero after the normalization (network slimming).
            `kcompress.pruning.shrink` removes them after training.
            `"groups"`: the masks zero whole channel dependency groups (see
            `kcompress.pruning.channel_groups`) and are set by
            `UpdatePruningStep`, which sees every layer of a group;
            `prune_low_magnitude(..., structure="channels")` picks it for a
            graph with merges.
        round_to: with `structure="groups"`, keep a multiple of this many
            channels in each group.
        scope: `"layer"` (TFMOT's way: this layer reaches the schedule's
            sparsity) or `"global"`: the weights of every global wrapper of
            the model are ranked together and `UpdatePruningStep` zeroes
            the schedule's sparsity of them all (`global_masks`).
        max_sparsity: with `scope="global"`, the most of this layer's
            weights that may be zeroed, so no layer is emptied.
        ranking: with `scope="global"`, `"magnitude"` (|w| across layers)
            or `"lamp"` (scale-free LAMP scores, see `global_masks`).
        **kwargs: passed to `keras.layers.Wrapper` (`name`, ...).

    Example:

    >>> import keras
    >>> dense = PruneLowMagnitude(keras.layers.Dense(4))
    >>> tuple(dense(keras.ops.ones((1, 3))).shape)
    (1, 4)
    """

    def __init__(self, layer, pruning_schedule=None, block_size=(1, 1),
                 block_pooling_type="AVG", sparsity_m_by_n=None,
                 structure=None, round_to=1, scope="layer",
                 max_sparsity=0.95, ranking="magnitude", **kwargs):
        if isinstance(layer, PruneLowMagnitude):
            raise ValueError(
                f"Layer '{layer.name}' is already wrapped in "
                "PruneLowMagnitude. Pruning a pruned layer is not supported; "
                "call kcompress.pruning.strip_pruning first to prune again."
            )
        if not isinstance(layer, keras.layers.Layer):
            raise ValueError(
                f"Received: layer={layer!r} of type {type(layer).__name__}. "
                "Expected a keras.layers.Layer."
            )
        batchnorm = isinstance(layer, keras.layers.BatchNormalization)
        if batchnorm and not (structure and layer.scale):
            raise ValueError(
                f"Layer '{layer.name}' (BatchNormalization) can only be pruned"
                " with structure='channels', and needs scale=True: its "
                "channels are pruned by |gamma|."
            )
        attention = structure == "groups" and isinstance(
            layer, keras.layers.MultiHeadAttention)  # pruned by whole heads
        if not (batchnorm or attention) and not prunable_layer.is_prunable(
                layer):
            prunable_layer.prunable_weights(layer)  # Raises a named error.
        kwargs.setdefault("name", f"prune_low_magnitude_{layer.name}")
        super().__init__(layer, **kwargs)
        _model_utils.keep_input_shape(self, layer)
        self.pruning_schedule = arguments.check_schedule(pruning_schedule)
        self.block_size = arguments.check_block(block_size, block_pooling_type)
        self.block_pooling_type = block_pooling_type
        self.sparsity_m_by_n = arguments.check_m_by_n(sparsity_m_by_n)
        if self.sparsity_m_by_n and self.block_size != (1, 1):
            raise ValueError(
                f"Received: sparsity_m_by_n={self.sparsity_m_by_n} and "
                f"block_size={self.block_size}. Expected at most one of them; "
                "M:N groups are already blocks."
            )
        if structure not in STRUCTURES:
            raise ValueError(
                f"Received: structure={structure!r}. Expected one of "
                f"{STRUCTURES}."
            )
        if structure and (self.sparsity_m_by_n or self.block_size != (1, 1)):
            raise ValueError(
                f"Received: structure={structure!r} with block_size="
                f"{self.block_size} and sparsity_m_by_n="
                f"{self.sparsity_m_by_n}. Expected the defaults: channel "
                "pruning already prunes whole channels."
            )
        if structure and type(layer) not in CHANNEL_LAYERS and not attention:
            raise ValueError(
                f"Layer '{layer.name}' of type {type(layer).__name__} cannot "
                "take structure='channels'. Channel pruning supports "
                f"{', '.join(t.__name__ for t in CHANNEL_LAYERS)}."
            )
        self.structure = structure
        if as_int(round_to) is None or as_int(round_to) < 1:
            raise ValueError(
                f"Received: round_to={round_to!r}. Expected an integer >= 1.")
        self.round_to = as_int(round_to)
        self.max_sparsity = check_scope(
            scope, max_sparsity, layer.name, bool(
                structure or self.sparsity_m_by_n
                or self.block_size != (1, 1)), ranking)
        self.scope = scope
        self.ranking = ranking
        # Set by UpdatePruningStep; checked when a training step is traced.
        self.step_callback_attached = False
        self._training_calls = 0

    def build(self, input_shape=None):
        super().build(input_shape)
        if isinstance(self.layer, keras.layers.BatchNormalization):
            # Network slimming: gamma and beta zero, the channel outputs 0.
            self.pruned_weights = [self.layer.gamma] + (
                [self.layer.beta] if self.layer.center else [])
        elif self.structure and isinstance(self.layer,
                                           keras.layers.MultiHeadAttention):
            # Heads: the projections and the output kernel, not its bias.
            self.pruned_weights = [
                w for w in self.layer.weights
                if not w.path.endswith("attention_output/bias")]
        else:
            self.pruned_weights = prunable_layer.prunable_weights(self.layer)
        if self.structure and getattr(self.layer, "use_bias", False) and (
                hasattr(self.layer, "bias")):
            # A pruned channel must output zero, so its bias goes too.
            self.pruned_weights.append(self.layer.bias)
        self._group_axes = [
            prunable_layer.group_axis(self.layer, w)
            for w in self.pruned_weights
        ]
        if self.sparsity_m_by_n:
            for weight, axis in zip(self.pruned_weights, self._group_axes):
                if axis is None:
                    raise ValueError(
                        f"Layer '{self.layer.name}' "
                        f"({type(self.layer).__name__}) cannot take "
                        f"sparsity_m_by_n={self.sparsity_m_by_n}: its weight "
                        f"'{weight.name}' has no input-channel axis to group "
                        "along. Prune it without sparsity_m_by_n."
                    )
        self.masks = [
            self.add_weight(
                name=f"{weight.name}_mask", shape=weight.shape,
                dtype=weight.dtype, initializer="ones", trainable=False,
                aggregation="only_first_replica",
            )
            for weight in self.pruned_weights
        ]
        self.pruning_step = self.add_weight(
            name="pruning_step", shape=(), dtype="int64",
            initializer=keras.initializers.Constant(-1), trainable=False,
            aggregation="only_first_replica",
        )
        # [epoch in progress, pruning step at its start], or [-1, -1]
        # between epochs: a sub-epoch backup records where the epoch that
        # Keras will replay began (see UpdatePruningStep.on_epoch_begin).
        self.epoch_marks = self.add_weight(
            name="epoch_marks", shape=(2,), dtype="int64",
            initializer=keras.initializers.Constant(-1), trainable=False,
            aggregation="only_first_replica",
        )
        self.built = True

    def load_own_variables(self, store):
        own = _keras_internals.own_variables(self)
        if len(store.keys()) == len(own) - 1 and own[-1] is self.epoch_marks:
            # Saved before `epoch_marks` existed: load the rest, keep -1s.
            for i, variable in enumerate(own[:-1]):
                variable.assign(store[str(i)])
            return
        super().load_own_variables(store)

    def compute_mask_for(self, weight, sparsity, axis):
        """The mask this wrapper's settings give `weight` at `sparsity`."""
        if self.sparsity_m_by_n:
            return masks_lib.m_by_n_mask(weight, self.sparsity_m_by_n, axis)
        return masks_lib.block_mask(weight, sparsity, self.block_size,
                                    self.block_pooling_type)

    def compute_masks(self, sparsity):
        """The masks of every pruned weight at `sparsity`, from the weights'
        current values times their current masks (what the next mask update
        would assign).

        Ranking the masked values, as TFMOT does (it writes `weight * mask`
        back into the weight every step), means a pruned weight scores zero:
        it does not come back later with the stale value it had when it was
        pruned, displacing a weight that trained in its place.
        """
        if self.structure == "groups" or self.scope == "global":
            raise ValueError(
                f"Layer '{self.name}' prunes by channel group or with "
                "scope='global': its masks are set by UpdatePruningStep for "
                "the whole model, not by the layer alone.")
        scored = [ops.multiply(ops.convert_to_tensor(w), m)
                  for w, m in zip(self.pruned_weights, self.masks)]
        if isinstance(self.layer, keras.layers.BatchNormalization):
            _, keep = masks_lib.channel_mask(ops.expand_dims(scored[0], 0),
                                             sparsity)
            return [keep] * len(self.pruned_weights)
        if self.structure:
            depthwise = isinstance(self.layer, keras.layers.DepthwiseConv2D)
            kernel_mask, channels = masks_lib.channel_mask(
                scored[0], sparsity, depthwise=depthwise)
            return [kernel_mask, channels][:len(self.pruned_weights)]
        return [self.compute_mask_for(w, sparsity, axis)
                for w, axis in zip(scored, self._group_axes)]

    def _update_masks(self):
        """Advances the step and updates the masks when the schedule says.

        Returns:
            The mask values to train with, or None to read the variables.
        """
        # As in TFMOT, the schedule sees the 1-based number of this batch:
        # `pruning_step` counts the batches already trained. So a fit of
        # `end_step` batches ends on the final sparsity, and a run matches
        # TFMOT's mask updates batch for batch (benchmarks/pruning_parity.py).
        step = ops.add(
            ops.maximum(ops.convert_to_tensor(self.pruning_step), 0), 1)
        if self.structure == "groups" or self.scope == "global":
            # UpdatePruningStep sets the masks, seeing every layer.
            self.pruning_step.assign(step)
            return None
        should_update, sparsity = self.pruning_schedule(step)

        def new_masks():
            return self.compute_masks(sparsity)

        if _can_assign_in_branch():
            # TensorFlow (and XLA) run variable updates inside the taken
            # branch, so ordinary steps write nothing, which trains faster
            # than assigning after the cond (benchmarks/training_overhead.py).
            def update():
                for mask, value in zip(self.masks, new_masks()):
                    mask.assign(value)
                return ops.convert_to_tensor(True)

            ops.cond(should_update, update,
                     lambda: ops.convert_to_tensor(False))
            self.pruning_step.assign(step)
            return None
        # Stateless backends (JAX) cannot update state inside a branch, nor
        # can tf.distribute replicas (a mirrored update is a synchronization
        # point, not allowed inside a cond). The values, not the variables,
        # go into the forward pass: PyTorch's assign writes in place, which
        # would corrupt the backward pass of an earlier call of a shared
        # layer; hence also the copies.
        values = ops.cond(should_update, new_masks,
                          lambda: [ops.copy(m) for m in self.masks])
        for mask, value in zip(self.masks, values):
            mask.assign(value)
        self.pruning_step.assign(step)
        return values

    def masked_weights(self, masks=None):
        """`[(variable, variable * mask)]` for each pruned weight.

        Args:
            masks: mask values to use instead of the mask variables.
        """
        masks = self.masks if masks is None else masks
        return [(w, ops.multiply(w, m))
                for w, m in zip(self.pruned_weights, masks)]

    def _first_call_of_step(self):
        """Whether this training call is the first of its batch.

        A layer shared by several nodes of a graph (one layer, called twice)
        runs once per node in every forward pass, in the same order; only the
        first call advances the step, so its schedule runs at the pace of
        the batches, as an unshared layer's does.
        """
        sites = max(len(_keras_internals.inbound_nodes(self)), 1)
        first = self._training_calls % sites == 0
        self._training_calls += 1
        return first

    def call(self, inputs=None, *args, training=None, **kwargs):
        # `inputs` is None when the layer is called by keywords only
        # (`attention(query=x, value=x)` inside a flattened composite).
        args = args if inputs is None else (inputs,) + args
        masks = None
        if training:
            if not self.step_callback_attached:
                raise ValueError(MISSING_CALLBACK)
            if self._first_call_of_step():
                masks = self._update_masks()
        return call_with_values(self, self.layer, self.masked_weights(masks),
                                *args, training=training, **kwargs)

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def compute_output_spec(self, *args, **kwargs):
        return _model_utils.inner_output_spec(self.layer, *args, **kwargs)

    def get_config(self):
        config = {
            "pruning_schedule": keras.saving.serialize_keras_object(
                self.pruning_schedule),
            "block_size": self.block_size,
            "block_pooling_type": self.block_pooling_type,
            "sparsity_m_by_n": self.sparsity_m_by_n,
            "structure": self.structure,
            "round_to": self.round_to,
            "scope": self.scope,
            "max_sparsity": self.max_sparsity,
            "ranking": self.ranking,
        }
        return {**super().get_config(), **config}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = _model_utils.deserialized(config, ["pruning_schedule"],
                                           custom_objects)
        for key in ("block_size", "sparsity_m_by_n"):
            if config.get(key) is not None:
                config[key] = tuple(config[key])
        return super().from_config(config, custom_objects=custom_objects)
