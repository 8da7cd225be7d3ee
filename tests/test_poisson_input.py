import math

import jax.numpy as jnp
import numpy as np
import pytest

import neurodyn as nd
import neurodyn.nn as nn


def binom_pmf(n, p, k):
    if p in (0.0, 1.0):
        return float(k == (0 if p == 0.0 else n))
    return math.exp(math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
                    + k * math.log(p) + (n - k) * math.log1p(-p))


def chi2_critical(df, z=3.0902):  # upper 0.1% point (Wilson-Hilferty)
    a = 2.0 / (9.0 * df)
    return df * (1.0 - a + z * math.sqrt(a)) ** 3


def chi2_against_binomial(samples, n, p):
    """Chi-square statistic of integer samples against Binomial(n, p), bins pooled to >= 20 expected."""
    m = samples.size
    mean, sd = n * p, math.sqrt(n * p * (1 - p))
    ks = range(max(0, int(mean - 8 * sd) - 2), min(n, int(mean + 8 * sd) + 3) + 1)
    probs = {k: binom_pmf(n, p, k) for k in ks}
    counts = np.bincount(samples, minlength=max(ks) + 2)
    bins, cur_p, cur_c = [], 0.0, 0
    for k in ks:
        cur_p += probs[k]
        cur_c += int(counts[k]) if k < counts.size else 0
        if cur_p * m >= 20:
            bins.append([cur_p, cur_c])
            cur_p, cur_c = 0.0, 0
    bins[-1][0] += cur_p + (1.0 - sum(probs.values()))  # the remaining tail mass
    bins[-1][1] += cur_c + int(counts[max(ks) + 1:].sum()) + int(counts[:min(ks)].sum())
    stat = sum((c - q * m) ** 2 / (q * m) for q, c in bins)
    return stat, len(bins) - 1


def draw(n, freq, neurons=500, steps=200, seed=0):
    nd.random.seed(seed)
    lif = nn.LIF(neurons, V_th=1e9)
    src = nn.PoissonInput(lif, num_input=n, freq=freq, weight=1.0)
    f = nd.jit(lambda: nd.for_loop(lambda: src.counts((neurons,)), length=steps))
    return np.asarray(f()).ravel()


@pytest.mark.parametrize("n,freq", [(1000, 20.0), (50, 3000.0), (100_000, 100.0), (3, 500.0)])
def test_poisson_input_counts_follow_the_binomial_law(n, freq):
    p = freq * 0.1 / 1000.0
    x = draw(n, freq)
    m = x.size
    mean, var = n * p, n * p * (1 - p)
    assert abs(x.mean() - mean) < 5 * math.sqrt(var / m)
    # the sample variance's standard error is about var * sqrt(2 / m) for these near-normal laws
    assert abs(x.var() - var) < 6 * var * math.sqrt(2.0 / m) + 1e-9
    stat, df = chi2_against_binomial(x, n, p)
    assert stat < chi2_critical(df), (stat, df)
    # the test has the power to see a 5% error in the rate
    stat, df = chi2_against_binomial(x, n, p * 1.05)
    assert stat > chi2_critical(df), (stat, df)


def test_binomial_table_is_the_cdf_to_2_pow_minus_32():
    for n, p in ((1000, 0.002), (20, 0.5), (7, 0.9)):
        k0, T = nn.binomial_table(n, p)
        cdf = np.cumsum([binom_pmf(n, p, k) for k in range(n + 1)])
        assert T.dtype == np.uint32 and np.all(np.diff(T.astype(np.int64)) >= 0)
        # P(K <= k0 + j) = T[j] / 2**32, and every k below k0 has probability < 2**-33
        np.testing.assert_allclose(T / 2.0**32, cdf[k0:k0 + T.size], rtol=0, atol=2.0**-32)
        assert k0 == 0 or cdf[k0 - 1] < 2.0**-32
    assert nn.binomial_table(10, 0.0)[0] == 0 and nn.binomial_table(10, 0.0)[1].size == 0
    assert nn.binomial_table(10, 1.0)[0] == 10 and nn.binomial_table(10, 1.0)[1].size == 0


def test_poisson_input_edge_rates_and_current():
    nd.random.seed(3)
    lif = nn.LIF(4, V_th=1e9)
    silent = nn.PoissonInput(lif, num_input=10, freq=0.0, weight=1.0)
    sure = nn.PoissonInput(lif, num_input=10, freq=10_000.0, weight=0.5)  # p = 1 at dt = 0.1
    np.testing.assert_array_equal(silent.counts((4,)), 0)
    np.testing.assert_array_equal(sure._current(lif.V.value), 5.0)  # weight * k, a current
    with pytest.raises(ValueError, match="PoissonInput: freq \\* dt = 2.0 > 1"):
        nn.PoissonInput(lif, num_input=10, freq=20_000.0, weight=1.0)
    with pytest.raises(ValueError, match="num_input must be a non-negative int"):
        nn.PoissonInput(lif, num_input=-1, freq=1.0, weight=1.0)


def test_poisson_group_bernoulli_per_unit_rates():
    nd.random.seed(4)
    freq = np.array([0.0, 100.0, 2500.0, 10_000.0] * 250)  # p = 0, 0.01, 0.25, 1
    src = nn.PoissonGroup(1000, freq=freq)
    f = nd.jit(lambda: nd.for_loop(lambda: src.update(), length=400))
    s = np.asarray(f())
    rate = s.reshape(400, 250, 4).mean(axis=(0, 1))
    assert rate[0] == 0.0 and rate[3] == 1.0
    for p, r in zip((0.01, 0.25), rate[1:3]):
        assert abs(r - p) < 5 * math.sqrt(p * (1 - p) / 100_000)
    with pytest.raises(ValueError, match="one rate per unit"):
        nn.PoissonGroup(10, freq=np.ones(3))


def test_poisson_input_as_voltage_jumps():
    nd.random.seed(5)
    lif = nn.LIF(2000, V_rest=0.0, V_reset=0.0, V_th=1e9, tau=20.0)
    src = nn.PoissonInput(lif, num_input=1000, freq=20.0, weight=0.1, jump=True)  # 0.1 mV per input spike
    V0 = np.asarray(lif.V.value)
    nd.random.seed(6)
    k = np.asarray(src.counts((2000,)))
    nd.random.seed(6)
    lif.update()
    # after the step's (zero-input) decay, V moves by exactly 0.1 mV per input spike
    np.testing.assert_allclose(np.asarray(lif.V.value), V0 * math.exp(-0.1 / 20.0) + 0.1 * k, rtol=1e-6, atol=1e-6)
    assert k.mean() > 1.5


def test_random_bits_are_threefry_2x32_words_of_a_counter():
    import jax
    from jax.extend.random import threefry_2x32
    from neurodyn.nn._inputs import _threefry2x32, random_bits
    # known-answer vectors of Threefry-2x32-20 (Random123)
    u = lambda *v: [jnp.uint32(x) for x in v]
    for key, ctr, want in (((0, 0), (0, 0), (0x6B200159, 0x99BA4EFE)),
                           ((0xFFFFFFFF,) * 2, (0xFFFFFFFF,) * 2, (0x1CB996FC, 0xBB002BE7)),
                           ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0))):
        assert [int(x) for x in _threefry2x32(*u(*key), *u(*ctr))] == list(want)
    # the stream: JAX's threefry_2x32 over arange, of any length and shape
    for n, shape in ((1, (1,)), (7, (7,)), (1000, (10, 100)), (10001, (10001,))):
        key = jax.random.key(n)
        ref = threefry_2x32(jax.random.key_data(key), jnp.arange(n + n % 2, dtype=jnp.uint32))[:n]
        np.testing.assert_array_equal(np.asarray(random_bits(key, shape)).reshape(-1), np.asarray(ref))
    assert random_bits(jax.random.key(0), (0, 3)).shape == (0, 3)
