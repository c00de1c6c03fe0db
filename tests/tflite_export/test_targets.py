"""`targets.bench`: settings, the host target, and outputs with data."""

import numpy as np
import pytest

from tflite_export import targets
from tflite_export.errors import DataError
from tflite_export.errors import TargetError
from tflite_export.verification import run_tflite


@pytest.mark.parametrize("kwargs, message", [
    (dict(runs=0), "runs=0"), (dict(runs=100_001), "runs=100001"),
    (dict(warmup=-1), "warmup=-1"), (dict(threads=0), "threads=0"),
    (dict(runs=2.5), "runs=2.5"), (dict(threads=True), "threads=True"),
])
def test_settings_out_of_bounds_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        targets.check_settings(**{"threads": 1, "runs": 5, "warmup": 0,
                                  **kwargs})


def test_host_bench_with_data_returns_the_files_outputs(tiny):
    path = str(tiny / "tiny.tflite")
    x = np.random.default_rng(0).random((5, 8, 8, 1), "float32")
    result = targets.bench("host", path, runs=3, warmup=0, x=x)
    assert result["target"] == "host" and result["runs"] == 3
    assert result["min_ms"] <= result["median_ms"] <= result["p90_ms"]
    expected, _ = run_tflite((tiny / "tiny.tflite").read_bytes(), [x])
    np.testing.assert_allclose(result["outputs"], expected, atol=1e-6)


def test_unknown_target_and_misfit_data(tiny):
    path = str(tiny / "tiny.tflite")
    with pytest.raises(TargetError, match="unknown target 'gpu'"):
        targets.bench("gpu", path, runs=1)
    with pytest.raises(DataError, match="does not fit the model input"):
        targets.bench("host", path, runs=1, x=np.zeros((2, 4, 4, 1)))
