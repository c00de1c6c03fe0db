"""The tflite_export command, run as a user runs it (a subprocess)."""

import hashlib
import json
import shutil
import socket
import threading

import keras
import numpy as np
import pytest

import kcompress as kc
from kcompress_demo import reference
from tests.tflite_export.helpers import assert_bad_input
from tests.tflite_export.helpers import cli

needs_qemu = pytest.mark.skipif(
    shutil.which("qemu-aarch64-static") is None,
    reason="qemu-user-static is not installed (make test installs it as "
           "root)")


@pytest.fixture(scope="module")
def files(tmp_path_factory, digits):
    root = tmp_path_factory.mktemp("cli")
    keras.utils.set_random_seed(0)
    model = reference.compile_reference(reference.reference_cnn())
    model.fit(digits.x_train, digits.y_train, batch_size=32, epochs=3,
              verbose=0)
    model.save(root / "float.keras")
    qat = reference.compile_reference(kc.quantize_model(model))
    qat.fit(digits.x_train, digits.y_train, batch_size=32, epochs=1,
            verbose=0)
    qat.save(root / "qat.keras")
    np.savez(root / "test.npz", x=digits.x_test, y=digits.y_test)
    np.savez(root / "train.npz", x=digits.x_train[:200])
    np.savez(root / "wrong.npz", x=np.zeros((4, 5, 5, 1), "float32"))
    done = cli("convert", str(root / "qat.keras"), "--mode=qat",
               f"--verify={root / 'test.npz'}", f"--out={root / 'qat.tflite'}")
    assert done.returncode == 0, done.stderr[-3000:]
    return root


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_convert_writes_model_and_reports_without_touching_input(files):
    before = _digest(files / "float.keras")
    done = cli("convert", str(files / "float.keras"), "--mode=int8",
               f"--representative={files / 'train.npz'}",
               f"--verify={files / 'test.npz'}",
               f"--out={files / 'ptq.tflite'}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert _digest(files / "float.keras") == before
    report = json.loads((files / "ptq.report.json").read_text())
    assert report["int8_coverage"] == 1.0
    assert report["verification"]["tflite_accuracy"] > 0.8
    assert "| mode | int8 |" in (files / "ptq.report.md").read_text()


def test_command_converts_on_tensorflow_whatever_keras_backend_says(files):
    done = cli("convert", str(files / "qat.keras"), "--mode=qat",
               f"--out={files / 'qat_from_jax_env.tflite'}",
               env={"KERAS_BACKEND": "jax"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert (files / "qat_from_jax_env.tflite").read_bytes() == (
        files / "qat.tflite").read_bytes()


def test_failed_convert_leaves_no_output(files):
    out = files / "never.tflite"
    done = cli("convert", str(files / "float.keras"), "--mode=int8",
               f"--out={out}")  # int8 without representative data
    assert_bad_input(done, "needs representative_data")
    assert not out.exists()
    assert not [p for p in files.iterdir() if p.name.startswith(".tmp-")]


def test_bench_host_and_report(files):
    done = cli("bench", str(files / "qat.tflite"), "--target=host",
               "--runs=20")
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((files / "qat.bench.host.json").read_text())
    assert result["min_ms"] <= result["median_ms"] <= result["p90_ms"]
    assert result["load_ms"] > 0
    done = cli("report", str(files / "qat.tflite"))
    assert done.returncode == 0
    assert "| qat.tflite | qat |" in done.stdout


@needs_qemu
def test_emulated_pi_outputs_bit_identical_to_host(files):
    done = cli("bench", str(files / "qat.tflite"), "--target=rpi4-emu",
               "--runs=5", "--warmup=1", f"--data={files / 'test.npz'}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "EMULATED" in done.stdout
    result = json.loads((files / "qat.bench.rpi4-emu.json").read_text())
    assert result["bit_identical_to_host"] is True
    assert result["emulated"] is True
    report = cli("report", str(files / "qat.tflite"))
    assert "rpi4-emu median ms (emulated)" in report.stdout
    assert "rpi4-emu: bit-identical" in report.stdout


@needs_qemu
def test_setup_emulator_says_where(files):
    done = cli("setup-emulator")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "rpi-emulator" in done.stdout and "cortex-a76" in done.stdout


def test_image_directory_data(files, tmp_path, digits):
    import tensorflow as tf

    for label in (0, 1):
        folder = tmp_path / "images" / f"class_{label}"
        folder.mkdir(parents=True)
        for i in range(3):
            image = digits.x_test[digits.y_test == label][i]
            pixels = tf.cast(tf.round(image * 255), tf.uint8)
            (folder / f"{i}.png").write_bytes(tf.io.encode_png(pixels).numpy())
    from tflite_export import data

    x, y = data.load(str(tmp_path / "images"), (None, 8, 8, 1))
    assert x.shape == (6, 8, 8, 1) and x.dtype == np.float32
    assert y.tolist() == [0, 0, 0, 1, 1, 1]
    np.testing.assert_allclose(x[0], digits.x_test[digits.y_test == 0][0],
                               atol=1 / 255)
    done = cli("convert", str(files / "float.keras"), "--mode=float32",
               f"--verify={tmp_path / 'images'}",
               f"--out={tmp_path / 'img.tflite'}")
    assert done.returncode == 0, done.stderr[-2000:]


def test_bad_inputs_exit_2_with_one_line(files, tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    truncated = tmp_path / "cut.keras"
    truncated.write_bytes((files / "float.keras").read_bytes()[:2000])
    broken = tmp_path / "cut.tflite"
    broken.write_bytes((files / "qat.tflite").read_bytes()[:500])
    np.savez(tmp_path / "s.npz", x=np.full((2, 8, 8, 1), "a"))
    cases = [
        (("convert", str(tmp_path / "missing.keras"), "--mode=float32",
          f"--out={tmp_path / 'o.tflite'}"), "file not found"),
        (("convert", str(tmp_path / "notes.txt"), "--mode=float32",
          f"--out={tmp_path / 'o.tflite'}"), "is not a .keras model"),
        (("convert", str(truncated), "--mode=float32",
          f"--out={tmp_path / 'o.tflite'}"), "truncated or corrupt"),
        (("bench", str(broken)), "truncated or corrupt"),
        (("bench", str(files / "qat.tflite"), f"--data={files / 'wrong.npz'}"),
         "does not fit the model input"),
        (("convert", str(files / "float.keras"), "--mode=float32",
          f"--verify={files / 'wrong.npz'}", f"--out={tmp_path / 'o.tflite'}"),
         "Expected (n, 8, 8, 1)"),
        (("bench", str(files / "qat.tflite"), f"--data={tmp_path / 's.npz'}"),
         "is not numeric"),
        (("bench", str(files / "qat.tflite"), "--target=tpu9000"),
         "unknown target 'tpu9000'"),
        (("convert", str(files / "float.keras"), "--mode=float32",
          "--out=/nonexistent/dir/o.tflite"), "cannot write to"),
        (("convert", str(files / "float.keras"), "--mode=int3",
          f"--out={tmp_path / 'o.tflite'}"), "value should be one of"),
        (("frobnicate",), "expected a command"),
        (("bench", str(files / "qat.tflite"), "--no_such_flag"),
         "no_such_flag"),
    ]
    for args, message in cases:
        assert_bad_input(cli(*args), message)


def test_missing_qemu_says_how_to_install(files, tmp_path):
    done = cli("bench", str(files / "qat.tflite"), "--target=rpi4-emu",
               env={"PATH": str(tmp_path)})
    assert_bad_input(done, "apt-get install qemu-user-static")


def test_silent_ssh_host_times_out(files):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)  # accepts, never speaks SSH
    port = server.getsockname()[1]
    accepted = []
    threading.Thread(target=lambda: accepted.append(server.accept()),
                     daemon=True).start()
    try:
        done = cli("bench", str(files / "qat.tflite"),
                   f"--target=ssh://nobody@127.0.0.1:{port}",
                   env={"TFLITE_EXPORT_SSH_TIMEOUT": "3"}, timeout=60)
    finally:
        server.close()
    assert_bad_input(done, "did not answer within 3 s")


@pytest.mark.skipif(shutil.which("adb") is None, reason="adb not installed")
def test_adb_without_device(files):
    assert_bad_input(cli("bench", str(files / "qat.tflite"), "--target=adb"),
                     "no Android device attached")
