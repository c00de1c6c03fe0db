"""TFLM's own interpreter on the host: run a file, find its smallest arena.

`tflite_micro.runtime` (the `tflite-micro` wheel, `kcompress[micro]`) is
TensorFlow Lite Micro's C++ interpreter with its reference kernels, the
code a board runs. Its arena is the one block of RAM TFLM allocates from:
every activation, the input and output tensors and the interpreter's own
structures. `minimum_arena` asks the runtime itself: it builds and runs the
interpreter at candidate sizes and bisects to the smallest that works. The
`RecordingMicroAllocator` breakdown (head: the activations the memory
planner overlaps; tail: what persists) is read at that size.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from tflite_export import console
from tflite_export.errors import MicroError

# Far above any microcontroller's RAM: a file needing more is refused.
_MAX_ARENA = 1 << 28
_ALLOCATION = re.compile(
    r"\[RecordingMicroAllocator\] Arena allocation (total|head|tail) "
    r"(\d+) bytes")


def _runtime():
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError as error:
        raise MicroError(
            "The micro target runs TFLM's own interpreter, from the "
            "tflite-micro package: pip install 'kcompress[micro]'."
        ) from error
    return runtime


@dataclasses.dataclass
class Arena:
    """The smallest tensor arena TFLM runs the file in, in bytes.

    `size` is found by the runtime (it fails at `size - 1`); `head` and
    `tail` are the `RecordingMicroAllocator`'s split of it.
    """

    size: int
    head: int
    tail: int

    def to_dict(self):
        return dataclasses.asdict(self)


def _first_error(text):
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else "no message"


def interpreter(tflite_bytes, arena_size):
    """A TFLM interpreter over the file with an arena of `arena_size`.

    What TFLM prints goes to a held stderr; a failure raises `MicroError`
    with its first line (a kernel TFLM lacks, an arena too small).
    """
    runtime = _runtime()
    with console.HeldStderr() as held:
        try:
            return runtime.Interpreter.from_bytes(
                bytes(tflite_bytes), arena_size=int(arena_size))
        except RuntimeError as error:
            held.held.seek(0)
            printed = held.held.read().decode(errors="replace")
            raise MicroError(
                f"TFLM cannot run the file with a {arena_size:,}-byte arena: "
                f"{_first_error(printed or str(error))}") from None


def _invoked(tflite_bytes, arena_size, sample):
    """An interpreter that has run `sample` once; raises where TFLM fails."""
    micro = interpreter(tflite_bytes, arena_size)
    with console.HeldStderr():
        for index, array in enumerate(sample):
            micro.set_input(array, index)
        micro.invoke()
    return micro


def _runs(tflite_bytes, arena_size, sample):
    try:
        _invoked(tflite_bytes, arena_size, sample)
    except (MicroError, RuntimeError):
        return False
    return True


def _allocations(micro):
    with console.HeldStderr() as held:
        micro.print_allocations()
        held.held.seek(0)
        printed = held.held.read().decode(errors="replace")
    return {kind: int(size) for kind, size in _ALLOCATION.findall(printed)}


def minimum_arena(tflite_bytes, sample) -> Arena:
    """The smallest arena, in bytes, in which TFLM runs `sample`.

    Args:
        tflite_bytes: the file.
        sample: one batch-1 input array per file input, in the file's
            input types.

    Raises:
        MicroError: when TFLM cannot run the file at any size (the message
            is TFLM's own: a missing kernel, say).
    """
    high = max(4096, 4 * len(tflite_bytes))
    while not _runs(tflite_bytes, high, sample):
        if high >= _MAX_ARENA:
            interpreter(tflite_bytes, _MAX_ARENA)  # raises TFLM's reason
            raise MicroError("TFLM cannot run the file even with a "
                             f"{_MAX_ARENA:,}-byte arena.")
        high *= 2
    low = 0  # fails (an empty arena holds nothing)
    while high - low > 1:
        middle = (low + high) // 2
        if _runs(tflite_bytes, middle, sample):
            high = middle
        else:
            low = middle
    figures = _allocations(_invoked(tflite_bytes, high, sample))
    return Arena(size=high, head=figures.get("head", 0),
                 tail=figures.get("tail", 0))


def run(tflite_bytes, arrays, arena_size, outputs=1):
    """The file's raw outputs for each sample of `arrays` (one array per
    input, in the file's input types), run one at a time through TFLM.

    Returns a list of `outputs` arrays (one per file output), the samples
    stacked.
    """
    micro = interpreter(tflite_bytes, arena_size)
    results = [[] for _ in range(outputs)]
    with console.HeldStderr():
        for i in range(len(arrays[0])):
            for index, array in enumerate(arrays):
                micro.set_input(np.ascontiguousarray(array[i:i + 1]), index)
            micro.invoke()
            for index, result in enumerate(results):
                result.append(np.array(micro.get_output(index)))
    return [np.concatenate(result) for result in results]
