import numpy as np
import pytest
from keras import ops

from kcompress.pruning import masks


def _np(x):
    return ops.convert_to_numpy(x)


@pytest.mark.parametrize("sparsity", [0.0, 0.25, 0.5, 0.8, 0.9, 0.99])
def test_magnitude_mask_zeroes_exactly_the_smallest(sparsity):
    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, 3, 8, 16)).astype("float32")
    mask = _np(masks.magnitude_mask(w, sparsity))
    keep = round(w.size * (1 - sparsity))
    assert mask.shape == w.shape
    assert int(mask.sum()) == keep
    if 0 < keep < w.size:
        assert np.abs(w[mask == 1]).min() > np.abs(w[mask == 0]).max()


def test_magnitude_mask_exact_count_with_ties():
    w = np.zeros((10, 10), "float32")
    w[0, :5] = 1.0
    mask = _np(masks.magnitude_mask(w, 0.5))
    assert int(mask.sum()) == 50
    assert mask[0, :5].all()


def test_block_mask_prunes_whole_blocks():
    rng = np.random.default_rng(1)
    w = rng.normal(size=(8, 6)).astype("float32")
    mask = _np(masks.block_mask(w, 0.5, (2, 3)))
    blocks = mask.reshape(4, 2, 2, 3).transpose(0, 2, 1, 3).reshape(8, 6)
    for block in blocks:
        assert block.min() == block.max()
    assert mask.mean() == pytest.approx(0.5)


def test_block_mask_pads_partial_blocks_and_keeps_shape():
    w = np.arange(1, 3 * 3 * 2 * 5 + 1, dtype="float32").reshape(3, 3, 2, 5)
    mask = _np(masks.block_mask(w, 0.5, (4, 2), "MAX"))
    assert mask.shape == w.shape
    assert 0 < mask.mean() < 1


@pytest.mark.parametrize("m_by_n", [(2, 4), (1, 4), (3, 8)])
def test_m_by_n_mask_every_group(m_by_n):
    m, n = m_by_n
    rng = np.random.default_rng(2)
    w = rng.normal(size=(3, 3, 16, 8)).astype("float32")
    mask = _np(masks.m_by_n_mask(w, m_by_n, axis=-2))
    groups = np.moveaxis(mask, 2, -1).reshape(-1, n)
    assert ((groups == 0).sum(axis=1) == m).all()


def test_m_by_n_mask_partial_group_keeps_at_most_n_minus_m():
    w = np.ones((6, 3), "float32")  # 6 inputs: one full group of 4, one of 2
    mask = _np(masks.m_by_n_mask(w, (2, 4), axis=0))
    assert (mask[:4].sum(axis=0) == 2).all()
    assert (mask[4:].sum(axis=0) <= 2).all()


def test_m_by_n_keeps_the_largest_in_each_group():
    w = np.array([[0.1, 5.0, -3.0, 0.2, 1.0, -1.5, 0.0, 4.0]], "float32").T
    mask = _np(masks.m_by_n_mask(w, (2, 4), axis=0)).ravel()
    assert mask.tolist() == [0, 1, 1, 0, 0, 1, 0, 1]


def test_sparsity_of():
    assert masks.sparsity_of(np.array([0.0, 1.0, 0.0, 2.0])) == 0.5
    assert masks.sparsity_of(np.zeros((0,))) == 0.0
