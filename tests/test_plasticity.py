"""Plasticity on the event-driven path: STDP family, reward modulation, short-term plasticity."""

import json
import math
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import neurodyn as nd
import neurodyn.nn as nn

ROOT = pathlib.Path(__file__).resolve().parents[1]


class Source(nn.Group):
    """Spikes set by the test."""

    def update(self):
        return self.spike.value


class Tap(nn.Synapse):
    """A synapse whose ``g`` is this step's input (to read what was transmitted)."""

    def update(self, x=0.0):
        self.g.value = jnp.zeros(self.g.shape) + x
        return self.g.value


def plastic(rule, n_pre, n_post, conn, weight=0.5, **kw):
    pre, post = Source(n_pre), nn.LIF(n_post, V_th=1e9)
    proj = nn.Projection(pre, post, conn, weight, Tap(n_post), nn.CUBA(), plasticity=rule, **kw)
    return pre, post, proj


def drive(proj, pre_raster, post_raster, rewards=None):
    """Run ``proj`` over prescribed spike rasters (row n: the spikes the projection sees at step n)."""
    rule = proj.plasticity
    rewards = np.zeros(len(pre_raster), np.float32) if rewards is None else np.asarray(rewards, np.float32)

    def body(ps, qs, r):
        if isinstance(rule, nn.RewardSTDP):
            rule.reward(r)
        proj.pre.spike.value = ps
        proj.post.spike.value = qs
        return proj.update()

    run = nd.jit(lambda a, b, c: nd.for_loop(body, a, b, c))
    return np.asarray(run(jnp.asarray(pre_raster), jnp.asarray(post_raster), jnp.asarray(rewards)))


def pair_rasters(offsets, n_steps, t0):
    """Neuron i: a presynaptic spike at step t0, a postsynaptic one at t0 + offsets[i]."""
    n = len(offsets)
    pre = np.zeros((n_steps, n), bool)
    post = np.zeros((n_steps, n), bool)
    pre[t0, np.arange(n)] = True
    post[t0 + np.asarray(offsets), np.arange(n)] = True
    return pre, post


# -- the STDP window ----------------------------------------------------------------------------
@pytest.mark.parametrize("pairing", ["all", "nearest"])
@pytest.mark.parametrize("bounds", ["hard", "soft"])
def test_stdp_window_of_isolated_pairs_equals_closed_form(pairing, bounds):
    dt = 0.1
    offsets = np.arange(-400, 401, 25)         # steps: -40 ms .. 40 ms
    n = len(offsets)
    with nd.context(dt=dt):
        rule = nn.STDP(tau_pre=16.8, tau_post=33.7, A_plus=0.01, A_minus=0.012, w_min=0., w_max=1.,
                       bounds=bounds, pairing=pairing)
        _, _, proj = plastic(rule, n, n, nn.OneToOne(), weight=0.5)
        pre, post = pair_rasters(offsets, 1000, 450)
        drive(proj, pre, post)
    dw = np.asarray(proj.weight.value) - 0.5
    delta = offsets * dt
    scale = 0.5 if bounds == "soft" else 1.0          # (w_max - w) = (w - w_min) = 0.5
    expect = np.where(delta >= 0, 0.01 * np.exp(-delta / 16.8), -0.012 * np.exp(delta / 33.7)) * scale
    np.testing.assert_allclose(dw, expect, rtol=1e-4, atol=1e-8)
    assert dw[offsets == 0][0] > 0                     # simultaneous spikes count as pre before post


def test_weights_respect_hard_and_soft_bounds():
    rng = np.random.default_rng(0)
    pre = rng.random((400, 30)) < 0.1
    post = rng.random((400, 20)) < 0.1
    for bounds, up in [("hard", True), ("hard", False), ("soft", True), ("soft", False)]:
        amp = 0.3 if bounds == "hard" else 0.002
        A_plus, A_minus = (amp, 0.0) if up else (0.0, amp)
        rule = nn.STDP(A_plus=A_plus, A_minus=A_minus, w_min=0.1, w_max=0.9, bounds=bounds)
        _, _, proj = plastic(rule, 30, 20, nn.FixedProb(0.3, seed=1), weight=0.5)
        drive(proj, pre, post)
        w = np.asarray(proj.weight.value)
        assert w.min() >= 0.1 and w.max() <= 0.9
        if bounds == "hard":
            assert np.mean(w == (0.9 if up else 0.1)) > 0.5    # many pinned at the bound
        else:
            # multiplicative: the bound is approached but never reached
            gap = np.abs(w - (0.9 if up else 0.1))
            assert np.all(gap > 0) and gap.mean() < 0.2


# -- triplet rule ------------------------------------------------------------------------------
def triplet_closed_form(pre_times, post_times, p, nearest):
    """Sum of the triplet rule's weight changes over given spike times (traces evaluated in closed form)."""
    def trace(times, t, tau, strict):
        ts = np.asarray([s for s in times if (s < t if strict else s <= t)])
        if ts.size == 0:
            return 0.0
        return float(np.exp(-(t - ts.max()) / tau)) if nearest else float(np.sum(np.exp(-(t - ts) / tau)))

    dw = 0.0
    for t in pre_times:       # depression: o1 (posts strictly before), r2 (pres strictly before)
        dw -= trace(post_times, t, p["tau_minus"], True) * (p["A2_minus"] + p["A3_minus"] * trace(pre_times, t, p["tau_x"], True))
    for t in post_times:      # potentiation: r1 (pres up to t), o2 (posts strictly before)
        dw += trace(pre_times, t, p["tau_plus"], False) * (p["A2_plus"] + p["A3_plus"] * trace(post_times, t, p["tau_y"], True))
    return dw


@pytest.mark.parametrize("interaction", ["all", "nearest"])
def test_triplet_frequency_dependence_matches_closed_form(interaction):
    # pairing protocol: 10 pre-post pairs at rho Hz, post 10 ms after pre (+) or before it (-)
    # visual-cortex fits of Pfister & Gerstner (2006), Table 4, full models
    if interaction == "all":
        p = dict(tau_plus=16.8, tau_minus=33.7, tau_x=101., tau_y=125., A2_plus=5e-10, A3_plus=6.2e-3,
                 A2_minus=7e-3, A3_minus=2.3e-4)
    else:
        p = dict(tau_plus=16.8, tau_minus=33.7, tau_x=714., tau_y=40., A2_plus=8.8e-11, A3_plus=5.3e-2,
                 A2_minus=6.6e-3, A3_minus=3.1e-3)
    dt, n_pairs = 0.5, 10
    freqs = [1., 5., 10., 20., 40., 50.]
    cases = [(f, s) for f in freqs for s in (+1, -1)]
    n = len(cases)
    steps = int(n_pairs * 1000 / freqs[0] / dt) + 100
    pre = np.zeros((steps, n), bool)
    post = np.zeros((steps, n), bool)
    expect = []
    for i, (f, s) in enumerate(cases):
        period = int(round(1000 / f / dt))
        t_pre = 40 + np.arange(n_pairs) * period
        t_post = t_pre + s * 20
        pre[t_pre, i] = True
        post[t_post, i] = True
        expect.append(triplet_closed_form(t_pre * dt, t_post * dt, p, interaction == "nearest"))
    with nd.context(dt=dt):
        rule = nn.TripletSTDP(**p, w_min=-10., w_max=10., interaction=interaction)
        _, _, proj = plastic(rule, n, n, nn.OneToOne(), weight=0.)
        drive(proj, pre, post)
    dw = np.asarray(proj.weight.value)
    np.testing.assert_allclose(dw, expect, rtol=2e-4, atol=1e-7)
    by = dict(zip(cases, dw))
    # the triplet term: post-before-pre pairing depresses at 1 Hz and potentiates at 50 Hz
    assert by[(1., -1)] < 0 < by[(50., -1)]
    assert by[(50., 1)] > by[(1., 1)] >= 0


# -- Tsodyks-Markram ---------------------------------------------------------------------------
def tm_recursion(U, tau_d, tau_f, T, n):
    u, x, amp = U, 1.0, []
    for _ in range(n):
        amp.append(u * x)
        x_next = 1 - (1 - x + u * x) * math.exp(-T / tau_d)
        u = U + u * (1 - U) * math.exp(-T / tau_f)
        x = x_next
    return np.asarray(amp)


def tm_amplitudes(rule, period_steps, n_spikes, w=2.0):
    _, _, proj = plastic(rule, 1, 1, nn.OneToOne(), weight=w)
    pre = np.zeros((period_steps * n_spikes + 5, 1), bool)
    pre[5 + np.arange(n_spikes) * period_steps, 0] = True
    g = drive(proj, pre, np.ones((len(pre), 1), bool))[:, 0]
    assert np.all(np.asarray(proj.weight.value) == w)     # short-term plasticity leaves w alone
    assert np.all(g[~pre[:, 0]] == 0)
    return g[pre[:, 0]] / w


def test_tsodyks_markram_depression_follows_the_recursion_and_weights_stay():
    amps = tm_amplitudes(nn.TsodyksMarkram(U=0.5, tau_d=800., tau_f=1e-3), 500, 12)    # 20 Hz
    np.testing.assert_allclose(amps, tm_recursion(0.5, 800., 1e-3, 50., 12), rtol=5e-5)
    assert np.all(np.diff(amps) < 0)


def test_tsodyks_markram_facilitation_grows_then_saturates():
    amps = tm_amplitudes(nn.TsodyksMarkram(U=0.1, tau_d=50., tau_f=1000.), 250, 40)     # 40 Hz
    np.testing.assert_allclose(amps, tm_recursion(0.1, 50., 1000., 25., 40), rtol=1e-4)
    assert amps[3] > 1.5 * amps[0]                                    # facilitation
    assert abs(amps[-1] - amps[-2]) < 1e-3 * amps[-1]                 # a steady state


# -- event-driven path equals a dense reference ------------------------------------------------------
def dense_reference(kind, p, M, W, pre, post, rewards, dt):
    """Every synapse, every step (NumPy, float64), in the order of the module docstring."""
    W = W.copy()
    n_pre, n_post = M.shape
    e = lambda tau: math.exp(-dt / tau)
    near = p.get("pairing", "all") == "nearest"
    tr = {}

    def add(x, s):
        return np.where(s, 1.0, x) if near else x + s

    if kind == "stdp":
        tr = dict(xp=np.zeros(n_pre), xq=np.zeros(n_post))
    elif kind == "triplet":
        tr = dict(r1=np.zeros(n_pre), r2=np.zeros(n_pre), o1=np.zeros(n_post), o2=np.zeros(n_post))
    elif kind in ("vogels", "reward"):
        tr = dict(xp=np.zeros(n_pre), xq=np.zeros(n_post))
    C = np.zeros_like(W)
    d = 0.0
    lo, hi = p.get("w_min", 0.0), p.get("w_max", 1.0)
    soft = p.get("bounds") == "soft"

    def pot(W, dw):
        return np.clip(W + (dw * (hi - W) if soft else dw), lo, hi)

    def dep(W, dw):
        return np.clip(W - (dw * (W - lo) if soft else dw), lo, hi)

    for n in range(len(pre)):
        s, q = pre[n].astype(float), post[n].astype(float)
        rows = (s[:, None] > 0) & M
        cols = (q[None, :] > 0) & M
        if kind == "stdp":
            tr["xp"] *= e(p["tau_pre"]); tr["xq"] *= e(p["tau_post"])
            W = np.where(rows, dep(W, p["A_minus"] * tr["xq"][None, :]), W)
            tr["xp"] = add(tr["xp"], s)
            W = np.where(cols, pot(W, p["A_plus"] * tr["xp"][:, None]), W)
            tr["xq"] = add(tr["xq"], q)
        elif kind == "triplet":
            for k, tau in (("r1", "tau_plus"), ("r2", "tau_x"), ("o1", "tau_minus"), ("o2", "tau_y")):
                tr[k] *= e(p[tau])
            W = np.where(rows, dep(W, tr["o1"][None, :] * (p["A2_minus"] + p["A3_minus"] * tr["r2"][:, None])), W)
            tr["r1"], tr["r2"] = s + tr["r1"], s + tr["r2"]
            W = np.where(cols, pot(W, tr["r1"][:, None] * (p["A2_plus"] + p["A3_plus"] * tr["o2"][None, :])), W)
            tr["o1"], tr["o2"] = q + tr["o1"], q + tr["o2"]
        elif kind == "vogels":
            tr["xp"] *= e(p["tau"]); tr["xq"] *= e(p["tau"])
            alpha = 2 * p["rho0"] * p["tau"] / 1000
            W = np.where(rows, np.clip(W + p["eta"] * (tr["xq"][None, :] - alpha), lo, hi), W)
            tr["xp"] += s
            W = np.where(cols, np.clip(W + p["eta"] * tr["xp"][:, None], lo, hi), W)
            tr["xq"] += q
        elif kind == "reward":
            d += rewards[n]
            tr["xp"] *= e(p["tau_pre"]); tr["xq"] *= e(p["tau_post"])
            C = np.where(rows, C - p["A_minus"] * tr["xq"][None, :], C)
            tr["xp"] += s
            C = np.where(cols, C + p["A_plus"] * tr["xp"][:, None], C)
            tr["xq"] += q
            lam = 1 / p["tau_c"] + 1 / p["tau_d"]
            W = W + C * d * (-math.expm1(-lam * dt) / lam)
            C *= e(p["tau_c"]); d *= e(p["tau_d"])
    return W


RULES = [
    ("stdp", dict(tau_pre=15., tau_post=25., A_plus=0.02, A_minus=0.021, w_min=0., w_max=1., bounds="hard",
                  pairing="all")),
    ("stdp", dict(tau_pre=15., tau_post=25., A_plus=0.05, A_minus=0.06, w_min=0., w_max=1., bounds="soft",
                  pairing="nearest")),
    ("triplet", dict(tau_plus=16.8, tau_minus=33.7, tau_x=101., tau_y=125., A2_plus=1e-3, A3_plus=6.2e-3,
                     A2_minus=7e-3, A3_minus=2.3e-4, w_min=0., w_max=1.)),
    ("vogels", dict(tau=20., eta=0.01, rho0=10., w_min=0., w_max=1.)),
    ("reward", dict(tau_pre=20., tau_post=20., A_plus=0.002, A_minus=0.003, tau_c=50., tau_d=20., w_min=-100.,
                    w_max=100.)),
]


def make_rule(kind, p):
    return {"stdp": nn.STDP, "triplet": nn.TripletSTDP, "vogels": nn.VogelsSTDP, "reward": nn.RewardSTDP}[kind](**p)


@pytest.mark.parametrize("kind,p", RULES, ids=["stdp-add-all", "stdp-mult-nearest", "triplet", "vogels", "reward"])
def test_event_driven_plasticity_equals_dense_reference(kind, p):
    dt, steps, n_pre, n_post = 0.1, 1200, 40, 30
    rng = np.random.default_rng(3)
    pre = rng.random((steps, n_pre)) < 0.02
    post = rng.random((steps, n_post)) < 0.03
    pre[600:603] = rng.random((3, n_pre)) < 0.5      # bursts: more spikes than the buffers hold
    post[900] = True
    rewards = np.where(rng.random(steps) < 0.01, 0.5, 0.0)
    delay = 3                                          # steps (axonal: the rule sees arrival times)
    with nd.context(dt=dt):
        rule = make_rule(kind, p)
        _, _, proj = plastic(rule, n_pre, n_post, nn.FixedProb(0.3, seed=2), weight=0.5, delay=delay * dt,
                             max_spikes=4)
        proj.max_post_spikes = 3
        nnz = proj.nnz
        w_init = rng.uniform(0.2, 0.8, nnz).astype(np.float32)
        proj.weight.value = w_init
        drive(proj, pre, post, rewards)
        if kind == "reward":
            rule.sync(proj)
    indptr, indices = proj.conn.csr(n_pre, n_post)
    rows = np.repeat(np.arange(n_pre), np.diff(indptr))
    M = np.zeros((n_pre, n_post), bool)
    M[rows, indices] = True
    W0 = np.zeros((n_pre, n_post))
    W0[rows, indices] = w_init
    # delivered D = 3 steps after emission; a raster row is what the projection reads one step
    # after emission (D = 1), so the rule sees presynaptic spikes D - 1 rows late
    arrived = np.concatenate([np.zeros((delay - 1, n_pre), bool), pre[:-(delay - 1)]])
    ref = dense_reference(kind, p, M, W0, arrived, post, rewards, dt)[rows, indices]
    got = np.asarray(proj.weight.value)
    assert np.abs(ref - w_init).max() > 0.05          # the weights did move
    np.testing.assert_allclose(got, ref, rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize("exact_keys", [True, False])
def test_spike_compaction_finds_every_spike_in_batches(monkeypatch, exact_keys):
    from neurodyn.nn import _kernels, _plasticity
    if not exact_keys:  # the path for groups too large for float32 keys
        monkeypatch.setattr(_kernels, "_EXACT_F32", 0)
    rng = np.random.default_rng(5)
    cases = [(1, 1), (100, 0), (100, 3), (3201, 8), (3201, 9), (3201, 40), (4096, 4096), (40, 40)]
    # 9 spikes in one block of 32, and 9 spikes in 9 blocks: left out by the second and the first stage
    clustered = [np.arange(9), np.arange(9) * 32]
    for n, count in cases + [(3201, c) for c in clustered]:
        s = np.zeros(n, bool)
        s[rng.choice(n, count, replace=False) if isinstance(count, int) else count] = True
        count = int(s.sum())
        idx, fits = jax.jit(_kernels.compact_fit, static_argnums=1)(jnp.asarray(s), 8)
        idx = np.asarray(idx)
        assert idx.shape == (8,) and (not bool(fits)) == (count > 8)
        want = np.nonzero(s)[0]
        got = np.sort(idx[idx < n])
        assert np.all((idx < n) | (idx == n))
        np.testing.assert_array_equal(got, want[:8] if count <= 8 else got)
        assert len(got) == min(count, 8) and np.all(s[got])

        def all_batches(s):
            def work(i, acc):
                return acc.at[i].add(1, mode="drop")
            return _plasticity._for_events(s, 8, work, jnp.zeros(n, jnp.int32), False)

        np.testing.assert_array_equal(np.asarray(jax.jit(all_batches)(jnp.asarray(s))), s.astype(np.int32))


@pytest.mark.parametrize("split", [False, True], ids=["one-gather", "dynamic-slices"])
def test_large_recurrent_group_equals_a_per_synapse_reference(monkeypatch, split):
    # 2100 neurons, the row and column passes read the same spikes (one compaction); the burst
    # takes the loop over further batches. Both reads of the rows' weight windows (the one for
    # XLA:CPU with one thread, and the one for a pool that splits gathers).
    from neurodyn.nn import _plasticity
    monkeypatch.setattr(_plasticity, "_gathers_split", lambda: split)
    dt, steps, n = 0.1, 150, 2100
    p = dict(tau_pre=15., tau_post=25., A_plus=0.02, A_minus=0.021, w_min=0., w_max=1.)
    rng = np.random.default_rng(4)
    spikes = rng.random((steps, n)) < 0.004
    spikes[70] = rng.random(n) < 0.05                 # a burst: several batches
    with nd.context(dt=dt):
        _, _, proj = plastic(nn.STDP(**p), n, n, nn.FixedProb(0.01, seed=6), weight=0.5)
        w_init = rng.uniform(0.2, 0.8, proj.nnz).astype(np.float32)
        proj.weight.value = w_init
        drive(proj, spikes, spikes)
    w = _stdp_per_synapse(proj, w_init, spikes, spikes, p, dt)
    got = np.asarray(proj.weight.value)
    assert np.abs(w - w_init).max() > 0.01
    np.testing.assert_allclose(got, w, rtol=2e-4, atol=2e-5)


def _stdp_per_synapse(proj, w_init, pre_spikes, post_spikes, p, dt):
    """Pair STDP (all-to-all, hard bounds [0, 1]) synapse by synapse, in float64."""
    indptr, indices = proj.conn.csr(proj.n_pre, proj.n_post)
    i, j = np.repeat(np.arange(proj.n_pre), np.diff(indptr)), np.asarray(indices)
    w, xp, xq = w_init.astype(np.float64), np.zeros(proj.n_pre), np.zeros(proj.n_post)
    for s, q in zip(pre_spikes, post_spikes):         # the order of the module docstring
        xp *= math.exp(-dt / p["tau_pre"])
        xq *= math.exp(-dt / p["tau_post"])
        w = np.where(s[i], np.clip(w - p["A_minus"] * xq[j], 0., 1.), w)
        xp += s
        w = np.where(q[j], np.clip(w + p["A_plus"] * xp[i], 0., 1.), w)
        xq += q
    return w


@pytest.mark.parametrize("kind", ["stdp", "reward"])
def test_staged_reads_for_a_pool_of_threads_give_the_same_weights(monkeypatch, kind):
    # Where XLA:CPU splits kernels over threads, the batches' weights pass through scratch
    # buffers (and the rows are read by dynamic slices): the same numbers as the other path.
    from neurodyn.nn import _plasticity
    p = dict(RULES[0][1]) if kind == "stdp" else dict(RULES[-1][1])
    rng = np.random.default_rng(12)
    pre, post = rng.random((300, 40)) < 0.1, rng.random((300, 30)) < 0.1
    pre[150] = True                                   # a burst: the loops carry the buffers
    rewards = np.where(rng.random(300) < 0.05, 0.5, 0.0)
    out = []
    for split in (False, True):
        monkeypatch.setattr(_plasticity, "_gathers_split", lambda split=split: split)
        rule = make_rule(kind, p)
        _, _, proj = plastic(rule, 40, 30, nn.FixedProb(0.3, seed=2), weight=0.5, max_spikes=4)
        g = drive(proj, pre, post, rewards)
        if kind == "reward":
            rule.sync(proj)
        out.append((g, np.asarray(proj.weight.value)))
    (g0, w0), (g1, w1) = out
    assert np.abs(w0 - 0.5).max() > 1e-3 and g0.max() > 0
    np.testing.assert_array_equal(g1, g0)
    np.testing.assert_array_equal(w1, w0)


class FromMask(nn.Connector):
    """The connections of a boolean (n_pre, n_post) matrix."""

    def __init__(self, mask):
        super().__init__()
        self.mask = mask

    def build(self, n_pre, n_post):
        return (np.concatenate([[0], np.cumsum(self.mask.sum(1))]).astype(np.int64),
                np.nonzero(self.mask)[1].astype(np.int32))


@pytest.mark.parametrize("split", [False, True], ids=["one-gather", "dynamic-slices"])
def test_row_windows_at_the_end_of_the_weights_equal_a_per_synapse_reference(monkeypatch, split):
    # The last rows' windows are moved back to end at the last synapse, so they hold earlier
    # rows' synapses (padding there); those rows and empty rows spike in the same batch as others.
    from neurodyn.nn import _plasticity
    monkeypatch.setattr(_plasticity, "_gathers_split", lambda: split)
    dt, steps, n_pre, n_post = 0.1, 120, 40, 30
    p = dict(tau_pre=15., tau_post=25., A_plus=0.02, A_minus=0.021, w_min=0., w_max=1.)
    rng = np.random.default_rng(8)
    mask = rng.random((n_pre, n_post)) < 0.3
    mask[0, :] = True                                 # the longest row: k = n_post
    mask[-1] = np.arange(n_post) % 10 == 3            # a short last row
    mask[5] = mask[-2] = False                        # empty rows
    conn = FromMask(mask)
    pre = rng.random((steps, n_pre)) < 0.05
    pre[:, -4:] = rng.random((steps, 4)) < 0.5        # the last rows spike often
    post = rng.random((steps, n_post)) < 0.08
    with nd.context(dt=dt):
        _, _, proj = plastic(nn.STDP(**p), n_pre, n_post, conn, weight=0.5, max_spikes=8)
        w_init = rng.uniform(0.2, 0.8, proj.nnz).astype(np.float32)
        proj.weight.value = w_init
        drive(proj, pre, post)
    # the last row's window ends at the last synapse: earlier rows' synapses first (padding)
    tab = np.asarray(proj.plastic_index.row_windows.value)[..., 0]
    nnz = proj.nnz
    assert (tab[n_pre - 2] == nnz).all()
    last = np.full(n_post, nnz)
    last[-3:] = nnz - 3 + np.arange(3)
    np.testing.assert_array_equal(tab[n_pre - 1], last)
    w = _stdp_per_synapse(proj, w_init, pre, post, p, dt)
    assert np.abs(w - w_init).max() > 0.01
    np.testing.assert_allclose(np.asarray(proj.weight.value), w, rtol=2e-4, atol=2e-5)


class Recurrent(nn.Network):
    """Plastic E -> E beside static E -> I and I -> E (fused): the fused compaction of the E
    spikes can serve the plastic projection (E is the fused table's first source)."""

    def __init__(self, e_first=True):
        self.E, self.I = nn.LIF(300, V_th=1e9), nn.LIF(100, V_th=1e9)   # spikes set by the test
        stdp = nn.STDP(tau_pre=15., tau_post=25., A_plus=0.02, A_minus=0.021, w_min=0., w_max=1.)
        static = lambda pre, post, seed: nn.Projection(pre, post, nn.FixedProb(0.1, seed=seed), 0.5,
                                                       Tap(post.size), nn.CUBA(), mode="event")
        if not e_first:
            self.I2E = static(self.I, self.E, 3)
        self.E2E = nn.Projection(self.E, self.E, nn.FixedProb(0.05, seed=1), 0.5, Tap(300), nn.CUBA(),
                                 plasticity=stdp)
        self.E2I = static(self.E, self.I, 2)
        if e_first:
            self.I2E = static(self.I, self.E, 3)


def _replay(net, e_raster, i_raster):
    def body(se, si):
        net.E.spike.value, net.I.spike.value = se, si
        net.update()
        return net.E2E.syn.g.value, net.I2E.syn.g.value

    return [np.asarray(a) for a in nd.jit(lambda a, b: nd.for_loop(body, a, b))(e_raster, i_raster)]


def _recurrent_rasters(steps=200):
    rng = np.random.default_rng(11)
    counts = rng.integers(0, 13, steps)               # around the batch of 8 (0-7, 8, 9-12)
    counts[[50, 120]] = 60                            # bursts: the loop over further batches
    e = np.zeros((steps, 300), bool)
    for t, c in enumerate(counts):
        e[t, rng.choice(300, c, replace=False)] = True
    return jnp.asarray(e), jnp.asarray(rng.random((steps, 100)) < 0.05)


@pytest.mark.parametrize("e_first", [True, False], ids=["shared", "E-not-first"])
def test_a_network_shares_its_fused_spike_compaction_with_a_plastic_projection(monkeypatch, e_first):
    from neurodyn.nn import _kernels
    served = []
    first_spikes = _kernels.Fusion.first_spikes

    def spy(self, group, delay_steps, k):
        out = first_spikes(self, group, delay_steps, k)
        served.append(out is not None)
        return out

    monkeypatch.setattr(_kernels.Fusion, "first_spikes", spy)
    e, i = _recurrent_rasters()
    results = []
    for fuse in (True, False):
        net = Recurrent(e_first)
        net.fuse = fuse
        assert net.E2E.max_spikes == net.E2E.max_post_spikes == 8
        g_e, g_i = _replay(net, e, i)
        results.append((g_e, g_i, np.asarray(net.E2E.weight.value), np.asarray(net.E2E.plasticity.x_pre.value)))
    # rows and columns asked the fusion (at every trace); it served them where E is its first source
    assert served and set(served) == {e_first}
    (g_e, g_i, w, x), ref = results
    assert np.abs(w - 0.5).max() > 0.01 and g_e.max() > 0
    for a, b in zip(results[0], ref):
        np.testing.assert_array_equal(a, b)


def test_fused_first_spikes_equal_the_plastic_compaction():
    from neurodyn.nn import _kernels
    net = Recurrent()
    fusion = net._fusion
    assert fusion.sources[0] == (id(net.E), 1) and fusion.k1 <= _kernels._SLAB

    def both(k):
        def f(se, si):
            net.E.spike.value, net.I.spike.value = se, si
            fusion.inputs()
            got, other = fusion.first_spikes(net.E, 1, k), fusion.first_spikes(net.I, 1, k)
            fusion.forget()
            assert other is None                      # I is not the first source
            assert fusion.first_spikes(net.E, 1, _kernels._SLAB) is None   # more than it holds
            return got, _kernels.compact_fit(se, k)
        return nd.jit(f)

    fns = {k: both(k) for k in (1, 8, 15)}
    rng = np.random.default_rng(2)
    for count in (0, 1, 7, 8, 9, 15, 16, 40, 300):
        for k, fn in fns.items():
            se = np.zeros(300, bool)
            se[rng.choice(300, count, replace=False)] = True
            si = jnp.asarray(rng.random(100) < 0.3)
            (idx, fits), (ref_idx, ref_fits) = fn(jnp.asarray(se), si)
            np.testing.assert_array_equal(idx, ref_idx)
            assert bool(fits) == bool(ref_fits) == (count <= k)


def test_float_spikes_transmit_and_learn_as_bool_spikes():
    # bool spikes transmit the weights as they are; float spikes multiply them by their value
    rng = np.random.default_rng(9)
    pre, post = rng.random((300, 30)) < 0.05, rng.random((300, 20)) < 0.05
    pre[150] = True                                   # a burst beyond the buffer of 4
    out = []
    for dtype in (bool, np.float32):
        src, dst, proj = plastic(nn.STDP(A_plus=0.02, A_minus=0.021), 30, 20, nn.FixedProb(0.3, seed=3),
                                 max_spikes=4)
        src.spike.reset_value(jnp.zeros(30, dtype))
        dst.spike.reset_value(jnp.zeros(20, dtype))
        g = drive(proj, pre.astype(dtype), post.astype(dtype))
        out.append((g, np.asarray(proj.weight.value)))
    (g_b, w_b), (g_f, w_f) = out
    assert g_b.max() > 0 and np.abs(w_b - 0.5).max() > 0.01
    np.testing.assert_array_equal(g_f, g_b)
    np.testing.assert_array_equal(w_f, w_b)


def test_a_plastic_projection_without_synapses_only_moves_its_traces():
    rule = nn.STDP(tau_pre=10.)
    pre, post, proj = plastic(rule, 5, 4, nn.FixedProb(0.0, seed=1), mode="event")
    assert proj.nnz == 0
    out = drive(proj, np.ones((2, 5), bool), np.ones((2, 4), bool))
    np.testing.assert_array_equal(out, 0.0)
    np.testing.assert_allclose(rule.x_pre.value, 1.0 + math.exp(-nd.get_dt() / 10.), rtol=1e-6)


@pytest.mark.parametrize("kind,p", RULES + [("tm", dict(U=0.2, tau_d=30., tau_f=60.))],
                         ids=["stdp-add-all", "stdp-mult-nearest", "triplet", "vogels", "reward", "tsodyks"])
def test_small_all_to_all_dense_path_equals_the_event_path(kind, p):
    # all-to-all onto few neurons is updated as a whole matrix; the event path is the reference
    rng = np.random.default_rng(8)
    pre, post = rng.random((400, 12)) < 0.05, rng.random((400, 7)) < 0.05
    pre[200:202] = True                                # bursts beyond the event path's buffers
    rewards = np.where(rng.random(400) < 0.02, 0.5, 0.0)
    w_init = rng.uniform(0.2, 0.8, 84).astype(np.float32)
    out = []
    for dense in (True, False):
        rule = nn.TsodyksMarkram(**p) if kind == "tm" else make_rule(kind, p)
        _, _, proj = plastic(rule, 12, 7, nn.AllToAll(), weight=0.5, max_spikes=4)
        assert proj.plastic_index.dense
        proj.plastic_index.dense = dense
        proj.weight.value = w_init
        g = drive(proj, pre, post, rewards)
        if kind == "reward":
            rule.sync(proj)
        out.append((g, np.asarray(proj.weight.value)))
    (g_d, w_d), (g_e, w_e) = out
    np.testing.assert_allclose(g_d, g_e, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(w_d, w_e, rtol=1e-5, atol=1e-6)
    if kind != "tm":
        assert np.abs(w_d - w_init).max() > 0.01          # the weights did move
    else:
        np.testing.assert_array_equal(w_d, w_init)        # short-term plasticity leaves them


def test_reward_stdp_integrates_across_the_reference_time_reset():
    # tau_c = 5 ms with dt = 0.1: the scaled eligibilities are re-based every 50 steps
    p = dict(tau_pre=10., tau_post=10., A_plus=0.01, A_minus=0.012, tau_c=5., tau_d=8., w_min=-100., w_max=100.)
    rng = np.random.default_rng(4)
    pre, post = rng.random((700, 10)) < 0.05, rng.random((700, 8)) < 0.05
    rewards = np.where(rng.random(700) < 0.05, 1.0, 0.0)
    rule = nn.RewardSTDP(**p)
    _, _, proj = plastic(rule, 10, 8, nn.AllToAll(), weight=0.0)
    drive(proj, pre, post, rewards)
    rule.sync(proj)
    ref = dense_reference("reward", p, np.ones((10, 8), bool), np.zeros((10, 8)), pre, post, rewards, 0.1)
    np.testing.assert_allclose(np.asarray(proj.weight.value), ref.reshape(-1), rtol=1e-3, atol=1e-5)


# -- a user-written rule ------------------------------------------------------------------------------
class Hebb(nn.Plasticity):
    def __init__(self, eta=0.01):
        super().__init__(w_min=0., w_max=1.)
        self.eta = eta
        self.x = nn.Trace("pre", tau=20.)

    def on_post(self, w, pre, post):
        return self.potentiate(w, self.eta * self.x[pre])


def test_a_user_rule_in_a_few_lines_equals_stdp_without_depression():
    rng = np.random.default_rng(5)
    pre, post = rng.random((500, 20)) < 0.03, rng.random((500, 10)) < 0.03
    _, _, a = plastic(Hebb(0.01), 20, 10, nn.FixedProb(0.5, seed=1))
    _, _, b = plastic(nn.STDP(tau_pre=20., A_plus=0.01, A_minus=0.), 20, 10, nn.FixedProb(0.5, seed=1))
    drive(a, pre, post)
    drive(b, pre, post)
    np.testing.assert_allclose(a.weight.value, b.weight.value, rtol=1e-6)
    assert float(jnp.max(a.weight.value)) > 0.5


# -- Runner, chunking, checkpoints, vmap, grad --------------------------------------------------------
def song_like(n_in=200, seed=0, A_plus=0.01, rule=None):
    nd.random.seed(seed)
    inp = nn.PoissonGroup(n_in, freq=15.)
    out = nn.LIF(5, V_rest=-74., V_reset=-60., V_th=-54., tau=10., tau_ref=0.)
    rule = rule or nn.STDP(tau_pre=20., tau_post=20., A_plus=A_plus, A_minus=0.0105, w_max=1.)
    syn = nn.Projection(inp, out, nn.AllToAll(), 0.5, nn.Expon(5, 5.), nn.COBA(E=0.), plasticity=rule)
    return nn.Network(inp=inp, out=out, syn=syn)


def test_runner_chunk_size_does_not_change_the_weights():
    ws = []
    for chunk in (1000, 137):
        net = song_like()
        nd.Runner(net, progress_bar=False, chunk_size=chunk).run(150.)
        ws.append(np.asarray(net.syn.weight.value))
    assert np.abs(ws[0] - 0.5).max() > 0.01
    np.testing.assert_array_equal(ws[0], ws[1])


def test_save_and_load_mid_run_continue_identically(tmp_path):
    net = song_like()
    runner = nd.Runner(net, progress_bar=False)
    runner.run(100.)
    nd.save(tmp_path / "ck.npz", net)
    runner.run(100.)
    w_a, x_a = np.asarray(net.syn.weight.value), np.asarray(net.syn.plasticity.x_pre.value)
    nd.load(tmp_path / "ck.npz", net)
    runner.run(100.)
    np.testing.assert_array_equal(net.syn.weight.value, w_a)
    np.testing.assert_array_equal(net.syn.plasticity.x_pre.value, x_a)
    assert "module/syn.plasticity.x_post" in np.load(tmp_path / "ck.npz").files


def test_vmap_parameter_sweep_equals_separate_runs():
    rng = np.random.default_rng(6)
    pre, post = rng.random((200, 30)) < 0.05, rng.random((200, 10)) < 0.05
    A = np.asarray([0.0, 0.01, 0.03], np.float32)
    separate = []
    for a in A:
        _, _, proj = plastic(nn.STDP(A_plus=float(a)), 30, 10, nn.FixedProb(0.4, seed=3))
        drive(proj, pre, post)
        separate.append(np.asarray(proj.weight.value))
    A_var = nd.Variable(jnp.asarray(A))
    rule = nn.STDP(A_plus=A_var)
    pre_g, post_g, proj = plastic(rule, 30, 10, nn.FixedProb(0.4, seed=3))
    state = [proj.weight, rule.x_pre, rule.x_post, A_var]
    for v in state[:3]:
        v.reset_value(jnp.broadcast_to(v.value, (3,) + v.shape))

    proj.syn.g.reset_value(jnp.zeros((3, 10)))

    def run():
        def body(ps, qs):
            proj.pre.spike.value = ps
            proj.post.spike.value = qs
            proj.update()
        nd.for_loop(body, jnp.asarray(pre), jnp.asarray(post))

    nd.jit(nd.vmap(run, in_axes=(), state_axes=state + [proj.syn.g]))()
    np.testing.assert_allclose(np.asarray(proj.weight.value), np.stack(separate), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("conn", ["sparse", "all-to-all"])
def test_grad_through_plasticity_with_respect_to_a_trainvar_parameter(conn):
    rng = np.random.default_rng(7)
    pre, post = jnp.asarray(rng.random((150, 20)) < 0.05), jnp.asarray(rng.random((150, 10)) < 0.05)
    A = nd.TrainVar(jnp.asarray(0.01))
    c = nn.FixedProb(0.5, seed=4) if conn == "sparse" else nn.AllToAll()
    _, _, proj = plastic(nn.STDP(A_plus=A, A_minus=0.004, w_min=-10., w_max=10.), 20, 10, c)
    assert proj.plastic_index.dense == (conn == "all-to-all")
    w0 = proj.weight.value

    def final_mean():
        proj.weight.value = w0
        for t in proj.plasticity.traces().values():
            t.value = jnp.zeros(t.shape)

        def body(ps, qs):
            proj.pre.spike.value = ps
            proj.post.spike.value = qs
            proj.update()
        nd.for_loop(body, pre, post)
        return jnp.mean(proj.weight.value)

    g = nd.grad(final_mean, grad_vars=[A])()
    g = float(g[0] if isinstance(g, (list, tuple)) else g)
    forward = nd.jit(final_mean)
    m1 = float(forward())
    A.value = 0.0
    m0 = float(forward())
    # the weights are linear in A_plus while no bound is reached
    assert m1 > m0
    np.testing.assert_allclose(g, (m1 - m0) / 0.01, rtol=1e-3)


def test_weight_monitors_reduce_on_the_device():
    net = song_like()
    runner = nd.Runner(net, progress_bar=False, monitor_every=100,
                       monitors={"mean": nn.weight_mean(net.syn), "hist": nn.weight_histogram(net.syn, 10),
                                 "w": "syn.weight"})
    mon = runner.run(200.)
    assert mon["mean"].shape == (20,) and mon["hist"].shape == (20, 10) and mon["w"].shape == (20, 1000)
    np.testing.assert_allclose(mon["mean"], mon["w"].mean(axis=1), rtol=1e-6)
    np.testing.assert_array_equal(mon["hist"][-1], np.histogram(mon["w"][-1], bins=10, range=(0, 1))[0])
    assert np.all(mon["hist"].sum(axis=1) == 1000)


# -- errors ------------------------------------------------------------------------------------------
def test_bad_rule_parameters_are_clear_errors():
    with pytest.raises(ValueError, match="STDP: A_plus must be a finite scalar >= 0, got -0.1"):
        nn.STDP(A_plus=-0.1)
    with pytest.raises(ValueError, match="Trace: tau must be a finite scalar > 0, got 0"):
        nn.STDP(tau_pre=0.)
    with pytest.raises(ValueError, match="w_min must be < w_max"):
        nn.STDP(w_min=1., w_max=0.5)
    with pytest.raises(ValueError, match="bounds must be 'hard' or 'soft', got 'clip'"):
        nn.STDP(bounds="clip")
    with pytest.raises(ValueError, match="pairing must be 'all' or 'nearest', got 'pairs'"):
        nn.STDP(pairing="pairs")
    with pytest.raises(ValueError, match="interaction must be 'all' or 'nearest'"):
        nn.TripletSTDP(interaction="minimal")
    with pytest.raises(ValueError, match=r"TsodyksMarkram: U must be a finite scalar in \(0, 1\], got 1.5"):
        nn.TsodyksMarkram(U=1.5)
    with pytest.raises(ValueError, match="soft bounds need finite w_min and w_max"):
        nn.STDP(w_max=math.inf, bounds="soft")


def test_bad_projection_setups_are_clear_errors():
    with pytest.raises(ValueError, match=r"initial weights span \[2.0, 2.0\], outside the bounds \[0.0, 1.0\] of STDP"):
        plastic(nn.STDP(), 5, 5, nn.AllToAll(), weight=2.)
    with pytest.raises(ValueError, match="plastic projection propagates event-driven; got mode='dense'"):
        plastic(nn.STDP(), 5, 5, nn.AllToAll(), mode="dense")
    with pytest.raises(TypeError, match="plasticity must be an nn.Plasticity rule"):
        plastic("stdp", 5, 5, nn.AllToAll())
    with pytest.raises(ValueError, match="needs one weight per synapse; got a scalar Variable"):
        plastic(nn.STDP(), 5, 5, nn.AllToAll(), weight=nd.Variable(0.5))
    with pytest.raises(ValueError, match="plasticity with per-synapse delays is not supported"):
        plastic(nn.STDP(), 5, 5, nn.AllToAll(), delay=np.linspace(0.1, 2., 25))
    rule = nn.STDP()
    plastic(rule, 5, 5, nn.AllToAll())
    with pytest.raises(ValueError, match="already belongs to another projection"):
        plastic(rule, 5, 5, nn.AllToAll())
    _, _, proj = plastic(nn.STDP(), 5, 5, nn.AllToAll())
    x = np.asarray(proj.plasticity.x_pre.value)
    with pytest.raises(ValueError, match="plasticity needs unbatched state"):
        proj.reset_state(4)
    np.testing.assert_array_equal(proj.plasticity.x_pre.value, x)
    with pytest.raises(ValueError, match="weight_mean: expected a Projection with plasticity"):
        nn.weight_mean(nn.Projection(Source(3), nn.LIF(3), nn.AllToAll(), 1., nn.Expon(3, 5.), nn.CUBA()))


# -- Song, Miller & Abbott (2000), shortened ----------------------------------------------------------
def _example():
    import importlib.util
    spec = importlib.util.spec_from_file_location("stdp_song2000", ROOT / "examples" / "stdp_song2000.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_song2000_weights_drift_towards_the_bounds():
    # 10 s with a learning rate 2x the paper's (the full 100 s run is examples/stdp_song2000.py)
    song = _example()
    net = song.Song2000(A_plus=0.02)
    w0 = np.asarray(net.syn.weight.value) / song.G_MAX
    mon = nd.Runner(net, progress_bar=False, monitor_every=20000,
                    monitors={"hist": nn.weight_histogram(net.syn, 10)}).run(10000.)
    w = np.asarray(net.syn.weight.value) / song.G_MAX
    ends = lambda h: (h[0] + h[-1]) / h.sum()
    h0 = np.histogram(w0, bins=10, range=(0, 1))[0]
    # uniform -> mass gathering at both bounds (bimodal after the example's 100 s)
    assert ends(h0) < 0.22 and ends(mon["hist"][-1]) > 0.23
    assert np.all(np.diff([ends(h) for h in mon["hist"]]) > -0.01)  # a steady trend
    assert w.std() > w0.std() + 0.01
    assert w.min() >= 0 and w.max() <= 1


# -- sharding: a 4-device subprocess -------------------------------------------------------------------
SHARD_CHECK = """
import json, numpy as np, jax
import neurodyn as nd
from neurodyn import nn
out = []
for mesh in (None, 4):
    nd.random.seed(3)
    inp = nn.PoissonGroup(64, freq=40.)
    E = nn.LIF(32, V_rest=-60., V_reset=-60., V_th=-50., tau=20., tau_ref=2.)
    stdp = lambda: nn.STDP(A_plus=0.02, A_minus=0.021, w_max=2.)
    net = nn.Network(inp=inp, E=E,
                     ff=nn.Projection(inp, E, nn.FixedProb(0.5, seed=1), 1., nn.Expon(32, 5.), nn.COBA(0.),
                                      plasticity=stdp()),
                     rec=nn.Projection(E, E, nn.FixedProb(0.2, seed=2), 0.5, nn.Expon(32, 5.), nn.COBA(0.),
                                       plasticity=stdp()))
    r = nd.Runner(net, monitors=["E.spike"], progress_bar=False, mesh=mesh, chunk_size=100)
    r.run(30.)
    out.append((r.mon["E.spike"], np.concatenate([net.ff.weight.value, net.rec.weight.value]),
                str(getattr(net.rec.plasticity.x_pre.value.sharding, "spec", None))))
print(json.dumps({"devices": jax.device_count(), "spikes": int(out[0][0].sum()),
                  "same_spikes": bool(np.array_equal(out[0][0], out[1][0])),
                  "moved": float(np.abs(out[0][1][:1024] - 1.).max()),
                  "same_weights": bool(np.array_equal(out[0][1], out[1][1])), "trace_spec": out[1][2]}))
"""


def test_sharded_run_with_plasticity_equals_one_device():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", PYTHONPATH=str(ROOT))
    p = subprocess.run([sys.executable, "-c", SHARD_CHECK], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    r = json.loads(p.stdout.strip().splitlines()[-1])
    assert r["devices"] == 4 and r["spikes"] > 20 and r["moved"] > 0
    assert r["same_spikes"] and r["same_weights"]
    assert "neurons" in r["trace_spec"]                 # traces split along the neuron axis
