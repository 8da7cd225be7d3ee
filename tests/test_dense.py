"""nn's dense product: the value of x @ w, gradients equal to plain autodiff's (both layouts of the
weight gradient, inside and outside lax.scan), forward mode and second order, the fallbacks, and the
compiled backward pass free of products contracting a leading axis."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from neurodyn.nn import _dense
from neurodyn.nn._dense import dense


def _rand(shape, seed):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


def _close(a, b, rtol=2e-6):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape
    assert np.max(np.abs(a - b)) <= rtol * max(1.0, np.max(np.abs(b)))


# (rows, in, out): in <= out transposes x; in > out (e.g. 256 -> 10) transposes the cotangent
SHAPES = [(8, 5, 12), (8, 12, 3), ((3, 8), 12, 3), ((3, 8), 5, 12)]


@pytest.mark.parametrize("rows,k,n", SHAPES)
def test_value_and_gradients_equal_plain_matmul(rows, k, n):
    rows = rows if isinstance(rows, tuple) else (rows,)
    x, w, g = _rand((*rows, k), 0), _rand((k, n), 1), _rand((*rows, n), 2)
    np.testing.assert_array_equal(dense(x, w), x @ w)
    loss = lambda f: (lambda x, w: jnp.sum(jnp.sin(f(x, w)) * g))
    got = jax.grad(loss(dense), argnums=(0, 1))(x, w)
    ref = jax.grad(loss(jnp.matmul), argnums=(0, 1))(x, w)
    for a, b in zip(got, ref):
        _close(a, b)


@pytest.mark.parametrize("k,n", [(5, 12), (12, 3)])
def test_weight_gradient_through_a_scan_equals_plain(k, n):
    xs, w = _rand((6, 4, k), 3), _rand((k, n), 4)

    def loss(f):
        def run(w):
            def step(h, x):
                h = jnp.tanh(0.5 * h + f(x, w))
                return h, h
            return jnp.sum(jax.lax.scan(step, jnp.zeros((4, n)), xs)[1] ** 2)
        return run

    _close(jax.jit(jax.grad(loss(dense)))(w), jax.jit(jax.grad(loss(jnp.matmul)))(w))


def test_forward_mode_and_second_order():
    x, w = _rand((6, 4), 5), _rand((4, 7), 6)
    f = lambda w: jnp.sum(jnp.tanh(dense(x, w)) ** 2)
    f_ref = lambda w: jnp.sum(jnp.tanh(x @ w) ** 2)
    v = _rand((4, 7), 7)
    jvp = jax.jit(lambda f, w, v: jax.jvp(f, (w,), (v,))[1], static_argnums=0)
    _close(jvp(f, w, v), jvp(f_ref, w, v))
    _close(jvp(jax.grad(f), w, v), jvp(jax.grad(f_ref), w, v), 1e-5)
    _close(jax.jit(jax.jacfwd(lambda x: dense(x, w)))(x), jax.jit(jax.jacfwd(lambda x: x @ w))(x))


def test_fallbacks_are_plain_matmul():
    w = _rand((4, 3), 0)
    for x in (_rand((4,), 1), jnp.ones((5, 4), jnp.int32), _rand((5, 4), 2).astype(jnp.bfloat16),
              _rand((_dense.MAX_ROWS + 1, 4), 3)):
        jaxpr = str(jax.make_jaxpr(dense)(x, w))
        assert "custom_jvp" not in jaxpr, x.shape
        np.testing.assert_array_equal(dense(x, w), x @ w)
    assert "custom_jvp" in str(jax.make_jaxpr(dense)(_rand((5, 4), 4), w))


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the layout is chosen for XLA:CPU")
def test_compiled_backward_has_no_product_contracting_a_leading_axis():
    # one step of a spiking layer's training: per-step products inside a scan, both layouts
    xs, w1, w2 = _rand((5, 16, 10), 0), _rand((10, 32), 1), _rand((32, 4), 2)

    def loss(f, w1, w2):
        def step(v, x):
            v = 0.9 * v + f(x, w1)
            s = jnp.tanh(v)
            return v, f(s, w2)
        return jnp.sum(jax.lax.scan(step, jnp.zeros((16, 32)), xs)[1] ** 2)

    def leading_contractions(f):
        hlo = jax.jit(jax.grad(lambda a, b: loss(f, a, b), argnums=(0, 1))).lower(w1, w2).compile().as_text()
        return len(re.findall(r"lhs_contracting_dims=\{0\}", hlo))

    assert leading_contractions(jnp.matmul) > 0  # what plain autodiff gives, the slow kernel
    assert leading_contractions(dense) == 0

