"""The emulated Pi's pieces that need no qemu: cpuinfo, cache, refusals."""

import pytest

from tflite_export import emulator
from tflite_export.errors import TargetError


def test_cpuinfo_from_midr_and_hwcap():
    # Cortex-A72 (a Pi 4): implementer 0x41 (Arm), part 0xd08, r0p3.
    text = emulator.cpuinfo_text(0x410FD083, hwcap=0b11, cores=2)
    assert text.count("processor\t:") == 2
    assert "CPU implementer\t: 0x41" in text
    assert "CPU part\t: 0xd08" in text and "CPU revision\t: 3" in text
    assert "Features\t: fp asimd\n" in text  # only the bits that are set


def test_cache_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert emulator.cache_dir() == str(tmp_path / "kcompress" /
                                       "rpi-emulator")


def test_missing_qemu_says_how_to_install(monkeypatch):
    monkeypatch.setattr(emulator.shutil, "which", lambda name: None)
    with pytest.raises(TargetError, match="apt-get install qemu-user-static"):
        emulator.qemu_path()


def test_cpu_max_is_refused():
    with pytest.raises(TargetError, match="-cpu max is refused"):
        emulator.run_script("max", "script.py", [])
