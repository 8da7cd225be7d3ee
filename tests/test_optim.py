import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import neurodyn as nd
from neurodyn import nn, optim


def _setup():
    w = nd.TrainVar(jnp.array([1.0, -2.0, 3.0]))
    b = nd.TrainVar(jnp.array(0.5))
    return {"w": w, "b": b}


def _grads(k):
    return {"w": jnp.array([0.1, 0.2, -0.3]) * (k + 1), "b": jnp.array(0.05) * (k + 1)}


def test_sgd_plain_and_momentum_match_hand_written():
    vs = _setup()
    opt = optim.SGD(lr=0.1, momentum=0.9, train_vars=vs)
    p = {k: v.value for k, v in vs.items()}
    m = {k: jnp.zeros_like(x) for k, x in p.items()}
    step = nd.jit(opt.update)
    for k in range(3):
        step(_grads(k))
        for n in p:
            m[n] = 0.9 * m[n] + _grads(k)[n]
            p[n] = p[n] - 0.1 * m[n]
    for n in p:
        np.testing.assert_allclose(vs[n].value, p[n], rtol=1e-6)
    assert int(opt.step_count.value) == 3

    vs = _setup()
    opt = optim.SGD(lr=0.5, weight_decay=0.1, train_vars=vs)
    opt.update(_grads(0))
    np.testing.assert_allclose(vs["w"].value, jnp.array([1.0, -2.0, 3.0]) * (1 - 0.05) - 0.5 * _grads(0)["w"], rtol=1e-6)


def test_adam_matches_hand_written():
    vs = _setup()
    opt = optim.Adam(lr=0.01, train_vars=vs)
    p = {k: v.value for k, v in vs.items()}
    m = {k: jnp.zeros_like(x) for k, x in p.items()}
    v = {k: jnp.zeros_like(x) for k, x in p.items()}
    step = nd.jit(lambda g: opt.update(g))
    for t in range(1, 5):
        g = _grads(t)
        step(g)
        for n in p:
            m[n] = 0.9 * m[n] + 0.1 * g[n]
            v[n] = 0.999 * v[n] + 0.001 * g[n] ** 2
            mh, vh = m[n] / (1 - 0.9 ** t), v[n] / (1 - 0.999 ** t)
            p[n] = p[n] - 0.01 * mh / (jnp.sqrt(vh) + 1e-8)
    for n in p:
        np.testing.assert_allclose(vs[n].value, p[n], rtol=1e-5, atol=1e-7)


def test_rmsprop_and_adamw_match_optax_on_pytrees():
    for make, tx in [(lambda vs: optim.RMSProp(0.01, alpha=0.9, train_vars=vs),
                      optax.rmsprop(0.01, decay=0.9, eps=1e-8, eps_in_sqrt=False)),
                     (lambda vs: optim.AdamW(0.01, weight_decay=0.1, train_vars=vs),
                      optax.adamw(0.01, weight_decay=0.1))]:
        vs = _setup()
        p = {k: v.value for k, v in vs.items()}
        opt = make(vs)
        s = tx.init(p)
        for k in range(3):
            opt.update(_grads(k))
            u, s = tx.update(_grads(k), s, p)
            p = optax.apply_updates(p, u)
        for n in p:
            np.testing.assert_allclose(vs[n].value, p[n], rtol=1e-6)


def test_generic_optimizer_chain_schedule_and_state_in_variables():
    vs = _setup()
    sched = optax.linear_schedule(0.1, 0.0, 4)
    tx = optax.chain(optax.clip_by_global_norm(0.2), optax.sgd(sched))
    opt = optim.Optimizer(tx, lr=sched)
    opt.register(vs)
    assert all(isinstance(v, nd.Variable) for v in opt.vars().values())
    assert "w" not in opt.vars() and "step_count" in opt.vars()
    p = {k: v.value for k, v in vs.items()}
    s = tx.init(p)
    step = nd.jit(opt.update)
    for k in range(3):
        step(_grads(k))
        u, s = tx.update(_grads(k), s, p)
        p = optax.apply_updates(p, u)
    for n in p:
        np.testing.assert_allclose(vs[n].value, p[n], rtol=1e-6)
    np.testing.assert_allclose(float(opt.lr), 0.1 * (1 - 3 / 4), rtol=1e-6)
    # the jitted update kept the optax state (schedule count) in Variables
    counts = [int(x) for x in jax.tree.leaves(opt.state) if jnp.issubdtype(x.dtype, jnp.integer)]
    assert counts == [3]


def test_optimizer_errors():
    vs = _setup()
    opt = optim.SGD(0.1, train_vars=vs)
    with pytest.raises(KeyError, match="missing"):
        opt.update({"w": jnp.zeros(3)})
    with pytest.raises(ValueError, match="shape"):
        opt.update({"w": jnp.zeros(4), "b": jnp.zeros(())})
    with pytest.raises(RuntimeError, match="register"):
        optim.Adam(1e-3).update({})


def test_grad_and_update_on_a_module():
    nd.random.seed(0)
    model = nn.Linear(3, 1)
    opt = optim.SGD(0.1, train_vars=model.train_vars())
    x, y = jnp.ones((4, 3)), jnp.zeros((4, 1))
    loss = lambda: jnp.mean((model(x) - y) ** 2)
    f_grad = nd.grad(loss, grad_vars=model.train_vars(), return_value=True)

    @nd.jit
    def train():
        grads, l = f_grad()
        opt.update(grads)
        return l

    w0, b0 = model.weight.value, model.bias.value
    g_ref = jax.grad(lambda w, b: jnp.mean((x @ w + b - y) ** 2), argnums=(0, 1))(w0, b0)
    l0 = train()
    np.testing.assert_allclose(model.weight.value, w0 - 0.1 * g_ref[0], rtol=1e-5)
    np.testing.assert_allclose(model.bias.value, b0 - 0.1 * g_ref[1], rtol=1e-5)
    assert float(train()) < float(l0)


def test_all_finite_is_exact_for_every_size_and_dtype():
    for n in (1, 7, 40_000):  # small arrays are checked together, large ones one by one
        for dtype in (jnp.float32, jnp.float16, jnp.bfloat16):
            x = jnp.full((n,), 3e4 if dtype == jnp.float16 else 1e30, dtype)  # squares would overflow
            assert bool(optim.all_finite({"a": x, "b": jnp.ones(3)}))
            for bad in (jnp.nan, jnp.inf, -jnp.inf):
                y = x.at[n // 2].set(bad)
                assert not bool(optim.all_finite({"a": x, "b": jnp.ones(3)}, y)), (n, dtype, bad)
                assert not bool(nd.jit(optim.all_finite)([y]))
    assert bool(optim.all_finite({"i": jnp.arange(3)}, []))  # nothing floating: nothing to check


@pytest.mark.parametrize("donated", [False, True])
def test_update_apply_if_false_leaves_parameters_state_and_count(donated):
    vs = _setup()
    opt = optim.Adam(lr=0.1, train_vars=vs)
    opt.update(_grads(0))
    before = {k: np.asarray(v.value) for k, v in {**vs, **opt.vars()}.items()}
    # a select, or with donated buffers a conditional
    step = nd.jit(lambda g, ok: opt.update(g, apply_if=ok, donated=donated), donate=donated)
    step({"w": jnp.full(3, jnp.nan), "b": jnp.array(1.0)}, jnp.asarray(False))
    for k, v in {**vs, **opt.vars()}.items():
        np.testing.assert_array_equal(np.asarray(v.value), before[k], err_msg=k)
    step(_grads(1), jnp.asarray(True))
    ref = optim.Adam(lr=0.1, train_vars=_setup())
    ref.update(_grads(0))
    ref.update(_grads(1))
    assert int(opt.step_count.value) == 2
    for k, v in vs.items():
        np.testing.assert_allclose(v.value, ref.params[k].value, rtol=1e-6)


def test_state_of_gives_each_parameters_own_state():
    vs = _setup()
    opt = optim.Optimizer(optax.chain(optax.clip_by_global_norm(1.0), optax.adam(0.1)), train_vars=vs)
    mu_w, nu_w = opt.state_of("w")
    assert mu_w.shape == (3,) and nu_w.shape == (3,)
    opt.update(_grads(0))
    np.testing.assert_allclose(mu_w.value, 0.1 * optax.clip_by_global_norm(1.0).update(_grads(0), None)[0]["w"],
                               rtol=1e-6)
    assert [v.shape for v in opt.state_of("b")] == [(), ()]
    assert not any(v is mu_w for v in opt.state_of("b"))
    with pytest.raises(KeyError, match=r"no parameter 'x' is registered; expected one of \['b', 'w'\]"):
        opt.state_of("x")
