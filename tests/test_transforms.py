"""grad / value_and_grad, for_loop, cond, while_loop, vmap with Variables."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import neurodyn as nd


class LinearNet(nd.Module):
    def __init__(self, n_in, n_out):
        self.w = nd.TrainVar(nd.random.random((n_in, n_out)))
        self.b = nd.TrainVar(jnp.zeros(n_out))
        self.r = nd.TrainVar(nd.random.random((n_out, 1)))

    def update(self, x):
        h = x @ self.w + self.b
        return h @ self.r

    def loss(self, x, y):
        return jnp.mean((self.update(x) - y) ** 2)


def _pure_loss(p, x, y):
    return jnp.mean(((x @ p["w"] + p["b"]) @ p["r"] - y) ** 2)


def test_grad_wrt_train_vars_matches_jax_grad():
    net = LinearNet(5, 4)
    x, y = jnp.ones((3, 5)), jnp.zeros((3, 1))
    grads, loss = nd.grad(net.loss, grad_vars=net.train_vars(), return_value=True)(x, y)
    params = {k: v.value for k, v in net.train_vars().items()}
    ref_loss, ref = jax.value_and_grad(_pure_loss)(params, x, y)
    assert set(grads) == {"w", "b", "r"}
    for k in ref:
        np.testing.assert_allclose(grads[k], ref[k], rtol=1e-5)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-6)


def test_grad_structures_list_single_module_and_args():
    net = LinearNet(2, 2)
    x, y = jnp.ones((1, 2)), jnp.zeros((1, 1))
    g_list = nd.grad(net.loss, grad_vars=[net.w, net.b])(x, y)
    assert isinstance(g_list, list) and g_list[0].shape == (2, 2)
    g_one = nd.grad(net.loss, grad_vars=net.r)(x, y)
    assert g_one.shape == (2, 1)
    g_mod = nd.grad(net.loss, grad_vars=net)(x, y)
    assert set(g_mod) == {"w", "b", "r"}
    (gv, gx) = nd.grad(net.loss, grad_vars=net.w, argnums=0)(x, y)
    params = {k: v.value for k, v in net.train_vars().items()}
    np.testing.assert_allclose(gx, jax.grad(_pure_loss, argnums=1)(params, x, y), rtol=1e-5)
    np.testing.assert_allclose(gv, jax.grad(_pure_loss)(params, x, y)["w"], rtol=1e-5)
    # plain function, default argnums=0
    np.testing.assert_allclose(nd.grad(lambda z: jnp.sum(z ** 2))(jnp.arange(3.)), [0., 2., 4.])


def test_grad_has_aux_and_value_and_grad():
    w = nd.TrainVar(jnp.array(3.))

    def f(x):
        return w * x ** 2, {"x": x}

    g, loss, aux = nd.grad(f, grad_vars=[w], has_aux=True, return_value=True)(2.)
    assert float(g[0]) == 4.0 and float(loss) == 12.0 and float(aux["x"]) == 2.0
    (loss2, aux2), g2 = nd.value_and_grad(f, grad_vars=w, has_aux=True)(2.)
    assert float(loss2) == 12.0 and float(g2) == 4.0
    loss3, g3 = nd.value_and_grad(lambda: (w * w).sum(), grad_vars=w)()
    assert float(loss3) == 9.0 and float(g3) == 6.0


def test_grad_keeps_other_state_writes():
    w = nd.TrainVar(jnp.ones(3))
    count = nd.Variable(0)
    stats = nd.Variable(jnp.zeros(3))

    def loss(x):
        count.value += 1
        stats.value = 0.9 * stats + 0.1 * x
        noise = nd.random.normal(size=(3,))
        return jnp.sum(w * x) + 0. * jnp.sum(noise)

    key0 = np.asarray(nd.random.DEFAULT.value)
    g = nd.jit(nd.grad(loss, grad_vars=[w]))
    g(jnp.ones(3))
    g(jnp.ones(3))
    assert int(count) == 2
    np.testing.assert_allclose(stats.value, np.full(3, 0.19), rtol=1e-6)
    assert not np.array_equal(np.asarray(nd.random.DEFAULT.value), key0)


def test_grad_errors():
    with pytest.raises(TypeError, match=r"grad_vars\[1\] must be a Variable"):
        nd.grad(lambda: 0., grad_vars=[nd.Variable(1.), 2.])
    with pytest.raises(TypeError, match="scalar loss"):
        nd.grad(lambda x: x * 2)(jnp.ones(3))


def test_linear_net_training_with_grad_under_jit_decreases_loss():
    nd.random.seed(0)
    net = LinearNet(100, 200)
    f_grad = nd.grad(net.loss, grad_vars=net.train_vars(), return_value=True)

    def train(X, Y):
        grads, loss = f_grad(X, Y)
        for k, v in net.train_vars().items():
            v.value = v - 1e-6 * grads[k]
        return loss

    train_jit = nd.jit(train)
    xs, ys = nd.random.random((1000, 100)), nd.random.random((1000, 1))
    losses = [float(train_jit(xs, ys)) for _ in range(10)]
    assert all(b < a for a, b in zip(losses, losses[1:]))
    assert losses[-1] < 0.2 * losses[0]


def test_for_loop_carries_variables_and_stacks_outputs():
    acc = nd.Variable(0.)

    def body(x):
        acc.value += x
        return acc.value

    np.testing.assert_array_equal(nd.for_loop(body, jnp.arange(4.)), [0., 1., 3., 6.])
    assert float(acc) == 6.0
    f = nd.jit(lambda xs: nd.for_loop(body, xs))
    np.testing.assert_array_equal(f(jnp.arange(4.)), [6., 7., 9., 12.])
    assert float(acc) == 12.0


def test_for_loop_read_only_variable_is_not_frozen():
    scale = nd.Variable(2.)
    out = nd.Variable(jnp.zeros(()))

    def body(x):
        out.value = out + scale * x

    f = nd.jit(lambda xs: nd.for_loop(body, xs))
    f(jnp.ones(3))
    assert float(out) == 6.0
    scale.value = 10.
    f(jnp.ones(3))
    assert float(out) == 36.0


def test_for_loop_random_numbers_differ_per_iteration():
    ys = nd.jit(lambda: nd.for_loop(lambda: nd.random.normal(size=()), length=5))()
    assert len(set(np.asarray(ys).tolist())) == 5


def test_for_loop_compile_time_independent_of_length():
    v = nd.Variable(0)

    def body():
        v.value += 1

    f = nd.jit(lambda n: nd.for_loop(body, length=n), static_argnums=0)
    f(10)
    f(100000)
    assert int(v) == 100010


def test_for_loop_with_multiple_xs_and_checkpoint_gradient():
    w = nd.TrainVar(jnp.array(0.5))
    h = nd.Variable(jnp.array(0.))

    def body(x, y):
        h.value = jnp.tanh(w * h + x) + 0 * y
        return h.value

    def loss(xs):
        h.value = jnp.array(0.)
        return jnp.sum(nd.for_loop(body, xs, xs, checkpoint=True))

    def pure(wv, xs):
        def step(hv, x):
            hv = jnp.tanh(wv * hv + x)
            return hv, hv
        return jnp.sum(jax.lax.scan(step, 0., xs)[1])

    xs = jnp.linspace(-1, 1, 6)
    np.testing.assert_allclose(nd.grad(loss, grad_vars=w)(xs), jax.grad(pure)(0.5, xs), rtol=1e-5)

    with pytest.raises(ValueError, match="same leading length"):
        nd.for_loop(body, jnp.ones(3), jnp.ones(4))


def test_cond_both_branches_write():
    v = nd.Variable(1.)

    def up():
        v.value += 1.

    def down():
        v.value -= 1.

    nd.cond(True, up, down)
    assert float(v) == 2.0
    f = nd.jit(lambda p: nd.cond(p, up, down))
    f(False)
    f(False)
    assert float(v) == 0.0
    out = nd.jit(lambda x: nd.cond(x > 0, lambda a: a * 2, lambda a: -a, x))(3.)
    assert float(out) == 6.0


def test_while_loop_with_state():
    n = nd.Variable(0)

    def body(x):
        n.value += 1
        return x * 2

    assert int(nd.jit(lambda: nd.while_loop(lambda x: x < 100, body, 1))()) == 128
    assert int(n) == 7

    def bad_cond(x):
        n.value += 1
        return x < 3

    with pytest.raises(RuntimeError, match="cond_fun must not write"):
        nd.while_loop(bad_cond, lambda x: x + 1, 0)


# -- vmap ------------------------------------------------------------------------------------
def test_vmap_shares_parameters_and_matches_batched_call():
    from neurodyn import nn
    nd.random.seed(0)
    net = nn.Linear(3, 2)
    xs = jnp.arange(15.).reshape(5, 3)
    np.testing.assert_allclose(nd.vmap(net)(xs), xs @ net.weight.value + net.bias.value, rtol=1e-6)
    # in_axes per argument, out_axes
    f = nd.vmap(lambda x, s: net(x) * s, in_axes=(0, None), out_axes=1)
    np.testing.assert_allclose(f(xs, 2.), (2. * (xs @ net.weight.value + net.bias.value)).T, rtol=1e-6)


def test_vmap_mapped_state_is_per_element_and_an_fi_curve_equals_separate_runs():
    from neurodyn import nn
    lif_kw = dict(V_rest=-60., V_reset=-60., V_th=-50., tau=20., tau_ref=5.)
    currents = jnp.linspace(8., 30., 6)
    lif = nn.LIF(2, **lif_kw)
    lif.reset_state(6)
    seen = []

    def spikes(I):
        seen.append(lif.V.shape)  # the element's shape while traced
        lif.input.value = jnp.full(2, I)
        return nd.for_loop(lambda i: lif.update(), jnp.arange(500)).sum()

    got = nd.vmap(spikes, state_axes=lif)(currents)
    assert set(seen) == {(2,)} and lif.V.shape == (6, 2)
    for k, I in enumerate(np.asarray(currents)):
        one = nn.LIF(2, **lif_kw)
        one.reset_state()
        one.input.value = jnp.full(2, I)
        want = nd.for_loop(lambda i: one.update(), jnp.arange(500)).sum()
        assert int(got[k]) == int(want)
        np.testing.assert_allclose(lif.V.value[k], one.V.value, rtol=1e-6)
    assert int(got[0]) == 0 and int(got[-1]) > int(got[1]) > 0  # 8 is below threshold (R I < 10)


def test_vmap_state_axes_dict_with_another_axis_and_under_jit():
    acc = nd.Variable(jnp.zeros((3, 4)))  # batch along axis 1
    count = nd.Variable(0)  # shared, written the same value by every element

    def add(x):
        acc.value = acc.value + x
        count.value = count.value + 1

    f = nd.jit(nd.vmap(add, in_axes=1, state_axes={acc: 1}))
    x = jnp.arange(12.).reshape(3, 4)
    f(x)
    f(x)
    np.testing.assert_array_equal(acc.value, 2 * x)
    assert int(count.value) == 2
    traces = f.trace_count
    f(x)
    assert f.trace_count == traces


def test_vmap_random_numbers_differ_per_element_and_call_and_reseed_reproduces():
    f = nd.vmap(lambda x: x + nd.random.normal(size=x.shape))
    nd.random.seed(5)
    a, b = f(jnp.zeros((4, 3))), f(jnp.zeros((4, 3)))
    assert len({tuple(np.asarray(r)) for r in a}) == 4
    assert not np.allclose(a, b)
    nd.random.seed(5)
    np.testing.assert_array_equal(f(jnp.zeros((4, 3))), a)
    # a RandomState holding one key per element, mapped explicitly: each element draws from
    # and advances its own key
    keys = jax.random.split(jax.random.PRNGKey(3), 4)
    states = nd.RandomState(0)
    states.reset_value(keys)
    draws = nd.vmap(lambda: states.normal(size=()), in_axes=(), state_axes=states)()
    want = [jax.random.normal(jax.random.split(k)[1], ()) for k in keys]
    np.testing.assert_allclose(draws, want, rtol=1e-6)
    np.testing.assert_array_equal(states.value, [jax.random.split(k)[0] for k in keys])


def test_vmap_errors_name_the_problem_and_leave_state_as_it_was():
    acc = nd.Variable(jnp.zeros(3), name="Acc.total")

    def bad(x):
        acc.value = acc.value + x
    with pytest.raises(ValueError, match=r"writes Variable 'Acc.total' \(shape \(3,\)\) a value that differs between batch elements"):
        nd.vmap(bad)(jnp.ones((5, 3)))
    np.testing.assert_array_equal(acc.value, np.zeros(3))
    with pytest.raises(ValueError, match="cannot tell the batch size"):
        nd.vmap(lambda: acc.value.sum(), in_axes=())()
    with pytest.raises(TypeError, match="state_axes takes Variables and Modules"):
        nd.vmap(bad, state_axes=[jnp.zeros(3)])(jnp.ones((5, 3)))
    with pytest.raises(ValueError, match="along axis 1, which it does not have"):
        nd.vmap(bad, state_axes={acc: 1})(jnp.ones((5, 3)))
    batched = nd.Variable(jnp.zeros((5, 3)))

    def boom(x):
        batched.value = batched.value + x
        raise RuntimeError("boom")
    with pytest.raises(RuntimeError, match="boom"):
        nd.vmap(boom, state_axes=batched)(jnp.ones((5, 3)))
    assert batched.shape == (5, 3)  # the element view is undone
    np.testing.assert_array_equal(batched.value, np.zeros((5, 3)))


def test_vmap_of_grad_gives_per_example_gradients():
    from neurodyn import nn
    nd.random.seed(0)
    net = nn.Linear(3, 1)
    xs, ys = jnp.arange(15.).reshape(5, 3), jnp.linspace(0., 1., 5)[:, None]

    def loss(x, y):
        return jnp.sum((net(x) - y) ** 2)
    per = nd.jit(lambda: nd.vmap(nd.grad(loss, grad_vars=net.train_vars()))(xs, ys))()
    w, b = net.weight.value, net.bias.value
    ref = jax.vmap(jax.grad(lambda p, x, y: jnp.sum((x @ p[0] + p[1] - y) ** 2)), in_axes=(None, 0, 0))(
        (w, b), xs, ys)
    np.testing.assert_allclose(per["weight"], ref[0], rtol=1e-5)
    np.testing.assert_allclose(per["bias"], ref[1], rtol=1e-5)
    total = nd.grad(lambda: nd.vmap(loss)(xs, ys).sum(), grad_vars=net.train_vars())()
    np.testing.assert_allclose(total["weight"], ref[0].sum(0), rtol=1e-5)
