"""Pruning schedules: pure functions `step -> (should_update, sparsity)`.

The names and arguments follow TFMOT (`tfmot.sparsity.keras`), so a TFMOT user
can switch by changing the import. Steps are training steps (batches), counted
from 0. Schedules are written in `keras.ops` and take a Python int or a scalar
tensor, so they run inside a traced (and XLA-compiled) train step.

One deliberate difference from TFMOT: a schedule also updates on `end_step`
itself, so the final sparsity is reached even when `end_step - begin_step` is
not a multiple of `frequency`. TFMOT silently stops short in that case.
"""

from typing import Any
from typing import Protocol

import keras
from keras import ops

from kcompress._arguments import as_int
from kcompress._arguments import as_real

__all__ = ["PruningSchedule", "ConstantSparsity", "PolynomialDecay",
           "ScheduleFn"]

class ScheduleFn(Protocol):
    """The schedule contract: `step -> (should_update, sparsity)`.

    `step` is an integer (a Python int or a scalar tensor): the 1-based
    number of the training batch, as in TFMOT (the first batch of a fit is
    step 1, and a fit of `end_step` batches ends on step `end_step`).
    `should_update` is a boolean scalar saying whether masks are recomputed
    at this step,
    and `sparsity` the fraction of weights to zero, in [0, 1). Every
    `PruningSchedule` is one, and so is any function of that form.
    """

    def __call__(self, step: Any) -> tuple[Any, Any]: ...


def _check_sparsity(name, value):
    """`value` as a float in [0, 1), or a ValueError."""
    number = as_real(value)
    if number is None or not 0.0 <= number < 1.0:
        raise ValueError(
            f"Received: {name}={value!r}. Expected a float in [0, 1)."
        )
    return number


def _check_steps(begin_step, end_step, frequency, allow_open_end):
    """`(begin_step, end_step, frequency)` as Python ints (numpy integers
    and integral floats are taken, as TFMOT takes them), or a ValueError."""
    steps = []
    for name, value in (("begin_step", begin_step), ("end_step", end_step),
                        ("frequency", frequency)):
        steps.append(as_int(value))
        if steps[-1] is None:
            raise ValueError(
                f"Received: {name}={value!r}. Expected an integer."
            )
    begin_step, end_step, frequency = steps
    if begin_step < 0:
        raise ValueError(
            f"Received: begin_step={begin_step}. Expected an integer >= 0."
        )
    if frequency <= 0:
        raise ValueError(
            f"Received: frequency={frequency}. Expected an integer > 0."
        )
    if allow_open_end and end_step == -1:
        return steps
    if end_step < begin_step:
        accepted = "-1 (never stop) or " if allow_open_end else ""
        raise ValueError(
            f"Received: begin_step={begin_step}, end_step={end_step}. "
            f"Expected end_step to be {accepted}an integer >= begin_step."
        )
    return steps


class PruningSchedule:
    """Base class: a callable `step -> (should_update, sparsity)`.

    Subclasses set `begin_step`, `end_step` (`-1` for never) and `frequency`,
    and implement `sparsity(step)`. Any plain callable with the same contract
    is accepted wherever a schedule is.
    """

    begin_step = 0
    end_step = -1
    frequency = 100

    def should_update(self, step):
        """Whether the masks are recomputed at `step` (a boolean tensor)."""
        step = ops.cast(step, "int64")
        begin = ops.cast(self.begin_step, "int64")
        in_range = ops.greater_equal(step, begin)
        if self.end_step != -1:
            end = ops.cast(self.end_step, "int64")
            in_range = ops.logical_and(in_range, ops.less_equal(step, end))
            on_turn = ops.logical_or(
                ops.equal(ops.mod(step - begin, self.frequency), 0),
                ops.equal(step, end),
            )
        else:
            on_turn = ops.equal(ops.mod(step - begin, self.frequency), 0)
        return ops.logical_and(in_range, on_turn)

    def sparsity(self, step):
        raise NotImplementedError

    def __call__(self, step):
        return self.should_update(step), self.sparsity(step)

    def get_config(self):
        raise NotImplementedError

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return type(self) is type(other) and (
            self.get_config() == other.get_config()
        )

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


@keras.saving.register_keras_serializable(package="kcompress")
class ConstantSparsity(PruningSchedule):
    """Prunes to one sparsity every `frequency` steps in `[begin, end]`.

    Args:
        target_sparsity: float in [0, 1).
        begin_step: first step at which to prune.
        end_step: last step at which to prune, or -1 to prune until training
            stops.
        frequency: prune every `frequency` steps.

    Example:

    >>> schedule = ConstantSparsity(0.5, begin_step=0, frequency=10)
    >>> [bool(schedule(s)[0]) for s in (0, 5, 10)]
    [True, False, True]
    >>> float(schedule(10)[1])
    0.5
    """

    def __init__(self, target_sparsity, begin_step, end_step=-1,
                 frequency=100):
        self.target_sparsity = _check_sparsity("target_sparsity",
                                               target_sparsity)
        self.begin_step, self.end_step, self.frequency = _check_steps(
            begin_step, end_step, frequency, allow_open_end=True)

    def sparsity(self, step):
        del step
        return ops.convert_to_tensor(self.target_sparsity, "float32")

    def get_config(self):
        return {
            "target_sparsity": self.target_sparsity,
            "begin_step": self.begin_step,
            "end_step": self.end_step,
            "frequency": self.frequency,
        }


@keras.saving.register_keras_serializable(package="kcompress")
class PolynomialDecay(PruningSchedule):
    """Raises sparsity from `initial_sparsity` to `final_sparsity` polynomially.

    At step `s` the sparsity is
    `final + (initial - final) * (1 - p) ** power` with
    `p = clip((s - begin_step) / (end_step - begin_step), 0, 1)`, as in TFMOT.
    Masks are updated every `frequency` steps in `[begin_step, end_step]` and on
    `end_step` itself.

    Args:
        initial_sparsity: float in [0, 1), sparsity at `begin_step`.
        final_sparsity: float in [0, 1), sparsity from `end_step` on.
        begin_step: first step at which to prune.
        end_step: step at which `final_sparsity` is reached.
        power: exponent of the decay; 3 starts fast and ends slowly.
        frequency: prune every `frequency` steps.

    Example:

    >>> schedule = PolynomialDecay(0.0, 0.8, begin_step=0, end_step=100,
    ...                            power=1, frequency=10)
    >>> round(float(schedule(50)[1]), 3)
    0.4
    >>> bool(schedule(101)[0])
    False
    """

    def __init__(self, initial_sparsity, final_sparsity, begin_step, end_step,
                 power=3, frequency=100):
        self.initial_sparsity = _check_sparsity("initial_sparsity",
                                                initial_sparsity)
        self.final_sparsity = _check_sparsity("final_sparsity",
                                              final_sparsity)
        self.begin_step, self.end_step, self.frequency = _check_steps(
            begin_step, end_step, frequency, allow_open_end=False)
        number = as_real(power)
        if number is None or number <= 0:
            raise ValueError(
                f"Received: power={power!r}. Expected a number > 0."
            )
        self.power = number if as_int(power) is None else as_int(power)

    def sparsity(self, step):
        span = max(self.end_step - self.begin_step, 1)
        progress = ops.divide(
            ops.cast(ops.cast(step, "int64") - self.begin_step, "float32"),
            float(span),
        )
        progress = ops.clip(progress, 0.0, 1.0)
        remaining = ops.power(ops.subtract(1.0, progress), float(self.power))
        return ops.add(
            self.final_sparsity,
            ops.multiply(self.initial_sparsity - self.final_sparsity,
                         remaining),
        )

    def get_config(self):
        return {
            "initial_sparsity": self.initial_sparsity,
            "final_sparsity": self.final_sparsity,
            "begin_step": self.begin_step,
            "end_step": self.end_step,
            "power": self.power,
            "frequency": self.frequency,
        }
