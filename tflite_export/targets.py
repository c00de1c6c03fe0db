"""Where `bench` runs a `.tflite` file: the host, an emulated Pi, a board.

Every target runs the same self-contained `bench_script.py` and returns its
JSON result, so latency, load time and outputs are measured the same way.
"""

import os
import sys
import tempfile

import numpy as np

from tflite_export.errors import CliError
from tflite_export.process import last_json
from tflite_export.process import run_command

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                      "bench_script.py")
EMULATED = {"rpi4-emu": "cortex-a72", "rpi5-emu": "cortex-a76"}
TIMEOUT = 1800


def _run(command, what, timeout=TIMEOUT):
    """Runs a bench command; returns the JSON result it printed."""
    return last_json(run_command(command, what, timeout), what)


def _script_args(model, threads, runs, warmup, xnnpack, inputs, outputs):
    args = [model, str(threads), str(runs), str(warmup),
            "1" if xnnpack else "0"]
    if inputs is not None:
        args += [inputs, outputs]
    return args


def prepare_inputs(tflite_path, x, directory):
    """Saves `x`, quantized to the model's input type, as an `.npy` file."""
    from tflite_export.inspection import interpreter_for
    from tflite_export.verify import _quantize

    with open(tflite_path, "rb") as f:
        detail = interpreter_for(f.read()).get_input_details()[0]
    expected = tuple(int(d) for d in detail["shape"][1:])
    if tuple(x.shape[1:]) != expected:
        raise CliError(
            f"data of shape {x.shape} does not fit the model input "
            f"(n, {', '.join(map(str, expected))})")
    if x.dtype.kind not in "fiu":
        raise CliError(f"data of dtype {x.dtype} is not numeric")
    path = os.path.join(directory, "inputs.npy")
    np.save(path, _quantize(x.astype(np.float32), detail))
    return path


def run(target, tflite_path, threads=1, runs=50, warmup=5, xnnpack=True,
        x=None, ssh_identity=None, benchmark_binary=None,
        remote_python="python3"):
    """Benchmarks `tflite_path` on `target`.

    Returns:
        The bench result dict (latency in ms, load time, first-inference
        peak). With `x`, also `outputs` (the target's outputs, an array) and
        `host_outputs` to compare with.
    """
    with tempfile.TemporaryDirectory(prefix="tflite-bench-") as work:
        inputs = outputs = None
        if x is not None:
            inputs = prepare_inputs(tflite_path, x, work)
            outputs = os.path.join(work, "outputs.npy")
        args = _script_args(os.path.abspath(tflite_path), threads, runs,
                            warmup, xnnpack, inputs, outputs)
        if target == "host":
            result = _run([sys.executable, SCRIPT] + args, "host bench")
        elif target in EMULATED:
            from tflite_export import emulator

            result = emulator.run_script(EMULATED[target], SCRIPT, args)
            result["emulated"] = True
        elif target.startswith("ssh://"):
            from tflite_export import remote

            files = [os.path.abspath(tflite_path), SCRIPT]
            remote_args = _script_args(
                os.path.basename(tflite_path), threads, runs, warmup,
                xnnpack, inputs and "inputs.npy",
                outputs and "outputs.npy")
            if inputs:
                files.append(inputs)
            out = remote.run_ssh(target, SCRIPT, remote_args, files,
                                 fetch=outputs and ("outputs.npy", outputs),
                                 identity=ssh_identity, python=remote_python)
            result = last_json(out, f"bench on {target}")
        elif target == "adb" or target.startswith("adb:"):
            from tflite_export import remote

            if x is not None:
                raise CliError("--data is not supported with adb targets: "
                               "benchmark_model does not return outputs")
            result = remote.run_adb(target, tflite_path, threads, runs,
                                    warmup, xnnpack, benchmark_binary)
        else:
            raise CliError(
                f"unknown target {target!r}; expected host, "
                f"{', '.join(EMULATED)}, ssh://user@host[:port] or "
                "adb[:SERIAL]")
        result["target"] = target
        if x is not None:
            result["outputs"] = np.load(outputs)
            if target != "host":
                host_out = os.path.join(work, "host_outputs.npy")
                _run([sys.executable, SCRIPT] + _script_args(
                    os.path.abspath(tflite_path), threads, 1, 0, xnnpack,
                    inputs, host_out), "host reference run")
                result["host_outputs"] = np.load(host_out)
    return result
