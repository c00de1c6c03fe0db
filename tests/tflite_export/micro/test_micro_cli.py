"""`tflite_export micro`: the files, the report, and how it fails."""

import json

import keras
import numpy as np
import pytest

import tflite_export as te
from tests.tflite_export.helpers import assert_bad_input
from tests.tflite_export.helpers import cli
from tests.tflite_export.helpers import digests

# The trained models and their exports (conftest.py) are made once, on
# one worker: `make test` runs with --dist loadgroup.
pytestmark = pytest.mark.xdist_group("micro_models")


@pytest.fixture(scope="module")
def saved(qat_models, digits, tmp_path_factory):
    root = tmp_path_factory.mktemp("micro_cli")
    qat_models["digits_cnn"].save(root / "qat.keras")
    np.savez(root / "rep.npz", x=digits.x_train[:32])
    np.savez(root / "test.npz", x=digits.x_test[:100],
             y=digits.y_test[:100])
    keras.utils.set_random_seed(0)
    float_model = keras.Sequential([
        keras.Input((8, 8, 1)), keras.layers.Flatten(),
        keras.layers.Dense(3)])
    (root / "float.tflite").write_bytes(te.convert(float_model, "float32"))
    return root


def test_writes_the_firmware_files_and_says_it_fits(saved, tmp_path):
    out = tmp_path / "firmware"
    before = digests(saved)
    done = cli("micro", str(saved / "qat.keras"),
               f"--representative={saved / 'rep.npz'}",
               f"--verify={saved / 'test.npz'}", f"--out={out}",
               "--board=arduino-nano-33-ble-sense")
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == [
        "micro_report.json", "micro_report.md", "model.tflite",
        "model_data.cc", "model_data.h", "model_ops.h"]
    report = json.loads((out / "micro_report.json").read_text())
    assert report["fit"]["fits"] and report["flash"] == (
        out / "model.tflite").stat().st_size
    assert report["agreement"]["samples"] == 100
    assert report["agreement"]["top1_vs_keras"] >= 0.995
    assert "| arduino-nano-33-ble-sense | fits" in done.stdout
    assert digests(saved) == before  # the inputs are untouched


def test_over_budget_exits_2_with_how_much(saved, tmp_path):
    done = cli("micro", str(saved / "qat.keras"),
               f"--representative={saved / 'rep.npz'}",
               f"--out={tmp_path / 'out'}", "--board=raspberry-pi-pico",
               "--max_ram=2KB")
    assert_bad_input(done, "does not fit: RAM: needs ")
    assert "--max_ram has 2,048 B" in done.stderr
    assert "DOES NOT FIT" in done.stdout  # the report is printed and written
    assert (tmp_path / "out" / "micro_report.md").exists()


@pytest.mark.parametrize("extra, message", [
    (["--board=arduino-uno"], "Received: board='arduino-uno'. Expected one "
     "of arduino-nano-33-ble-sense"),
    (["--max_flash=lots"], "Received: --max_flash=lots. Expected a size"),
    (["--mode=int8"], "--mode is a flag of `convert`, not of `micro`"),
])
def test_bad_flags_exit_2_before_any_work(saved, tmp_path, extra, message):
    done = cli("micro", str(saved / "qat.keras"),
               f"--representative={saved / 'rep.npz'}",
               f"--out={tmp_path / 'out'}", *extra)
    assert_bad_input(done, message)
    assert not (tmp_path / "out").exists()


def test_an_out_that_is_a_file_is_refused(saved):
    done = cli("micro", str(saved / "qat.keras"),
               f"--representative={saved / 'rep.npz'}",
               f"--out={saved / 'rep.npz'}")
    assert_bad_input(done, "is a file; expected a directory")


def test_a_float_file_is_refused_naming_its_op(saved, tmp_path):
    done = cli("micro", str(saved / "float.tflite"),
               f"--representative={saved / 'rep.npz'}",
               f"--out={tmp_path / 'out'}")
    assert_bad_input(done, "keeps float ops, which a microcontroller's int8 "
                     "kernels cannot run: FULLY_CONNECTED")
