"""The one atomic writer (`kcompress._atomic`, behind
`tflite_export.save_atomically`): whole files, synced, permissions kept."""

import os
import stat

import pytest

from kcompress import _atomic
from tflite_export import atomic_write
from tflite_export.errors import OutputError


def test_replacing_a_file_keeps_its_permissions(tmp_path):
    path = tmp_path / "model.tflite"
    path.write_bytes(b"old")
    os.chmod(path, 0o640)
    atomic_write.save_atomically(b"new", path)
    assert path.read_bytes() == b"new"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert os.listdir(tmp_path) == ["model.tflite"]


def test_the_data_is_synced_before_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"),
                                                 real_fsync(fd)))
    monkeypatch.setattr(os, "replace", lambda *a: (events.append("replace"),
                                                   real_replace(*a)))
    _atomic.write_text(tmp_path / "cache.json", "{}")
    # The file's data, then the rename, then the directory entry.
    assert events == ["fsync", "replace", "fsync"]
    assert (tmp_path / "cache.json").read_text() == "{}"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path,
                                                              monkeypatch):
    path = tmp_path / "model.tflite"
    path.write_bytes(b"old")

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OutputError, match="No space left on device"):
        atomic_write.save_atomically(b"new", path)
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["model.tflite"]


def test_tflite_export_uses_kcompress_writer():
    # Loaded from kcompress's file, not a second implementation.
    assert atomic_write._writer().__file__ == _atomic.__file__
    with pytest.raises(IsADirectoryError, match="Received: path="):
        _atomic.write_bytes(os.path.dirname(__file__), b"x")
