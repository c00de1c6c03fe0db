"""QAT layers: `QuantizeWrapper` around a layer, `QuantizeLayer` for inputs.

Both learn an activation range as an exponential moving average during `fit`
and fake-quantize with it. The first training batch (or `calibrate`) sets the
range outright. Until a range is set, activations pass through in float, so a
freshly quantized model scores what the float model scores (TFMOT starts from
a fixed [-6, 6] range, and scores near chance on digits before training).
"""

import keras
from keras import ops

from kcompress import _keras_internals
from kcompress import _model_utils
from kcompress._substitute import call_with_values
from kcompress.quantization import emulated
from kcompress.quantization import input_grid
from kcompress.quantization import int8_kernels
from kcompress.quantization import quantizers
from kcompress.quantization import shared_values
from kcompress.quantization.activation_range import ActivationRange
from kcompress.quantization.quantize_config import QuantizeConfig
from kcompress.quantization.quantize_config import default_quantize_config
from kcompress.quantization.quantize_config import unsupported_layer_error

__all__ = ["QuantizeWrapper", "QuantizeLayer", "QuantizedConstant"]

def _weights_with_zeros(layer, config):
    """Names of the weights in `config` that hold exact zeros in `layer`."""
    if not layer.built:
        return ()
    names = []
    for name, (weight, _) in zip(config.weights,
                                 config.get_weights_and_axes(layer)):
        if _model_utils.has_zeros(weight):
            names.append(name)
    return tuple(names)


_INT32_BIAS = emulated.INT32_BIAS
_TRANSPOSED = emulated.TRANSPOSED


def _clustered(layer, config):
    """`{name: layout}` of the weights in `config` that `layer` holds
    clustered."""
    if not layer.built:
        return {}
    found = {}
    for name, (weight, _) in zip(config.weights,
                                 config.get_weights_and_axes(layer)):
        clustered = shared_values.layout_config(weight)
        if clustered is not None:
            found[name] = clustered
    return found


def _check_config(config, layer):
    if config is None:
        config = default_quantize_config(layer)
        if config is None:
            raise unsupported_layer_error(layer)
        return config
    if not isinstance(config, QuantizeConfig):
        raise ValueError(
            f"Received: quantize_config={config!r}. Expected a "
            "kcompress.quantization.QuantizeConfig."
        )
    return config


@keras.saving.register_keras_serializable(package="kcompress")
class QuantizeWrapper(ActivationRange, keras.layers.Wrapper):
    """Runs `layer` with fake-quantized weights and a fake-quantized output.

    Weights are fake-quantized from the float weights on every call (the
    optimizer keeps updating the float weights). With `preserve_sparsity`,
    the weights that hold exact zeros when the wrapper is created (a pruned
    layer's) keep them through QAT and into the int8 file; their names are
    recorded in `sparse_weights`. Dense weights carry no mask and cost
    nothing. With `preserve_clusters`, weights that hold few distinct values
    (a clustered layer's, per tensor or per output channel) train as those
    shared values (`shared_values.SharedValues`); their layouts are kept in
    `clustered_weights`.

    Args:
        layer: the layer to quantize.
        quantize_config: a `QuantizeConfig`; defaults to the built-in one for
            the layer's type.
        preserve_sparsity: keep zero weights at zero.
        sparse_weights: names of the weights that hold zeros to keep; found
            from `layer`'s weights when None (set when loading a config).
        preserve_clusters: keep clustered weights on their shared values
            (cluster-preserving QAT).
        clustered_weights: `{name: {"count": n, "per_channel": bool}}` for
            the weights kept clustered; found from `layer`'s weights when
            None (set when loading a config).
        **kwargs: passed to `keras.layers.Wrapper`.

    Example:

    >>> import keras
    >>> dense = QuantizeWrapper(keras.layers.Dense(3))
    >>> tuple(dense(keras.ops.ones((2, 4))).shape)
    (2, 3)
    """

    def __init__(self, layer, quantize_config=None, preserve_sparsity=True,
                 sparse_weights=None, preserve_clusters=False,
                 clustered_weights=None, **kwargs):
        if isinstance(layer, (QuantizeWrapper, QuantizeLayer)):
            raise ValueError(
                f"Layer '{layer.name}' is already quantized. Quantizing twice "
                "is not supported."
            )
        if not isinstance(layer, keras.layers.Layer):
            raise ValueError(
                f"Received: layer={layer!r} of type {type(layer).__name__}. "
                "Expected a keras.layers.Layer."
            )
        kwargs.setdefault("name", f"quant_{layer.name}")
        super().__init__(layer, **kwargs)
        self.quantize_config = _check_config(quantize_config, layer)
        self.preserve_sparsity = bool(preserve_sparsity)
        self.num_bits = self.quantize_config.num_bits
        if sparse_weights is None:
            sparse_weights = _weights_with_zeros(
                layer, self.quantize_config) if preserve_sparsity else ()
        self.sparse_weights = tuple(sparse_weights)
        self.preserve_clusters = bool(preserve_clusters)
        if clustered_weights is None:
            clustered_weights = _clustered(
                layer, self.quantize_config) if preserve_clusters else {}
        self.clustered_weights = dict(clustered_weights)

    def build(self, input_shape=None):
        super().build(input_shape)
        self.quantized_weights = self.quantize_config.get_weights_and_axes(
            self.layer)
        self.zero_masks = []
        names = list(self.quantize_config.weights)
        for name, (weight, _) in zip(names, self.quantized_weights):
            mask = None
            if name in self.sparse_weights:
                mask = self.add_weight(
                    name=f"{weight.name}_nonzero", shape=weight.shape,
                    dtype=weight.dtype, initializer="ones", trainable=False,
                    aggregation="only_first_replica")
                mask.assign(ops.cast(ops.not_equal(weight, 0), weight.dtype))
            self.zero_masks.append(mask)
        self.shared = [
            shared_values.SharedValues(self, weight,
                                       **self.clustered_weights[name])
            if name in self.clustered_weights else None
            for name, (weight, _) in zip(names, self.quantized_weights)]
        if self.quantize_config.quantize_output:
            self.build_range()
            fixed = self.quantize_config.output_range
            if fixed is not None:  # Set and frozen: the kernel's own grid.
                self.range_state.assign([fixed[0], fixed[1], 1.0])
        else:
            self.calibrating = self.export_mode = False
        self.built = True

    def effective_weights(self, training=False):
        """`[(variable, float value)]`: weights with preserved clusters and
        zeros applied (clusters re-assigned when `training`)."""
        values = []
        for (w, _), mask, shared in zip(self.quantized_weights,
                                        self.zero_masks, self.shared):
            if shared is not None:
                value = shared.value(w, mask, training)
            elif mask is not None:
                value = ops.multiply(w, mask)
            else:
                value = ops.convert_to_tensor(w)
            values.append((w, value))
        return values

    def call(self, inputs, *args, training=None, **kwargs):
        axes = [axis for _, axis in self.quantized_weights]
        values = self.effective_weights(bool(training))
        magnitudes = [quantizers.weight_magnitude(value, axis)
                      for (_, value), axis in zip(values, axes)]
        mapping = [
            (w, quantizers.fake_quant_weight(value, axis, self.num_bits,
                                             bool(training), magnitude))
            for (w, value), axis, magnitude in zip(values, axes, magnitudes)]
        if not training:
            # In training the bias stays float: the rounding moves an
            # output by under half an int32 step, nothing to learn from,
            # and finding the input's grid costs a training step a few
            # dozen small ops per layer.
            mapping.extend(self._int32_bias(values, axes, magnitudes))
        outputs = self._run(inputs, mapping, args, kwargs)
        fixed = self.quantize_config.output_range
        if self.quantize_config.quantize_output and fixed is not None:
            outputs = quantizers.fake_quant_activation(
                outputs, fixed[0], fixed[1], self.num_bits)
        elif self.quantize_config.quantize_output:
            outputs = self.quantize_output(outputs, training)
            if not args and not kwargs and emulated.in_inference(
                    self, training):
                outputs = emulated.wrapper_output(self, inputs, mapping,
                                                  magnitudes, outputs)
        elif self.export_mode:
            outputs = input_grid.pinned(self, outputs, self.num_bits)
        elif not args and not kwargs and emulated.in_inference(
                self, training):
            # A fused ReLU or a Concatenate rounds the output: the file's
            # op writes straight onto that layer's grid.
            written = input_grid.written_grid(self)
            if written is not None:
                outputs = emulated.wrapper_output(
                    self, inputs, mapping, magnitudes, outputs, written)
        return outputs

    def _run(self, inputs, mapping, args=(), kwargs=None):
        """The wrapped layer's output with the weight values `mapping`."""
        kwargs = kwargs or {}
        inner = tuple(getattr(inputs, "shape", ())[1:-1])
        if (isinstance(self.layer, keras.layers.Dense) and inner
                and None not in inner and not args and not kwargs):
            # A Dense on a 3-D or larger input runs on the flattened 2-D
            # input, so the converter folds its bias into the
            # FULLY_CONNECTED (after a RESHAPE, the bias ADD stays separate
            # and both ops stay float).
            flat = ops.reshape(inputs, (-1, inputs.shape[-1]))
            outputs = call_with_values(self, self.layer, mapping, flat)
            return ops.reshape(outputs, (-1,) + inner + (
                outputs.shape[-1],))
        return call_with_values(self, self.layer, mapping, inputs, *args,
                                **kwargs)

    def _int32_bias(self, values, axes, magnitudes=None):
        """`[(bias, value rounded to TFLite's int32 grid)]`, or `[]`."""
        bias = getattr(self.layer, "bias", None)
        names = list(self.quantize_config.weights)
        if (bias is None or "kernel" not in names
                or not isinstance(self.layer, _INT32_BIAS)
                or isinstance(self.layer, _TRANSPOSED)):
            return []
        index = names.index("kernel")
        return [(bias, quantizers.fake_quant_bias(
            ops.convert_to_tensor(bias), values[index][1], axes[index],
            input_grid.input_scale(self), self.num_bits,
            None if magnitudes is None else magnitudes[index]))]

    def output_bounds(self):
        """The output's range (see `ActivationRange`), or None when this
        layer leaves its output unrounded."""
        if not self.quantize_config.quantize_output:
            return None
        fixed = self.quantize_config.output_range
        if fixed is not None:
            return (ops.convert_to_tensor(fixed[0], "float32"),
                    ops.convert_to_tensor(fixed[1], "float32"))
        return super().output_bounds()

    def compute_output_shape(self, *args, **kwargs):
        return self.layer.compute_output_shape(*args, **kwargs)

    def compute_output_spec(self, *args, **kwargs):
        return _model_utils.inner_output_spec(self.layer, *args, **kwargs)

    def get_config(self):
        config = {
            "quantize_config": keras.saving.serialize_keras_object(
                self.quantize_config),
            "preserve_sparsity": self.preserve_sparsity,
            "preserve_clusters": self.preserve_clusters,
            "clustered_weights": self.clustered_weights,
            "sparse_weights": list(self.sparse_weights),
        }
        return {**super().get_config(), **config}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = _model_utils.deserialized(config, ["quantize_config"],
                                           custom_objects)
        return super().from_config(config, custom_objects=custom_objects)


@keras.saving.register_keras_serializable(package="kcompress")
class QuantizeLayer(ActivationRange, keras.layers.Layer):
    """Fake-quantizes a model input with a learned range (TFLite's QUANTIZE).

    Args:
        num_bits: bit width.
        **kwargs: passed to `keras.layers.Layer`.
    """

    def __init__(self, num_bits=8, **kwargs):
        super().__init__(**kwargs)
        self.num_bits = num_bits

    def build(self, input_shape=None):
        self.build_range()
        self.built = True

    def call(self, inputs, training=None):
        rounded = self.quantize_output(inputs, training)
        if not (emulated.in_inference(self, training)
                and self._reads_model_input()):
            return rounded
        # Inference: as the file's QUANTIZE op rounds.
        return emulated.chosen(int8_kernels.quantize_requantized(
            inputs, self.output_bounds(), self.num_bits), rounded)

    def _reads_model_input(self):
        nodes = _keras_internals.inbound_nodes_if_any(self)
        if len(nodes) != 1 or len(nodes[0].input_tensors) != 1:
            return False
        operation = _keras_internals.keras_history(
            nodes[0].input_tensors[0]).operation
        return isinstance(operation, keras.layers.InputLayer)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "num_bits": self.num_bits}


@keras.saving.register_keras_serializable(package="kcompress")
class QuantizedConstant(keras.layers.Layer):
    """A constant operand of a `keras.ops` node, fake-quantized (int8).

    Where a functional model computes `x + 3.0` or `x * (1 / 6)` (the
    hard-sigmoid of MobileNetV3), TFLite runs an int8 ADD or MUL only if the
    constant is an int8 tensor too. The QAT rewrite feeds the node this
    layer's output instead of the number; the range spans 0 and the
    constant, so the constant is exactly on the grid. `strip_quantization`
    puts the number back.

    Args:
        value: the constant, a number or a nested list of numbers.
        num_bits: bit width.
        **kwargs: passed to `keras.layers.Layer`.
    """

    _kcompress_quantized = True  # _model_utils.QUANTIZED_MARKER

    def __init__(self, value, num_bits=8, **kwargs):
        super().__init__(**kwargs)
        self.value = keras.ops.convert_to_numpy(value).astype(
            "float32").tolist()
        self.num_bits = num_bits

    def call(self, inputs):
        del inputs  # Only places the constant in the graph.
        return quantizers.fake_quant_constant(self.value, self.num_bits)

    def compute_output_shape(self, input_shape):
        return tuple(ops.shape(ops.convert_to_tensor(self.value)))

    def get_config(self):
        return {**super().get_config(), "value": self.value,
                "num_bits": self.num_bits}
