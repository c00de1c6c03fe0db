import numpy as np
import pytest
from keras import ops

from kcompress.pruning import ConstantSparsity
from kcompress.pruning import PolynomialDecay


def _run(schedule, steps):
    updates, values = zip(*(schedule(s) for s in steps))
    return ([bool(ops.convert_to_numpy(u)) for u in updates],
            np.array([float(ops.convert_to_numpy(v)) for v in values]))


def test_constant_sparsity_turns():
    schedule = ConstantSparsity(0.7, begin_step=10, end_step=30, frequency=10)
    updates, values = _run(schedule, range(0, 41, 5))
    assert updates == [False, False, True, False, True, False, True, False,
                       False]
    np.testing.assert_allclose(values, 0.7)


def test_constant_sparsity_open_end():
    schedule = ConstantSparsity(0.5, begin_step=0, frequency=100)
    updates, _ = _run(schedule, [0, 99, 100, 10_000])
    assert updates == [True, False, True, True]


def test_polynomial_decay_matches_tfmot_formula():
    schedule = PolynomialDecay(0.1, 0.9, begin_step=100, end_step=300,
                               power=3, frequency=50)
    steps = np.array([0, 100, 150, 200, 250, 300, 400])
    _, values = _run(schedule, steps)
    p = np.clip((steps - 100) / 200, 0, 1)
    expected = 0.9 + (0.1 - 0.9) * (1 - p) ** 3
    np.testing.assert_allclose(values, expected, rtol=1e-6)


def test_polynomial_decay_updates_on_end_step_off_turn():
    # TFMOT would stop at step 400 short of the final sparsity; we update at
    # end_step too.
    schedule = PolynomialDecay(0.0, 0.8, begin_step=0, end_step=450,
                               frequency=100)
    updates, values = _run(schedule, [400, 449, 450, 451, 500])
    assert updates == [True, False, True, False, False]
    assert values[2] == pytest.approx(0.8)


def test_schedule_accepts_tensor_steps():
    schedule = PolynomialDecay(0.0, 0.5, begin_step=0, end_step=10,
                               frequency=1)
    update, value = schedule(ops.convert_to_tensor(5, "int64"))
    assert bool(ops.convert_to_numpy(update))
    assert 0 < float(ops.convert_to_numpy(value)) < 0.5


@pytest.mark.parametrize("schedule", [
    ConstantSparsity(0.5, begin_step=3, end_step=90, frequency=7),
    PolynomialDecay(0.2, 0.9, begin_step=1, end_step=50, power=2,
                    frequency=3),
])
def test_config_round_trip(schedule):
    clone = type(schedule).from_config(schedule.get_config())
    assert clone == schedule
    assert clone.get_config() == schedule.get_config()


@pytest.mark.parametrize("kwargs, message", [
    (dict(target_sparsity=1.5, begin_step=0),
     r"Received: target_sparsity=1.5. Expected a float in \[0, 1\)"),
    (dict(target_sparsity=-0.1, begin_step=0), "target_sparsity=-0.1"),
    (dict(target_sparsity="0.5", begin_step=0), "target_sparsity='0.5'"),
    (dict(target_sparsity=0.5, begin_step=10, end_step=5),
     "begin_step=10, end_step=5"),
    (dict(target_sparsity=0.5, begin_step=0, frequency=0),
     "Received: frequency=0. Expected an integer > 0"),
    (dict(target_sparsity=0.5, begin_step=-1), "begin_step=-1"),
])
def test_constant_sparsity_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ConstantSparsity(**kwargs)


@pytest.mark.parametrize("kwargs, message", [
    (dict(final_sparsity=1.0), r"final_sparsity=1.0. Expected a float in"),
    (dict(initial_sparsity=1.2), "initial_sparsity=1.2"),
    (dict(end_step=-1), "begin_step=0, end_step=-1"),
    (dict(frequency=-5), "frequency=-5"),
    (dict(power=0), "power=0"),
])
def test_polynomial_decay_bad_input(kwargs, message):
    args = dict(initial_sparsity=0.0, final_sparsity=0.8, begin_step=0,
                end_step=100)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        PolynomialDecay(**args)
