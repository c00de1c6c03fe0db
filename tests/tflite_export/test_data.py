"""DATA files: `.npz`, `.npy`, checked, with named errors."""

import numpy as np
import pytest

from tflite_export import data
from tflite_export.errors import DataError


def test_npz_with_labels_and_npy_without(tmp_path):
    x = np.zeros((5, 4, 4, 1), "float32")
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(5).astype("float64"))
    got_x, got_y = data.load(tmp_path / "d.npz")
    assert got_x.shape == x.shape
    assert got_y.dtype.kind == "i" and got_y.tolist() == [0, 1, 2, 3, 4]
    np.save(tmp_path / "x.npy", x)
    got_x, got_y = data.load(str(tmp_path / "x.npy"))
    assert got_x.shape == x.shape and got_y is None


def test_column_labels_are_flattened(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((3, 2)), y=np.zeros((3, 1), int))
    assert data.load(tmp_path / "d.npz")[1].shape == (3,)


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_bytes(b""), "is empty"),
    (lambda p: p.write_text("1,2\n3,4\n"), "neither a .npz nor a .npy"),
    (lambda p: np.savez(p, inputs=np.zeros(3)), "has no array 'x'"),
    (lambda p: np.savez(p, x=np.array([object()] * 3)), "object arrays"),
    (lambda p: np.savez(p, x=np.zeros((3, 2)), y=np.full(3, 0.5)),
     "are not integers"),
    (lambda p: np.savez(p, x=np.full((3, 2), np.inf)), "NaN or infinite"),
    (lambda p: np.savez(p, x=np.zeros((0, 2))), "no samples"),
])
def test_bad_files_get_a_data_error(tmp_path, make, message):
    path = tmp_path / "bad.npz"
    make(path)
    if not path.exists():  # np.savez appends .npz to names without it
        path = tmp_path / "bad.npz"
    with pytest.raises(DataError, match=message):
        data.load(path)


def test_truncated_archive(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((50, 8)))
    (tmp_path / "cut.npz").write_bytes((tmp_path / "d.npz").read_bytes()[:80])
    with pytest.raises(DataError, match="truncated or corrupt"):
        data.load(tmp_path / "cut.npz")
    with pytest.raises(DataError, match="not found"):
        data.load(tmp_path / "missing.npz")
