"""Training spiking networks: readouts, rate regularizer, BPTT vs hand-written lax.scan,
checkpointed loops, the Trainer's per-batch reset, and the SNN classification example."""

import math
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import neurodyn as nd
from neurodyn import nn, optim, surrogate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "examples"))

SURROGATES = [surrogate.Sigmoid(4.0), surrogate.ArcTan(2.0), surrogate.FastSigmoid(10.0),
              surrogate.PiecewiseQuadratic(1.0), surrogate.Gaussian(0.5)]


@pytest.fixture(autouse=True)
def _dt():
    old = nd.get_dt()
    nd.set_dt(1.0)
    yield
    nd.set_dt(old)


# -- readouts --------------------------------------------------------------------------
def test_leaky_readout_matches_hand_written_filter():
    nd.random.seed(0)
    ro = nn.LeakyReadout(6, 3, tau=5.0)
    ro.reset_state(4)
    xs = np.random.default_rng(0).normal(size=(20, 4, 6)).astype(np.float32)
    Vs = nd.jit(lambda x: nd.for_loop(ro, x))(xs)
    W, b = np.asarray(ro.weight.value, np.float64), np.asarray(ro.bias.value, np.float64)
    a = math.exp(-1.0 / 5.0)
    V, ref = np.zeros((4, 3)), []
    for t in range(20):
        V = a * V + (1 - a) * (xs[t] @ W + b)
        ref.append(V)
    np.testing.assert_allclose(Vs, np.stack(ref), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ro.V.value, ref[-1], rtol=1e-5, atol=1e-6)
    # a constant input is reached with unit gain
    ro.reset_state(None)
    for _ in range(200):
        ro(np.ones(6, np.float32))
    np.testing.assert_allclose(ro.V.value, np.ones(6) @ W + b, rtol=1e-4, atol=1e-5)


def test_leaky_readout_errors_name_object_expected_and_received():
    ro = nn.LeakyReadout(6, 3)
    with pytest.raises(ValueError, match=r"LeakyReadout\(6, 3\).*6 features.*\(2, 5\)"):
        ro(jnp.ones((2, 5)))
    with pytest.raises(ValueError, match=r"LeakyReadout\(6, 3\).*\(2, 6\).*\(3,\).*reset_state\(2\)"):
        ro(jnp.ones((2, 6)))
    with pytest.raises(ValueError, match="LeakyReadout: tau"):
        nn.LeakyReadout(6, 3, tau=0.0)
    with pytest.raises(ValueError, match="LeakyReadout: out_features"):
        nn.LeakyReadout(6, 0)


def test_time_reductions():
    s = (np.random.default_rng(1).random((7, 3, 4)) < 0.3)
    np.testing.assert_array_equal(nn.spike_count(s), s.sum(0).astype(np.float32))
    np.testing.assert_allclose(nn.mean_over_time(s.astype(np.float32), axis=1), s.mean(1), rtol=1e-6)
    np.testing.assert_allclose(nn.max_over_time(s.astype(np.float32)), s.max(0))
    with pytest.raises(ValueError, match=r"spike_count: .*time axis 3.*\(7, 3, 4\)"):
        nn.spike_count(s, axis=3)


@pytest.mark.parametrize("per_neuron", [True, False])
def test_rate_regularizer_value_and_gradient(per_neuron):
    s = jnp.asarray(np.random.default_rng(2).random((10, 4, 5)) < 0.2, jnp.float32)
    target, strength = 0.05, 3.0
    rates = np.asarray(s).mean((0, 1))
    if per_neuron:
        ref = strength * np.mean((rates - target) ** 2)
        ref_grad = np.broadcast_to(2 * strength * (rates - target) / (5 * 10 * 4), s.shape)
    else:
        ref = strength * (rates.mean() - target) ** 2
        ref_grad = np.full(s.shape, 2 * strength * (rates.mean() - target) / (10 * 4 * 5))
    f = lambda x: nn.rate_regularizer(x, target=target, strength=strength, per_neuron=per_neuron)
    np.testing.assert_allclose(f(s), ref, rtol=1e-5)
    np.testing.assert_allclose(jax.grad(f)(s), ref_grad, rtol=1e-5, atol=1e-9)
    with pytest.raises(ValueError, match=r"rate_regularizer: target .* \[0, 1\], got 20"):
        nn.rate_regularizer(s, target=20.0)


# -- surrogates on neuron groups -------------------------------------------------------------
@pytest.mark.parametrize("fn", SURROGATES, ids=lambda f: type(f).__name__)
def test_lif_spike_gradient_is_the_surrogate_derivative(fn):
    tau, R = 10.0, 4.0
    lif = nn.LIF(5, V_rest=0.0, V_reset=0.0, V_th=1.0, tau=tau, R=R, spike_fn=fn)
    V0 = jnp.array([0.2, 0.5, 0.9, 0.0, 0.7])
    x = jnp.array([0.1, 0.2, 0.3, 0.35, 0.05])
    lif.V.value = V0
    s = nd.jit(lif.update)(x)
    lif.V.value = V0
    g = nd.grad(lambda x: jnp.sum(lif.update(x)))(x)
    decay = math.exp(-1.0 / tau)
    V_new = R * x + (V0 - R * x) * decay
    np.testing.assert_array_equal(s, np.asarray(V_new >= 1.0, np.float32))
    np.testing.assert_allclose(g, fn.grad(V_new - 1.0) * R * (1 - decay), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("make", [
    lambda f: nn.LIF(4, V_th=1.0, V_reset=0.0, R=10.0, spike_fn=f),
    lambda f: nn.ALIF(4, R=20.0, spike_fn=f, tau_ref=2.0),
    lambda f: nn.Izhikevich(4, spike_fn=f),
    lambda f: nn.AdEx(4, spike_fn=f),
    lambda f: nn.HH(4, spike_fn=f),
], ids=["LIF", "ALIF", "Izhikevich", "AdEx", "HH"])
def test_every_group_trains_through_time_with_a_batch(make):
    # Same spikes as the boolean simulation; finite, nonzero gradients through 30 steps.
    nd.set_dt(0.1)  # AdEx's exponential upswing and HH need a fine step (at 1 ms AdEx overflows)
    plain, trained = make(None), make(surrogate.ArcTan(2.0))
    plain.reset_state(2)
    trained.reset_state(2)
    assert trained.V.shape == (2, 4)
    x = jnp.linspace(5.0, 30.0, 8).reshape(2, 4)
    ref = nd.for_loop(lambda: plain.update(x), length=100)

    def loss(x):
        trained.reset_state(2)
        spikes = nd.for_loop(lambda: trained.update(x), length=100)
        return jnp.sum(spikes), spikes

    g, out = nd.grad(loss, argnums=0, has_aux=True)(x)
    # Same spikes as without a surrogate, up to rounding: the two variants compile to
    # different fused code, and AdEx's exponential upswing can flip one spike near threshold.
    assert np.mean(np.asarray(out) != np.asarray(ref, np.float32)) <= 0.01
    assert np.asarray(ref).sum() > 0
    assert np.all(np.isfinite(g)) and np.abs(g).sum() > 0


# -- BPTT against a hand-written lax.scan ---------------------------------------------------------
class TinySNN(nd.Module):
    reset_state_per_batch = True

    def __init__(self, detach_reset, checkpoint=False):
        self.fc = nn.Linear(6, 8, w_init=jax.nn.initializers.normal(1.0))
        self.lif = nn.LIF(8, V_rest=0.0, V_reset=0.0, V_th=1.0, tau=5.0, R=5.0,
                          spike_fn=surrogate.Sigmoid(4.0), detach_reset=detach_reset)
        self.out = nn.LeakyReadout(8, 3, tau=10.0)
        self.checkpoint = checkpoint

    def update(self, x_t):
        s = self.lif(self.fc(x_t))
        return self.out(s), s


def tiny_loss(model, batch):
    x, y = batch
    V, s = nd.for_loop(model.update, x, checkpoint=model.checkpoint)  # x: (time, batch, 6)
    logits = nn.mean_over_time(V)
    ce = -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], 1))
    return ce + nn.rate_regularizer(s, target=0.1, strength=0.5)


def ref_loss(p, x, y, detach_reset):
    sig = lambda z: 1 / (1 + jnp.exp(-4 * z))

    @jax.custom_vjp
    def spike(v):
        return (v >= 0).astype(v.dtype)

    spike.defvjp(lambda v: (spike(v), v), lambda v, g: (g * 4 * sig(v) * (1 - sig(v)),))
    d, a = math.exp(-1 / 5), math.exp(-1 / 10)

    def step(c, x_t):
        V, Vo = c
        I = 5.0 * (x_t @ p["fc.weight"] + p["fc.bias"])
        V_new = I + (V - I) * d
        s = spike(V_new - 1.0)
        s_r = jax.lax.stop_gradient(s) if detach_reset else s
        V = V_new * (1 - s_r)
        Vo = a * Vo + (1 - a) * (s @ p["out.weight"] + p["out.bias"])
        return (V, Vo), (Vo, s)

    _, (Vo, s) = jax.lax.scan(step, (jnp.zeros((x.shape[1], 8)), jnp.zeros((x.shape[1], 3))), x)
    logits = Vo.mean(0)
    ce = -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], 1))
    return ce + 0.5 * jnp.mean((s.mean((0, 1)) - 0.1) ** 2)


def _batch(batch=5, T=25):
    rng = np.random.default_rng(3)
    x = (rng.random((T, batch, 6)) < 0.3).astype(np.float32)
    return x, rng.integers(0, 3, batch).astype(np.int32)


@pytest.mark.parametrize("detach_reset", [True, False])
def test_bptt_gradient_equals_hand_written_scan(detach_reset):
    nd.random.seed(4)
    model = TinySNN(detach_reset)
    x, y = _batch()
    model.reset_state(5)
    loss, g = nd.jit(lambda b: nd.value_and_grad(tiny_loss, grad_vars=model.train_vars())(model, b))((x, y))
    p = {k: v.value for k, v in model.train_vars().items()}
    ref_l, ref_g = jax.value_and_grad(ref_loss)(p, x, y, detach_reset)
    np.testing.assert_allclose(loss, ref_l, rtol=1e-5)
    assert set(g) == set(ref_g)
    for k in ref_g:
        assert np.abs(ref_g[k]).sum() > 0, k
        np.testing.assert_allclose(g[k], ref_g[k], rtol=2e-4, atol=1e-6, err_msg=k)


def test_checkpointed_loop_gives_identical_gradients_and_rematerialises():
    x, y = _batch()
    grads = []
    for ckpt in (False, True):
        nd.random.seed(5)
        model = TinySNN(True, checkpoint=ckpt)
        model.reset_state(5)
        f = lambda b: nd.grad(tiny_loss, grad_vars=model.train_vars())(model, b)
        grads.append(nd.jit(f)((x, y)))
        jaxpr = str(jax.make_jaxpr(lambda b: f(b))((x, y)))
        assert ("checkpoint" in jaxpr or "remat" in jaxpr) == ckpt
    for k in grads[0]:
        np.testing.assert_allclose(grads[1][k], grads[0][k], rtol=1e-6, atol=1e-8)


# -- the Trainer's per-batch reset ------------------------------------------------------------------
def test_trainer_resets_spiking_state_per_batch_with_varying_batch_sizes():
    nd.random.seed(6)
    model = TinySNN(True)
    x, y = _batch(batch=11)
    # lr 0: parameters never change, so equal losses for the same batch mean the state was reset
    tr = nd.Trainer(model, tiny_loss, optim.SGD(0.0), progress_bar=False, batch_axis=(1, 0))
    l1 = float(tr.step((x[:, :8], y[:8]))["loss"])
    assert model.lif.V.shape == (8, 8) and model.out.V.shape == (8, 3)
    l2 = float(tr.step((x[:, :8], y[:8]))["loss"])
    assert l1 == l2
    l3 = float(tr.step((x[:, 8:], y[8:]))["loss"])  # a short last batch of 3
    assert model.lif.V.shape == (3, 8)
    l4 = float(tr.step((x[:, 8:], y[8:]))["loss"])
    assert l3 == l4
    # without the hook the second step starts from the first step's final state
    model.reset_state_per_batch = False
    tr2 = nd.Trainer(model, tiny_loss, optim.SGD(0.0), progress_bar=False, batch_axis=(1, 0))
    model.reset_state(8)
    assert float(tr2.step((x[:, :8], y[:8]))["loss"]) == l1
    assert float(tr2.step((x[:, :8], y[:8]))["loss"]) != l1


# -- the example -----------------------------------------------------------------------------------
def test_snn_classification_example_learns_and_saves(tmp_path):
    import snn_classification as ex

    path = str(tmp_path / "snn.npz")
    r = ex.main(n_classes=5, n_steps=50, n_hidden=64, n_train=1024, n_test=256, epochs=4, lr=2e-2,
                out=path, progress_bar=False)
    assert r["chance"] == 0.2
    assert r["test_acc"][-1] > 0.6  # chance is 0.2
    assert r["history"]["loss"][-1] < r["history"]["loss"][0]
    # the saved model loads into a fresh network and predicts the same
    nd.random.seed(123)
    fresh = ex.SNN(100, 64, 5)
    nd.load(path, fresh)
    patterns = ex.make_patterns(5, 100, 50, rate_hz=20.0, seed=0)
    x, _ = ex.make_data(patterns, 16, 100, 50, seed=9)
    outs = []
    for m in (r["model"], fresh):
        m.reset_state(16)
        outs.append(nd.jit(lambda x: ex.run(m, x)[0])(x))
    np.testing.assert_array_equal(outs[0], outs[1])
