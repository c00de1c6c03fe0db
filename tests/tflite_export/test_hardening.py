"""One test per defect of the hardening audit (issue 17), named after the
behaviour it pins down. Each failed on 63187a6."""

import os
import shutil
import signal
import stat
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

import tflite_export as te
from tests.tflite_export.helpers import assert_bad_input
from tests.tflite_export.helpers import cli
from tests.tflite_export.helpers import digests
from tflite_export import cli as cli_lib
from tflite_export import remote
from tflite_export import reports
from tflite_export.bench_script import QuantileSketch


def _copy(tiny, tmp_path, name):
    shutil.copy(tiny / name, tmp_path / name)
    return tmp_path / name


# 1. --out never overwrites the input, and reports sit beside the output.

@pytest.mark.parametrize("out", ["c.keras", "other.keras", "noext",
                                 "dir/noext"])
def test_out_must_be_a_tflite_path_and_never_the_input(tiny, tmp_path, out):
    model = _copy(tiny, tmp_path, "tiny.keras")
    shutil.copy(model, tmp_path / "c.keras")
    shutil.copy(model, tmp_path / "other.keras")
    (tmp_path / "dir").mkdir()
    before = digests(tmp_path)
    done = cli("convert", "c.keras", "--mode=float32", f"--out={out}",
               cwd=tmp_path)
    assert_bad_input(done, "does not end in .tflite")
    assert digests(tmp_path) == before


def test_out_that_is_the_input_through_a_link_is_refused(tiny, tmp_path):
    model = _copy(tiny, tmp_path, "tiny.tflite")
    os.symlink(model, tmp_path / "link.tflite")
    before = digests(tmp_path)
    done = cli("bench", "link.tflite", "--runs=1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr  # the bench JSON is elsewhere
    assert digests(tmp_path)["tiny.tflite"] == before["tiny.tflite"]


def test_report_paths_come_from_the_real_suffix(tiny, tmp_path):
    (tmp_path / "out").mkdir()
    done = cli("convert", str(tiny / "tiny.keras"), "--mode=float32",
               f"--out={tmp_path / 'out' / 'm.tflite'}")
    assert done.returncode == 0, done.stderr
    assert sorted(os.listdir(tmp_path / "out")) == [
        "m.report.json", "m.report.md", "m.tflite"]
    assert reports.report_paths("a/b.c.tflite") == ("a/b.c.report.json",
                                                     "a/b.c.report.md")


# 4. Bounded bench, children that die with us.

def test_runs_and_warmup_are_bounded(tiny):
    model = str(tiny / "tiny.tflite")
    assert_bad_input(cli("bench", model, "--runs=1000000000000"),
                     "not an integer in the range [1, 100000]")
    assert_bad_input(cli("bench", model, "--runs=0"),
                     "not an integer in the range [1, 100000]")
    assert_bad_input(cli("bench", model, "--warmup=-1"),
                     "not an integer in the range [0, 10000]")
    with pytest.raises(ValueError, match="runs=0"):
        from tflite_export import targets
        targets.bench("host", model, runs=0)


def test_bench_timings_use_bounded_memory():
    rng = np.random.default_rng(0)
    values = rng.lognormal(mean=0.0, sigma=1.0, size=200_000)
    sketch = QuantileSketch()
    for value in values:
        sketch.add(float(value))
    assert len(sketch.buckets) < 2000  # not one entry per run
    for q in (0.5, 0.9):
        exact = np.quantile(values, q)
        assert abs(sketch.quantile(q) - exact) <= 0.011 * exact
    assert sketch.min == values.min() and sketch.max == values.max()


def _start_bench(args):
    process = subprocess.Popen(
        [sys.executable, "-m", "tflite_export", "bench", *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return process


def _bench_children(path):
    # The whole path: another test worker may bench a file of the same name.
    done = subprocess.run(["pgrep", "-f", f"bench_script.py {path}"],
                          capture_output=True, text=True)
    return done.stdout.split()


def _wait_for(predicate, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM,
                                 signal.SIGKILL])
def test_ending_the_command_ends_the_bench_child(slow_tflite, sig):
    process = _start_bench([str(slow_tflite), "--runs=100000",
                            "--noxnnpack"])
    try:
        assert _wait_for(lambda: _bench_children(slow_tflite))
        process.send_signal(sig)
        _, stderr = process.communicate(timeout=30)
        assert _wait_for(lambda: not _bench_children(slow_tflite), 10)
    finally:
        process.kill()
    if sig != signal.SIGKILL:
        assert process.returncode == 2
        assert stderr.startswith("tflite_export: error: interrupted")
        assert "Traceback" not in stderr and len(stderr.splitlines()) == 1
    assert not list(slow_tflite.parent.glob("*.bench.*.json"))


# 5. Tracebacks that are now one line and exit 2.

def test_unusual_files_exit_2(tiny, tmp_path):
    (tmp_path / "zero.npz").write_bytes(b"")
    (tmp_path / "cut.npz").write_bytes((tiny / "good.npz").read_bytes()[:300])
    keras.Sequential([keras.layers.Dense(3)]).save(tmp_path / "unbuilt.keras")
    (tmp_path / "dir.tflite").mkdir()
    (tmp_path / "existing_dir.tflite").mkdir()
    model, tflite = str(tiny / "tiny.keras"), str(tiny / "tiny.tflite")
    out = str(tmp_path / "o.tflite")
    cases = [
        (("bench", tflite, f"--data={tmp_path / 'zero.npz'}"), "is empty"),
        (("bench", tflite, f"--data={tmp_path / 'cut.npz'}"),
         "truncated or corrupt"),
        (("convert", str(tmp_path / "unbuilt.keras"), "--mode=float32",
          f"--out={out}"), "is not built"),
        (("bench", str(tmp_path / "dir.tflite")), "is a directory"),
        (("report", str(tmp_path / "dir.tflite")), "is a directory"),
        (("convert", model, "--mode=float32",
          f"--out={tmp_path / 'existing_dir.tflite'}"), "is a directory"),
        (("convert", model, "--mode=float32", "--out=/proc/x.tflite"),
         "cannot write to /proc"),
        (("convert", model, "--mode=float32",
          f"--verify={tmp_path / 'cut.npz'}", f"--out={out}"),
         "truncated or corrupt"),
    ]
    for args, message in cases:
        assert_bad_input(cli(*args), message)
    assert not os.path.exists(out)


def test_plain_npy_is_accepted_as_inputs(tiny, tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((3, 8, 8, 1), "float32"))
    done = cli("bench", str(_copy(tiny, tmp_path, "tiny.tflite")),
               f"--data={tmp_path / 'x.npy'}", "--runs=2")
    assert done.returncode == 0, done.stderr


def test_output_directory_failing_mid_run_is_one_line(tiny, tmp_path,
                                                      monkeypatch, capfd):
    def read_only(*args, **kwargs):
        raise PermissionError(30, "Read-only file system")

    monkeypatch.setattr(os, "replace", read_only)
    with pytest.raises(SystemExit) as exit_info:
        cli_lib.run(["tflite_export", "convert", str(tiny / "tiny.keras"),
                     "--mode=float32", f"--out={tmp_path / 'o.tflite'}"])
    assert exit_info.value.code == 2
    err = capfd.readouterr().err
    assert err.strip() == (f"tflite_export: error: cannot write "
                           f"{tmp_path / 'o.tflite'}: Read-only file system")
    assert os.listdir(tmp_path) == []  # no partial file, no temp file


def test_bench_checks_its_json_path_before_running(tiny, tmp_path):
    model = _copy(tiny, tmp_path, "tiny.tflite")
    (tmp_path / "tiny.bench.host.json").mkdir()
    assert_bad_input(cli("bench", str(model)), "is a directory")


def test_verify_labels_must_match_the_samples(tiny, tmp_path):
    np.savez(tmp_path / "short.npz", x=np.zeros((6, 8, 8, 1), "float32"),
             y=np.zeros(4, int))
    assert_bad_input(
        cli("convert", str(tiny / "tiny.keras"), "--mode=float32",
            f"--verify={tmp_path / 'short.npz'}",
            f"--out={tmp_path / 'o.tflite'}"),
        "6 samples but labels y of shape (4,)")


def test_report_refuses_corrupt_or_incomplete_sidecars(tiny, tmp_path):
    model = _copy(tiny, tmp_path, "tiny.tflite")
    (tmp_path / "tiny.report.json").write_text("{not json")
    assert_bad_input(cli("report", str(model)), "cannot read")
    (tmp_path / "tiny.report.json").write_text('{"mode": "float32"}')
    (tmp_path / "tiny.bench.host.json").write_text('{"median_ms": 1}')
    assert_bad_input(cli("report", str(model)), "has no target")


def test_ctrl_c_during_convert_is_one_line(tiny, tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "tflite_export", "convert",
         str(tiny / "tiny.keras"), "--mode=float32",
         f"--out={tmp_path / 'o.tflite'}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)  # inside the Keras import or the conversion
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    if process.returncode == 0:
        pytest.skip("the conversion finished before the signal")
    assert process.returncode == 2, stderr
    assert stderr == ("tflite_export: error: interrupted (Ctrl-C); child "
                      "processes ended, no output written\n")
    assert not os.path.exists(tmp_path / "o.tflite")


# 6. Bad input that was accepted silently.

def test_string_labels_nan_data_and_garbage_models_are_refused(tiny,
                                                               tmp_path):
    np.savez(tmp_path / "s.npz", x=np.zeros((3, 8, 8, 1), "float32"),
             y=np.array(["a", "b", "c"]))
    x = np.zeros((3, 8, 8, 1), "float32")
    x[0, 0, 0, 0] = np.nan
    np.savez(tmp_path / "nan.npz", x=x)
    (tmp_path / "garbage.tflite").write_text("garbage")
    model, tflite = str(tiny / "tiny.keras"), str(tiny / "tiny.tflite")
    assert_bad_input(cli("convert", model, "--mode=float32",
                         f"--verify={tmp_path / 's.npz'}",
                         f"--out={tmp_path / 'o.tflite'}"),
                     "are not integers")
    assert_bad_input(cli("bench", tflite, f"--data={tmp_path / 'nan.npz'}"),
                     "NaN or infinite")
    assert_bad_input(cli("report", str(tmp_path / "garbage.tflite")),
                     "truncated or corrupt")


# 9. Output files get the user's umask.

def test_outputs_get_the_umask_not_0600(tiny, tmp_path):
    done = subprocess.run(
        ["sh", "-c", f"umask 022 && exec {sys.executable} -m tflite_export "
         f"convert {tiny / 'tiny.keras'} --mode=float32 "
         f"--out={tmp_path / 'o.tflite'}"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for name in ("o.tflite", "o.report.json", "o.report.md"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o644


# 10. Messages that said the wrong thing.

def test_messages_say_what_is_wrong(tiny, tmp_path):
    (tmp_path / "zero.keras").write_bytes(b"")
    (tmp_path / "cut.keras").write_bytes(
        (tiny / "tiny.keras").read_bytes()[:500])
    (tmp_path / "dir.keras").mkdir()
    (tmp_path / "d.csv").write_text("1,2,3\n4,5,6\n")
    out = f"--out={tmp_path / 'o.tflite'}"
    for name, message in (("zero.keras", "is empty"),
                          ("cut.keras", "is not a .keras archive"),
                          ("dir.keras", "is a directory")):
        assert_bad_input(cli("convert", str(tmp_path / name),
                             "--mode=float32", out), message)
    assert_bad_input(cli("convert", str(tiny / "tiny.keras"),
                         "--mode=float32", f"--verify={tmp_path / 'd.csv'}",
                         out), "is neither a .npz nor a .npy file")
    assert_bad_input(cli("bench", str(tiny / "tiny.tflite"), "--runs=0"),
                     "--runs=0")


def test_flex_error_names_real_ops_and_the_flag(tiny, tmp_path):
    model = keras.Sequential([keras.Input((5, 3)), keras.layers.LSTM(4),
                              keras.layers.Dense(2)])
    with pytest.raises(te.ConversionError) as error:
        te.convert(model, "float32")
    message = str(error.value)
    # A recurrent model is told both ways out before the converter runs.
    assert "batch_size=1" in message and "allow_flex" in message
    assert "entry_function" not in message and ", lite" not in message
    path = tmp_path / "lstm.keras"
    model.save(path)
    done = cli("convert", str(path), "--mode=float32", "--allow_flex",
               f"--out={tmp_path / 'lstm.tflite'}")
    assert done.returncode == 0, done.stderr
    assert "Flex ops need the Flex delegate" in done.stdout
    assert b"FlexTensorListReserve" in (tmp_path / "lstm.tflite").read_bytes()


# 12. Only the command's own lines on stderr.

def test_a_successful_convert_prints_nothing_on_stderr(tiny, tmp_path):
    done = cli("convert", str(tiny / "tiny.keras"), "--mode=float32",
               f"--out={tmp_path / 'o.tflite'}", env={
                   "TF_CPP_MIN_LOG_LEVEL": "0"})
    assert done.returncode == 0 and done.stderr == "", done.stderr
    verbose = cli("convert", str(tiny / "tiny.keras"), "--mode=float32",
                  f"--out={tmp_path / 'o2.tflite'}", "--verbose",
                  env={"TF_CPP_MIN_LOG_LEVEL": "0"})
    assert verbose.returncode == 0 and verbose.stderr  # TensorFlow's lines


# 3 and 11 without a server: the argv ssh gets.

def test_ssh_targets_cannot_smuggle_options():
    for target in ("ssh://-oProxyCommand=touch${IFS}pwned@localhost",
                   "ssh://pi@-oProxyCommand=x", "ssh://pi@host:99999",
                   "ssh://p i@host", "ssh://pi@ho;st"):
        with pytest.raises(te.TargetError, match="bad ssh target"):
            remote.parse_ssh_target(target)
    assert remote.parse_ssh_target("ssh://pi@[::1]:2222") == ("pi", "::1",
                                                             2222)


def test_ssh_refuses_unknown_host_keys_unless_asked():
    assert "StrictHostKeyChecking=yes" in remote._ssh_options(None)
    assert "StrictHostKeyChecking=accept-new" in remote._ssh_options(
        None, accept_new_host_key=True)


def test_ssh_and_scp_end_options_before_the_destination(monkeypatch):
    calls = []

    def record(command, what, timeout=None, cwd=None):
        calls.append(command)
        return "/tmp/remote\n"

    monkeypatch.setattr(remote, "run_command", record)
    remote.run_ssh("ssh://pi@board:2222", "/x/bench_script.py", ["a"],
                   ["/x/model.tflite"], fetch=("out.npy", "/tmp/out.npy"))
    ssh_calls = [c for c in calls if c[0] == "ssh"]
    scp_calls = [c for c in calls if c[0] == "scp"]
    assert len(ssh_calls) == 3 and len(scp_calls) == 2  # mktemp, bench, rm
    for command in ssh_calls:
        assert command[command.index("--") + 1] == "pi@board"
    for command in scp_calls:
        assert "--" in command
        assert all(not arg.startswith("-") for arg in
                   command[command.index("--") + 1:])
    bench = [c for c in ssh_calls if "-tt" in c]
    assert len(bench) == 1 and "exec" in bench[0][-1]
    assert ssh_calls[-1][-1] == "rm -rf /tmp/remote"  # always cleaned up


def test_a_data_file_is_never_the_output(tiny, tmp_path):
    data = tmp_path / "d.tflite"  # DATA is read by content, not by name
    with open(data, "wb") as f:
        np.save(f, np.zeros((2, 8, 8, 1), "float32"))
    before = data.read_bytes()
    assert_bad_input(cli("convert", str(tiny / "tiny.keras"),
                         "--mode=float32", f"--verify={data}",
                         f"--out={data}"),
                     "is an input of this command")
    assert data.read_bytes() == before
