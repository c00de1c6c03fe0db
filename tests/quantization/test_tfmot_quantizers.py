"""Quantizer objects with TFMOT's interface (`tfmot_quantizers`)."""

import keras
import numpy as np
import pytest
from keras import ops

from kcompress.quantization import tfmot_quantizers as tq


def _host():
    return keras.layers.Layer()  # gives the quantizers' variables a home


def _levels(values):
    return len(np.unique(np.round(ops.convert_to_numpy(values), 6)))


@pytest.mark.parametrize("cls", [tq.LastValueQuantizer,
                                 tq.MovingAverageQuantizer,
                                 tq.AllValuesQuantizer])
def test_config_round_trips_and_bits_are_checked(cls):
    q = cls(num_bits=4, per_axis=True, symmetric=False, narrow_range=True)
    assert cls.from_config(q.get_config()) == q
    assert keras.saving.get_registered_name(cls).startswith("kcompress>")
    with pytest.raises(ValueError, match="num_bits=9"):
        cls(num_bits=9, per_axis=False, symmetric=True, narrow_range=False)


def test_last_value_quantizes_on_the_tensor_range():
    x = np.random.default_rng(0).normal(size=(64, 6)).astype("float32")
    q = tq.LastValueQuantizer(4, per_axis=False, symmetric=True,
                              narrow_range=True)
    variables = q.build(x.shape, "w", _host())
    y = q(x, True, variables)
    assert _levels(y) <= 15  # narrow 4 bits: [-7, 7]
    m = np.abs(x).max()
    np.testing.assert_allclose(ops.convert_to_numpy(variables["max_var"]), m)
    np.testing.assert_allclose(ops.convert_to_numpy(variables["min_var"]), -m)
    assert np.abs(ops.convert_to_numpy(y) - x).max() <= m / 7 / 2 + 1e-6


def test_per_axis_keeps_one_range_per_channel():
    x = np.random.default_rng(1).normal(size=(3, 3, 2, 5)).astype("float32")
    x *= np.arange(1, 6, dtype="float32")
    q = tq.LastValueQuantizer(8, per_axis=True, symmetric=True,
                              narrow_range=True)
    variables = q.build(x.shape, "k", _host())
    q(x, True, variables)
    np.testing.assert_allclose(ops.convert_to_numpy(variables["max_var"]),
                               np.abs(x).reshape(-1, 5).max(0), rtol=1e-6)


def test_moving_average_trains_its_range_and_infers_with_it():
    x = np.linspace(-1.0, 3.0, 40, dtype="float32").reshape(4, 10)
    q = tq.MovingAverageQuantizer(8, per_axis=False, symmetric=False,
                                  narrow_range=False)
    variables = q.build(x.shape, "a", _host())
    q(x, True, variables)
    # From TFMOT's starting range [-6, 6], one step of decay 0.999.
    np.testing.assert_allclose(
        ops.convert_to_numpy(variables["min_var"]), -6 * 0.999 - 0.001,
        rtol=1e-6)
    np.testing.assert_allclose(
        ops.convert_to_numpy(variables["max_var"]), 6 * 0.999 + 3 * 0.001,
        rtol=1e-6)
    before = ops.convert_to_numpy(variables["max_var"])
    y = q(x * 10, False, variables)  # inference: the range stays
    assert ops.convert_to_numpy(variables["max_var"]) == before
    step = (before - ops.convert_to_numpy(variables["min_var"])) / 255
    assert ops.convert_to_numpy(y).max() <= before + 3 * step  # nudged


def test_all_values_only_widens():
    q = tq.AllValuesQuantizer(8, per_axis=False, symmetric=False,
                              narrow_range=False)
    variables = q.build((4,), "a", _host())
    q(np.array([-1.0, 2.0, 0.0, 1.0], "float32"), True, variables)
    q(np.array([-0.5, 1.0, 0.0, 0.2], "float32"), True, variables)
    assert float(ops.convert_to_numpy(variables["min_var"])) == -1.0
    assert float(ops.convert_to_numpy(variables["max_var"])) == 2.0
