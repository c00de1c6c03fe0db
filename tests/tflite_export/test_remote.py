"""Parsing LiteRT's benchmark_model output, and ssh target addresses.

The texts below are real benchmark_model output (two tool versions, one
printing p5/median/p95 and the newer memory line, one the older
'Peak memory footprint' line), trimmed to the lines the parser reads and
their neighbours.
"""

import pytest

from tflite_export.errors import TargetError
from tflite_export.remote import parse_benchmark_model
from tflite_export.remote import parse_ssh_target

NEWER = """\
INFO: The input model file size (MB): 24.6229
INFO: Initialized session in 119.515ms.
INFO: Running benchmark for at least 5 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
INFO: count=9 first=87112 curr=51629 min=51629 max=87112 avg=58147.4 std=11478 p5=51629 median=51962 p95=87112

INFO: Running benchmark for at least 1000 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
INFO: count=1000 first=52162 curr=49785 min=49088 max=686105 avg=63743.2 std=60716 p5=49620 median=51891 p95=68628

INFO: Inference timings in us: Init: 119515, First inference: 87112, Warmup (avg): 58147.4, Inference (avg): 63743.2
INFO: Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your discretion.
INFO: Memory footprint delta from the start of the tool (MB): init=55.4961 overall=55.4961
"""

OLDER = """\
count=50 first=249042 curr=250889 min=247067 max=254474 avg=249684 std=1442
Inference timings in us: Init: 16242, First inference: 360262, Warmup (avg): 304586, Inference (avg): 249684
Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your discretion.
Peak memory footprint (MB): init=4.92969 overall=138.809
"""

SCIENTIFIC = """\
count=50 first=2990275 curr=2913402 min=2727568 max=3189954 avg=2.95034e+06 std=109798

Inference timings in us: Init: 17187, First inference: 3512391, Warmup (avg): 3.51239e+06, Inference (avg): 2.95034e+06
"""


def test_newer_output_with_percentiles_and_memory():
    result = parse_benchmark_model(NEWER)
    assert result["runs"] == 1000  # the real run, not the warmup line
    assert result["load_ms"] == pytest.approx(119.515)
    assert result["first_inference_ms"] == pytest.approx(87.112)
    assert result["avg_ms"] == pytest.approx(63.7432)
    assert result["median_ms"] == pytest.approx(51.891)
    assert result["p95_ms"] == pytest.approx(68.628)
    assert result["min_ms"] == pytest.approx(49.088)
    assert result["overall_mb"] == pytest.approx(55.4961)


def test_older_output_without_percentiles():
    result = parse_benchmark_model(OLDER)
    assert result["avg_ms"] == pytest.approx(249.684)
    assert result["median_ms"] == pytest.approx(249.684)  # falls back to avg
    assert result["min_ms"] == pytest.approx(247.067)
    assert (result["init_mb"], result["overall_mb"]) == (4.92969, 138.809)


def test_scientific_notation():
    result = parse_benchmark_model(SCIENTIFIC)
    assert result["avg_ms"] == pytest.approx(2950.34)
    assert result["warmup_avg_ms"] == pytest.approx(3512.39)


def test_output_without_timings_is_an_error():
    with pytest.raises(TargetError, match="no 'Inference timings' line"):
        parse_benchmark_model("ERROR: Could not open 'x.tflite'.\n")


def test_ssh_target_addresses():
    assert parse_ssh_target("ssh://pi@raspberrypi.local") == (
        "pi", "raspberrypi.local", 22)
    assert parse_ssh_target("ssh://pi@10.0.0.7:2222") == ("pi", "10.0.0.7",
                                                          2222)
    with pytest.raises(TargetError, match="expected ssh://user@host"):
        parse_ssh_target("ssh://raspberrypi")
