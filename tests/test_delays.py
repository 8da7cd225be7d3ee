"""Delays: the convention (a spike emitted at step t arrives at t + D, D >= 1, half-up rounding),
scalar delays on the fused path, per-synapse delays, and their errors."""
import functools
import math
import re

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


class Instant(nn.Synapse):
    """g is this step's synaptic input itself (no memory): the delivered input, observable."""

    def update(self, x=0.0):
        self.g.value = jnp.zeros_like(self.g.value) + x
        return self.g.value


def delivered(proj, pre, spikes):
    """The input ``proj`` delivers at each call; the spikes set before call k count as emitted
    at step k - 1 (what a Network's projections read), so they arrive at call k - 1 + D."""
    step = nd.jit(lambda s: (pre.spike.update(s), proj.update())[1])
    return np.stack([np.asarray(step(s)) for s in spikes])


def hand_delivery(conn, n_pre, n_post, steps, spikes, weight=None):
    """x[k, j] = sum over synapses i -> j of w * spikes[k - D + 1, i] (NumPy reference)."""
    indptr, indices = conn.csr(n_pre, n_post)
    pre_ids = np.repeat(np.arange(n_pre), np.diff(indptr))
    w = np.ones(indices.size) if weight is None else np.asarray(weight, np.float64)
    x = np.zeros((len(spikes), n_post))
    for k in range(len(spikes)):
        src = k - steps + 1
        ok = src >= 0
        hit = np.zeros(indices.size, bool)
        hit[ok] = spikes[src[ok], pre_ids[ok]]
        np.add.at(x[k], indices[hit], w[hit])
    return x



def _lif_reference(V, ref, g1, g2, *, drive, dm):
    """One exact-integration LIF step (V_rest 0, R 1, threshold 20, reset 10, tau_ref 2 ms at dt 0.1)."""
    I = jnp.full_like(V, drive) + g1 + g2 + 0.0
    V_new = I + (V - I) * dm
    is_ref = ref > 0
    V_new = jnp.where(is_ref, V, V_new)
    spike = (V_new >= 20.0) & ~is_ref
    # released at t_spike + tau_ref: clamped for the 19 steps after the spiking one
    return jnp.where(spike, 10.0, V_new), jnp.where(spike, 19, jnp.maximum(ref - 1, 0)), spike

def test_delay_rounding_is_half_up():
    np.testing.assert_array_equal(nn.delay_steps([0.05, 0.1, 0.14, 0.15, 0.25, 1.5, 0.04, 2.0], 0.1),
                                  [1, 1, 1, 2, 3, 15, 0, 20])


@pytest.mark.parametrize("delay,D", [(None, 1), (0.05, 1), (0.1, 1), (0.25, 3), (1.5, 15)])
@pytest.mark.parametrize("mode", ["event", "dense"])
def test_scalar_delay_delivers_at_exactly_D_steps(delay, D, mode):
    rng = np.random.default_rng(0)
    spikes = rng.random((40, 60)) < 0.1
    pre, post = Source(60), nn.LIF(50, V_th=1e9)
    conn = nn.FixedProb(0.2, seed=1)
    proj = nn.Projection(pre, post, conn, 0.5, Instant(50), nn.CUBA(), delay=delay, mode=mode)
    assert proj.delay_steps == D
    got = delivered(proj, pre, spikes)
    want = 0.5 * hand_delivery(conn, 60, 50, np.full(conn.num_connections(60, 50), D), spikes)
    np.testing.assert_array_equal(got, want.astype(np.float32))


@pytest.mark.parametrize("max_spikes", [2, 60])  # the compacted path (with overflow) and the full one
def test_per_synapse_delays_deliver_each_spike_at_its_own_step(max_spikes):
    rng = np.random.default_rng(1)
    pre, post = Source(60), nn.LIF(50, V_th=1e9)
    conn = nn.FixedProb(0.2, seed=2)
    nnz = conn.num_connections(60, 50)
    steps = rng.integers(1, 8, nnz)
    steps[:3] = [1, 7, 7]  # one step and the largest delay both occur
    w = rng.normal(0.5, 0.2, nnz).astype(np.float32)
    for weight in (1.25, w):
        pre.reset_state()
        proj = nn.Projection(pre, post, conn, weight, Instant(50), nn.CUBA(), delay=steps * 0.1,
                             max_spikes=max_spikes, name=f"p{np.ndim(weight)}")
        assert proj.heterogeneous_delay and proj.delay_steps == 7 and proj.mode == "event"
        # memory: a padded row of targets per presynaptic neuron (and its weights' positions), the
        # input due at each of the next 7 steps per postsynaptic neuron; no table without delays
        width = int(np.diff(conn.csr(60, 50)[0]).max())
        assert proj.delay_table.shape == (61, width) and proj.delay_buffer.shape == (7 * 50,)
        assert proj.delay_slot.shape == () and proj.delay_slot.dtype == np.int32
        assert (hasattr(proj, "delay_weight_index") == (np.ndim(weight) == 1)) and not hasattr(proj, "targets")
        spikes = rng.random((30, 60)) < 0.08
        spikes[5] = True  # more spikes than max_spikes: the exact path
        got = delivered(proj, pre, spikes)
        want = hand_delivery(conn, 60, 50, steps, spikes, np.broadcast_to(weight, nnz))
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-5)


def test_single_spike_reaches_each_synapse_at_its_rounded_delay():
    pre, post = Source(1), nn.LIF(6, V_th=1e9)
    delays = np.array([0.1, 0.15, 0.249, 0.25, 0.6, 0.05])  # -> 1, 2, 2, 3, 6, 1 steps
    proj = nn.Projection(pre, post, nn.AllToAll(), 1.0, Instant(6), nn.CUBA(), delay=delays)
    spikes = np.zeros((8, 1), bool)
    spikes[0] = True  # read at call 0: emitted one step before
    got = delivered(proj, pre, spikes)
    arrival = got.argmax(axis=0)
    np.testing.assert_array_equal(arrival + 1, [1, 2, 2, 3, 6, 1])
    np.testing.assert_array_equal(got.sum(axis=0), 1.0)


def test_delay_distribution_is_drawn_once_with_a_minimum_of_one_step():
    nd.random.seed(0)
    pre, post = Source(100), nn.LIF(80, V_th=1e9)
    d = nn.TruncatedNormal(0.4, 0.3, low=0.1)
    proj = nn.Projection(pre, post, nn.FixedProb(0.3, seed=3), 1.0, Instant(80), nn.CUBA(), delay=d)
    assert proj.delay.shape == (proj.nnz,) and proj.delay.min() >= 0.1
    steps = nn.delay_steps(proj.delay, 0.1)
    assert steps.min() == 1 and proj.delay_steps == steps.max() > 4
    spikes = np.random.default_rng(2).random((20, 100)) < 0.05
    want = hand_delivery(proj.conn, 100, 80, steps, spikes)
    np.testing.assert_array_equal(delivered(proj, pre, spikes), want.astype(np.float32))


def test_truncated_normal_redraw_and_clip():
    nd.random.seed(1)
    x = np.asarray(nn.init_value(nn.TruncatedNormal(0.0, 1.0, low=0.0), (20000,)))
    # half-normal: mean sqrt(2/pi), all >= 0
    assert x.min() >= 0 and abs(x.mean() - math.sqrt(2 / math.pi)) < 0.02
    c = np.asarray(nn.init_value(nn.TruncatedNormal(0.0, 1.0, low=0.0, mode="clip"), (20000,)))
    assert c.min() == 0.0 and abs((c == 0).mean() - 0.5) < 0.02
    with pytest.raises(ValueError, match="low .* must be < high"):
        nn.TruncatedNormal(0.0, 1.0, low=1.0, high=0.0)
    with pytest.raises(ValueError, match="less than 1e-6"):
        nn.TruncatedNormal(0.0, 1.0, low=10.0)


def test_bad_delays_and_weights_are_clear_errors_naming_the_projection():
    pre, post = Source(10), nn.LIF(8)
    conn = nn.FixedProb(0.5, seed=4)
    nnz = conn.num_connections(10, 8)
    mk = lambda **kw: nn.Projection(pre, post, conn, kw.pop("weight", 1.0), nn.Expon(8), nn.CUBA(), **kw)
    with pytest.raises(ValueError, match=r"Projection 'E2I' \(Source\(10\) -> LIF\(8\)\): 1 delay\(s\) "
                                         r"below one step \(smallest 0.04 ms at dt = 0.1 ms\)"):
        mk(delay=0.04, name="E2I")
    with pytest.raises(ValueError, match=r"Projection 'proj0' .*below one step.*delay=None"):
        mk(delay=0.0)
    bad = np.full(nnz, 1.0)
    bad[3] = 0.01
    with pytest.raises(ValueError, match=r"1 delay\(s\) below one step \(smallest 0.01 ms"):
        mk(delay=bad)
    with pytest.raises(ValueError, match=r"delays must be finite and >= 0 ms, got \[-1.0\]"):
        mk(delay=-1.0)
    with pytest.raises(ValueError, match=rf"delay must be a scalar, have one value per connection "
                                         rf"\(shape \({nnz},\), CSR order\).*got shape \(3,\)"):
        mk(delay=np.ones(3))
    with pytest.raises(ValueError, match="per-synapse delays need mode='event'"):
        mk(delay=np.ones(nnz), mode="dense")
    with pytest.raises(ValueError, match=rf"'proj0'.*weight must be a scalar.*\({nnz},\).*got shape \(2, 2\)"):
        mk(weight=np.ones((2, 2)))
    with pytest.raises(ValueError, match="'proj0'.*weight has non-finite values"):
        mk(weight=np.full(nnz, np.nan))
    # a buffer of future inputs beyond the int32 index range (2**20 targets x 1025 steps)
    big = nn.LIF(1 << 20)
    far = np.array([102.5])
    with pytest.raises(ValueError, match=r"Projection 'far' \(Source\(1\) -> LIF\(1048576\)\): 1025 delay "
                                         r"steps x 1048576 postsynaptic neurons exceed the int32 index range"):
        nn.Projection(Source(1), big, nn.FixedPostNum(1, seed=0), 1.0, nn.Delta(1 << 20), nn.VoltageJump(),
                      delay=far, name="far")
    assert big.current_inputs == {}
    # nothing was registered by the failed constructions
    assert post.current_inputs == {}
    ok = mk(delay=0.05)
    assert ok.delay_steps == 1 and list(post.current_inputs) == ["proj0"]
    # a new dt that makes the delay shorter than a step is caught at reset
    with nd.context(dt=1.0):
        with pytest.raises(ValueError, match="'proj0'.*below one step"):
            ok.reset_state()


# -- a recurrent network: fused delayed == unfused == hand-written -----------------------------
N_E, N_I = 160, 40


def build(delays=(1.5, 0.8), max_spikes=6):
    nd.random.seed(3)
    kw = dict(V_rest=0.0, V_reset=10.0, V_th=20.0, tau=20.0, tau_ref=2.0, V_initializer=nn.Uniform(0.0, 20.0))
    E, I = nn.LIF(N_E, **kw), nn.LIF(N_I, **kw)
    net = nn.Network(E=E, I=I)
    for name, a, b, w, seed in (("EE", "E", "E", 0.9, 1), ("EI", "E", "I", 0.9, 2),
                                ("IE", "I", "E", -3.0, 3), ("II", "I", "I", -3.0, 4)):
        pre, post = getattr(net, a), getattr(net, b)
        setattr(net, name, nn.Projection(pre, post, nn.FixedProb(0.1, seed=seed), w, nn.Expon(post.size, 2.0),
                                         nn.CUBA(), delay=delays[a == "I"], mode="event",
                                         max_spikes=max_spikes))
    return net


def reference(net, n_steps, drive=26.0):
    C = {k: jnp.asarray(net.get(k).conn.dense(net.get(k).n_pre, net.get(k).n_post), jnp.float32)
         for k in ("EE", "EI", "IE", "II")}
    DE, DI = net.EE.delay_steps, net.IE.delay_steps
    dm, ds = math.exp(-0.1 / 20.0), math.exp(-0.1 / 2.0)

    lif = functools.partial(_lif_reference, drive=drive, dm=dm)

    def step(c, _):
        VE, VI, rE, rI, histE, histI, gEE, gEI, gIE, gII = c
        # hist[0]: spikes of the previous step; hist[D - 1]: emitted D steps ago
        sE, sI = histE[DE - 1], histI[DI - 1]
        cnt = lambda s, k: jnp.dot(s.astype(jnp.float32), C[k], precision="highest")
        gEE = gEE * ds + 0.9 * cnt(sE, "EE")
        gEI = gEI * ds + 0.9 * cnt(sE, "EI")
        gIE = gIE * ds + -3.0 * cnt(sI, "IE")
        gII = gII * ds + -3.0 * cnt(sI, "II")
        VE, rE, spE = lif(VE, rE, gEE, gIE)
        VI, rI, spI = lif(VI, rI, gEI, gII)
        histE = jnp.concatenate([spE[None], histE[:-1]])
        histI = jnp.concatenate([spI[None], histI[:-1]])
        return (VE, VI, rE, rI, histE, histI, gEE, gEI, gIE, gII), (spE, spI)

    zE, zI = jnp.zeros(N_E), jnp.zeros(N_I)
    init = (net.E.V.value, net.I.V.value, jnp.zeros(N_E, jnp.int32), jnp.zeros(N_I, jnp.int32),
            jnp.zeros((DE, N_E), bool), jnp.zeros((DI, N_I), bool), zE, zI, zE, zI)
    return jax.jit(lambda c: jax.lax.scan(step, c, None, length=n_steps)[1])(init)


def run_net(net, n_steps, drive=26.0):
    net.E.input.value = jnp.full(N_E, drive)
    net.I.input.value = jnp.full(N_I, drive)
    f = nd.jit(lambda: nd.for_loop(lambda: (net.update(), (net.E.spike.value, net.I.spike.value))[1],
                                   length=n_steps))
    return f()


def test_fused_delayed_network_equals_unfused_and_hand_written_reference():
    fused = build()
    assert fused._fusion is not None and fused._fusion.projs == [fused.EE, fused.EI, fused.IE, fused.II]
    assert len(fused._fusion.sources) == 2  # E delayed by 15 steps, I by 8
    ref_E, ref_I = reference(fused, 600)
    sE, sI = run_net(fused, 600)
    unfused = build()
    unfused.fuse = False
    uE, uI = run_net(unfused, 600)
    assert int(ref_E.sum()) > 200 and int(ref_I.sum()) > 50  # active, and beyond max_spikes at times
    np.testing.assert_array_equal(sE, ref_E)
    np.testing.assert_array_equal(sI, ref_I)
    np.testing.assert_array_equal(uE, ref_E)
    np.testing.assert_array_equal(uI, ref_I)


def build_mixed():
    """The network above with one per-synapse-delayed projection (not fused) and a fused
    per-connection-weight projection."""
    net = build()
    nnz = net.EI.nnz
    nd.random.seed(9)
    net.EI = nn.Projection(net.E, net.I, nn.FixedProb(0.1, seed=2), nn.TruncatedNormal(0.9, 0.3, low=0.0),
                           nn.Expon(N_I, 2.0), nn.CUBA(), delay=nn.TruncatedNormal(1.0, 0.5, low=0.1),
                           mode="event", max_spikes=6, name="EI_het")
    assert net.EI.nnz == nnz
    return net


def test_same_spikes_for_any_chunk_size_and_after_save_load(tmp_path):
    net = build_mixed()
    kw = dict(monitors=["E.spike", "I.spike"], inputs=[("E.input", 26.0), ("I.input", 26.0)],
              progress_bar=False)
    r = nd.Runner(net, chunk_size=7, **kw)
    r.run(14.7)
    nd.save(tmp_path / "mid.npz", net)
    second = r.run(25.9)  # 37 chunks of 7 steps
    assert int(second["E.spike"].sum()) > 100
    # back to the middle (the checkpoint restores the random state too), in one chunk of 259 steps
    nd.random.seed(123)
    nd.load(tmp_path / "mid.npz", net)
    again = nd.Runner(net, chunk_size=259, **kw).run(25.9)
    for k in ("E.spike", "I.spike"):
        np.testing.assert_array_equal(again[k], second[k])
    # reset_state clears every delay buffer: a rerun from the same initial state is identical
    nd.random.seed(5); net.reset_state(); a = r.run(7.0)
    nd.random.seed(5); net.reset_state(); b = r.run(7.0)
    np.testing.assert_array_equal(a["E.spike"], b["E.spike"])
    assert np.asarray(net.EI.delay_buffer.value).any()


def _loop_body_copies(hlo: str) -> list[str]:
    comps, cur = {}, None
    for line in hlo.splitlines():
        m = re.match(r"^(?:ENTRY )?%?([\w.\-]+) .*\{\s*$", line)
        if m and not line.startswith(" "):
            cur = m.group(1)
            comps[cur] = []
        elif cur:
            comps[cur].append(line)
    bodies = re.findall(r"while\(.*?body=%?([\w.\-]+)", hlo)
    assert bodies, "no loop in the compiled code"
    return [ln for b in bodies for ln in comps[b] if " copy(" in ln]


def test_compiled_loop_copies_no_delay_buffer():
    net = build_mixed()
    f = nd.jit(lambda: nd.for_loop(lambda: net.update(), length=20))
    hlo = f.lower().compile().as_text()
    R = net.EI.delay_steps
    assert f"f32[{R * N_I}]" in hlo  # the buffer of future inputs of the per-synapse-delay projection
    # Nothing larger than one per-neuron state vector is copied per step: the buffer of future
    # inputs is updated in place (cleared, added into, then read), and the packed spike
    # histories of the scalar delays (N x ceil(D / 32) words) are rewritten as a whole.
    copies = _loop_body_copies(hlo)
    assert copies
    sizes = []
    for c in copies:
        shape = re.search(r"= (\w+)\[([\d,]*)\]", c).group(2)
        sizes.append(int(np.prod([int(x) for x in shape.split(",") if x] or [1])))
    assert max(sizes) <= max(N_E, N_I), [c for c, n in zip(copies, sizes) if n > max(N_E, N_I)]


def test_per_synapse_delay_projection_propagates_through_all_synapses_without_delay():
    rng = np.random.default_rng(4)
    pre, post = Source(40), nn.LIF(30, V_th=1e9)
    conn = nn.FixedProb(0.3, seed=5)
    nnz = conn.num_connections(40, 30)
    w = rng.normal(0.5, 0.2, nnz).astype(np.float32)
    spikes = rng.random((3, 40)) < 0.3
    for weight in (0.75, w):
        proj = nn.Projection(pre, post, conn, weight, Instant(30), nn.CUBA(), delay=rng.integers(1, 6, nnz) * 0.1,
                             name=f"q{np.ndim(weight)}")
        want = hand_delivery(conn, 40, 30, np.ones(nnz, int), spikes, np.broadcast_to(weight, nnz))
        np.testing.assert_allclose(np.asarray(proj.propagate(spikes)), want, rtol=1e-6, atol=1e-5)
        np.testing.assert_allclose(np.asarray(proj.propagate(spikes[1])), want[1], rtol=1e-6, atol=1e-5)


def test_per_synapse_delays_beyond_32_steps_with_overflowing_steps():
    # a buffer of 40 steps; steps with more spikes than a batch holds take further batches, and
    # deliver at every delay they reach
    rng = np.random.default_rng(6)
    pre, post = Source(30), nn.LIF(20, V_th=1e9)
    conn = nn.FixedProb(0.4, seed=7)
    nnz = conn.num_connections(30, 20)
    steps = rng.integers(1, 41, nnz)
    steps[:4] = [1, 32, 33, 40]
    proj = nn.Projection(pre, post, conn, 1.0, Instant(20), nn.CUBA(), delay=steps * 0.1, max_spikes=2)
    assert proj.delay_buffer.shape == (40 * 20,)
    spikes = rng.random((90, 30)) < 0.05
    spikes[3] = spikes[37] = True
    want = hand_delivery(conn, 30, 20, steps, spikes)
    np.testing.assert_array_equal(delivered(proj, pre, spikes), want.astype(np.float32))


_MESH_CHECK = """
import sys
import numpy as np
import neurodyn as nd
sys.path.insert(0, "tests")
from test_delays import build_mixed
kw = dict(monitors=["E.spike", "I.spike"], inputs=[("E.input", 26.0), ("I.input", 26.0)], progress_bar=False)
one = nd.Runner(build_mixed(), **kw).run(20.)
net = build_mixed()
two = nd.Runner(net, mesh=2, **kw).run(20.)
assert one["E.spike"].sum() > 20
for k in ("E.spike", "I.spike"):
    np.testing.assert_array_equal(two[k], one[k])
for name in ("delay_table", "delay_weight_index", "delay_buffer"):  # read at any position: whole on each device
    s = getattr(net.EI, name).value.sharding
    assert len(s.device_set) == 2 and s.is_fully_replicated, (name, s)
print("MESH OK")
"""


def test_per_synapse_delays_on_two_devices_give_the_same_spikes():
    # in a subprocess: the device count is fixed when JAX starts
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=2",
               PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", _MESH_CHECK], env=env, capture_output=True, text=True,
                          timeout=240, cwd=root)
    assert "MESH OK" in proc.stdout, proc.stderr[-2000:]


# -- several per-synapse-delay projections delivered together ----------------------------------
def build_het(max_spikes=(2, 2, 1, 1)):
    """Four per-synapse-delay projections: two sources, scalar and per-connection weights,
    different largest delays and batch sizes. Weights are multiples of 1/8, so that every sum
    is exact in any order and the hand-written reference is exact too."""
    nd.random.seed(3)
    rng = np.random.default_rng(11)
    kw = dict(V_rest=0.0, V_reset=10.0, V_th=20.0, tau=20.0, tau_ref=2.0, V_initializer=nn.Uniform(0.0, 20.0))
    E, I = nn.LIF(N_E, **kw), nn.LIF(N_I, **kw)
    net = nn.Network(E=E, I=I)
    specs = (("EE", "E", "E", 0.875, 1, (1.5, 0.5)), ("EI", "E", "I", "w+", 2, (1.0, 0.6)),
             ("IE", "I", "E", -3.0, 3, (0.8, 0.3)), ("II", "I", "I", "w-", 4, (2.5, 0.8)))
    for (name, a, b, w, seed, (mu, sd)), k in zip(specs, max_spikes):
        pre, post = getattr(net, a), getattr(net, b)
        conn = nn.FixedProb(0.1, seed=seed)
        nnz = conn.num_connections(pre.size, post.size)
        if isinstance(w, str):
            w = (1.0 if w == "w+" else -3.0) * rng.integers(2, 12, nnz) / 8.0
        d = np.maximum(rng.normal(mu, sd, nnz), 0.1)
        setattr(net, name, nn.Projection(pre, post, conn, w, nn.Expon(post.size, 2.0), nn.CUBA(), delay=d,
                                         max_spikes=k))
    return net


def het_reference(net, n_steps, drive=26.0):
    names = ("EE", "EI", "IE", "II")
    R = max(net.get(k).delay_steps for k in names)
    W = {}
    for k in names:  # W[k][D - 1]: the weights of the synapses of delay D, dense
        p = net.get(k)
        indptr, indices = p.conn.csr(p.n_pre, p.n_post)
        pre_ids = np.repeat(np.arange(p.n_pre), np.diff(indptr))
        w = np.broadcast_to(np.asarray(p.weight, np.float64), (p.nnz,))
        m = np.zeros((R, p.n_pre, p.n_post))
        np.add.at(m, (nn.delay_steps(p.delay, 0.1) - 1, pre_ids, indices), w)
        W[k] = jnp.asarray(m, jnp.float32)
    dm, ds = math.exp(-0.1 / 20.0), math.exp(-0.1 / 2.0)

    lif = functools.partial(_lif_reference, drive=drive, dm=dm)

    def step(c, _):
        VE, VI, rE, rI, hE, hI, gEE, gEI, gIE, gII = c
        # h[D - 1]: the spikes emitted D steps ago
        x = lambda h, k: jnp.einsum("dn,dnm->m", h.astype(jnp.float32), W[k], precision="highest")
        gEE, gEI = gEE * ds + x(hE, "EE"), gEI * ds + x(hE, "EI")
        gIE, gII = gIE * ds + x(hI, "IE"), gII * ds + x(hI, "II")
        VE, rE, spE = lif(VE, rE, gEE, gIE)
        VI, rI, spI = lif(VI, rI, gEI, gII)
        hE, hI = jnp.concatenate([spE[None], hE[:-1]]), jnp.concatenate([spI[None], hI[:-1]])
        return (VE, VI, rE, rI, hE, hI, gEE, gEI, gIE, gII), (spE, spI)

    zE, zI = jnp.zeros(N_E), jnp.zeros(N_I)
    init = (net.E.V.value, net.I.V.value, jnp.zeros(N_E, jnp.int32), jnp.zeros(N_I, jnp.int32),
            jnp.zeros((R, N_E), bool), jnp.zeros((R, N_I), bool), zE, zI, zE, zI)
    return jax.jit(lambda c: jax.lax.scan(step, c, None, length=n_steps)[1])(init)


def test_per_synapse_delay_projections_delivered_together_equal_unfused_and_hand_written(monkeypatch):
    import neurodyn.nn._projection as proj_mod
    calls = []
    together = proj_mod.delay_inputs
    monkeypatch.setattr(proj_mod, "delay_inputs", lambda projs: calls.append(len(projs)) or together(projs))
    fused = build_het()
    Rs = [fused.get(k).delay_steps for k in ("EE", "EI", "IE", "II")]
    assert len(set(Rs)) > 1 and max(Rs) > 32  # buffers of different depths
    ref_E, ref_I = het_reference(fused, 400)
    sE, sI = run_net(fused, 400)
    assert calls and set(calls) == {4}  # all four delivered in one call
    unfused = build_het()
    unfused.fuse = False
    uE, uI = run_net(unfused, 400)
    assert set(calls) == {4}
    # active, with steps of more spikes than a batch (2 rows from E, 1 from I) holds
    per_step_E, per_step_I = np.asarray(ref_E).sum(1), np.asarray(ref_I).sum(1)
    assert int(ref_E.sum()) > 200 and int(ref_I.sum()) > 50
    assert (per_step_E > 2).sum() > 3 and (per_step_I > 1).sum() > 3, (per_step_E.max(), per_step_I.max())
    np.testing.assert_array_equal(sE, ref_E)
    np.testing.assert_array_equal(sI, ref_I)
    np.testing.assert_array_equal(uE, ref_E)
    np.testing.assert_array_equal(uI, ref_I)
