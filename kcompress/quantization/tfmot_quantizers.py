"""Quantizer objects with TFMOT's interface, for `QuantizeConfig`s written
the TFMOT way (`get_weights_and_quantizers`, ...; see `QuantizeWrapperV2`).

A quantizer is built once per tensor it quantizes (`build(tensor_shape,
name, layer)` creates its variables on the wrapper and returns them) and
called on every step (`quantizer(inputs, training, weights)`). These follow
TFMOT's semantics and lower, like kcompress's own, to
`keras.quantizers.fake_quant_with_min_max_vars`, which the TFLite converter
folds into int8 kernels:

- `LastValueQuantizer`: the range of the tensor's current values (weights);
- `MovingAverageQuantizer`: an exponential moving average of the batches'
  ranges, kept for inference (activations);
- `AllValuesQuantizer`: the widest range seen.

`per_axis` keeps one range per channel of the last axis; `symmetric` makes
the range `[-m, m]` with `m` the larger magnitude; `narrow_range` leaves
out the lowest level (`[-127, 127]` for 8 bits).
"""

import keras
from keras import ops

__all__ = ["AllValuesQuantizer", "LastValueQuantizer",
           "MovingAverageQuantizer", "Quantizer"]

# TFMOT's moving-average decay, and the range its moving averages start from.
_EMA_DECAY = 0.999
_INITIAL_RANGE = 6.0


@keras.saving.register_keras_serializable(package="kcompress")
class Quantizer:
    """The base of a quantizer (TFMOT's interface): subclass it for a
    quantizer of your own.

    A subclass implements `build(tensor_shape, name, layer)`, returning a
    dict of the variables it made with `layer.add_weight` (or `{}`),
    `__call__(inputs, training, weights, **kwargs)`, returning the
    quantized tensor, and `get_config()`.
    """

    def build(self, tensor_shape, name, layer):
        raise NotImplementedError

    def __call__(self, inputs, training, weights, **kwargs):
        raise NotImplementedError

    def get_config(self):
        raise NotImplementedError

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return type(self) is type(other) and (
            self.get_config() == other.get_config())

    def __hash__(self):
        return hash((type(self).__name__, repr(self.get_config())))


class _RangeQuantizer(Quantizer):
    """A quantizer over a learned range `[min_var, max_var]`."""

    def __init__(self, num_bits, per_axis, symmetric, narrow_range):
        if isinstance(num_bits, bool) or not isinstance(num_bits, int) or (
                not 2 <= num_bits <= 8):
            raise ValueError(
                f"Received: num_bits={num_bits!r}. Expected an int in "
                "[2, 8].")
        self.num_bits = num_bits
        self.per_axis = bool(per_axis)
        self.symmetric = bool(symmetric)
        self.narrow_range = bool(narrow_range)

    def build(self, tensor_shape, name, layer):
        shape = (tensor_shape[-1],) if self.per_axis else ()
        return {
            "min_var": layer.add_weight(
                name=f"{name}_min", shape=shape, trainable=False,
                initializer=keras.initializers.Constant(-_INITIAL_RANGE)),
            "max_var": layer.add_weight(
                name=f"{name}_max", shape=shape, trainable=False,
                initializer=keras.initializers.Constant(_INITIAL_RANGE)),
        }

    def _batch_range(self, inputs):
        axes = tuple(range(len(inputs.shape) - 1)) if self.per_axis else None
        low = ops.minimum(ops.min(inputs, axis=axes), 0.0)
        high = ops.maximum(ops.max(inputs, axis=axes), 0.0)
        if self.symmetric:
            high = ops.maximum(ops.abs(low), high)
            low = ops.negative(high)
        return ops.stop_gradient(low), ops.stop_gradient(high)

    def _quantized(self, inputs, low, high):
        return keras.quantizers.fake_quant_with_min_max_vars(
            inputs, low, high, num_bits=self.num_bits,
            narrow_range=self.narrow_range,
            axis=-1 if self.per_axis else None)

    def get_config(self):
        return {"num_bits": self.num_bits, "per_axis": self.per_axis,
                "symmetric": self.symmetric,
                "narrow_range": self.narrow_range}


@keras.saving.register_keras_serializable(package="kcompress")
class LastValueQuantizer(_RangeQuantizer):
    """Quantizes on the range of the tensor's current values (for weights).

    Args:
        num_bits: bit width, in [2, 8].
        per_axis: one range per channel of the last axis.
        symmetric: a range `[-m, m]`.
        narrow_range: leave out the lowest level.

    Example:

    >>> q = LastValueQuantizer(8, per_axis=False, symmetric=True,
    ...                        narrow_range=True)
    >>> LastValueQuantizer.from_config(q.get_config()) == q
    True
    """

    def __call__(self, inputs, training, weights, **kwargs):
        low, high = self._batch_range(inputs)
        if training:
            weights["min_var"].assign(low)
            weights["max_var"].assign(high)
        return self._quantized(inputs, low, high)


@keras.saving.register_keras_serializable(package="kcompress")
class MovingAverageQuantizer(_RangeQuantizer):
    """Quantizes on a moving average of the batches' ranges (for
    activations); inference uses the averaged range. Args as for
    `LastValueQuantizer`."""

    def __call__(self, inputs, training, weights, **kwargs):
        if not training:
            return self._quantized(inputs, weights["min_var"],
                                   weights["max_var"])
        low, high = self._batch_range(inputs)
        low = ops.add(ops.multiply(weights["min_var"], _EMA_DECAY),
                      ops.multiply(low, 1.0 - _EMA_DECAY))
        high = ops.add(ops.multiply(weights["max_var"], _EMA_DECAY),
                       ops.multiply(high, 1.0 - _EMA_DECAY))
        weights["min_var"].assign(low)
        weights["max_var"].assign(high)
        return self._quantized(inputs, low, high)


@keras.saving.register_keras_serializable(package="kcompress")
class AllValuesQuantizer(_RangeQuantizer):
    """Quantizes on the widest range seen in training. Args as for
    `LastValueQuantizer`; the range starts empty (0, 0) and only widens."""

    def build(self, tensor_shape, name, layer):
        shape = (tensor_shape[-1],) if self.per_axis else ()
        return {key: layer.add_weight(name=f"{name}_{key[:3]}", shape=shape,
                                      trainable=False, initializer="zeros")
                for key in ("min_var", "max_var")}

    def __call__(self, inputs, training, weights, **kwargs):
        if training:
            low, high = self._batch_range(inputs)
            weights["min_var"].assign(ops.minimum(weights["min_var"], low))
            weights["max_var"].assign(ops.maximum(weights["max_var"], high))
        return self._quantized(inputs, weights["min_var"], weights["max_var"])
