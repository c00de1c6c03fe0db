"""`ActivationRange`: the learned output range of a QAT layer, and the fake
quantization that uses it.

A mixin for the layers of `quantize_wrapper.py` and `fold_batchnorm.py`.
The range is learned as an exponential moving average during `fit`; the
first training batch (or `calibrate`) sets it outright, and until then
activations pass through in float.

A range set by `calibrate` comes from inference-mode passes, where
BatchNorm uses its moving statistics; `fit` runs in training mode, where
it uses the batch's. When the moving statistics are far from the batch's
(a model trained briefly, or fine-tuned on new data), a calibrated range
can be many times narrower than the training activations: clipping them
all cuts the gradient off everywhere but a few values, and training
diverges (EfficientNetB0's QAT fit gave NaN on its second step). So the
first training batch after a calibration widens the range to cover what
it sees; the moving average takes over from the second.
"""

import keras
from keras import ops

from kcompress.quantization import quantizers
from kcompress.quantization.export_trace import ExportMode

__all__ = ["ActivationRange", "next_state"]

EMA_DECAY = 0.999

# range_state[2]: the range is learned (LIVE), held (FROZEN), or set by
# `calibrate` and waiting for its first training batch (CALIBRATED).
LIVE, FROZEN, CALIBRATED = 0.0, 1.0, 2.0


class ActivationRange:
    """Mixin: a learned output range and the fake quantization that uses it.

    The range lives in one variable, `range_state = [min, max, mode]`, so a
    training step reads and writes it once. `min > max` means "not set
    yet"; `mode` is `LIVE`, `FROZEN` or `CALIBRATED` (see the module
    docstring).
    The host layer calls `build_range()` in `build` and
    `quantize_output(y, training)` in `call`. Python flags set by
    `kcompress.quantization` functions:

    - `calibrating`: the call widens the range to cover the data (eager);
    - `export_mode`: the call always fake-quantizes, with no float
      pass-through, so the traced graph is what the TFLite converter expects.
    """

    _kcompress_quantized = True  # _model_utils.QUANTIZED_MARKER
    export_mode = ExportMode()

    def build_range(self):
        self.range_state = self.add_weight(
            name="range_state", shape=(3,),
            initializer=keras.initializers.Constant([1.0, -1.0, 0.0]),
            # Under tf.distribute, each replica sees its own slice of the
            # batch; the range is the mean of the replicas' ranges.
            trainable=False, aggregation="mean")
        self.calibrating = False
        self.export_mode = False

    @property
    def output_min(self):
        return self.range_state[0]

    @property
    def output_max(self):
        return self.range_state[1]

    @property
    def range_initialized(self):
        """1.0 once a range has been set, else 0.0."""
        return ops.cast(ops.less_equal(self.range_state[0],
                                       self.range_state[1]), "float32")

    @property
    def ranges_frozen(self):
        """1.0 once `freeze_range` has run, else 0.0."""
        return ops.cast(ops.equal(self.range_state[2], FROZEN), "float32")

    def output_bounds(self):
        """`(min, max)` of the range the output is rounded to (min > max
        while unset), or None if the output is not rounded. Layers that
        read this output use its grid (`input_grid`)."""
        state = ops.convert_to_tensor(self.range_state)
        return state[0], state[1]

    def output_scale(self):
        """The scale of the output's int8 grid: a scalar tensor, 0 while
        the range is unset; None if the output is not rounded."""
        return quantizers.grid_scale(self.output_bounds(), self.num_bits)

    def freeze_range(self):
        """Stops range updates (used by `FreezeQuantizationRanges`)."""
        state = ops.convert_to_numpy(self.range_state)
        self.range_state.assign([state[0], state[1], FROZEN])

    def _fake_quant(self, y, low, high):
        return quantizers.fake_quant_activation(y, low, high, self.num_bits)

    def quantize_output(self, y, training=None):
        if training and not self.calibrating:
            return self._train_step(y)
        state = ops.convert_to_tensor(self.range_state)
        low, high, mode = state[0], state[1], state[2]
        if self.calibrating:
            batch_low = ops.minimum(ops.min(y), 0.0)
            batch_high = ops.maximum(ops.max(y), 0.0)
            if float(ops.convert_to_numpy(low)) <= float(
                    ops.convert_to_numpy(high)):
                batch_low = ops.minimum(batch_low, low)
                batch_high = ops.maximum(batch_high, high)
            frozen = float(ops.convert_to_numpy(mode)) == FROZEN
            self.range_state.assign(ops.stack([
                batch_low, batch_high,
                ops.convert_to_tensor(FROZEN if frozen else CALIBRATED)]))
            return self._fake_quant(y, batch_low, batch_high)
        quantized = self._fake_quant(y, low, high)
        if self.export_mode:
            return quantized
        return ops.where(ops.less_equal(low, high), quantized, y)

    def _train_step(self, y):
        """Moves the range by the batch `y` (`next_state`) and
        fake-quantizes `y` on it, as a training step does."""
        state = ops.convert_to_tensor(self.range_state)
        if hasattr(state, "assign"):  # TensorFlow: one read, not four
            state = ops.copy(state)
        state = next_state(state, y)
        self.range_state.assign(state)
        low, high, _ = ops.unstack(state)
        return quantizers.fake_quant_in_training(y, low, high, self.num_bits)


def next_state(state, y, decay=EMA_DECAY):
    """The range state `[min, max, mode]` after the training batch `y`.

    The first batch sets an unset range (`min > max`) outright, so QAT
    starts calibrated, not at an arbitrary default; the first batch after
    `calibrate` (`CALIBRATED`) widens the range to cover the batch; later
    batches move it by an exponential moving average with `decay`. A
    `FROZEN` range is held. The range always includes 0, as TFLite
    requires, and the mode becomes `LIVE` unless frozen.

    Every quantized layer runs this in every training step, and TensorFlow
    without XLA runs each small op on its own, so it works on the pair
    `[min, -max]`, whose two ends both move by `minimum` and by the same
    average: half the ops of doing each end by itself.

    Args:
        state: the `range_state` tensor.
        y: the batch of activations.
        decay: EMA decay.

    Returns:
        The new state, shape `(3,)`; no gradient flows through it.
    """
    signs = ops.convert_to_tensor([1.0, -1.0])
    current = ops.multiply(state[:2], signs)  # [min, -max]
    mode = state[2]
    # A statistic, not a gradient path.
    values = ops.stop_gradient(ops.convert_to_tensor(y))
    batch = ops.minimum(ops.stack([ops.min(values),
                                   ops.negative(ops.max(values))]), 0.0)
    moved = ops.where(ops.equal(mode, CALIBRATED),
                      ops.minimum(current, batch),
                      current * decay + batch * (1.0 - decay))
    frozen = ops.equal(mode, FROZEN)
    moved = ops.where(frozen, current,
                      ops.where(ops.greater(state[0], state[1]), batch,
                                moved))
    return ops.concatenate([moved * signs, ops.reshape(
        ops.where(frozen, FROZEN, LIVE), (1,))])
