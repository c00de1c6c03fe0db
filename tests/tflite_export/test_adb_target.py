"""The adb target against a fake `adb` on PATH that acts as the real one.

Like adb, the fake joins the words after `shell` with spaces and runs the
line with the device's `sh -c`, here in a folder standing for the device's
/data/local/tmp. It records every argv it gets.
"""

import json
import os
import sys

import pytest

from tests.tflite_export.helpers import cli
from tests.tflite_export.test_remote import NEWER

FAKE_ADB = r'''#!{python}
import json, os, shutil, subprocess, sys
device = os.environ["FAKE_DEVICE"]
args = sys.argv[1:]
with open(os.environ["FAKE_ADB_LOG"], "a") as log:
    log.write(json.dumps(args) + "\n")
if args[:1] == ["-s"]:
    args = args[2:]
if args == ["devices"]:
    print("List of devices attached\nFAKE123\tdevice\n")
elif args[0] == "push":
    source, target = [a for a in args[1:] if a != "--"]
    shutil.copy(source, target.replace("/data/local/tmp", device))
elif args[0] == "shell":
    line = " ".join(args[1:]).replace("/data/local/tmp", device)
    sys.exit(subprocess.run(["sh", "-c", line], cwd=device).returncode)
'''


@pytest.fixture
def fake_adb(tmp_path):
    bin_dir, device = tmp_path / "bin", tmp_path / "device"
    bin_dir.mkdir()
    device.mkdir()
    adb = bin_dir / "adb"
    adb.write_text(FAKE_ADB.replace("{python}", sys.executable))
    adb.chmod(0o755)
    tool = tmp_path / "benchmark_model"
    (tmp_path / "timings.txt").write_text(NEWER)
    tool.write_text(f"#!/bin/sh\ncat {tmp_path / 'timings.txt'}\n")
    tool.chmod(0o755)
    log = tmp_path / "adb_log.jsonl"
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}",
           "FAKE_DEVICE": str(device), "FAKE_ADB_LOG": str(log)}
    return {"env": env, "device": device, "log": log, "tool": tool}


def test_model_name_never_reaches_the_device_shell(tiny, tmp_path,
                                                   fake_adb):
    name = "m;touch${IFS}pwned;$(id>owned).tflite"
    work = tmp_path / "work"
    work.mkdir()
    (work / name).write_bytes((tiny / "tiny.tflite").read_bytes())
    done = cli("bench", name, "--target=adb", "--runs=3",
               f"--benchmark_binary={fake_adb['tool']}", cwd=work,
               env=fake_adb["env"])
    assert done.returncode == 0, done.stderr
    for folder in (work, fake_adb["device"], tmp_path):
        assert not (folder / "pwned").exists()
        assert not (folder / "owned").exists()
    calls = [json.loads(line) for line in
             fake_adb["log"].read_text().splitlines()]
    shells = [call for call in calls if "shell" in call]
    assert all("touch" not in " ".join(call) for call in shells), shells
    # What was pushed is removed: the model and the benchmark binary.
    assert os.listdir(fake_adb["device"]) == []
    result = json.loads((work / "m;touch${IFS}pwned;$(id>owned).bench."
                         "adb.json").read_text())
    assert result["median_ms"] == pytest.approx(51.891)


def test_adb_serial_cannot_carry_commands(tiny, fake_adb):
    done = cli("bench", str(tiny / "tiny.tflite"),
               "--target=adb:FAKE123;touch${IFS}pwned", env=fake_adb["env"])
    assert done.returncode == 2 and "bad adb serial" in done.stderr
    assert not fake_adb["log"].exists()  # adb was never called
