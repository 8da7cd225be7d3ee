"""Discrete spiking layers (Leaky, Synaptic, RLeaky, RSynaptic, LeakyIntegrator): step equations
against NumPy, training against hand-written JAX from snnTorch's documented equations, learnable
decays and thresholds, the Trainer's default per-batch reset, and errors."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import neurodyn as nd
from neurodyn import nn, optim, surrogate

RNG = np.random.default_rng(0)


def _run(layer, xs):
    return np.asarray(nd.jit(lambda x: nd.for_loop(layer, x))(xs))


@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
@pytest.mark.parametrize("delay", [True, False])
def test_leaky_steps_follow_snntorch_equations(reset, delay):
    beta = np.array([0.5, 0.8, 0.9, 1.0], np.float32)
    lif = nn.Leaky(4, beta=beta, threshold=1.0, reset=reset, reset_delay=delay)
    lif.reset_state(3)
    xs = RNG.uniform(0, 0.8, size=(30, 3, 4)).astype(np.float32)
    out = _run(lif, xs)
    V, S, ref = np.zeros((3, 4)), np.zeros((3, 4)), []
    do_reset = {"subtract": lambda v, s: v - s * 1.0, "zero": lambda v, s: v * (1 - s), "none": lambda v, s: v}[reset]
    for t in range(30):
        if delay:  # snnTorch's default: the previous spike resets while integrating, undecayed
            V = do_reset(beta * V + xs[t], S)
            S = (V >= 1.0).astype(np.float64)
        else:  # reset right after the spike; the next step decays the reset membrane
            V = beta * V + xs[t]
            S = (V >= 1.0).astype(np.float64)
            V = do_reset(V, S)
        ref.append(S)
    np.testing.assert_array_equal(out, np.stack(ref))
    np.testing.assert_allclose(lif.V.value, V, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(lif.spike.value, S)
    assert 0 < out.mean() < 1


def test_synaptic_and_recurrent_layers_follow_their_equations():
    nd.random.seed(1)
    xs = RNG.uniform(0, 0.6, size=(25, 2, 5)).astype(np.float32)
    syn = nn.RSynaptic(5, alpha=0.7, beta=0.85, threshold=0.8, recurrent_bias=True,
                       w_init=jax.nn.initializers.normal(0.5))
    syn.reset_state(2)
    out = _run(syn, xs)
    W, b = np.asarray(syn.recurrent.weight.value), np.asarray(syn.recurrent.bias.value)
    I = V = S = np.zeros((2, 5))
    ref = []
    for t in range(25):
        I = 0.7 * I + xs[t] + S @ W + b
        V = 0.85 * V + I - S * 0.8
        S = (V >= 0.8).astype(np.float64)
        ref.append(S)
    np.testing.assert_array_equal(out, np.stack(ref))
    np.testing.assert_allclose(syn.syn.value, I, rtol=1e-5, atol=1e-5)

    rl = nn.RLeaky(5, beta=0.9, reset="zero", w_init=jax.nn.initializers.normal(0.5))
    rl.reset_state(2)
    out = _run(rl, xs)
    W = np.asarray(rl.recurrent.weight.value)
    assert rl.recurrent.bias is None and set(rl.train_vars()) == {"recurrent.weight"}
    V = S = np.zeros((2, 5))
    ref = []
    for t in range(25):
        V = (0.9 * V + xs[t] + S @ W) * (1 - S)
        S = (V >= 1.0).astype(np.float64)
        ref.append(S)
    np.testing.assert_array_equal(out, np.stack(ref))

    li = nn.LeakyIntegrator(5, beta=0.6)
    li.reset_state(2)
    out = _run(li, xs)
    V, ref = np.zeros((2, 5)), []
    for t in range(25):
        V = 0.6 * V + xs[t]
        ref.append(V)
    np.testing.assert_allclose(out, np.stack(ref), rtol=1e-5, atol=1e-6)


# -- training against hand-written JAX written from snnTorch's equations ------------------------
ALPHA = 25.0


@jax.custom_vjp
def _spike(x):
    return (x > 0).astype(x.dtype)


_spike.defvjp(lambda x: (_spike(x), x), lambda x, g: (g / (1 + ALPHA * jnp.abs(x)) ** 2,))


def snntorch_loss(p, x, y, learn):
    """snnTorch's Leaky (reset_mechanism='subtract', reset_delay=True) and a Leaky readout
    (reset_mechanism='none'), transcribed from its documentation:
    ``reset = H(mem - thr).detach(); mem = beta mem + input - reset thr; spk = H(mem - thr)``."""
    beta = jnp.clip(p["lif.beta"], 0, 1) if learn else 0.9
    thr = p["lif.threshold"] if learn else 1.0

    def step(carry, x_t):
        mem1, mem2 = carry
        reset = jax.lax.stop_gradient(_spike(mem1 - thr))
        mem1 = beta * mem1 + (x_t @ p["fc1.weight"] + p["fc1.bias"]) - reset * thr
        spk = _spike(mem1 - thr)
        mem2 = 0.8 * mem2 + spk @ p["fc2.weight"] + p["fc2.bias"]
        return (mem1, mem2), mem2

    B = x.shape[0]
    init = (jnp.zeros((B, 16)), jnp.zeros((B, 4)))
    _, mem2 = jax.lax.scan(step, init, jnp.swapaxes(x, 0, 1))
    return optax.softmax_cross_entropy_with_integer_labels(mem2.mean(0), y).mean()


class Net(nd.Module):
    def __init__(self, learn):
        self.fc1 = nn.Linear(12, 16, w_init=jax.nn.initializers.normal(0.6))
        self.lif = nn.Leaky(16, beta=0.9, spike_fn=surrogate.FastSigmoid(ALPHA),
                            learn_beta=learn, learn_threshold=learn)
        self.fc2 = nn.Linear(16, 4)
        self.out = nn.LeakyIntegrator(4, beta=0.8)

    def update(self, x_t):
        return self.out(self.fc2(self.lif(self.fc1(x_t))))


def net_loss(model, batch):
    x, y = batch
    mem = nd.for_loop(model.update, jnp.swapaxes(x, 0, 1))
    return optax.softmax_cross_entropy_with_integer_labels(mem.mean(0), y).mean()


@pytest.mark.parametrize("learn", [False, True])
def test_training_matches_hand_written_snntorch_equations(learn):
    nd.random.seed(3)
    model = Net(learn)
    assert ("lif.beta" in model.train_vars()) == learn
    params = {k: jnp.array(v.value) for k, v in model.train_vars().items()}
    x = (RNG.random((5, 8, 20, 12)) < 0.3).astype(np.float32)  # 5 batches of 8, 20 steps
    y = RNG.integers(0, 4, size=(5, 8)).astype(np.int32)
    # No reset_state attribute on Net: the Leaky inside makes the Trainer reset every batch.
    trainer = nd.Trainer(model, net_loss, optim.Adam(1e-2), progress_bar=False)
    tx = optax.adam(1e-2)
    opt_state = tx.init(params)
    step = jax.jit(lambda p, s, xb, yb: _ref_update(tx, p, s, xb, yb, learn))
    for k in range(5):
        loss_nd = float(trainer.step((x[k], y[k]))["loss"])
        params, opt_state, loss_ref = step(params, opt_state, x[k], y[k])
        np.testing.assert_allclose(loss_nd, float(loss_ref), rtol=1e-5, atol=1e-6)
    for name, var in model.train_vars().items():
        np.testing.assert_allclose(var.value, params[name], rtol=1e-4, atol=1e-5, err_msg=name)
    if learn:  # the decay and threshold did move
        assert float(model.lif.beta.value) != pytest.approx(0.9, abs=1e-4)
        assert float(model.lif.threshold.value) != pytest.approx(1.0, abs=1e-4)


def _ref_update(tx, p, s, x, y, learn):
    loss, g = jax.value_and_grad(snntorch_loss)(p, x, y, learn)
    u, s = tx.update(g, s, p)
    return optax.apply_updates(p, u), s, loss


def test_per_neuron_trainvar_beta_gets_gradients_and_is_clipped():
    beta = nd.TrainVar(jnp.array([0.5, 1.5, -0.2]))  # outside [0, 1] only after a (bad) update
    with pytest.raises(ValueError, match=r"Leaky: beta must lie in \[0.0, 1.0\]"):
        nn.Leaky(3, beta=beta)
    beta = nd.TrainVar(jnp.array([0.5, 0.7, 0.9]))
    lif = nn.Leaky(3, beta=beta, reset="none", spike_fn=surrogate.FastSigmoid())
    assert lif.train_vars() == {"beta": beta}
    beta.value = jnp.array([0.5, 1.5, -0.2])
    lif.reset_state()
    lif(jnp.ones(3)); lif(jnp.ones(3))
    np.testing.assert_allclose(lif.V.value, [1.5, 2.0, 1.0])  # beta read as clip(beta, 0, 1)

    def loss():
        lif.reset_state()
        nd.for_loop(lambda: lif(jnp.ones(3)), length=3)
        return jnp.sum(lif.V.value)

    g = nd.grad(loss, grad_vars={"beta": beta})()["beta"]
    # V_3 = b^2 + b + 1 -> dV/db = 2 b + 1 inside [0, 1]; zero where clipped
    np.testing.assert_allclose(g, [2.0, 0.0, 0.0], rtol=1e-6)


def test_trainer_resets_models_with_spiking_layers_by_default():
    nd.random.seed(0)
    model = Net(False)
    x = (RNG.random((8, 20, 12)) < 0.3).astype(np.float32)
    y = RNG.integers(0, 4, size=8).astype(np.int32)
    tr = nd.Trainer(model, net_loss, optim.SGD(0.0), progress_bar=False)
    l1 = float(tr.step((x, y))["loss"])
    assert float(tr.step((x, y))["loss"]) == l1 and model.lif.V.shape == (8, 16)
    # an explicit reset_state=False keeps the state across batches
    tr2 = nd.Trainer(model, net_loss, optim.SGD(0.0), progress_bar=False, reset_state=False)
    model.reset_state(8)
    assert float(tr2.step((x, y))["loss"]) == l1
    assert float(tr2.step((x, y))["loss"]) != l1
    # a model-level attribute wins over its submodules
    model.reset_state_per_batch = False
    assert not nd.Trainer(model, net_loss, optim.SGD(0.0), progress_bar=False)._wants_reset()


def test_spiking_layer_errors_name_layer_expected_and_received():
    with pytest.raises(ValueError, match=r"Leaky: reset must be one of .*'subtract'.*got 'soft'"):
        nn.Leaky(3, beta=0.9, reset="soft")
    with pytest.raises(ValueError, match=r"Synaptic: alpha must lie in \[0.0, 1.0\], got 1.2"):
        nn.Synaptic(3, alpha=1.2, beta=0.9)
    with pytest.raises(ValueError, match=r"RLeaky: threshold must be a scalar or have shape \(3,\), got shape \(4,\)"):
        nn.RLeaky(3, beta=0.9, threshold=np.ones(4))
    with pytest.raises(TypeError, match=r"Leaky: beta given as a Variable must be an nd.TrainVar"):
        nn.Leaky(3, beta=nd.Variable(jnp.ones(3)))
    with pytest.raises(ValueError, match=r"LeakyIntegrator\(3\) expects .*3 features, got shape \(2, 4\)"):
        nn.LeakyIntegrator(3, beta=0.5)(jnp.ones((2, 4)))
    with pytest.raises(ValueError, match="LeakyIntegrator: size must be a positive int, got 0"):
        nn.LeakyIntegrator(0, beta=0.5)


def test_boolean_spikes_without_surrogate():
    lif = nn.Leaky(2, beta=1.0, spike_fn=None)
    lif.reset_state()
    out = [bool(lif(jnp.array([0.6, 0.2]))[0]) for _ in range(4)]
    assert out == [False, True, False, True] and lif.spike.dtype == jnp.bool_


def test_delay_layer_shifts_each_channel():
    d = nn.Delay(3, steps=np.array([0, 1, 3]))
    d.reset_state(2)
    xs = RNG.normal(size=(8, 2, 3)).astype(np.float32)
    out = _run(d, xs)
    ref = np.zeros_like(xs)
    for c, k in enumerate([0, 1, 3]):
        ref[k:, :, c] = xs[:8 - k, :, c]
    np.testing.assert_array_equal(out, ref)
    with pytest.raises(ValueError, match=r"Delay: steps must be ints >= 0, got \[1, -1\]"):
        nn.Delay(2, steps=np.array([1, -1]))
    with pytest.raises(ValueError, match=r"Delay\(3\) expects inputs of shape \(2, 3\), got \(4, 3\)"):
        d(jnp.ones((4, 3)))


def test_layers_follow_nd_precision():
    nd.set_precision(64)
    try:
        layers = [nn.RSynaptic(3, alpha=0.5, beta=0.9), nn.Leaky(3, beta=0.9), nn.LeakyIntegrator(3, beta=0.5),
                  nn.Delay(3, steps=1)]
        for layer in layers:
            layer.reset_state(2)
            out = layer(jnp.ones((2, 3)))
            assert all(v.dtype == jnp.float64 for v in layer.vars().values()
                       if jnp.issubdtype(v.dtype, jnp.floating) and "recurrent" not in v.name), layer
            assert out.dtype == jnp.float64
    finally:
        nd.set_precision(32)
