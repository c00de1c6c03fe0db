"""`exact_arithmetic`: the bias steps and weight scales the converter
computes in double precision, from float32 `keras.ops`, eager and in a
compiled graph (where TensorFlow turns a division by a constant into a
multiplication by its reciprocal)."""

import keras
import numpy as np
import pytest
from keras import ops

from kcompress.quantization.int8_kernels import exact_arithmetic as exact


def _compiled(fn):
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf
        return tf.function(fn)
    if backend == "jax":
        import jax
        return jax.jit(fn)
    return fn


def _run(fn, *args):
    return [ops.convert_to_numpy(fn(*args)),
            ops.convert_to_numpy(_compiled(fn)(*args))]


def test_quotient_is_correctly_rounded():
    x = np.random.default_rng(0).uniform(1e-3, 2.0, 50_000).astype(
        "float32")
    expected = (x.astype("float64") / 127.0).astype("float32")
    for result in _run(lambda v: exact.quotient(v, 127.0), x):
        np.testing.assert_array_equal(result, expected)


def test_two_product_is_exact():
    rng = np.random.default_rng(1)
    a = rng.uniform(-10, 10, 10_000).astype("float32")
    b = rng.uniform(-1e-3, 1e-3, 10_000).astype("float32")
    for p, e in zip(*[_run(lambda u, v, i=i: exact.two_product(u, v)[i], a, b)
                      for i in range(2)]):
        total = p.astype("float64") + e.astype("float64")
        np.testing.assert_array_equal(total, a.astype("float64") * b)


@pytest.mark.parametrize("near", [0.5, 0.0])
def test_bias_steps_round_as_in_double_precision(near):
    """Biases within a few thousandths of a step of a half step (where
    float32 division rounds the wrong way on about one in ten), and
    biases near whole steps."""
    rng = np.random.default_rng(2)
    n = 20_000
    input_scale = np.float32(0.0276565)
    weight_scale = rng.uniform(1e-4, 2e-3, n).astype("float32")
    steps = rng.integers(-60_000, 60_000, n) + near
    steps = steps + rng.uniform(-3e-3, 3e-3, n)
    product = np.float64(input_scale) * weight_scale.astype("float64")
    bias = (steps * product).astype("float32")
    expected = np.round(bias.astype("float64") / product)
    naive = np.round(bias / (input_scale * weight_scale))

    def fn(b, w):
        return exact.bias_steps(b, input_scale, w, input_scale * w)

    if near:
        assert (naive != expected).mean() > 0.02  # What this is about.
    for result in _run(fn, bias, weight_scale):
        np.testing.assert_array_equal(result, expected)
