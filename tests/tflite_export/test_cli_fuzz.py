"""Every command against a table of bad inputs: files, DATA and flags.

Each case must exit with status 2 and print exactly one line on stderr, the
`tflite_export: error:` line, with no traceback, and leave every file in
the folder as it was. The cases run four at a time: most fail before Keras
is imported, in well under a second.
"""

import concurrent.futures
import os
import shutil

import keras
import numpy as np
import pytest

from tests.tflite_export.helpers import cli
from tests.tflite_export.helpers import digests


@pytest.fixture(scope="module")
def bad(tiny, tmp_path_factory):
    """A folder of good and bad inputs, written once."""
    root = tmp_path_factory.mktemp("fuzz")
    for name in ("tiny.keras", "tiny.tflite", "good.npz"):
        shutil.copy(tiny / name, root / name)
    good = (root / "tiny.keras").read_bytes()
    (root / "empty.keras").write_bytes(b"")
    (root / "cut.keras").write_bytes(good[:len(good) // 2])
    (root / "text.keras").write_text("hello")
    (root / "dir.keras").mkdir()
    (root / "notes.txt").write_text("hello")
    keras.Sequential([keras.layers.Dense(3)]).save(root / "unbuilt.keras")
    keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Lambda(
        lambda t: t * 2), keras.layers.Flatten(),
        keras.layers.Dense(3)]).save(root / "lambda.keras")
    lite = (root / "tiny.tflite").read_bytes()
    (root / "empty.tflite").write_bytes(b"")
    (root / "cut.tflite").write_bytes(lite[:400])
    (root / "garbage.tflite").write_text("garbage" * 100)
    (root / "dir.tflite").mkdir()
    (root / "images").mkdir()
    rng = np.random.default_rng(0)
    x = rng.random((6, 8, 8, 1), "float32")
    (root / "empty.npz").write_bytes(b"")
    (root / "cut.npz").write_bytes((root / "good.npz").read_bytes()[:200])
    (root / "d.csv").write_text("1,2,3\n")
    (root / "fake.npy").write_bytes(b"\x93NUMPYgarbage")
    np.savez(root / "nox.npz", inputs=x)
    np.savez(root / "strx.npz", x=np.full((6, 8, 8, 1), "a"))
    nan = x.copy()
    nan[0, 0, 0, 0] = np.nan
    np.savez(root / "nan.npz", x=nan)
    inf = x.copy()
    inf[1, 1, 1, 0] = np.inf
    np.savez(root / "inf.npz", x=inf)
    np.savez(root / "shape.npz", x=rng.random((6, 5, 5, 1), "float32"))
    np.savez(root / "rank.npz", x=rng.random((6, 64), "float32"))
    np.savez(root / "strlabels.npz", x=x, y=np.array(list("abcdef")))
    np.savez(root / "shortlabels.npz", x=x, y=np.zeros(4, int))
    np.savez(root / "halflabels.npz", x=x, y=np.full(6, 0.5))
    np.savez(root / "labels2d.npz", x=x, y=np.zeros((6, 3), int))
    np.savez(root / "nosamples.npz", x=np.zeros((0, 8, 8, 1), "float32"))
    np.savez(root / "scalar.npz", x=np.float32(1))
    np.savez(root / "objects.npz", x=np.array([{"a": 1}] * 6, dtype=object))
    return root


def _cases():
    conv = ("convert", "tiny.keras", "--mode=float32")
    out = "--out=o.tflite"
    bench = ("bench", "tiny.tflite")
    cases = [
        # Commands and files.
        ((), "expected a command"),
        (("frobnicate",), "expected a command"),
        (("convert",), "takes exactly one model file; got 0"),
        (("convert", "tiny.keras", "tiny.keras", "--mode=float32", out),
         "takes exactly one model file; got 2"),
        (("bench",), "takes exactly one model file; got 0"),
        (("bench", "tiny.tflite", "tiny.tflite"), "got 2"),
        (("report",), "needs one or more .tflite files"),
        (("setup-emulator", "x"), "takes no files"),
        (("convert", "missing.keras", "--mode=float32", out),
         "file not found"),
        (("convert", "notes.txt", "--mode=float32", out),
         "is not a .keras model"),
        (("convert", "empty.keras", "--mode=float32", out), "is empty"),
        (("convert", "cut.keras", "--mode=float32", out),
         "is not a .keras archive"),
        (("convert", "text.keras", "--mode=float32", out),
         "is not a .keras archive"),
        (("convert", "dir.keras", "--mode=float32", out), "is a directory"),
        (("convert", "unbuilt.keras", "--mode=float32", out),
         "is not built"),
        (("convert", "lambda.keras", "--mode=float32", out), "cannot load"),
        (("convert", "tiny.tflite", "--mode=float32", out),
         "is not a .keras model"),
        (("bench", "missing.tflite"), "file not found"),
        (("bench", "tiny.keras"), "is not a .tflite model"),
        (("bench", "empty.tflite"), "is empty"),
        (("bench", "cut.tflite"), "truncated or corrupt"),
        (("bench", "garbage.tflite"), "truncated or corrupt"),
        (("bench", "dir.tflite"), "is a directory"),
        (("report", "garbage.tflite"), "truncated or corrupt"),
        (("report", "tiny.tflite", "missing.tflite"), "file not found"),
        (("report", "dir.tflite"), "is a directory"),
        (("report", "tiny.keras"), "is not a .tflite model"),
        # Outputs.
        (conv, "--out is required"),
        (conv + ("--out=tiny.keras",), "does not end in .tflite"),
        (conv + ("--out=other.keras",), "does not end in .tflite"),
        (conv + ("--out=noext",), "does not end in .tflite"),
        (conv + ("--out=.tflite",), "does not end in .tflite"),
        (conv + ("--out=dir.tflite",), "is a directory"),
        (conv + ("--out=/proc/x.tflite",), "cannot write to /proc"),
        (conv + ("--out=/nonexistent/d/x.tflite",), "cannot write to"),
        # Modes.
        (("convert", "tiny.keras", out), "--mode is required"),
        (("convert", "tiny.keras", "--mode=int3", out),
         "value should be one of"),
        (("convert", "tiny.keras", "--mode=", out), "value should be one of"),
        (("convert", "tiny.keras", "--mode=int8", out),
         "needs representative_data"),
        (("convert", "tiny.keras", "--mode=qat", out), "needs a QAT model"),
        # DATA.
        (conv + (out, "--verify=missing.npz"), "data file not found"),
        (conv + (out, "--verify=empty.npz"), "is empty"),
        (conv + (out, "--verify=cut.npz"), "truncated or corrupt"),
        (conv + (out, "--verify=d.csv"), "neither a .npz nor a .npy"),
        (conv + (out, "--verify=fake.npy"), "truncated or corrupt"),
        (conv + (out, "--verify=nox.npz"), "has no array 'x'"),
        (conv + (out, "--verify=strx.npz"), "is not numeric"),
        (conv + (out, "--verify=nan.npz"), "NaN or infinite"),
        (conv + (out, "--verify=inf.npz"), "NaN or infinite"),
        (conv + (out, "--verify=shape.npz"), "Expected (n, 8, 8, 1)"),
        (conv + (out, "--verify=rank.npz"), "Expected (n, 8, 8, 1)"),
        (conv + (out, "--verify=strlabels.npz"), "are not integers"),
        (conv + (out, "--verify=shortlabels.npz"), "labels y of shape (4,)"),
        (conv + (out, "--verify=halflabels.npz"), "are not integers"),
        (conv + (out, "--verify=labels2d.npz"), "labels y of shape (6, 3)"),
        (conv + (out, "--verify=nosamples.npz"), "no samples"),
        (conv + (out, "--verify=scalar.npz"), "no samples"),
        (conv + (out, "--verify=objects.npz"), "object arrays"),
        (conv + (out, "--verify=images"), "no images"),
        (("convert", "tiny.keras", "--mode=int8", out,
          "--representative=nan.npz"), "NaN or infinite"),
        (("convert", "tiny.keras", "--mode=int8", out,
          "--representative=o.tflite"), "data file not found"),
        (bench + ("--data=nan.npz",), "NaN or infinite"),
        (bench + ("--data=shape.npz",), "does not fit the model input"),
        (bench + ("--data=strx.npz",), "is not numeric"),
        (bench + ("--data=d.csv",), "neither a .npz nor a .npy"),
        # Flags.
        (bench + ("--runs=0",), "range [1, 100000]"),
        (bench + ("--runs=-5",), "range [1, 100000]"),
        (bench + ("--runs=1000000000000",), "range [1, 100000]"),
        (bench + ("--runs=abc",), "--runs"),
        (bench + ("--warmup=-1",), "range [0, 10000]"),
        (bench + ("--warmup=99999999",), "range [0, 10000]"),
        (bench + ("--threads=0",), "range [1, 256]"),
        (bench + ("--threads=1000",), "range [1, 256]"),
        (bench + ("--no_such_flag",), "no_such_flag"),
        (bench + ("--mode=int8",), "--mode is a flag of `convert`"),
        (bench + ("--out=x.tflite",), "--out is a flag of `convert`"),
        (conv + (out, "--target=host"), "--target is a flag of `bench`"),
        (conv + (out, "--runs=3"), "--runs is a flag of `bench`"),
        (("report", "tiny.tflite", "--data=good.npz"),
         "--data is a flag of `bench`"),
        (("setup-emulator", "--noxnnpack"), "--xnnpack is a flag of `bench`"),
        # Targets.
        (bench + ("--target=tpu9000",), "unknown target 'tpu9000'"),
        (bench + ("--target=ssh://-oProxyCommand=touch${IFS}pwned@x",),
         "bad ssh target"),
        (bench + ("--target=ssh://pi@-oProxyCommand=x",), "bad ssh target"),
        (bench + ("--target=ssh://pi@host:99999",), "bad ssh target"),
        (bench + ("--target=ssh://host",), "bad ssh target"),
        (bench + ("--target=adb:x;touch${IFS}pwned",), "bad adb serial"),
    ]
    return cases


def test_table_has_at_least_60_cases():
    assert len(_cases()) >= 60


def test_every_bad_input_exits_2_with_one_line(bad):
    before = digests(bad)

    def run(case):
        args, message = case
        return case, cli(*args, cwd=bad, timeout=300)

    failures = []
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        for (args, message), done in pool.map(run, _cases()):
            lines = done.stderr.splitlines()
            ok = (done.returncode == 2 and len(lines) == 1
                  and lines[0].startswith("tflite_export: error:")
                  and message in lines[0] and "Traceback" not in done.stderr)
            if not ok:
                failures.append(f"{args}: exit {done.returncode}, "
                                f"stderr {done.stderr[-600:]!r}")
    assert not failures, "\n".join(failures)
    assert digests(bad) == before
    assert not os.path.exists(bad / "o.tflite")
    assert not os.path.exists(bad / "pwned")
