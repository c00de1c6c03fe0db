"""Callbacks that freeze parts of QAT late in training."""

import keras
from keras import ops

from kcompress.quantization.activation_range import ActivationRange
from kcompress.quantization.fold_batchnorm import QuantizeConvBatchNorm
from kcompress.quantization.quantize import quantized_layers

__all__ = ["FreezeQuantizationRanges", "FreezeBatchNormStatistics"]


class _FreezeAfterStep(keras.callbacks.Callback):
    """Freezes something on some QAT layers once `after_step` is reached.

    Steps are counted from the optimizer's iteration count, read once when
    training begins, then in Python, so batches cost nothing extra. The flag
    is a model weight, so a resumed `fit` stays frozen.
    """

    def freeze(self, layer):
        raise NotImplementedError

    def __init__(self, after_step):
        super().__init__()
        if isinstance(after_step, bool) or not isinstance(after_step, int) or (
                after_step < 0):
            raise ValueError(
                f"Received: after_step={after_step!r}. Expected an integer "
                ">= 0 (a training step)."
            )
        self.after_step = after_step

    def targets(self, model):
        raise NotImplementedError

    def on_train_begin(self, logs=None):
        self._layers = self.targets(self.model)
        if not self._layers:
            raise ValueError(
                f"{type(self).__name__} was given model '{self.model.name}', "
                "which has no layers it applies to. Pass the model returned "
                "by kcompress.quantization.quantize_model."
            )
        self._step = int(ops.convert_to_numpy(self.model.optimizer.iterations))
        self._done = False

    def on_train_batch_begin(self, batch, logs=None):
        if not self._done and self._step >= self.after_step:
            _ = self.model  # On JAX this syncs the variables; the next
            # step then reads the frozen state back from them.
            for layer in self._layers:
                self.freeze(layer)
            self._done = True
        self._step += 1

    def get_config(self):
        return {"after_step": self.after_step}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="kcompress")
class FreezeQuantizationRanges(_FreezeAfterStep):
    """Stops updating activation ranges from training step `after_step` on.

    Args:
        after_step: the first training step run with frozen ranges.
    """

    def freeze(self, layer):
        layer.freeze_range()

    def targets(self, model):
        return [layer for layer in quantized_layers(model)
                if isinstance(layer, ActivationRange)
                and hasattr(layer, "range_state")]


@keras.saving.register_keras_serializable(package="kcompress")
class FreezeBatchNormStatistics(_FreezeAfterStep):
    """Folds BatchNorm with its moving statistics from step `after_step` on.

    Applies to the Conv+BatchNorm pairs that QAT folds: they stop updating
    the moving mean and variance and train with them, as the device runs.

    Args:
        after_step: the first training step run with frozen statistics.
    """

    def freeze(self, layer):
        layer.batchnorm_frozen.assign(1.0)

    def targets(self, model):
        return [layer for layer in quantized_layers(model)
                if isinstance(layer, QuantizeConvBatchNorm)]
