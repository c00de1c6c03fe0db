"""QAT for layers TFLite runs as several int8 ops: LayerNormalization,
MultiHeadAttention, swish and Average (and, in `affine`, a
BatchNormalization no convolution absorbs).

TFLite has no int8 kernel for either layer. The converter lowers each to a
chain of int8 ops (MEAN, SUB, MUL, RSQRT, ADD for a layer norm;
FULLY_CONNECTED, MUL, BATCH_MATMUL, SOFTMAX for attention) and requantizes
between every two. QAT has to round where the file rounds, so these
wrappers compute the same chain with `keras.ops` and fake-quantize each
intermediate with a range of its own, held by a child `QuantizeLayer`
(found by `quantized_layers`, calibrated and frozen like any other range).
Their weights are fake-quantized per tensor, as the converter stores them.
"""

import keras
from keras import ops

from kcompress import _keras_internals
from kcompress import _model_utils
from kcompress._substitute import call_with_values
from kcompress.quantization import emulated
from kcompress.quantization import input_grid
from kcompress.quantization import int8_kernels
from kcompress.quantization import masked_softmax
from kcompress.quantization import quantizers
from kcompress.quantization.export_trace import ExportMode
from kcompress.quantization.quantize_config import FIXED_OUTPUT_RANGES
from kcompress.quantization.quantize_wrapper import QuantizeLayer

__all__ = ["QuantizeAverage", "QuantizeLayerNormalization",
           "QuantizeMultiHeadAttention", "QuantizeSwish", "composite_for"]


def _names(classes):
    classes = classes if isinstance(classes, tuple) else (classes,)
    return " or ".join(cls.__name__ for cls in classes)


class _Composite(keras.layers.Wrapper):
    """A wrapper whose call fake-quantizes named intermediates."""

    _kcompress_quantized = True  # _model_utils.QUANTIZED_MARKER
    RANGES = ()

    def __init__(self, layer, num_bits=8, _range_keys=None, **kwargs):
        if not isinstance(layer, self.WRAPS):
            raise ValueError(
                f"Received: layer={layer!r} of type {type(layer).__name__}. "
                f"Expected a {_names(self.WRAPS)}.")
        kwargs.setdefault("name", f"quant_{layer.name}")
        super().__init__(layer, **kwargs)
        self.num_bits = num_bits
        keys = self.RANGES if _range_keys is None else _range_keys
        self.ranges = {key: QuantizeLayer(num_bits, name=f"{self.name}_{key}")
                       for key in keys}

    def build(self, input_shape=None):
        if not self.layer.built:
            self.layer.build(input_shape)
        for child in self.ranges.values():
            child.build()
        self.built = True

    def _q(self, key, x, training):
        return self.ranges[key](x, training=training)

    def _output_key(self):
        return self.RANGES[-1]

    def output_bounds(self):
        """The range of the last op's output (see `ActivationRange`)."""
        return self.ranges[self._output_key()].output_bounds()

    def output_scale(self):
        return quantizers.grid_scale(self.output_bounds(), self.num_bits)

    def _weight(self, variable):
        return quantizers.fake_quant_weight(variable, None, self.num_bits)

    def _constant(self, value):
        return quantizers.fake_quant_constant(value, self.num_bits)

    def _project(self, dense, x):
        mapping = [(dense.kernel, self._weight(dense.kernel))]
        return call_with_values(self, dense, mapping, x)

    def get_config(self):
        return {**super().get_config(), "num_bits": self.num_bits}


def _saturating_rsqrt(x, output_range):
    """`rsqrt(x)`, with the values at `x == 0` (a variance that rounded to
    zero) replaced by the top of the output's range.

    TFLite's int8 RSQRT saturates there, at the top of its output range.
    Once `output_range` (a `QuantizeLayer`) holds a range, its top is where
    fake quantization lands too. Before that, the batch's largest finite
    value stands in, which keeps infinities out of the learned range and
    of the gradients.
    """
    positive = ops.greater(x, 0.0)
    safe = ops.rsqrt(ops.where(positive, x, 1.0))
    top = ops.max(ops.where(positive, safe, 0.0))
    state = ops.convert_to_tensor(output_range.range_state)
    top = ops.maximum(top, ops.where(ops.less_equal(state[0], state[1]),
                                     state[1], 0.0))
    return ops.where(positive, safe, ops.stop_gradient(top))


@keras.saving.register_keras_serializable(package="kcompress")
class QuantizeLayerNormalization(_Composite):
    """QAT of a `LayerNormalization` as TFLite's int8 ops compute it.

    `mean = MEAN(x)`, `d = x - mean`, `var = MEAN(d * d)`,
    `inv = RSQRT(var + eps)`, `y = (d * inv) * gamma + beta`, each step
    rounded to its own learned grid; in inference, each op computed as
    its int8 kernel does (`int8_kernels`), so the outputs are the file's
    given the same inputs. RMS scaling is not supported (the rewrite
    leaves such a layer in float).

    Args:
        layer: the `LayerNormalization`.
        num_bits: bit width.
        **kwargs: passed to `keras.layers.Wrapper`.
    """

    WRAPS = keras.layers.LayerNormalization
    RANGES = ("mean", "centered", "squared", "variance", "shifted",
              "inverse", "normalized", "scaled", "output")
    # Traced for export as a plain RSQRT, which saturates at zero by
    # itself: the where-chain of `_saturating_rsqrt` traced into the file
    # compares the variance with GREATER, whose int8 kernel rescales its
    # inputs to steps of 1/256, so a variance below 1/512 (KerasHub's
    # text embeddings: 5e-4) counted as zero there.
    export_mode = ExportMode()

    def _output_key(self):
        if self.layer.center:
            return "output"
        return "scaled" if self.layer.scale else "normalized"

    def call(self, inputs, training=None):
        norm = self.layer
        axis = norm.axis if isinstance(norm.axis, (list, tuple)) else [
            norm.axis]
        axis = [a % len(inputs.shape) for a in axis]
        q = self._q
        x = ops.cast(inputs, "float32")
        mean = q("mean", ops.mean(x, axis=axis, keepdims=True), training)
        centered = q("centered", x - mean, training)
        squared = q("squared", centered * centered, training)
        variance = q("variance", ops.mean(squared, axis=axis, keepdims=True),
                     training)
        shifted = q("shifted", variance + self._constant(norm.epsilon),
                    training)
        inverse = ops.rsqrt(shifted) if self.export_mode else (
            _saturating_rsqrt(shifted, self.ranges["inverse"]))
        inverse = q("inverse", inverse, training)
        y = q("normalized", centered * inverse, training)
        shape = [1] * len(x.shape)
        for a in axis:
            shape[a] = x.shape[a]
        if norm.scale:
            gamma = ops.reshape(self._weight(norm.gamma), shape)
            y = q("scaled", y * gamma, training)
        if norm.center:
            beta = ops.reshape(self._weight(norm.beta), shape)
            y = q("output", y + beta, training)
        bounds = input_grid.input_bounds(self)
        if (not emulated.in_inference(self.ranges[self._output_key()],
                                      training) or bounds is None):
            return y
        return emulated.chosen(self._as_int8(x, axis, shape, bounds), y)

    def _as_int8(self, x, axis, shape, bounds):
        """The layer norm as the file's int8 kernels compute it, each op on
        its own input's grid: `(values, ready)`. (Inference only, as
        `emulated` does for single ops.)

        The chain amplifies any rounding difference: a step of `centered`
        is up to 4 steps of `squared` (`2 * |d| * step` against the grid
        of `d * d`), and the normalizing MUL multiplies a step of its input
        by the token's `1 / std`, up to the top of the `inverse` grid (21
        on ViT's class token, 5 output steps from one input step). The ops
        follow what `verify` runs: XNNPACK's MEAN, SUB, MUL and ADD, whose
        float32 requantization differs from TFLite's own MEAN and MUL
        (a step off on 70 of 272 means and 72 of 8,704 squares, fed the
        same int8 inputs), and TFLite's RSQRT, which XNNPACK leaves and
        which computes 1/sqrt in fixed point.
        """
        norm = self.layer
        bits = self.num_bits
        kernels = int8_kernels
        grids = {key: child.output_bounds()
                 for key, child in self.ranges.items()}
        readies = []

        def kept(result):
            values, ready = result
            readies.append(ready)
            return values

        axes = tuple(axis)
        mean = kept(kernels.mean_requantized(x, axes, True, bounds,
                                             grids["mean"], bits))
        # SUB: an ADD of the negated mean, on the mean's grid.
        centered = kept(kernels.add_requantized(
            x, ops.negative(mean), [bounds, grids["mean"]],
            grids["centered"], bits))
        squared = kept(kernels.multiply_requantized(
            centered, centered, [grids["centered"]] * 2, grids["squared"],
            bits))
        variance = kept(kernels.mean_requantized(
            squared, axes, True, grids["squared"], grids["variance"], bits))
        epsilon = self._constant(norm.epsilon)
        shifted = kept(kernels.add_requantized(
            variance, epsilon,
            [grids["variance"], (0.0, float(norm.epsilon))],
            grids["shifted"], bits))
        inverse = kept(kernels.rsqrt_requantized(
            shifted, grids["shifted"], grids["inverse"], bits))
        y = kept(kernels.multiply_requantized(
            centered, inverse, [grids["centered"], grids["inverse"]],
            grids["normalized"], bits))
        previous = grids["normalized"]
        levels = float(2 ** (bits - 1) - 1)
        for flag, weight, key, op in (
                (norm.scale, "gamma", "scaled",
                 kernels.multiply_requantized),
                (norm.center, "beta", "output", kernels.add_requantized)):
            if not flag:
                continue
            variable = getattr(norm, weight)
            value = ops.reshape(self._weight(variable), shape)
            scale = kernels.quotient(quantizers.weight_magnitude(variable),
                                     levels)
            y = kept(op(y, value, [previous, scale], grids[key], bits))
            previous = grids[key]
        ready = readies[0]
        for other in readies[1:]:
            ready = ops.logical_and(ready, other)
        return y, ready

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="kcompress")
class QuantizeMultiHeadAttention(_Composite):
    """QAT of a `MultiHeadAttention` as TFLite's int8 ops compute it.

    The query, key, value and output projections run as FULLY_CONNECTED
    with per-tensor int8 kernels; the scaled query, the scores and the
    context as MUL and BATCH_MATMUL with learned ranges; the softmax on its
    fixed 1/256 grid. Gated attention is not supported (the rewrite leaves
    such a layer in float).

    Args:
        layer: the `MultiHeadAttention`.
        num_bits: bit width.
        **kwargs: passed to `keras.layers.Wrapper`.
    """

    WRAPS = keras.layers.MultiHeadAttention
    RANGES = ("query", "key", "value", "scaled_query", "scores", "context",
              "output")

    def build(self, query_shape, value_shape, key_shape=None):
        if not self.layer.built:
            self.layer.build(query_shape, value_shape, key_shape)
        for child in self.ranges.values():
            child.build()
        self.built = True

    def call(self, query, value, key=None, attention_mask=None,
             return_attention_scores=False, training=None,
             use_causal_mask=False):
        mha = self.layer
        q = self._q
        key = value if key is None else key
        mask = _keras_internals.attention_mask(
            mha, query, value, attention_mask=attention_mask,
            use_causal_mask=use_causal_mask)
        # The grids of the query, value and key inputs (positions in the
        # call), for the projections' int32 biases.
        grids = [input_grid.input_scale(self, i) for i in range(3)]
        grids[2] = grids[1] if key is value else grids[2]
        queries = q("query", self._split_heads(mha.query_dense, query,
                                               grids[0]), training)
        keys = q("key", self._split_heads(mha.key_dense, key, grids[2]),
                 training)
        values = q("value", self._split_heads(mha.value_dense, value,
                                              grids[1]), training)
        queries = q("scaled_query", queries * self._constant(
            _keras_internals.attention_scale(mha)), training)
        scores_equation, context_equation = (
            _keras_internals.attention_equations(mha))
        scores = q("scores", ops.einsum(scores_equation, keys, queries),
                   training)
        # Finite fills: Keras's -1e9 falls to the bottom of the scores'
        # grid in the file (see masked_softmax).
        probabilities = masked_softmax.attention_softmax(
            mha, scores, mask, self.num_bits)
        low, high = FIXED_OUTPUT_RANGES["softmax"]
        probabilities = quantizers.fake_quant_activation(
            probabilities, low, high, self.num_bits)
        dropped = _keras_internals.attention_dropout(mha, probabilities,
                                                     training=training)
        context = q("context", ops.einsum(context_equation, dropped, values),
                    training)
        outputs = q("output", self._merge_heads(
            mha.output_dense, context, self.ranges["context"].output_scale()),
            training)
        if return_attention_scores:
            return outputs, probabilities
        return outputs

    def _plain(self, dense, inner):
        """Whether `dense` is a 3-D-kernel projection along the last axis
        only (the default attention axes) of an input whose inner
        dimensions `inner` are static: one FULLY_CONNECTED on 2-D."""
        return (len(self.layer.attention_axes) == 1
                and len(dense.kernel.shape) == 3 and None not in inner)

    def _matmul(self, x, kernel, bias, grid):
        """`x @ kernel + bias` on a 2-D `x`: the converter folds the bias
        into the FULLY_CONNECTED, in int32 on the grid of `x` (scale
        `grid`) times the kernel's. (On a 3-D `x` a RESHAPE sits between
        the two; the bias ADD then stays separate, and both ops stay
        float.)"""
        y = ops.matmul(x, self._weight(kernel))
        if bias is None:
            return y
        return ops.add(y, quantizers.fake_quant_bias(bias, kernel, None, grid,
                                                     self.num_bits))

    def _split_heads(self, dense, x, grid):
        """A query/key/value projection `(..., C) -> (..., N, H)`."""
        inner = tuple(x.shape[1:-1])
        if not self._plain(dense, inner):
            return self._project(dense, x)
        channels, heads, size = dense.kernel.shape
        kernel = ops.reshape(dense.kernel, (channels, heads * size))
        bias = None if dense.bias is None else ops.reshape(dense.bias, (-1,))
        y = self._matmul(ops.reshape(x, (-1, channels)), kernel, bias, grid)
        return ops.reshape(y, (-1,) + inner + (heads, size))

    def _merge_heads(self, dense, x, grid):
        """The output projection `(..., N, H) -> (..., D)`."""
        inner = tuple(x.shape[1:-2])
        if not self._plain(dense, inner):
            return self._project(dense, x)
        heads, size, depth = dense.kernel.shape
        x = ops.reshape(x, (-1, heads * size))
        kernel = ops.reshape(dense.kernel, (heads * size, depth))
        return ops.reshape(self._matmul(x, kernel, dense.bias, grid),
                           (-1,) + inner + (depth,))

    def compute_output_shape(self, query_shape, value_shape, key_shape=None):
        return self.layer.compute_output_shape(query_shape, value_shape,
                                               key_shape)

    def compute_output_spec(self, *args, **kwargs):
        return _model_utils.inner_output_spec(self.layer, *args, **kwargs)


@keras.saving.register_keras_serializable(package="kcompress")
class QuantizeSwish(_Composite):
    """QAT of a swish (silu) activation as TFLite runs it: LOGISTIC, whose
    int8 output sits on the fixed 1/256 grid, then MUL by the input.

    Args:
        layer: an `Activation("swish")` (or `"silu"`).
        num_bits: bit width.
        **kwargs: passed to `keras.layers.Wrapper`.
    """

    WRAPS = keras.layers.Activation
    RANGES = ("output",)

    def call(self, inputs, training=None):
        low, high = FIXED_OUTPUT_RANGES["sigmoid"]
        gate = quantizers.fake_quant_activation(ops.sigmoid(inputs), low,
                                                high, self.num_bits)
        rounded = self._q("output", inputs * gate, training)
        output = self.ranges["output"]
        bounds = input_grid.input_bounds(self)
        if not emulated.in_inference(output, training) or bounds is None:
            return rounded
        # Inference: the MUL as its int8 kernel computes it.
        return emulated.chosen(int8_kernels.multiply_requantized(
            inputs, gate, [bounds, (low, high)], output.output_bounds(),
            self.num_bits), rounded)

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="kcompress")
class QuantizeAverage(_Composite):
    """QAT of an `Average` merge as TFLite runs it: ADD of the inputs, then
    MUL by the int8 constant 1/n.

    Args:
        layer: the `Average` layer.
        num_bits: bit width.
        **kwargs: passed to `keras.layers.Wrapper`.
    """

    WRAPS = keras.layers.Average
    RANGES = ("sum", "output")

    def call(self, inputs, training=None):
        total = inputs[0]
        for x in inputs[1:]:
            total = ops.add(total, x)
        total = self._q("sum", total, training)
        return self._q("output", total * self._constant(1.0 / len(inputs)),
                       training)

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)


def _is_swish(layer):
    if not isinstance(layer, keras.layers.Activation):
        return False
    activation = layer.get_config()["activation"]
    return activation in ("swish", "silu")


def composite_for(layer):
    """The composite QAT class for `layer`, or None if it has none. (A
    `BatchNormalization` has `affine.QuantizeBatchNormalization`.)"""
    if isinstance(layer, keras.layers.LayerNormalization) and not (
            layer.rms_scaling):
        return QuantizeLayerNormalization
    if _is_swish(layer):
        return QuantizeSwish
    if isinstance(layer, keras.layers.Average):
        return QuantizeAverage
    if isinstance(layer, keras.layers.MultiHeadAttention) and not (
            _keras_internals.attention_uses_gate(layer)):
        return QuantizeMultiHeadAttention
    return None
