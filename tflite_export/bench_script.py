"""Self-contained TFLite benchmark, run on the target itself.

It needs only Python 3, numpy, and `ai_edge_litert` (or `tflite_runtime`), so
the same file runs on the host, under the emulated Raspberry Pi, and on a
real board over ssh. It prints one JSON object to stdout.

Usage: python3 bench_script.py MODEL.tflite THREADS RUNS WARMUP XNNPACK
       [INPUTS.npy OUTPUTS.npy]
"""

import json
import math
import resource
import sys
import time


class QuantileSketch:
    """Quantiles of a stream in bounded memory, within `accuracy` relative.

    Each value goes to a logarithmic bucket (the DDSketch scheme), so memory
    grows with the spread of the values (a few hundred buckets from 1 us to
    1 min at 0.5%), never with their count. Min and max are exact; a
    quantile is clamped into [min, max].
    """

    def __init__(self, accuracy=0.005):
        self._gamma = (1 + accuracy) / (1 - accuracy)
        self._log_gamma = math.log(self._gamma)
        self.buckets = {}
        self.count = 0
        self.min = math.inf
        self.max = -math.inf

    def add(self, value):
        key = math.ceil(math.log(max(value, 1e-12)) / self._log_gamma)
        self.buckets[key] = self.buckets.get(key, 0) + 1
        self.count += 1
        self.min = min(self.min, value)
        self.max = max(self.max, value)

    def quantile(self, q):
        rank = q * (self.count - 1)
        seen = 0
        for key in sorted(self.buckets):
            seen += self.buckets[key]
            if seen > rank:
                estimate = 2 * self._gamma ** key / (self._gamma + 1)
                return min(max(estimate, self.min), self.max)
        return self.max


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
    if threads < 1 or runs < 1 or warmup < 0:
        sys.exit(f"bench_script: expected THREADS >= 1, RUNS >= 1 and "
                 f"WARMUP >= 0; got {threads}, {runs}, {warmup}")
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
    # Zeros in every input: their order does not matter, and none is left
    # uninitialized (whatever the arena held) for the timed runs.
    for detail in interpreter.get_input_details():
        shape = [max(int(d), 1) for d in detail["shape"]]
        interpreter.set_tensor(detail["index"],
                               np.zeros(shape, detail["dtype"]))
    start = time.perf_counter()
    interpreter.invoke()
    first_ms = (time.perf_counter() - start) * 1e3
    first_peak_kib = _peak_rss_kib() - rss_before
    for _ in range(warmup):
        interpreter.invoke()
    times = QuantileSketch()
    for _ in range(runs):
        start = time.perf_counter()
        interpreter.invoke()
        times.add((time.perf_counter() - start) * 1e3)
    result = {
        "runtime": runtime,
        "threads": threads,
        "xnnpack": xnnpack != "0",
        "runs": runs,
        "load_ms": load_ms,
        "first_inference_ms": first_ms,
        "first_inference_peak_kib": first_peak_kib,
        "peak_rss_kib": _peak_rss_kib(),
        "median_ms": times.quantile(0.5),
        "p90_ms": times.quantile(0.9),
        "min_ms": times.min,
    }
    if len(argv) > 7:
        # The host checked that the file has one input (`prepare_inputs`).
        (detail,) = interpreter.get_input_details()
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
