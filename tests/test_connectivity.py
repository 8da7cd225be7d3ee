import numpy as np
import pytest

import neurodyn.nn as nn


def _rows(indptr, indices):
    return [indices[indptr[i]:indptr[i + 1]] for i in range(len(indptr) - 1)]


def test_fixed_prob_statistics_and_structure():
    n, p = 2000, 0.05
    conn = nn.FixedProb(p, allow_self=False, seed=3)
    indptr, indices = conn.csr(n, n)
    deg = np.diff(indptr)
    # Binomial(n - 1, p): mean 99.95, std ~9.7; the mean of 2000 rows is within 1.
    assert abs(deg.mean() - (n - 1) * p) < 1.0
    assert abs(deg.std() - np.sqrt((n - 1) * p * (1 - p))) < 1.0
    pre = np.repeat(np.arange(n), deg)
    assert not np.any(pre == indices)  # no self-connections
    for r in _rows(indptr, indices)[:200]:
        assert np.all(np.diff(r) > 0)  # sorted, no duplicates
    # targets are uniform: every post neuron gets ~ n p inputs
    indeg = np.bincount(indices, minlength=n)
    assert abs(indeg.mean() - deg.mean()) < 1e-9 and indeg.std() < 2 * np.sqrt(n * p)


def test_fixed_prob_reproducible_and_seed_dependent():
    a = nn.FixedProb(0.1, seed=1).csr(300, 400)
    b = nn.FixedProb(0.1, seed=1).csr(300, 400)
    c = nn.FixedProb(0.1, seed=2).csr(300, 400)
    np.testing.assert_array_equal(a[1], b[1])
    assert a[1].shape != c[1].shape or np.any(a[1] != c[1])


def test_formats_agree():
    conn = nn.FixedProb(0.3, seed=0)  # dense regime of the sampler
    indptr, indices = conn.csr(40, 50)
    dense = conn.dense(40, 50)
    padded = conn.padded(40, 50)
    assert padded.dtype == np.int32 and padded.shape == (40, np.diff(indptr).max())
    for i, r in enumerate(_rows(indptr, indices)):
        np.testing.assert_array_equal(np.flatnonzero(dense[i]), r)
        np.testing.assert_array_equal(padded[i, :len(r)], r)
        assert np.all(padded[i, len(r):] == 50)
    assert abs(dense.mean() - 0.3) < 0.05


def test_fixed_num_connectors():
    post = nn.FixedPostNum(7, allow_self=False, seed=0).dense(30, 30)
    assert np.all(post.sum(1) == 7) and not np.any(np.diag(post))
    pre = nn.FixedPreNum(5, seed=0)
    d = pre.dense(20, 60)
    assert np.all(d.sum(0) == 5)
    indptr, indices = pre.csr(20, 60)
    for r in _rows(indptr, indices):
        assert np.all(np.diff(r) > 0)
    with pytest.raises(ValueError, match="exceeds"):
        nn.FixedPostNum(11, seed=0).csr(5, 10)


def test_all_to_all_and_one_to_one():
    np.testing.assert_array_equal(nn.AllToAll(allow_self=False).dense(4, 4), ~np.eye(4, dtype=bool))
    np.testing.assert_array_equal(nn.AllToAll().dense(2, 3), np.ones((2, 3), bool))
    np.testing.assert_array_equal(nn.OneToOne().dense(5, 5), np.eye(5, dtype=bool))
    with pytest.raises(ValueError, match="n_pre == n_post"):
        nn.OneToOne().csr(3, 4)


def test_sampler_is_uniform():
    rng = np.random.default_rng(0)
    indptr, idx = nn.sample_without_replacement(rng, 10, np.full(20000, 3))
    freq = np.bincount(idx, minlength=10) / 20000
    np.testing.assert_allclose(freq, 0.3, atol=0.01)
    rows = idx.reshape(-1, 3)
    assert np.all(np.diff(rows, axis=1) > 0)


def test_errors():
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\]"):
        nn.FixedProb(1.5)
    with pytest.raises(ValueError, match="allow_self=False"):
        nn.FixedProb(0.1, allow_self=False, seed=0).csr(10, 20)
    with pytest.raises(ValueError, match="max_elems"):
        nn.FixedProb(0.1, seed=0).dense(10000, 10000)


def test_large_sparse_build_is_exact():
    # the sparse regime of the large benchmarks (80 synapses per neuron; the build time is
    # measured by bench/connectivity_build.py): rows strictly increasing (no duplicates), in
    # range, without self-connections, with Binomial(n - 1, p) degrees
    n, k = 20000, 80
    indptr, indices = nn.FixedProb(k / n, allow_self=False, seed=0).csr(n, n)
    deg = np.diff(indptr)
    p = k / n
    assert indptr[0] == 0 and indptr[-1] == indices.size and indices.dtype == np.int32
    assert abs(deg.mean() - (n - 1) * p) < 0.2
    assert abs(deg.var() / ((n - 1) * p * (1 - p)) - 1) < 0.05
    assert indices.min() >= 0 and indices.max() < n
    rows = np.repeat(np.arange(n), deg)
    assert not np.any(indices == rows)
    same_row = rows[1:] == rows[:-1]
    assert np.all(indices[1:][same_row] > indices[:-1][same_row])
    # the same seed gives the same connectivity
    np.testing.assert_array_equal(nn.FixedProb(k / n, allow_self=False, seed=0).csr(n, n)[1], indices)
