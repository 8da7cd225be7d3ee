import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from neurodyn import surrogate

X = jnp.array([-2.0, -0.7, -0.1, 0.0, 0.05, 0.3, 1.5])


def _sig(z):
    return 1 / (1 + np.exp(-z))


CASES = [
    (surrogate.Sigmoid(alpha=4.0), lambda x: 4.0 * _sig(4 * x) * (1 - _sig(4 * x))),
    (surrogate.ArcTan(alpha=2.0), lambda x: 1.0 / (1 + (math.pi / 2 * 2.0 * x) ** 2)),
    (surrogate.FastSigmoid(alpha=10.0), lambda x: 1 / (1 + 10 * np.abs(x)) ** 2),
    (surrogate.PiecewiseQuadratic(alpha=2.0),
     lambda x: np.where(np.abs(x) < 0.5, 2.0 - 4.0 * np.abs(x), 0.0)),
    (surrogate.Gaussian(sigma=0.5, alpha=1.0),
     lambda x: np.exp(-x**2 / 0.5) / (math.sqrt(2 * math.pi) * 0.5)),
]


@pytest.mark.parametrize("fn,deriv", CASES, ids=lambda c: type(c).__name__)
def test_forward_is_heaviside_and_gradient_is_analytic(fn, deriv):
    np.testing.assert_array_equal(fn(X), (np.asarray(X) >= 0).astype(np.float32))
    g = jax.vmap(jax.grad(fn))(X)
    np.testing.assert_allclose(g, deriv(np.asarray(X, np.float64)), rtol=1e-5, atol=1e-7)


def test_chain_rule_and_jit():
    fn = surrogate.Sigmoid(alpha=2.0)
    # d/dv fn(3 v - 1) = 3 * fn'(3 v - 1)
    g = jax.jit(jax.grad(lambda v: fn(3 * v - 1.0)))(0.4)
    z = 3 * 0.4 - 1.0
    assert abs(float(g) - 3 * 2 * _sig(2 * z) * (1 - _sig(2 * z))) < 1e-5
    # forward-mode works too (custom_jvp)
    _, t = jax.jvp(fn, (jnp.array(0.0),), (jnp.array(1.0),))
    assert abs(float(t) - 0.5) < 1e-6


def test_invalid_parameters():
    with pytest.raises(ValueError, match="alpha"):
        surrogate.ArcTan(alpha=0.0)
    with pytest.raises(ValueError, match="sigma"):
        surrogate.Gaussian(sigma=-1.0)
