"""The families of channel plans and the cheapest plan that fits."""

import pytest

from kcompress.budget import candidates
from kcompress.budget.sensitivity_table import Row
from kcompress.budget.sensitivity_table import SensitivityTable

SAVINGS = {"a": 1000.0, "b": 100.0}


def _table():
    rows = []
    for group, drops in (("a", (0.0, 0.01, 0.05)), ("b", (0.1, 0.3, 0.6))):
        for fraction, drop in zip((0.25, 0.5, 0.75), drops):
            rows.append(Row(group, "channels", fraction, 8, 0.9 - drop,
                            drop))
    return SensitivityTable(0.9, rows)


def _size(channels):
    """A stand-in file: parameters kept."""
    return {"size_bytes": sum(saving * (1 - channels.get(group, 0.0))
                              for group, saving in SAVINGS.items())}


def test_uniform_plans_cut_every_group_alike():
    uniform = candidates.family("uniform", None, SAVINGS, 1e-3)
    assert uniform.at(0.0) == {}
    assert uniform.at(1.0) == {"a": 0.5, "b": 0.5}
    assert uniform.at(100.0) == {"a": 0.95, "b": 0.95}
    assert uniform.maxed(uniform.at(100.0))
    assert not uniform.maxed(uniform.at(1.0))


def test_sensitivity_plans_cut_the_cheap_group_first():
    plans = candidates.family("sensitivity", _table(), SAVINGS, 1e-3)
    first = plans.at(0.2)
    assert first.get("a", 0) > first.get("b", 0)
    assert plans.maxed({"a": 0.75, "b": 0.75})


@pytest.mark.parametrize("name", candidates.FAMILIES)
def test_the_cheapest_fit_is_the_smallest_cut_that_fits(name):
    plans = candidates.family(name, _table(), SAVINGS, 1e-3)
    budget = 700.0
    knob, channels, result = candidates.cheapest_fit(
        plans, _size, lambda r: r["size_bytes"] <= budget)
    assert knob is not None and result["size_bytes"] <= budget
    # A slightly smaller knob misses: bisection found the edge.
    missed = _size(plans.at(knob * 0.8))["size_bytes"]
    assert missed > budget or plans.at(knob * 0.8) == channels


def test_no_plan_fits():
    plans = candidates.family("uniform", None, SAVINGS, 1e-3)
    knob, channels, result = candidates.cheapest_fit(
        plans, _size, lambda r: r["size_bytes"] <= 10.0)
    assert knob is None
    assert channels == {"a": 0.95, "b": 0.95}
    assert result["size_bytes"] == pytest.approx(55.0)


@pytest.mark.parametrize("plans, message", [
    ("uniform", "non-empty tuple"),
    ((), "non-empty tuple"),
    (("uniform", "random"), "random"),
])
def test_bad_families_are_refused(plans, message):
    with pytest.raises(ValueError, match=message):
        candidates.check_families(plans)
