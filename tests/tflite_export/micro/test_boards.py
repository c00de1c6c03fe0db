"""Budgets: boards, flags and the fit verdict."""

import pytest

from tflite_export.command_inputs import CliError
from tflite_export.errors import MicroError
from tflite_export.micro import boards
from tflite_export.micro.command import parse_size


def test_a_flag_tightens_a_board():
    limits = boards.budget("arduino-nano-33-ble-sense", max_ram=100 * 1024)
    assert (limits.flash, limits.ram) == (1024 * 1024, 100 * 1024)
    assert (limits.flash_source, limits.ram_source) == (
        "arduino-nano-33-ble-sense", "--max_ram")
    # A looser flag does not loosen the board.
    assert boards.budget("raspberry-pi-pico", max_ram=10**9).ram == 264 * 1024
    assert boards.budget() is None


def test_the_verdict_says_by_how_much():
    limits = boards.budget("arduino-nano-33-ble-sense")
    fits = boards.check(900_000, 200_000, limits)
    assert fits["fits"] and fits["ram_headroom"] == 256 * 1024 - 200_000
    over = boards.check(900_000, 300_000, limits)
    assert not over["fits"]
    assert boards.does_not_fit(over) == (
        "does not fit: RAM: needs 300,000 B, arduino-nano-33-ble-sense has "
        "262,144 B (37,856 B over)")


@pytest.mark.parametrize("kwargs, message", [
    (dict(board="arduino-uno"), "Received: board='arduino-uno'. Expected one "
     "of arduino-nano-33-ble-sense"),
    (dict(max_flash=0), "Received: max_flash=0. Expected a whole number"),
    (dict(max_ram=1.5), "Received: max_ram=1.5."),
    (dict(max_ram=True), "Received: max_ram=True."),
])
def test_bad_budgets_are_refused(kwargs, message):
    with pytest.raises(MicroError, match=message):
        boards.budget(**kwargs)


@pytest.mark.parametrize("text, size", [("262144", 262144), ("256KB", 262144),
                                        ("1 MB", 1 << 20), ("0.5kb", 512),
                                        ("300KiB", 300 * 1024)])
def test_sizes_read_as_users_write_them(text, size):
    assert parse_size(text, "max_ram") == size


@pytest.mark.parametrize("text", ["lots", "-1KB", "0", "5GB", ""])
def test_bad_sizes_are_refused(text):
    with pytest.raises(CliError, match="max_ram"):
        parse_size(text, "max_ram")
