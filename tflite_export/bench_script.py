"""Self-contained TFLite benchmark, run on the target itself.

It needs only Python 3, numpy, and `ai_edge_litert` (or `tflite_runtime`), so
the same file runs on the host, under the emulated Raspberry Pi, and on a
real board over ssh. It prints one JSON object to stdout.

Usage: python3 bench_script.py MODEL.tflite THREADS RUNS WARMUP XNNPACK
       [INPUTS.npy OUTPUTS.npy]
"""

import json
import resource
import sys
import time


def _interpreter_module():
    try:
        from ai_edge_litert import interpreter
        return interpreter, "ai_edge_litert"
    except ImportError:
        from tflite_runtime import interpreter
        return interpreter, "tflite_runtime"


def _peak_rss_kib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main(argv):
    import numpy as np

    model, threads, runs, warmup, xnnpack = argv[1:6]
    threads, runs, warmup = int(threads), int(runs), int(warmup)
    module, runtime = _interpreter_module()
    kwargs = {"num_threads": threads}
    if xnnpack == "0":
        kwargs["experimental_op_resolver_type"] = (
            module.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    rss_before = _peak_rss_kib()
    start = time.perf_counter()
    interpreter = module.Interpreter(model_path=model, **kwargs)
    interpreter.allocate_tensors()
    load_ms = (time.perf_counter() - start) * 1e3
    detail = interpreter.get_input_details()[0]
    shape = [max(int(d), 1) for d in detail["shape"]]
    sample = np.zeros(shape, detail["dtype"])
    interpreter.set_tensor(detail["index"], sample)
    start = time.perf_counter()
    interpreter.invoke()
    first_ms = (time.perf_counter() - start) * 1e3
    first_peak_kib = _peak_rss_kib() - rss_before
    for _ in range(warmup):
        interpreter.invoke()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        interpreter.invoke()
        times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    result = {
        "runtime": runtime,
        "threads": threads,
        "xnnpack": xnnpack != "0",
        "runs": runs,
        "load_ms": load_ms,
        "first_inference_ms": first_ms,
        "first_inference_peak_kib": first_peak_kib,
        "peak_rss_kib": _peak_rss_kib(),
        "median_ms": times[len(times) // 2],
        "p90_ms": times[min(len(times) - 1, int(len(times) * 0.9))],
        "min_ms": times[0],
    }
    if len(argv) > 7:
        inputs = np.load(argv[6])
        outputs = []
        for row in inputs:
            interpreter.set_tensor(detail["index"], row[None].astype(
                detail["dtype"]))
            interpreter.invoke()
            output = interpreter.get_output_details()[0]
            outputs.append(interpreter.get_tensor(output["index"])[0])
        np.save(argv[7], np.stack(outputs))
        result["outputs"] = argv[7]
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv)
