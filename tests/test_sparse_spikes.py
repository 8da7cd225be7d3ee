import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import neurodyn as nd
from neurodyn import nn
from neurodyn.nn import _sparse_spikes


def _table(n, p):
    k0, tm1 = nn.stack_tables([nn.binomial_table(n, p)])
    return int(k0[0]), tm1[0]


@pytest.mark.parametrize("M", [2, 12])   # 2: the argsort fallback takes most steps with K > 0
def test_joint_law_is_independent_bernoulli(M):
    n, p, draws = 6, 0.3, 60_000
    k0, tm1 = _table(n, p)
    keys = jax.random.split(jax.random.key(0), draws)
    s = np.asarray(jax.jit(jax.vmap(lambda k: _sparse_spikes.draw(k, n, k0, tm1, M)))(keys))
    code = s.astype(np.int64) @ (1 << np.arange(n))
    observed = np.bincount(code, minlength=1 << n)
    patterns = np.array(list(itertools.product([0, 1], repeat=n)))[:, ::-1]   # bit j = unit j
    k = patterns.sum(axis=1)
    expected = draws * p ** k * (1 - p) ** (n - k)
    chi2 = float(np.sum((observed - expected) ** 2 / expected))
    # 63 degrees of freedom: P(chi2 > 120) ~ 2e-5
    assert chi2 < 120, chi2


def test_plan_sizes_the_draws_and_declines_dense_cases():
    k0, tm1, M = _sparse_spikes.plan(1000, 0.0015)
    # M - slack covers K up to a tail probability of 2**-20
    m = M - _sparse_spikes._SLACK
    tail = 1.0 - sum(math.comb(1000, j) * 0.0015 ** j * 0.9985 ** (1000 - j) for j in range(m + 1))
    assert tail <= 2.0 ** -20
    assert 1.0 - sum(math.comb(1000, j) * 0.0015 ** j * 0.9985 ** (1000 - j) for j in range(m)) > 2.0 ** -20
    for n, p in [(1000, 0.0), (1000, 1.0), (1000, 0.2), (20, 0.01)]:
        assert _sparse_spikes.plan(n, p) is None


@pytest.mark.parametrize("n", [1000, 1024])   # with and without rejected integers
def test_poisson_group_at_a_low_rate_has_the_bernoulli_statistics(n):
    nd.random.seed(7)
    src = nn.PoissonGroup(n, freq=20.)          # p = 0.002 per step: the few-integers path
    assert _sparse_spikes.plan(n, 0.002) is not None
    steps = 5000
    s = np.asarray(nd.jit(lambda: nd.for_loop(lambda: src.update(), length=steps))())
    assert s.shape == (steps, n) and s.dtype == bool
    p = 0.002
    counts = s.sum(axis=1)
    assert abs(counts.mean() - n * p) < 5 * math.sqrt(n * p / steps)
    assert abs(counts.var() / (n * p * (1 - p)) - 1) < 0.1
    # every unit at the same rate: chi-square of the per-unit totals (n - 1 dof)
    per_unit = s.sum(axis=0)
    chi2 = float(np.sum((per_unit - steps * p) ** 2 / (steps * p)))
    assert abs(chi2 - (n - 1)) < 6 * math.sqrt(2 * (n - 1))
    # consecutive steps independent
    assert abs(np.corrcoef(counts[:-1], counts[1:])[0, 1]) < 0.06


def test_poisson_group_batched_rows_are_independent():
    nd.random.seed(8)
    src = nn.PoissonGroup(2000, freq=10.)
    src.reset_state(batch_size=3)
    s = np.asarray(nd.jit(lambda: nd.for_loop(lambda: src.update(), length=2000))())
    assert s.shape == (2000, 3, 2000)
    rates = s.mean(axis=(0, 2))
    np.testing.assert_allclose(rates, 0.001, atol=5 * math.sqrt(0.001 / 4e6))
    assert not np.array_equal(s[:, 0], s[:, 1])
