"""The int8 kernels are a room of their own: they depend on `keras.ops`
and on each other, never on the training side (wrappers, configs,
layers), so the training side can call them and not the other way."""

import ast
import pathlib

import numpy as np
import pytest
from keras import ops

from kcompress.quantization import int8_kernels

_PACKAGE = pathlib.Path(int8_kernels.__file__).parent
_ALLOWED = ("keras.ops", "math", "kcompress.quantization.int8_kernels")


def _imports(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names = [f"{node.module}.{alias.name}" for alias in node.names]
            yield from (names if node.module == "keras" else [node.module])


def test_kernels_import_nothing_of_the_training_side():
    modules = sorted(_PACKAGE.glob("*.py"))
    assert len(modules) >= 4
    for path in modules:
        for name in _imports(path):
            assert name.startswith(_ALLOWED), (path.name, name)


@pytest.mark.parametrize("output_bounds,ready", [((-1.0, 1.0), True),
                                                  ((1.0, -1.0), False)])
def test_every_kernel_returns_values_and_readiness(output_bounds, ready):
    """Each kernel gives `(values, ready)`; `ready` is False while a range
    is unset (min > max)."""
    x = np.array([[0.5, -0.25]], "float32")
    grid = (-1.0, 1.0)
    calls = {
        "requantized": lambda f: f(lambda a, k, b: a * k, x,
                                   np.ones(2, "float32"), None, 1.0, None,
                                   grid, output_bounds),
        "mean_requantized": lambda f: f(x, (1,), False, grid, output_bounds),
        "multiply_requantized": lambda f: f(x, x, [grid] * 2, output_bounds),
        "add_requantized": lambda f: f(x, x, [grid] * 2, output_bounds),
        "quantize_requantized": lambda f: f(x, output_bounds),
        "converted": lambda f: f(x, grid, output_bounds),
        "rsqrt_requantized": lambda f: f(np.abs(x), (0.0, 1.0),
                                         output_bounds),
    }
    assert sorted(calls) == sorted(int8_kernels.KERNELS)
    for name, call in calls.items():
        values, is_ready = call(getattr(int8_kernels, name))
        assert tuple(values.shape)[0] == 1, name
        assert bool(ops.convert_to_numpy(is_ready)) is ready, name
