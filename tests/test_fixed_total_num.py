import jax.numpy as jnp
import numpy as np
import pytest

import neurodyn as nd
import neurodyn.nn as nn


def _pairs(conn, n_pre, n_post):
    indptr, indices = conn.csr(n_pre, n_post)
    return np.repeat(np.arange(n_pre), np.diff(indptr)), indices


def test_exact_total_sorted_rows_and_uniform_marginals():
    conn = nn.FixedTotalNum(200_000, seed=1)
    indptr, indices = conn.csr(400, 500)
    assert conn.num_connections(400, 500) == 200_000 and indptr[-1] == 200_000
    for i in range(0, 400, 37):
        assert np.all(np.diff(indices[indptr[i]:indptr[i + 1]]) >= 0)
    # out-degrees Binomial(200000, 1/400): mean 500, std ~22.3; in-degrees mean 400, std ~20
    out_deg, in_deg = np.diff(indptr), np.bincount(indices, minlength=500)
    assert out_deg.mean() == 500 and abs(out_deg.std() - np.sqrt(200_000 / 400 * (1 - 1 / 400))) < 2.5
    assert abs(in_deg.std() - np.sqrt(200_000 / 500 * (1 - 1 / 500))) < 2.5


def test_multapses_occur_as_expected_and_can_be_forbidden():
    n_pre, n_post, num = 100, 100, 5000
    pre, post = _pairs(nn.FixedTotalNum(num, seed=2), n_pre, n_post)
    distinct = np.unique(pre * n_post + post).size
    # expected distinct pairs M (1 - (1 - 1/M)^num) with M = 10^4 pairs: 3935 (std ~ 21)
    m = n_pre * n_post
    assert abs(distinct - m * (1 - (1 - 1 / m) ** num)) < 100
    pre, post = _pairs(nn.FixedTotalNum(num, allow_multapses=False, seed=2), n_pre, n_post)
    assert np.unique(pre * n_post + post).size == num
    # all pairs, without self-connections
    pre, post = _pairs(nn.FixedTotalNum(90, allow_multapses=False, allow_self=False, seed=0), 10, 10)
    assert np.unique(pre * 10 + post).size == 90 and not np.any(pre == post)
    pre, post = _pairs(nn.FixedTotalNum(3000, allow_self=False, seed=0), 30, 30)
    assert pre.size == 3000 and not np.any(pre == post)


def test_seed_reproducible():
    a = nn.FixedTotalNum(1000, seed=7).csr(50, 60)
    b = nn.FixedTotalNum(1000, seed=7).csr(50, 60)
    c = nn.FixedTotalNum(1000, seed=8).csr(50, 60)
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])
    nd.random.seed(3)
    d = nn.FixedTotalNum(1000).csr(50, 60)
    nd.random.seed(3)
    np.testing.assert_array_equal(d[1], nn.FixedTotalNum(1000).csr(50, 60)[1])


def test_errors():
    with pytest.raises(ValueError, match="num=101 exceeds the 100 distinct pairs of n_pre=10 x n_post=10"):
        nn.FixedTotalNum(101, allow_multapses=False).csr(10, 10)
    with pytest.raises(ValueError, match="without self-connections"):
        nn.FixedTotalNum(91, allow_multapses=False, allow_self=False).csr(10, 10)
    with pytest.raises(ValueError, match="FixedTotalNum: num must be a non-negative int, got -1"):
        nn.FixedTotalNum(-1)
    with pytest.raises(ValueError, match="needs n_pre == n_post"):
        nn.FixedTotalNum(5, allow_self=False).csr(3, 4)
    with pytest.raises(ValueError, match="no possible pair"):
        nn.FixedTotalNum(1, allow_self=False).csr(1, 1)


@pytest.mark.parametrize("mode", ["event", "dense"])
@pytest.mark.parametrize("hetero", [False, True])
def test_projection_adds_multapses(mode, hetero):
    n_pre, n_post = 40, 30
    conn = nn.FixedTotalNum(3000, seed=4)
    pre, post = _pairs(conn, n_pre, n_post)
    assert np.unique(pre * n_post + post).size < pre.size  # there are multapses
    w = np.random.default_rng(0).normal(1.0, 0.3, pre.size).astype(np.float32) if hetero else 0.5
    src = nn.LIF(n_pre)
    dst = nn.LIF(n_post)
    proj = nn.Projection(src, dst, conn, w, nn.Expon(n_post, 5.0), nn.CUBA(), mode=mode, max_spikes=n_pre)
    spikes = np.random.default_rng(1).random(n_pre) < 0.5
    ref = np.zeros(n_post)
    np.add.at(ref, post, spikes[pre] * (w if hetero else np.full(pre.size, w)))
    np.testing.assert_allclose(np.asarray(proj.propagate(jnp.asarray(spikes))), ref, rtol=1e-5, atol=1e-5)


def test_fused_network_adds_multapses():
    n = 300
    E = nn.LIF(n)
    conn = nn.FixedTotalNum(20_000, seed=5)
    net = nn.Network(E=E, EE=nn.Projection(E, E, conn, 0.25, nn.Expon(n, 5.0), nn.CUBA(), mode="event"))
    assert net._fusion is not None
    spikes = np.random.default_rng(2).random(n) < 0.02
    E.spike.value = jnp.asarray(spikes)
    pre, post = _pairs(conn, n, n)
    ref = 0.25 * np.bincount(post, weights=spikes[pre].astype(float), minlength=n)
    fused = net._fusion.inputs()[0]
    np.testing.assert_allclose(np.asarray(fused), ref, rtol=1e-6)
