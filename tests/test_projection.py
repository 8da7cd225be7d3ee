import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import neurodyn as nd
import neurodyn.nn as nn


class Source(nn.Group):
    """A presynaptic group whose spikes the test sets by hand."""

    def update(self):
        return self.spike.value


def make(mode, weight=0.7, n_pre=300, n_post=200, p=0.1, **kw):
    pre = Source(n_pre)
    post = nn.LIF(n_post, V_th=1e9)
    proj = nn.Projection(pre, post, nn.FixedProb(p, seed=5), weight, nn.Expon(n_post, 5.0), nn.CUBA(),
                         mode=mode, **kw)
    return pre, post, proj


def drive(pre, proj, spikes):
    step = nd.jit(lambda s: (pre.spike.update(s), proj.update())[1])
    return np.stack([np.asarray(step(s)) for s in spikes])


def random_spikes(n_steps, n, rate, seed=0):
    return np.random.default_rng(seed).random((n_steps, n)) < rate


def test_event_and_dense_agree_exactly_and_match_hand_count():
    spikes = random_spikes(30, 300, 0.02)
    spikes[10] = np.random.default_rng(1).random(300) < 0.5  # overflows the buffer: exact fallback
    pre_e, _, ev = make("event", max_spikes=16)
    pre_d, _, de = make("dense")
    assert ev.mode == "event" and de.mode == "dense"
    g_e, g_d = drive(pre_e, ev, spikes), drive(pre_d, de, spikes)
    np.testing.assert_array_equal(g_e, g_d)
    # hand-written: g = g * exp(-dt/tau) + w * (spikes @ C)
    C = nn.FixedProb(0.1, seed=5).dense(300, 200).astype(np.float32)
    g = np.zeros(200, np.float32)
    decay = math.exp(-0.1 / 5.0)
    for k, s in enumerate(spikes):
        g = g * np.float32(decay) + np.float32(0.7) * (s.astype(np.float32) @ C)
        np.testing.assert_allclose(g_e[k], g, rtol=1e-6, atol=1e-6)


def test_heterogeneous_weights_event_vs_dense():
    nnz = nn.FixedProb(0.1, seed=5).num_connections(300, 200)
    w = np.random.default_rng(3).uniform(0.1, 1.0, nnz).astype(np.float32)
    spikes = random_spikes(10, 300, 0.05)
    pre_e, _, ev = make("event", weight=w)
    pre_d, _, de = make("dense", weight=w)
    np.testing.assert_allclose(drive(pre_e, ev, spikes), drive(pre_d, de, spikes), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="one value per connection"):
        make("event", weight=np.ones(3))


def test_batched_event_vs_dense():
    spikes = random_spikes(6, 2 * 300, 0.03).reshape(6, 2, 300)
    out = []
    for mode in ("event", "dense"):
        pre, post, proj = make(mode)
        pre.reset_state(2); proj.reset_state(2); post.reset_state(2)
        out.append(drive(pre, proj, spikes))
    assert out[0].shape == (6, 2, 200)
    np.testing.assert_array_equal(out[0], out[1])


@pytest.mark.parametrize("mode", ["event", "dense"])
def test_delay_shifts_by_exactly_the_delay(mode):
    spikes = random_spikes(40, 300, 0.03)
    pre0, _, p0 = make(mode)
    pre1, _, p1 = make(mode, delay=1.0)  # 10 steps at dt = 0.1
    assert p0.delay_steps == 1 and p1.delay_steps == 10
    g0, g1 = drive(pre0, p0, spikes), drive(pre1, p1, spikes)
    # no delay is the minimal one-step transmission: 1 ms arrives 9 steps after it
    np.testing.assert_array_equal(g1[:9], 0.0)
    np.testing.assert_array_equal(g1[9:], g0[:-9])


def test_current_reaches_post_and_network_order():
    pre = Source(10)
    post = nn.LIF(5, V_rest=0.0, V_th=1e9, tau=10.0)
    proj = nn.Projection(pre, post, nn.AllToAll(), 0.5, nn.Expon(5, 2.0), nn.COBA(E=10.0))
    assert "proj0" in post.current_inputs
    net = nn.Network(pre=pre, post=post, proj=proj)
    assert list(net.projections()) == ["proj"] and list(net.groups()) == ["pre", "post"]
    pre.spike.value = jnp.ones(10, bool).at[3:].set(False)  # 3 spikes "from the previous step"
    nd.jit(net)()
    g = 0.5 * 3
    # exponential Euler: tau dV/dt = -V + g (10 - V), solved exactly with g constant
    e = math.exp(-0.1 * (1 + g) / 10.0)
    V_inf = g * 10.0 / (1 + g)
    np.testing.assert_allclose(post.V.value, V_inf * (1 - e), rtol=1e-6)


def test_errors_are_raised_at_construction():
    pre, post = Source(4), nn.LIF(3)
    with pytest.raises(ValueError, match="syn has size 4 but post has size 3"):
        nn.Projection(pre, post, nn.AllToAll(), 1.0, nn.Expon(4), nn.CUBA())
    with pytest.raises(TypeError, match="conn must be a Connector"):
        nn.Projection(pre, post, None, 1.0, nn.Expon(3), nn.CUBA())
    with pytest.raises(ValueError, match="mode must be"):
        nn.Projection(pre, post, nn.AllToAll(), 1.0, nn.Expon(3), nn.CUBA(), mode="sparse")


# -- the COBA network against a hand-written JAX reference ------------------------------------
N_E, N_I = 400, 100


def build_coba(mode):
    nd.random.seed(7)
    kw = dict(V_rest=-60.0, V_reset=-60.0, V_th=-50.0, tau=20.0, R=1.0, tau_ref=5.0,
              V_initializer=nn.Normal(-55.0, 2.0))
    E, I = nn.LIF(N_E, **kw), nn.LIF(N_I, **kw)
    E.input.value = jnp.full(N_E, 20.0)
    I.input.value = jnp.full(N_I, 20.0)
    net = nn.Network(E=E, I=I)
    for name, a, b, exc, seed in (("EE", "E", "E", True, 1), ("EI", "E", "I", True, 2),
                                  ("IE", "I", "E", False, 3), ("II", "I", "I", False, 4)):
        pre, post = getattr(net, a), getattr(net, b)
        setattr(net, name, nn.Projection(
            pre, post, nn.FixedProb(0.1, allow_self=a != b, seed=seed), 0.6 if exc else 6.7,
            nn.Expon(post.size, 5.0 if exc else 10.0), nn.COBA(0.0 if exc else -80.0), mode=mode,
            max_spikes=8))
    return net


def reference_coba(net, n_steps, dt=0.1):
    C = {k: jnp.asarray(net.get(k).conn.dense(net.get(k).n_pre, net.get(k).n_post), jnp.float32)
         for k in ("EE", "EI", "IE", "II")}
    de, di = math.exp(-dt / 5.0), math.exp(-dt / 10.0)
    n_ref = int(round(5.0 / dt))

    def lif(V, ref, g_e, g_i):
        # exponential Euler: the conductances join the leak (tau = 20 ms)
        I = jnp.full_like(V, 20.0) + 0.0
        g = g_e + g_i
        gE = g_e * 0.0 + g_i * -80.0
        a = 1.0 + 1.0 * g
        V_inf = (-60.0 + 1.0 * (I + gE)) / a
        V_new = V_inf + (V - V_inf) * jnp.exp(a * (-dt / 20.0))
        is_ref = ref > 0
        V_new = jnp.where(is_ref, V, V_new)
        spike = (V_new >= -50.0) & ~is_ref
        return jnp.where(spike, -60.0, V_new), jnp.where(spike, n_ref - 1, jnp.maximum(ref - 1, 0)), spike

    def step(c, _):
        VE, VI, rE, rI, sE, sI, gEE, gEI, gIE, gII = c
        cnt = lambda s, k: jnp.dot(s.astype(jnp.float32), C[k], precision="highest")
        gEE = gEE * de + 0.6 * cnt(sE, "EE")
        gEI = gEI * de + 0.6 * cnt(sE, "EI")
        gIE = gIE * di + 6.7 * cnt(sI, "IE")
        gII = gII * di + 6.7 * cnt(sI, "II")
        VE, rE, sE = lif(VE, rE, gEE, gIE)
        VI, rI, sI = lif(VI, rI, gEI, gII)
        return (VE, VI, rE, rI, sE, sI, gEE, gEI, gIE, gII), (sE, sI)

    zE, zI = jnp.zeros(N_E), jnp.zeros(N_I)
    init = (net.E.V.value, net.I.V.value, jnp.zeros(N_E, jnp.int32), jnp.zeros(N_I, jnp.int32),
            jnp.zeros(N_E, bool), jnp.zeros(N_I, bool), zE, zI, zE, zI)
    return jax.jit(lambda c: jax.lax.scan(step, c, None, length=n_steps)[1])(init)


@pytest.mark.parametrize("mode", ["event", "dense"])
def test_coba_network_matches_hand_written_reference(mode):
    net = build_coba(mode)
    ref_E, ref_I = reference_coba(net, 1000)
    run = nd.jit(lambda: nd.for_loop(lambda: (net.update(), (net.E.spike.value, net.I.spike.value))[1],
                                     length=1000))
    sE, sI = run()
    assert int(ref_E.sum()) > 100  # the network is active (and overflows max_spikes=8 at times)
    np.testing.assert_array_equal(sE, ref_E)
    np.testing.assert_array_equal(sI, ref_I)


# -- the Network's fused event-driven propagation --------------------------------------------
def _fused_net(fuse, max_spikes, spike_fn=None):
    """Two sources (one float-valued with spike_fn) -> two LIF groups, 5 projections: 3 fusable
    event ones, one dense (never fused), one with per-synapse weights (fused with the others)."""
    A, B = Source(150), Source(90)
    if spike_fn is not None:
        B.spike.reset_value(jnp.zeros(90, jnp.float32))
    X, Y = nn.LIF(120, V_th=1e9), nn.LIF(70, V_th=1e9)
    net = nn.Network(A=A, B=B, X=X, Y=Y)
    net.fuse = fuse
    P = lambda pre, post, seed, w, **kw: nn.Projection(pre, post, nn.FixedProb(0.1, seed=seed), w,
                                                       nn.Expon(post.size, 5.0), nn.CUBA(), **kw)
    net.AX = P(A, X, 1, 0.6, mode="event", max_spikes=max_spikes)
    net.AY = P(A, Y, 2, 0.3, mode="event", max_spikes=max_spikes)
    net.BX = P(B, X, 3, -1.7, mode="event", max_spikes=max_spikes)
    net.BY = P(B, Y, 4, 0.9, mode="dense")
    nnz = nn.FixedProb(0.1, seed=5).num_connections(150, 120)
    net.AXw = P(A, X, 5, np.linspace(0.1, 1.0, nnz, dtype=np.float32), mode="event")
    return net


def _drive_net(net, spikes_a, spikes_b):  # -> the synaptic g of each projection, per step
    def step(a, b):
        net.A.spike.value = a
        net.B.spike.value = b.astype(net.B.spike.dtype)
        net.update()
        return [net.get(k).syn.g.value for k in ("AX", "AY", "BX", "BY", "AXw")]
    f = nd.jit(step)
    return [np.stack(x) for x in zip(*[f(a, b) for a, b in zip(spikes_a, spikes_b)])]


def test_fused_network_equals_unfused_in_every_tier():
    rng = np.random.default_rng(0)
    # spike counts per step (A + B): tier 1 (<= 16), 32, 48, 96, 192, and the full path
    totals = [0, 3, 10, 16, 17, 30, 48, 49, 120, 5, 200, 230]
    sa, sb = [], []
    for t in totals:
        s = np.zeros(240, bool)
        s[rng.choice(240, t, replace=False)] = True
        sa.append(s[:150]); sb.append(s[150:])
    out = {}
    for fuse in (True, False):
        net = _fused_net(fuse, max_spikes=24)
        if fuse:
            assert net._fusion.projs == [net.AX, net.AY, net.BX, net.AXw]
            assert (net._fusion.k1, net._fusion.k2) == (16, 48)
            assert net._fusion.tiers == [16, 32, 48, 96, 192]
        else:
            assert net._fusion is None
        out[fuse] = _drive_net(net, sa, sb)
    for a, b in zip(out[True], out[False]):
        np.testing.assert_array_equal(a, b)
    assert np.abs(out[True][0]).sum() > 0 and np.abs(out[True][2]).sum() > 0


def test_float_spikes_are_not_fused():
    # surrogate (float) spikes: sums of non-integers would depend on the scatter order
    net = _fused_net(True, max_spikes=24, spike_fn=True)
    assert net._fusion.projs == [net.AX, net.AY, net.AXw]
    assert (net._fusion.k1, net._fusion.k2) == (16, 24)


def test_fused_table_is_rebuilt_when_stale_and_exact_meanwhile():
    net = _fused_net(True, max_spikes=24)
    rng = np.random.default_rng(1)
    sa, sb = rng.random((6, 150)) < 0.05, rng.random((6, 90)) < 0.05
    first = net._fusion
    # new connectivity for AX (rows permuted): the table is stale; compiled code falls back to the
    # exact per-projection paths
    net.AX.targets.value = net.AX.targets.value[::-1]
    got = _drive_net(net, sa, sb)
    assert net._fusion is first  # not rebuilt inside compiled code
    net.reset_state()  # rebuilds outside compiled code
    assert net._fusion is not first
    net2 = _fused_net(False, max_spikes=24)
    net2.AX.targets.value = net.AX.targets.value
    want = _drive_net(net2, sa, sb)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    again = _drive_net(net, sa, sb)  # now through the rebuilt table, from reset state
    for a, b in zip(again, want):
        np.testing.assert_array_equal(a, b)


def test_same_connectivity_on_new_arrays_keeps_the_fused_table_and_loading_new_one_rebuilds_it():
    net = _fused_net(True, max_spikes=24)
    rng = np.random.default_rng(2)
    sa, sb = rng.random((4, 150)) < 0.05, rng.random((4, 90)) < 0.05
    first = net._fusion
    step = nd.jit(lambda: net.update())
    step()
    traces = step.trace_count
    # a state dict round trip (or placement on a mesh) puts equal connectivity in new arrays:
    # the table stays, fused and current, and the compiled step does not re-trace
    net.load_state_dict(net.state_dict())
    assert net._fusion is first and net._current_fusion(net._fusable()) is first
    step()
    assert step.trace_count == traces
    # another connectivity, loaded: the table is rebuilt to match
    other = _fused_net(True, max_spikes=24)
    state = net.state_dict()
    state["AX.targets"] = np.asarray(net.AX.targets.value)[::-1]
    net.load_state_dict(state)
    assert net._fusion is not first and net._current_fusion(net._fusable()) is net._fusion
    other.AX.targets.value = state["AX.targets"]
    other.fuse = False
    for a, b in zip(_drive_net(net, sa, sb), _drive_net(other, sa, sb)):
        np.testing.assert_array_equal(a, b)
