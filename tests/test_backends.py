"""The digits pipeline on TensorFlow and JAX gives the same int8 file.

Each backend runs `python -m kcompress_demo.backends` in its own process
(a short run here; `benchmarks/backends.py` runs the full one).
"""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

SHORT = ["--epochs=3", "--fine_tune_epochs=1", "--qat_epochs=1"]


def _pipeline(backend):
    environment = dict(os.environ, KERAS_BACKEND=backend,
                       TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run(
        [sys.executable, "-m", "kcompress_demo.backends", *SHORT],
        env=environment, capture_output=True, text=True, timeout=900,
        check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def results():
    if importlib.util.find_spec("jax") is None:
        pytest.skip("jax is not installed (pip install -e '.[jax]')")
    return {backend: _pipeline(backend) for backend in ("tensorflow", "jax")}


def test_jax_file_has_the_ops_and_size_of_the_tensorflow_file(results):
    tf, jax = results["tensorflow"], results["jax"]
    assert jax["backend"] == "jax"
    assert jax["ops"] == tf["ops"]
    assert abs(jax["size"] - tf["size"]) <= 0.01 * tf["size"]
    assert jax["int8_coverage"] == tf["int8_coverage"] > 0.75
    assert "FLOOR" not in jax["ops"] and "ROUND" not in jax["ops"]


def test_jax_pipeline_is_accurate_pruned_and_faithful(results):
    tf, jax = results["tensorflow"], results["jax"]
    assert abs(jax["tflite_accuracy"] - tf["tflite_accuracy"]) <= 0.01
    assert jax["largest_weight_zero_fraction"] >= 0.79
    assert jax["top1_agreement"] >= 0.99
    assert jax["max_steps"] <= 1.01
