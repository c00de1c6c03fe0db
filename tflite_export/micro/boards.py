"""Boards and budgets: does the model fit, and by how much?

`BOARDS` holds a few common microcontroller boards, with the flash and
the on-chip RAM of their chip as the vendors' datasheets give them (KB and
MB are binary: 1 KB = 1,024 bytes). The firmware, the stack and the
application's own buffers share both, so a model that fits by a few KB
may still not fit on the board: pass `max_flash` and `max_ram` for the
share left to the model. `check` compares the model's flash (its bytes)
and RAM (its TFLM arena) with a budget.
"""

from __future__ import annotations

import dataclasses

from tflite_export.errors import MicroError

KB = 1024
MB = 1024 * KB


@dataclasses.dataclass(frozen=True)
class Board:
    """A board's flash and RAM, in bytes."""

    name: str
    flash: int
    ram: int
    chip: str


BOARDS = {board.name: board for board in (
    Board("arduino-nano-33-ble-sense", 1 * MB, 256 * KB,
          "nRF52840 (Cortex-M4F, 64 MHz)"),
    Board("esp32-s3-devkitc-1-n8", 8 * MB, 512 * KB,
          "ESP32-S3 (Xtensa LX7, 240 MHz), 8 MB flash module, no PSRAM"),
    Board("stm32f746g-disco", 1 * MB, 320 * KB,
          "STM32F746NG (Cortex-M7, 216 MHz)"),
    Board("raspberry-pi-pico", 2 * MB, 264 * KB,
          "RP2040 (Cortex-M0+, 133 MHz)"),
    Board("sparkfun-edge", 1 * MB, 384 * KB,
          "Ambiq Apollo3 (Cortex-M4F, 48 MHz)"),
)}


@dataclasses.dataclass(frozen=True)
class Budget:
    """At most `flash` and `ram` bytes (None: no bound), and where each
    bound came from (a board's name, or the flag)."""

    flash: int | None
    ram: int | None
    flash_source: str | None
    ram_source: str | None

    @property
    def source(self):
        return " and ".join(dict.fromkeys(
            s for s in (self.flash_source, self.ram_source) if s))


def _size(value, argument):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise MicroError(f"Received: {argument}={value!r}. Expected a whole "
                         "number of bytes >= 1.")
    return value


def budget(board=None, max_flash=None, max_ram=None):
    """The budget of `board` (a name in `BOARDS`), tightened by `max_flash`
    and `max_ram`; None when nothing is given."""
    if board is None and max_flash is None and max_ram is None:
        return None
    flash = ram = flash_source = ram_source = None
    if board is not None:
        if board not in BOARDS:
            raise MicroError(
                f"Received: board={board!r}. Expected one of "
                f"{', '.join(sorted(BOARDS))} (or give --max_flash and "
                "--max_ram).")
        flash, ram = BOARDS[board].flash, BOARDS[board].ram
        flash_source = ram_source = board
    if max_flash is not None and (flash is None or _size(
            max_flash, "max_flash") < flash):
        flash, flash_source = _size(max_flash, "max_flash"), "--max_flash"
    if max_ram is not None and (ram is None or _size(
            max_ram, "max_ram") < ram):
        ram, ram_source = _size(max_ram, "max_ram"), "--max_ram"
    return Budget(flash, ram, flash_source, ram_source)


def check(flash, ram, limits):
    """The model's `flash` and `ram` (bytes) against `limits` (a `Budget`,
    or None for no budget).

    Returns:
        `{"budget": the limits as a dict or None, "fits": bool,
        "shortfalls": [one line per exceeded bound], "flash_headroom" and
        "ram_headroom": bytes left (negative when over), for each bound
        given}`.
    """
    result = {"budget": None if limits is None else dict(
        dataclasses.asdict(limits), source=limits.source), "fits": True,
        "shortfalls": []}
    if limits is None:
        return result
    for kind, needed, available, source in (
            ("flash", flash, limits.flash, limits.flash_source),
            ("RAM", ram, limits.ram, limits.ram_source)):
        if available is None:
            continue
        result[f"{kind.lower()}_headroom"] = available - needed
        if needed > available:
            result["fits"] = False
            result["shortfalls"].append(
                f"{kind}: needs {needed:,} B, {source} has "
                f"{available:,} B ({needed - available:,} B over)")
    return result


def does_not_fit(result):
    """The one-line error for a `check` result that does not fit."""
    return "does not fit: " + "; ".join(result["shortfalls"])
