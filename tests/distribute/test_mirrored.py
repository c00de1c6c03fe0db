"""Pruning and QAT under tf.distribute.MirroredStrategy (2 logical CPUs).

The strategy needs the CPU split into two logical devices before TensorFlow
starts, so the work runs once in its own process (mirrored_job.py) and these
tests check what it reports.
"""

import json
import os
import subprocess
import sys

import pytest

JOB = os.path.join(os.path.dirname(__file__), "mirrored_job.py")


@pytest.fixture(scope="module")
def result():
    done = subprocess.run([sys.executable, JOB], capture_output=True,
                          text=True, timeout=900)
    lines = [line for line in done.stdout.splitlines()
             if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT "):])


def test_two_replicas(result):
    assert result["replicas"] == 2


def test_pruning_reaches_target_with_one_step_per_global_batch(result):
    for steps in result["pruning_steps"]:
        assert steps == [result["steps"]] * 2  # both replicas, global batches
    for name, sparsity in result["sparsity"].items():
        assert abs(sparsity - 0.8) <= 0.005, name
    assert result["pruned_accuracy"] >= result["float_accuracy"] - 0.01


def test_masks_and_ranges_identical_on_every_replica(result):
    assert result["masks_identical"]
    assert result["ranges_identical"]


def test_saved_under_strategy_loads_outside_with_same_outputs(result):
    assert result["reload_max_diff"] <= 1e-5


def test_qat_under_strategy_converts(result):
    assert result["qat_agreement"] >= 0.995
    assert round(result["qat_max_steps"], 3) <= 2
