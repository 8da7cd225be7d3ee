import jax
import jax.numpy as jnp
import numpy as np
import pytest

import neurodyn as nd
from neurodyn import nn


def test_linear_matches_reference_and_is_reproducible():
    nd.random.seed(3)
    fc = nn.Linear(4, 3, w_init=jax.nn.initializers.glorot_uniform(), b_init=jax.nn.initializers.normal(1.0))
    nd.random.seed(3)
    fc2 = nn.Linear(4, 3, w_init=jax.nn.initializers.glorot_uniform(), b_init=jax.nn.initializers.normal(1.0))
    np.testing.assert_array_equal(fc.weight.value, fc2.weight.value)
    assert isinstance(fc.weight, nd.TrainVar) and fc.weight.shape == (4, 3)
    x = jnp.arange(8.0).reshape(2, 4)
    np.testing.assert_allclose(fc(x), x @ fc.weight.value + fc.bias.value, rtol=1e-6)
    assert set(fc.train_vars()) == {"weight", "bias"}
    with pytest.raises(ValueError, match="4 features"):
        fc(jnp.ones((2, 5)))
    assert nn.Linear(4, 3, bias=False).train_vars().keys() == {"weight"}


def test_sequential_with_plain_functions_jit():
    mlp = nn.Sequential(nn.Linear(4, 8), jax.nn.relu, nn.Linear(8, 2))
    x = jnp.linspace(-1, 1, 12).reshape(3, 4)
    w1, b1 = mlp[0].weight.value, mlp[0].bias.value
    w2, b2 = mlp[2].weight.value, mlp[2].bias.value
    ref = jax.nn.relu(x @ w1 + b1) @ w2 + b2
    np.testing.assert_allclose(nd.jit(mlp)(x), ref, rtol=1e-5)
    assert list(mlp.train_vars()) == ["layers.0.weight", "layers.0.bias", "layers.2.weight", "layers.2.bias"]


def test_dropout_train_and_eval():
    nd.random.seed(0)
    drop = nn.Dropout(0.25)
    f = nd.jit(drop)
    y1, y2 = f(jnp.ones((400,))), f(jnp.ones((400,)))
    assert not np.array_equal(y1, y2)  # fresh mask per call
    vals = set(np.unique(np.asarray(y1)).tolist())
    assert vals <= {0.0, float(np.float32(1.0) / np.float32(0.75))}
    assert 0.15 < float(jnp.mean(y1 == 0)) < 0.35
    drop.eval()
    np.testing.assert_array_equal(f(jnp.ones(5)), jnp.ones(5))


def test_layernorm_reference():
    ln = nn.LayerNorm(6)
    ln.weight.value = jnp.arange(6.0)
    ln.bias.value = jnp.ones(6)
    x = jnp.arange(12.0).reshape(2, 6) ** 1.5
    m = x.mean(-1, keepdims=True)
    v = x.var(-1, keepdims=True)
    np.testing.assert_allclose(ln(x), (x - m) / jnp.sqrt(v + 1e-5) * jnp.arange(6.0) + 1, rtol=1e-5, atol=1e-5)


def test_batchnorm_running_stats_train_only():
    bn = nn.BatchNorm1d(3, momentum=0.1)
    f = nd.jit(bn)
    x = jnp.arange(24.0).reshape(8, 3) ** 1.2
    y = f(x)
    mean, var = x.mean(0), x.var(0)
    np.testing.assert_allclose(y, (x - mean) / jnp.sqrt(var + 1e-5), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bn.running_mean.value, 0.1 * mean, rtol=1e-5)
    np.testing.assert_allclose(bn.running_var.value, 0.9 + 0.1 * x.var(0, ddof=1), rtol=1e-5)
    assert "running_mean" not in bn.train_vars()
    bn.eval()
    rm, rv = bn.running_mean.value, bn.running_var.value
    y_eval = f(x)
    np.testing.assert_allclose(y_eval, (x - rm) / jnp.sqrt(rv + 1e-5), rtol=1e-4)
    np.testing.assert_array_equal(bn.running_mean.value, rm)


# -- recurrent -------------------------------------------------------------------------

def _gru_ref(p, xs, h):
    def step(h, x):
        gx, gh = x @ p["w_ih"] + p["b_ih"], h @ p["w_hh"] + p["b_hh"]
        H = h.shape[-1]
        r = jax.nn.sigmoid(gx[:, :H] + gh[:, :H])
        z = jax.nn.sigmoid(gx[:, H:2 * H] + gh[:, H:2 * H])
        n = jnp.tanh(gx[:, 2 * H:] + r * gh[:, 2 * H:])
        h = (1 - z) * n + z * h
        return h, h
    return jax.lax.scan(step, h, xs)


def _lstm_ref(p, xs, h, c):
    def step(carry, x):
        h, c = carry
        g = x @ p["w_ih"] + p["b_ih"] + h @ p["w_hh"] + p["b_hh"]
        H = h.shape[-1]
        i, f, gg, o = (g[:, k * H:(k + 1) * H] for k in range(4))
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(gg)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (h, c), h
    return jax.lax.scan(step, (h, c), xs)


def _params(cell):
    # Non-zero biases so that a wrong bias placement shows up.
    for name in ("b_ih", "b_hh"):
        var = getattr(cell, name)
        var.value = nd.random.normal(0.0, 0.5, size=var.shape)
    return {k: v.value for k, v in cell.train_vars().items()}


def test_gru_layer_matches_reference_time_and_batch_major():
    nd.random.seed(1)
    T, B, I, H = 7, 3, 5, 4
    layer = nn.GRU(I, H, return_state=True)
    p = _params(layer.cell)
    xs = nd.random.normal(0.0, 1.0, size=(T, B, I))
    h_ref, ys_ref = _gru_ref(p, xs, jnp.zeros((B, H)))
    ys, h = nd.jit(layer)(xs)
    np.testing.assert_allclose(ys, ys_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(h, h_ref, rtol=1e-5, atol=1e-5)
    # batch-major layout, same parameters
    bm = nn.GRU(I, H, batch_first=True)
    for k, v in bm.cell.train_vars().items():
        v.value = p[k]
    np.testing.assert_allclose(nd.jit(bm)(jnp.swapaxes(xs, 0, 1)), jnp.swapaxes(ys_ref, 0, 1), rtol=1e-5, atol=1e-5)
    # the cell stepped by hand in a for_loop gives the same sequence
    cell = layer.cell
    cell.reset_state(B)
    ys_cell = nd.jit(lambda xs: nd.for_loop(cell, xs))(xs)
    np.testing.assert_allclose(ys_cell, ys_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(cell.h.value, h_ref, rtol=1e-5, atol=1e-5)


def test_gru_gradient_matches_reference():
    nd.random.seed(2)
    layer = nn.GRU(3, 4)
    p = _params(layer.cell)
    xs = nd.random.normal(0.0, 1.0, size=(5, 2, 3))
    g = nd.jit(nd.grad(lambda: jnp.sum(layer(xs) ** 2), grad_vars=layer.cell.train_vars()))()
    g_ref = jax.grad(lambda p: jnp.sum(_gru_ref(p, xs, jnp.zeros((2, 4)))[1] ** 2))(p)
    for k in p:
        np.testing.assert_allclose(g[k], g_ref[k], rtol=1e-4, atol=1e-5)


def test_lstm_matches_reference_and_stateful_continuation():
    nd.random.seed(4)
    T, B, I, H = 6, 2, 3, 5
    layer = nn.LSTM(I, H, stateful=True, return_state=True)
    p = _params(layer.cell)
    xs = nd.random.normal(0.0, 1.0, size=(2 * T, B, I))
    (h_ref, c_ref), ys_ref = _lstm_ref(p, xs, jnp.zeros((B, H)), jnp.zeros((B, H)))
    layer.reset_state(B)
    f = nd.jit(layer)
    ys1, _ = f(xs[:T])
    ys2, (h, c) = f(xs[T:])  # continues from the state left by the first call
    np.testing.assert_allclose(jnp.concatenate([ys1, ys2]), ys_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(layer.cell.c.value, c_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(h, h_ref, rtol=1e-5, atol=1e-5)
    layer.reset_state(B)
    np.testing.assert_array_equal(layer.cell.h.value, jnp.zeros((B, H)))


def test_rnn_cell_reference_and_reset_state_shapes():
    nd.random.seed(5)
    cell = nn.RNNCell(3, 4, activation=jax.nn.relu)
    p = _params(cell)
    assert cell.h.shape == (4,)
    with pytest.raises(ValueError, match="reset_state"):
        cell(jnp.ones((2, 3)))
    cell.reset_state(2)
    assert cell.h.shape == (2, 4)
    x = jnp.arange(6.0).reshape(2, 3)
    h = nd.jit(cell)(x)
    np.testing.assert_allclose(h, jax.nn.relu(x @ p["w_ih"] + p["b_ih"] + p["b_hh"]), rtol=1e-5)
    # same batch size: reset in place works inside compiled code
    nd.jit(lambda: cell.reset_state(2))()
    np.testing.assert_array_equal(cell.h.value, jnp.zeros((2, 4)))


def test_seed_jit_gru_and_unbatched():
    jit_gru = nd.jit(nn.GRU(10, 20))
    assert jit_gru(jnp.ones((8, 4, 10))).shape == (8, 4, 20)
    assert jit_gru(jnp.ones((8, 10))).shape == (8, 20)
    with pytest.raises(ValueError, match="10 features"):
        jit_gru(jnp.ones((8, 4, 11)))
