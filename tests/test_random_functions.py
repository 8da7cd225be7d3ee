"""NumPy-style nd.random functions: moments, shapes, reproducibility, inside nd.jit."""

import jax.numpy as jnp
import numpy as np
import pytest

import neurodyn as nd

N = 200_000


def moments(x):
    x = np.asarray(x, np.float64)
    return x.mean(), x.var()


@pytest.mark.parametrize("draw,mean,var", [
    (lambda: nd.random.rand(N), 0.5, 1 / 12),
    (lambda: nd.random.randn(N), 0.0, 1.0),
    (lambda: nd.random.poisson(3.5, size=N), 3.5, 3.5),
    (lambda: nd.random.binomial(40, 0.3, size=N), 12.0, 40 * 0.3 * 0.7),
    (lambda: nd.random.exponential(2.0, size=N), 2.0, 4.0),
    (lambda: nd.random.gamma(3.0, 0.5, size=N), 1.5, 3.0 * 0.25),
    (lambda: nd.random.bernoulli(0.2, size=N), 0.2, 0.16),
    (lambda: nd.random.choice(np.array([1.0, 5.0]), size=N, p=np.array([0.25, 0.75])), 4.0, 3.0),
], ids=["rand", "randn", "poisson", "binomial", "exponential", "gamma", "bernoulli", "choice"])
def test_moments(draw, mean, var):
    nd.random.seed(3)
    m, v = moments(draw())
    se = np.sqrt(var / N)
    assert abs(m - mean) < 5 * se
    assert abs(v - var) < 0.02 * var + 5 * se


def test_shapes_and_dtypes():
    assert nd.random.rand(2, 3).shape == (2, 3) and nd.random.rand().shape == ()
    assert nd.random.randn(4).dtype == jnp.float32
    counts = nd.random.poisson(jnp.array([1.0, 2.0]))  # shape from the parameters
    assert counts.shape == (2,) and counts.dtype == jnp.int32
    k = nd.random.binomial(5, 1.0, size=100)
    assert k.dtype == jnp.int32
    np.testing.assert_array_equal(k, 5)
    p = np.asarray(nd.random.permutation(10))
    np.testing.assert_array_equal(np.sort(p), np.arange(10))


def test_inside_jit_fresh_numbers_and_reproducible():
    f = nd.jit(lambda: (nd.random.poisson(2.0, size=4), nd.random.exponential(1.0, size=4),
                        nd.random.gamma(2.0, size=4), nd.random.binomial(10, 0.5, size=4),
                        nd.random.rand(4), nd.random.randn(4)))
    nd.random.seed(0)
    a = [np.asarray(x) for x in f()]
    b = [np.asarray(x) for x in f()]
    assert all(not np.array_equal(x, y) for x, y in zip(a[1:], b[1:]))
    nd.random.seed(0)
    c = [np.asarray(x) for x in f()]
    for x, y in zip(a, c):
        np.testing.assert_array_equal(x, y)
