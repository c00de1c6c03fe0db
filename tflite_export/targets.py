"""Where `bench` runs a `.tflite` file: the host, an emulated Pi, a board.

Every target runs the same self-contained `bench_script.py` and returns its
JSON result, so latency, load time and outputs are measured the same way.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

import numpy as np

from tflite_export.data import check_inputs
from tflite_export.errors import ConversionError
from tflite_export.errors import DataError
from tflite_export.errors import TargetError
from tflite_export.process import last_json
from tflite_export.process import run_json

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                      "bench_script.py")
EMULATED = {"rpi4-emu": "cortex-a72", "rpi5-emu": "cortex-a76"}
TIMEOUT = 1800
# Bounds of the bench loop: enough for any measurement, small enough that a
# typo cannot make a run that never ends.
MAX_RUNS = 100_000
MAX_WARMUP = 10_000
MAX_THREADS = 256


def _script_args(model, threads, runs, warmup, xnnpack, inputs, outputs):
    args = [model, str(threads), str(runs), str(warmup),
            "1" if xnnpack else "0"]
    if inputs is not None:
        args += [inputs, outputs]
    return args


def prepare_inputs(tflite_path, x, directory):
    """Saves `x`, quantized to the model's input type, as an `.npy` file.

    `x` is one array: the file must have one input (`bench_script.py`
    feeds its data to that one).
    """
    from tflite_export.input_matching import feed_order
    from tflite_export.inspection import interpreter_for
    from tflite_export.verification import quantize

    x = check_inputs(x)
    with open(tflite_path, "rb") as f:
        interpreter = interpreter_for(f.read())
    try:
        ((detail, _),) = feed_order(interpreter, [x])
    except ConversionError as error:
        raise DataError(f"data of shape {x.shape} does not fit the model "
                        f"input: {error}") from None
    # The bench does not resize: the data must fit the allocated shape.
    expected = tuple(int(d) for d in detail["shape"][1:])
    if tuple(x.shape[1:]) != expected:
        raise DataError(
            f"data of shape {x.shape} does not fit the model input "
            f"(n, {', '.join(map(str, expected))})")
    path = os.path.join(directory, "inputs.npy")
    np.save(path, quantize(x.astype(np.float32), detail))
    return path


def check_settings(threads, runs, warmup):
    """Raises a `ValueError` unless the bench loop settings are in bounds."""
    for name, value, low, high in (("threads", threads, 1, MAX_THREADS),
                                   ("runs", runs, 1, MAX_RUNS),
                                   ("warmup", warmup, 0, MAX_WARMUP)):
        if isinstance(value, bool) or not isinstance(value, int) or not (
                low <= value <= high):
            raise ValueError(f"Received: {name}={value!r}. Expected an "
                             f"integer in [{low}, {high}].")


def bench(target: str, tflite_path: str, threads: int = 1, runs: int = 50,
          warmup: int = 5, xnnpack: bool = True, x=None,
          ssh_identity: str | None = None,
          benchmark_binary: str | None = None,
          remote_python: str = "python3",
          ssh_accept_new_host_key: bool = False) -> dict:
    """Benchmarks `tflite_path` on `target`.

    Returns:
        The bench result dict (latency in ms, load time, first-inference
        peak). With `x`, also `outputs` (the target's outputs, an array) and
        `host_outputs` to compare with.

    Raises:
        ValueError: for settings out of bounds (`runs` in [1, 100000],
            `warmup` in [0, 10000], `threads` in [1, 256]).
        DataError: for `x` that does not fit the model.
        TargetError: for a target that is unknown, missing or fails.
    """
    check_settings(threads, runs, warmup)
    with tempfile.TemporaryDirectory(prefix="tflite-bench-") as work:
        inputs = outputs = None
        if x is not None:
            inputs = prepare_inputs(tflite_path, x, work)
            outputs = os.path.join(work, "outputs.npy")
        args = _script_args(os.path.abspath(tflite_path), threads, runs,
                            warmup, xnnpack, inputs, outputs)
        if target == "host":
            result = run_json([sys.executable, SCRIPT] + args, "host bench",
                              TIMEOUT)
        elif target in EMULATED:
            from tflite_export import emulator

            result = emulator.run_script(EMULATED[target], SCRIPT, args)
            result["emulated"] = True
        elif target.startswith("ssh://"):
            from tflite_export import remote

            # Fixed names on the board: the user's file name never reaches
            # the remote shell or scp.
            model_copy = os.path.join(work, "model.tflite")
            shutil.copyfile(tflite_path, model_copy)
            files = [model_copy, SCRIPT] + ([inputs] if inputs else [])
            remote_args = _script_args(
                "model.tflite", threads, runs, warmup, xnnpack,
                inputs and "inputs.npy", outputs and "outputs.npy")
            out = remote.run_ssh(target, SCRIPT, remote_args, files,
                                 fetch=outputs and ("outputs.npy", outputs),
                                 identity=ssh_identity, python=remote_python,
                                 accept_new_host_key=ssh_accept_new_host_key)
            result = last_json(out, f"bench on {target}")
        elif target == "adb" or target.startswith("adb:"):
            from tflite_export import remote

            if x is not None:
                raise TargetError("--data is not supported with adb targets: "
                                  "benchmark_model does not return outputs")
            result = remote.run_adb(target, tflite_path, threads, runs,
                                    warmup, xnnpack, benchmark_binary)
        else:
            raise TargetError(
                f"unknown target {target!r}; expected host, "
                f"{', '.join(EMULATED)}, ssh://user@host[:port] or "
                "adb[:SERIAL]")
        result["target"] = target
        if x is not None:
            result["outputs"] = np.load(outputs)
            if target != "host":
                host_out = os.path.join(work, "host_outputs.npy")
                run_json([sys.executable, SCRIPT] + _script_args(
                    os.path.abspath(tflite_path), threads, 1, 0, xnnpack,
                    inputs, host_out), "host reference run", TIMEOUT)
                result["host_outputs"] = np.load(host_out)
    return result
