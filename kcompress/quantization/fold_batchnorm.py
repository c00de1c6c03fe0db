"""`QuantizeConvBatchNorm`: Conv/DepthwiseConv + BatchNorm folded during QAT.

TFLite folds BatchNorm into the convolution before quantizing:
`kernel' = kernel * gamma / sqrt(var + eps)` and
`bias' = beta + (bias - mean) * gamma / sqrt(var + eps)`, and it quantizes
`kernel'` per channel. Training the unfolded pair would fake-quantize a kernel
the device never runs. This layer trains the folded arithmetic instead
(Jacob et al., 2018):

- in training, a float convolution gives the batch statistics, which update
  the moving statistics and fold the kernel; the folded kernel is then
  fake-quantized and the convolution runs again;
- in inference, and in training after `FreezeBatchNormStatistics`, the moving
  statistics fold the kernel and are no longer updated.
"""

import keras
from keras import ops

from kcompress import _model_utils
from kcompress._substitute import call_with_values
from kcompress.quantization import emulated
from kcompress.quantization import input_grid
from kcompress.quantization import int8_kernels
from kcompress.quantization import quantizers
from kcompress.quantization import shared_values
from kcompress.quantization.activation_range import ActivationRange

__all__ = ["QuantizeConvBatchNorm", "can_fold"]

_FOLDABLE = (keras.layers.Conv1D, keras.layers.Conv2D,
             keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)


def can_fold(conv, batchnorm):
    """Whether `batchnorm` can be folded into `conv` (which must feed it)."""
    return (
        isinstance(conv, _FOLDABLE)
        and not isinstance(conv, (keras.layers.Conv1DTranspose,
                                  keras.layers.Conv2DTranspose))
        and isinstance(batchnorm, keras.layers.BatchNormalization)
        and conv.get_config().get("activation") in ("linear", None)
        and batchnorm.axis in (-1, _output_rank(conv) - 1)
    )


def _output_rank(conv):
    build_config = conv.get_build_config() or {}
    return len(build_config.get("input_shape") or ())


def _is_depthwise(conv):
    return isinstance(conv, (keras.layers.DepthwiseConv1D,
                             keras.layers.DepthwiseConv2D))


@keras.saving.register_keras_serializable(package="kcompress")
class QuantizeConvBatchNorm(ActivationRange, keras.layers.Layer):
    """A convolution and the BatchNorm after it, trained folded.

    Built by `quantize_model` / `quantize_apply` for every Conv1D/2D or
    DepthwiseConv1D/2D (with no activation of its own) whose only consumer is
    a BatchNormalization. `strip_quantization` turns it into one convolution
    holding the folded float weights.

    Args:
        conv: the convolution layer. It is given a bias if it had none.
        batchnorm: the BatchNormalization layer.
        preserve_sparsity: keep zero kernel weights at zero.
        num_bits: bit width.
        output_quantized: fake-quantize the output. False when a ReLU or
            ReLU6 that TFLite fuses into the convolution follows.
        kernel_sparse: whether the kernel holds zeros to keep (found from the
            built conv when None).
        preserve_clusters: keep a clustered kernel on its shared values
            (cluster-preserving QAT).
        kernel_clustered: `{"count": n, "per_channel": bool}` when the
            kernel is kept clustered, else None (found from the built conv
            when None and `preserve_clusters`).
        **kwargs: passed to `keras.layers.Layer`.
    """

    def __init__(self, conv, batchnorm, preserve_sparsity=True, num_bits=8,
                 output_quantized=True, kernel_sparse=None,
                 preserve_clusters=False, kernel_clustered=None, **kwargs):
        kwargs.setdefault("name", f"quant_{conv.name}_{batchnorm.name}")
        super().__init__(**kwargs)
        if not conv.use_bias:
            config = conv.get_config()
            config["use_bias"] = True
            weights = conv.get_weights() if conv.built else None
            build_config = conv.get_build_config() if conv.built else None
            conv = conv.__class__.from_config(config)
            if build_config:
                conv.build_from_config(build_config)
                conv.kernel.assign(weights[0])
        self.conv = conv
        self.batchnorm = batchnorm
        self.preserve_sparsity = bool(preserve_sparsity)
        self.num_bits = num_bits
        self.output_quantized = bool(output_quantized)
        if kernel_sparse is None:
            kernel_sparse = bool(
                self.preserve_sparsity and conv.built
                and _model_utils.has_zeros(conv.kernel))
        self.kernel_sparse = bool(kernel_sparse)
        self.preserve_clusters = bool(preserve_clusters)
        if kernel_clustered is None and self.preserve_clusters and conv.built:
            kernel_clustered = shared_values.layout_config(conv.kernel)
        self.kernel_clustered = kernel_clustered

    def build(self, input_shape):
        if not self.conv.built:
            self.conv.build(input_shape)
        if not self.batchnorm.built:
            self.batchnorm.build(self.conv.compute_output_shape(input_shape))
        if self.output_quantized:
            self.build_range()
        else:
            self.calibrating = self.export_mode = False
        kernel = self.conv.kernel
        self.kernel_nonzero = None
        if self.kernel_sparse:
            self.kernel_nonzero = self.add_weight(
                name="kernel_nonzero", shape=kernel.shape, dtype=kernel.dtype,
                initializer="ones", trainable=False,
                aggregation="only_first_replica")
            self.kernel_nonzero.assign(
                ops.cast(ops.not_equal(kernel, 0), kernel.dtype))
        self.kernel_shared = (
            shared_values.SharedValues(self, kernel, **self.kernel_clustered)
            if self.kernel_clustered else None)
        self.batchnorm_frozen = self.add_weight(
            name="batchnorm_frozen", shape=(), initializer="zeros",
            trainable=False, aggregation="only_first_replica")
        self.built = True

    def _channel_shape(self):
        kernel_shape = tuple(self.conv.kernel.shape)
        if _is_depthwise(self.conv):
            return (1,) * (len(kernel_shape) - 2) + kernel_shape[-2:]
        return (1,) * (len(kernel_shape) - 1) + kernel_shape[-1:]

    def _statistics(self, inputs, training, kernel):
        bn = self.batchnorm
        if not training:
            return bn.moving_mean, bn.moving_variance
        y = call_with_values(self, self.conv, [(self.conv.kernel, kernel)],
                             inputs)
        axes = tuple(range(len(y.shape) - 1))
        mean, variance = ops.moments(y, axes=axes)
        frozen = ops.greater(self.batchnorm_frozen, 0.5)
        decay = bn.momentum
        # Values, not the variables: JAX's jnp.where takes no Keras Variable.
        moving_mean = ops.convert_to_tensor(bn.moving_mean)
        moving_variance = ops.convert_to_tensor(bn.moving_variance)
        new_mean = ops.where(frozen, moving_mean,
                             moving_mean * decay + mean * (1 - decay))
        new_variance = ops.where(
            frozen, moving_variance,
            moving_variance * decay + variance * (1 - decay))
        bn.moving_mean.assign(new_mean)
        bn.moving_variance.assign(new_variance)
        return (ops.where(frozen, moving_mean, mean),
                ops.where(frozen, moving_variance, variance))

    def _kernel(self, training=False):
        """The conv kernel with preserved clusters and zeros applied."""
        if self.kernel_shared is not None:
            return self.kernel_shared.value(self.conv.kernel,
                                            self.kernel_nonzero, training)
        kernel = ops.convert_to_tensor(self.conv.kernel)
        if self.kernel_nonzero is None:
            return kernel
        return ops.multiply(kernel, self.kernel_nonzero)

    def folded_weights(self, mean, variance, kernel=None):
        """`(kernel, bias)` of the convolution with the BatchNorm folded in
        (`kernel`: the conv kernel's value, `_kernel()` when None)."""
        bn = self.batchnorm
        kernel = self._kernel() if kernel is None else kernel
        scale = ops.rsqrt(ops.add(variance, bn.epsilon))
        if bn.scale:
            scale = ops.multiply(scale, bn.gamma)
        kernel = ops.multiply(kernel,
                              ops.reshape(scale, self._channel_shape()))
        bias = ops.multiply(ops.subtract(self.conv.bias, mean), scale)
        if bn.center:
            bias = ops.add(bias, bn.beta)
        return kernel, bias

    def call(self, inputs, training=None):
        kernel = self._kernel(bool(training))
        mean, variance = self._statistics(inputs, training, kernel)
        kernel, bias = self.folded_weights(mean, variance, kernel)
        axis = quantizers.DEPTHWISE if _is_depthwise(self.conv) else -1
        magnitude = quantizers.weight_magnitude(kernel, axis)
        if not training:  # Float in training: see QuantizeWrapper.call.
            bias = quantizers.fake_quant_bias(bias, kernel, axis,
                                              input_grid.input_scale(self),
                                              self.num_bits, magnitude)
        kernel = quantizers.fake_quant_weight(kernel, axis, self.num_bits,
                                              bool(training), magnitude)
        y = call_with_values(self, self.conv, [(self.conv.kernel, kernel),
                                               (self.conv.bias, bias)], inputs)
        if self.output_quantized:
            rounded = self.quantize_output(y, training)
            output_bounds = self.output_bounds()
        else:  # A fused ReLU rounds it: the file writes onto its grid.
            rounded = y
            output_bounds = input_grid.written_grid(self)
        bounds = input_grid.input_bounds(self)
        if (not emulated.in_inference(self, training) or bounds is None
                or output_bounds is None):
            return rounded
        # Inference: as the int8 kernel computes it (`int8_kernels`).
        return emulated.chosen(int8_kernels.requantized(
            lambda x, k, b: call_with_values(
                self, self.conv, [(self.conv.kernel, k), (self.conv.bias, b)],
                x),
            inputs, kernel, bias, magnitude,
            emulated.channel_shape(kernel, axis), bounds, output_bounds,
            self.num_bits), rounded)

    def output_bounds(self):
        """The output's range (see `ActivationRange`), or None when a fused
        ReLU rounds it instead."""
        return super().output_bounds() if self.output_quantized else None

    def compute_output_shape(self, input_shape):
        return self.conv.compute_output_shape(input_shape)

    def to_float_conv(self):
        """A plain convolution holding the folded float weights."""
        kernel, bias = self.folded_weights(self.batchnorm.moving_mean,
                                           self.batchnorm.moving_variance)
        config = self.conv.get_config()
        config["name"] = self.conv.name
        new = self.conv.__class__.from_config(config)
        new.build_from_config(self.conv.get_build_config())
        new.set_weights([ops.convert_to_numpy(kernel),
                         ops.convert_to_numpy(bias)])
        return new

    def get_config(self):
        return {
            **super().get_config(),
            "conv": keras.saving.serialize_keras_object(self.conv),
            "batchnorm": keras.saving.serialize_keras_object(self.batchnorm),
            "preserve_sparsity": self.preserve_sparsity,
            "num_bits": self.num_bits,
            "output_quantized": self.output_quantized,
            "kernel_sparse": self.kernel_sparse,
            "preserve_clusters": self.preserve_clusters,
            "kernel_clustered": self.kernel_clustered,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return cls(**_model_utils.deserialized(config, ["conv", "batchnorm"],
                                               custom_objects))


def fold_pair(conv, batchnorm, preserve_sparsity=True, output_quantized=True,
              preserve_clusters=False):
    """A `QuantizeConvBatchNorm` from copies of a trained conv and BatchNorm."""
    return QuantizeConvBatchNorm(
        _model_utils.clone_layer(conv), _model_utils.clone_layer(batchnorm),
        preserve_sparsity=preserve_sparsity,
        output_quantized=output_quantized,
        preserve_clusters=preserve_clusters)
