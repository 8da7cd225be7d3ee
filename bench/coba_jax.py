"""The COBA benchmark network (Brette et al. 2007) in hand-written pure JAX.

No neurodyn imports: this is the yardstick neurodyn is compared against, and
``simulate`` is the bit-exact reference its spikes are tested against.

Run:  python bench/coba_jax.py        (about 2 minutes on a 2-core CPU)
      python bench/coba_jax.py --quick (skips the slow dense variant)

Network: 3200 excitatory + 800 inhibitory LIF neurons, four random projections
E->E, E->I, I->E, I->I with connection probability 0.02, dt = 0.1 ms.

Connectivity format (shared with neurodyn): per projection a padded int32
array ``targets`` of shape (n_pre, k_max); row i lists the postsynaptic targets
of presynaptic neuron i in ascending order, padded with the fill value
``n_post`` (out of range, so a scatter with ``mode='drop'`` ignores it).
``fixed_prob_targets`` builds it on the host with NumPy, vectorized, without
ever making an n_pre x n_post matrix (for p <= 0.25).

Per step, exactly in this order (the float op order is part of the contract):
 1. for each projection (EE, EI, IE, II): count[post] = number of presynaptic
    spikes of the previous step onto post (float32, scatter-add of ones);
    g = g * decay + w * count, decay = math.exp(-dt / tau) (Python float).
 2. for each group (E, then I), V being the potential before this step:
    g = g_EX + g_IX; gE = g_EX * E_e + g_IX * E_i; a = 1 + R * g;
    V_inf = (V_rest + R * (input + gE)) / a; V_new = V_inf + (V - V_inf) * exp(a * (-dt / tau_m))
    (exponential Euler: tau dV/dt = -(V - V_rest) + R (input + g_EX (E_e - V) + g_IX (E_i - V))
    solved exactly over the step with g held constant);
    is_ref = refractory > 0; V_new = where(is_ref, V, V_new);
    spike = (V_new >= V_th) & ~is_ref; V = where(spike, V_reset, V_new);
    refractory = where(spike, n_ref - 1, maximum(refractory - 1, 0)): the neuron is released
    at t_spike + tau_ref (Brian2's convention; the spiking step is the first of n_ref).
"""

from __future__ import annotations

import argparse
import functools
import math
import time
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = [
    "N_E", "N_I", "PARAMS", "PROJECTIONS",
    "fixed_prob_targets", "build_coba", "initial_V", "fuse_targets",
    "simulate", "simulate_fused", "make_runner", "make_runner_tiered", "compact_spikes",
    "event_counts", "tiered_counts",
]

N_E, N_I = 3200, 800

PARAMS = dict(
    V_rest=-60.0, V_reset=-60.0, V_th=-50.0, R=1.0, tau_m=20.0, tau_ref=5.0,
    E_e=0.0, E_i=-80.0, tau_e=5.0, tau_i=10.0, w_e=0.6, w_i=6.7, input=20.0, p=0.02,
)

# (name, pre group, post group, excitatory?) in the order they are updated
PROJECTIONS = (("EE", "E", "E", True), ("EI", "E", "I", True),
               ("IE", "I", "E", False), ("II", "I", "I", False))


# ---------------------------------------------------------------------------
# Connectivity
# ---------------------------------------------------------------------------
def fixed_prob_targets(n_pre: int, n_post: int, p: float, seed: int | np.random.Generator = 0,
                       allow_self: bool = True) -> np.ndarray:
    """Random connectivity with probability ``p`` as padded target rows.

    Every presynaptic row draws its degree ~ Binomial(n_post, p) (n_post - 1
    without self-connections) and then that many distinct targets uniformly at
    random. Vectorized: each row draws a few more candidates than it needs,
    with replacement; the distinct ones form a uniformly random subset, of
    which a uniformly random ``degree``-subset is kept (rows that come up short
    are redrawn). Never allocates an n_pre x n_post array unless p > 0.25.

    Returns an int32 array of shape (n_pre, k_max), rows sorted ascending,
    padded with ``n_post``. ``allow_self=False`` (pre and post the same
    population) never connects i -> i.
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    if not allow_self and n_pre != n_post:
        raise ValueError("allow_self=False needs the same population on both sides (n_pre == n_post)")
    n_avail = n_post if allow_self else n_post - 1
    deg = rng.binomial(n_avail, p, size=n_pre) if n_avail > 0 else np.zeros(n_pre, np.int64)
    k_max = int(deg.max()) if n_pre else 0
    out = np.full((n_pre, k_max), n_post, np.int32)
    if k_max == 0:
        return out
    if p > 0.25:  # dense regime: a random permutation per row is cheaper than rejection
        keys = rng.random((n_pre, n_avail))
        cand = np.argpartition(keys, k_max - 1, axis=1)[:, :k_max] if k_max < n_avail else np.argsort(keys, 1)
        rows = np.arange(n_pre)[:, None]
        if not allow_self:
            cand = cand + (cand >= rows)
        cand = np.where(np.arange(k_max)[None, :] < deg[:, None], cand, n_post)
        out[:] = np.sort(cand, axis=1)
        return out
    # candidates per row: enough that duplicates rarely leave a row short
    m = k_max + 4 + int(math.ceil(3.0 * k_max * k_max / n_avail))
    todo = np.arange(n_pre)
    cols = np.arange(k_max)[None, :]
    while todo.size:
        cand = rng.integers(0, n_avail, size=(todo.size, m))
        if not allow_self:
            cand += cand >= todo[:, None]  # skip the diagonal
        cand.sort(axis=1)
        dup = np.zeros(cand.shape, bool)
        dup[:, 1:] = cand[:, 1:] == cand[:, :-1]
        d = deg[todo]
        ok = (m - dup.sum(axis=1)) >= d
        key = rng.random(cand.shape)
        key[dup] = 2.0  # duplicates sort last, never chosen
        pick = np.argpartition(key, k_max - 1, axis=1)[:, :k_max] if k_max < m else np.argsort(key, 1)
        chosen = np.take_along_axis(cand, pick, axis=1)
        # which of the k_max picks are kept: the d smallest keys, i.e. a random d-subset
        pick_keys = np.take_along_axis(key, pick, axis=1)
        rank = np.argsort(np.argsort(pick_keys, axis=1), axis=1)
        rows = np.where(rank < d[:, None], chosen, n_post)
        rows.sort(axis=1)
        out[todo[ok]] = rows[ok]
        todo = todo[~ok]
    del cols
    return out


def build_coba(seed: int = 0, n_e: int = N_E, n_i: int = N_I, p: float = PARAMS["p"]) -> dict[str, np.ndarray]:
    """The four projections of the COBA network: {'EE','EI','IE','II'} -> targets."""
    rng = np.random.default_rng(seed)
    sizes = {"E": n_e, "I": n_i}
    return {name: fixed_prob_targets(sizes[a], sizes[b], p, rng, allow_self=(a != b))
            for name, a, b, _ in PROJECTIONS}


def initial_V(seed: int = 1, n_e: int = N_E, n_i: int = N_I) -> tuple[np.ndarray, np.ndarray]:
    """V ~ Normal(-55, 2) mV, float32, for E and I."""
    rng = np.random.default_rng(seed)
    v = (-55.0 + 2.0 * rng.standard_normal(n_e + n_i)).astype(np.float32)
    return v[:n_e], v[n_e:]


def fuse_targets(targets: dict[str, np.ndarray], n_e: int, n_i: int) -> np.ndarray:
    """One table for the whole network, for the fused 4000-neuron state.

    Row i (presynaptic neuron i of the fused population: E first, then I) lists
    slots of a count vector of length 2N: slot j < N is the excitatory input of
    fused neuron j, slot N + j its inhibitory input. Padded with 2N; one extra
    all-padding row at index N serves as the "no spike" row for compaction.
    """
    n = n_e + n_i
    fill = 2 * n

    def remap(t, n_post, offset):
        return np.where(t < n_post, t.astype(np.int64) + offset, fill)

    e_rows = np.concatenate([remap(targets["EE"], n_e, 0), remap(targets["EI"], n_i, n_e)], axis=1)
    i_rows = np.concatenate([remap(targets["IE"], n_e, n), remap(targets["II"], n_i, n + n_e)], axis=1)
    k = max(e_rows.shape[1], i_rows.shape[1])
    table = np.full((n + 1, k), fill, np.int64)
    table[:n_e, :e_rows.shape[1]] = e_rows
    table[n_e:n, :i_rows.shape[1]] = i_rows
    table.sort(axis=1)
    k_used = int((table < fill).sum(axis=1).max())
    return table[:, :max(k_used, 1)].astype(np.int32)


# ---------------------------------------------------------------------------
# Event-driven propagation
# ---------------------------------------------------------------------------
def compact_spikes(spk: jax.Array, k: int, method: str = "top_k", block: int = 32,
                   n_blocks: int | None = None) -> tuple[jax.Array, jax.Array]:
    """Indices of (up to ``k``) spiking neurons, padded with ``len(spk)``.

    Returns (idx int32 (k,), exact bool): ``exact`` is False when the buffer was
    too small and some spikes are missing (use an exact fallback then).
    Methods: 'top_k' (lax.top_k on a float key), 'nonzero' (jnp.nonzero with
    size=k), 'block' (two-stage: top_k over per-block "any spike" flags, then
    top_k within the ``n_blocks`` gathered blocks; much cheaper for large N).
    """
    n = spk.shape[0]
    if method == "nonzero":
        (idx,) = jnp.nonzero(spk, size=k, fill_value=n)
        return idx.astype(jnp.int32), spk.sum() <= k
    if method == "top_k":
        vals, idx = lax.top_k(spk.astype(jnp.float32), k)
        return jnp.where(vals > 0, idx, n).astype(jnp.int32), spk.sum() <= k
    if method == "block":
        nb = -(-n // block)
        if nb * block != n:
            spk = jnp.pad(spk, (0, nb * block - n))
        blk = spk.reshape(nb, block)
        per_block = blk.sum(axis=1, dtype=jnp.int32)
        b = min(n_blocks or k, nb)
        bvals, bidx = lax.top_k((per_block > 0).astype(jnp.float32), b)
        sub = blk[bidx] & (bvals > 0)[:, None]  # (b, block)
        cand = bidx[:, None] * block + jnp.arange(block, dtype=jnp.int32)[None, :]
        kk = min(k, b * block)
        vals, j = lax.top_k(sub.reshape(-1).astype(jnp.float32), kk)
        idx = jnp.where(vals > 0, cand.reshape(-1)[j], n).astype(jnp.int32)
        if kk < k:
            idx = jnp.pad(idx, (0, k - kk), constant_values=n)
        exact = (per_block.sum() <= kk) & ((per_block > 0).sum() <= b)
        return idx, exact
    raise ValueError(f"unknown compaction method {method!r}")


def _with_dummy_row(targets: jax.Array, fill: int) -> jax.Array:
    return jnp.concatenate([targets, jnp.full((1, targets.shape[1]), fill, targets.dtype)], axis=0)


def gather_rows(table: jax.Array, idx: jax.Array, how: str = "auto") -> jax.Array:
    """``table[idx]`` for a small index buffer. 'dslice': one dynamic_slice per
    index, concatenated (XLA:CPU emits a row copy each; the jnp gather fusion was
    slower here and gets split across threads); 'take': jnp indexing; 'auto':
    dslice for up to 64 indices."""
    if how == "auto":
        how = "dslice" if idx.shape[0] <= 64 else "take"
    if how == "dslice":
        return jnp.concatenate([lax.dynamic_slice_in_dim(table, idx[j], 1, 0) for j in range(idx.shape[0])])
    if how == "take":
        return table[idx]
    raise ValueError(f"unknown gather {how!r}")


def event_counts(spk: jax.Array, targets_ext: jax.Array, n_out: int, k: int,
                 method: str = "top_k", block: int = 32, n_blocks: int | None = None,
                 gather: str = "auto", k2: int | None = None, dtype=jnp.float32) -> jax.Array:
    """count[post] = number of spiking presynaptic neurons targeting post (``dtype``).

    ``targets_ext`` is the padded table with one extra all-padding row at
    index n_pre. Common case: compact the spikes into a k-slot buffer, gather
    those rows, scatter-add ones. Exact fallbacks via lax.cond/switch when more
    neurons spike than the buffer holds: a k2-slot top_k buffer (if given),
    else mask the whole table and scatter it all.
    """
    n_pre = spk.shape[0]
    zeros = jnp.zeros(n_out, dtype)
    idx, exact = compact_spikes(spk, k, method, block, n_blocks)

    def scatter_rows(i):
        rows = gather_rows(targets_ext, i, gather)
        return zeros.at[rows.reshape(-1)].add(1.0, mode="drop")

    def sparse(_):
        return scatter_rows(idx)

    def full(_):
        rows = jnp.where(spk[:, None], targets_ext[:n_pre], n_out)
        return zeros.at[rows.reshape(-1)].add(1.0, mode="drop")

    if k2 is None or k2 <= k:
        return lax.cond(exact, sparse, full, None)

    def medium(_):
        i2, _ok = compact_spikes(spk, k2, "top_k")
        return scatter_rows(i2)

    branch = jnp.where(exact, 0, jnp.where(spk.sum(dtype=jnp.int32) <= k2, 1, 2))
    return lax.switch(branch, (sparse, medium, full), None)


def dense_matrix(targets: np.ndarray, n_post: int) -> np.ndarray:
    """The 0/1 float32 (n_pre, n_post) matrix of a padded target table."""
    n_pre = targets.shape[0]
    w = np.zeros((n_pre, n_post + 1), np.float32)
    w[np.repeat(np.arange(n_pre), targets.shape[1]), targets.reshape(-1)] = 1.0
    return w[:, :n_post]


# ---------------------------------------------------------------------------
# Reference simulation (exact op order, separate E and I groups)
# ---------------------------------------------------------------------------
class _Const(NamedTuple):
    n_ref: int
    decay: dict
    dt_tau_m: float

def _consts(dt: float) -> _Const:
    P = PARAMS
    return _Const(
        n_ref=int(math.floor(P["tau_ref"] / dt + 0.5 + 1e-9)),  # rounded half up
        decay={name: math.exp(-dt / (P["tau_e"] if exc else P["tau_i"])) for name, _, _, exc in PROJECTIONS},
        dt_tau_m=dt / P["tau_m"],
    )


def _lif(V, ref, g_e, g_i, inp, c: _Const):
    """One group's update, ops in the reference order."""
    P = PARAMS
    # exponential Euler: the conductances join the leak, V is solved exactly over the step
    g = g_e + g_i
    gE = g_e * P["E_e"] + g_i * P["E_i"]
    a = 1.0 + P["R"] * g
    V_inf = (P["V_rest"] + P["R"] * (inp + gE)) / a
    V_new = V_inf + (V - V_inf) * jnp.exp(a * -c.dt_tau_m)
    is_ref = ref > 0
    V_new = jnp.where(is_ref, V, V_new)
    spike = (V_new >= P["V_th"]) & ~is_ref
    V = jnp.where(spike, P["V_reset"], V_new)
    ref = jnp.where(spike, c.n_ref - 1, jnp.maximum(ref - 1, 0))
    return V, ref, spike


@functools.partial(jax.jit, static_argnames=("n_steps", "dt", "mode", "k", "unroll"))
def _simulate_ref(tabs, V0_E, V0_I, n_steps: int, dt: float, mode: str, k: int, unroll: int):
    c = _consts(dt)
    P = PARAMS
    dtype = V0_E.dtype
    n = {"E": V0_E.shape[0], "I": V0_I.shape[0]}
    inp = {g: jnp.full((n[g],), P["input"], dtype) for g in "EI"}
    w = {name: (P["w_e"] if exc else P["w_i"]) for name, _, _, exc in PROJECTIONS}

    def step(state, _):
        V, ref, spk, g = state
        g = dict(g)
        for name, a, b, _exc in PROJECTIONS:
            if mode == "event":
                count = event_counts(spk[a], tabs[name], n[b], min(k, n[a]), dtype=dtype)
            else:
                count = spk[a].astype(dtype) @ tabs[name]
            g[name] = g[name] * c.decay[name] + w[name] * count
        V, ref, spk = dict(V), dict(ref), dict(spk)
        for grp in "EI":
            V[grp], ref[grp], spk[grp] = _lif(V[grp], ref[grp], g["E" + grp], g["I" + grp], inp[grp], c)
        return (V, ref, spk, g), (spk["E"], spk["I"])

    state = ({"E": V0_E, "I": V0_I},
             {g: jnp.zeros(n[g], jnp.int32) for g in "EI"},
             {g: jnp.zeros(n[g], bool) for g in "EI"},
             {name: jnp.zeros(n[b], dtype) for name, _, b, _ in PROJECTIONS})
    _, (sE, sI) = lax.scan(step, state, None, length=n_steps, unroll=unroll)
    return sE, sI


def _tables(targets, mode, n_e, n_i, dtype=np.float32):
    sizes = {"E": n_e, "I": n_i}
    if mode == "event":
        return {name: _with_dummy_row(jnp.asarray(targets[name], jnp.int32), sizes[b])
                for name, _, b, _ in PROJECTIONS}
    if mode == "dense":
        return {name: jnp.asarray(dense_matrix(np.asarray(targets[name]), sizes[b]).astype(dtype))
                for name, _, b, _ in PROJECTIONS}
    raise ValueError(f"mode must be 'event' or 'dense', got {mode!r}")


def simulate(targets: dict[str, np.ndarray], V0_E, V0_I, n_steps: int, dt: float = 0.1,
             mode: str = "event", k: int = 128, dtype=jnp.float32) -> tuple[np.ndarray, np.ndarray]:
    """The reference COBA run: spikes_E bool (n_steps, n_E), spikes_I bool (n_steps, n_I).

    Pure function of the connectivity (``targets['EE'|'EI'|'IE'|'II']``) and
    the initial potentials; g, refractory and spikes start at zero. ``mode``:
    'event' (compaction into a k-slot buffer with an exact fallback) or
    'dense' (0/1 float matrices, ``spikes @ W``); both give identical spikes.
    ``dtype``: the float type of every state and count (float64 needs JAX's x64 mode).
    """
    V0_E = jnp.asarray(V0_E, dtype)
    V0_I = jnp.asarray(V0_I, dtype)
    tabs = _tables(targets, mode, V0_E.shape[0], V0_I.shape[0], dtype)
    sE, sI = _simulate_ref(tabs, V0_E, V0_I, int(n_steps), float(dt), mode, int(k), 1)
    return np.asarray(sE), np.asarray(sI)


# ---------------------------------------------------------------------------
# Fast variant: one fused 4000-neuron state, one compaction, one scatter per step
# ---------------------------------------------------------------------------
def _fused_step_fn(table, n_e: int, n_i: int, dt: float, k: int, method: str, block: int,
                   n_blocks: int | None, gather: str = "auto", k2: int | None = None) -> Callable:
    c = _consts(dt)
    P = PARAMS
    n = n_e + n_i
    de, di = c.decay["EE"], c.decay["IE"]
    inp = jnp.full((n,), P["input"], jnp.float32)

    def step(state):
        V, ref, spk, g_e, g_i = state
        count = event_counts(spk, table, 2 * n, k, method, block, n_blocks, gather, k2)
        g_e = g_e * de + P["w_e"] * count[:n]
        g_i = g_i * di + P["w_i"] * count[n:]
        V, ref, spk = _lif(V, ref, g_e, g_i, inp, c)
        return V, ref, spk, g_e, g_i

    return step


def _init_fused(V0):
    n = V0.shape[0]
    z = jnp.zeros(n, jnp.float32)
    return (V0, jnp.zeros(n, jnp.int32), jnp.zeros(n, bool), z, z)


def simulate_fused(targets: dict[str, np.ndarray], V0_E, V0_I, n_steps: int, dt: float = 0.1,
                   k: int = 16, method: str = "block", block: int = 32, n_blocks: int | None = None,
                   gather: str = "auto", k2: int | None = 64, unroll: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Same contract and result as :func:`simulate`, with the fast fused kernel."""
    n_e, n_i = len(V0_E), len(V0_I)
    table = jnp.asarray(fuse_targets(targets, n_e, n_i))
    step = _fused_step_fn(table, n_e, n_i, dt, k, method, block, n_blocks, gather, k2)

    @jax.jit
    def run(V0):
        def body(s, _):
            s = step(s)
            return s, s[2]
        _, spk = lax.scan(body, _init_fused(V0), None, length=n_steps, unroll=unroll)
        return spk

    spk = np.asarray(run(jnp.concatenate([jnp.asarray(V0_E, jnp.float32), jnp.asarray(V0_I, jnp.float32)])))
    return spk[:, :n_e], spk[:, n_e:]


def make_runner(targets: dict[str, np.ndarray], n_e: int, n_i: int, n_steps: int, dt: float = 0.1,
                k: int = 16, method: str = "block", block: int = 32, n_blocks: int | None = None,
                gather: str = "auto", k2: int | None = 64, unroll: int = 1) -> Callable:
    """The fastest run-only variant: ``run(V0) -> (final V, spike counts (n_steps, 2) int32)``.

    V0 is the fused (n_e + n_i,) initial potential; per step it records only the
    number of E and I spikes (enough for rates); the result is jitted.
    """
    table = jnp.asarray(fuse_targets(targets, n_e, n_i))
    step = _fused_step_fn(table, n_e, n_i, dt, k, method, block, n_blocks, gather, k2)

    @jax.jit
    def run(V0):
        def body(s, _):
            s = step(s)
            spk = s[2]
            return s, jnp.stack([spk[:n_e].sum(dtype=jnp.int32), spk[n_e:].sum(dtype=jnp.int32)])
        s, counts = lax.scan(body, _init_fused(V0), None, length=n_steps, unroll=unroll)
        return s[0], counts

    return run


def _compact_rows(sf: jax.Array, k: int) -> jax.Array:
    """Row indices of up to ``k`` nonzero entries of ``sf``, unused slots = len(sf).

    Two-stage top_k (blocks of 32 with any spike, then spikes within the first
    ``k`` such blocks); complete whenever at most ``k`` entries are nonzero,
    which the caller checks with one sum instead of per-block bookkeeping.
    """
    n = sf.shape[0]
    nb = -(-n // 32)
    if nb * 32 != n:
        sf = jnp.pad(sf, (0, nb * 32 - n))
    blocks = sf.reshape(nb, 32)
    b = min(k, nb)
    _, bidx = lax.top_k(jnp.any(blocks != 0, axis=1).astype(jnp.float32), b)
    key, j = lax.top_k(blocks[bidx].reshape(-1), min(k, b * 32))
    return jnp.where(key > 0, bidx[j // 32] * 32 + j % 32, n).astype(jnp.int32)


def tiered_counts(spk: jax.Array, table_ext: jax.Array, n_out: int, k1: int, k2: int) -> jax.Array:
    """Like :func:`event_counts`, with three tiers chosen by the spike count:
    at most ``k1`` spikes (compaction outside the branch), at most ``k2``
    (compacted inside its branch, paid only when taken), else the whole table."""
    sf = spk.astype(jnp.float32)
    zeros = jnp.zeros(n_out, jnp.float32)
    scatter = lambda idx: zeros.at[gather_rows(table_ext, idx)].add(1.0, mode="drop")
    idx = _compact_rows(sf, k1)
    total = spk.sum(dtype=jnp.int32)
    full = lambda: zeros.at[jnp.where(spk[:, None], table_ext[:-1], n_out)].add(1.0, mode="drop")
    which = jnp.where(total <= k1, 0, jnp.where(total <= k2, 1, 2))
    return lax.switch(which, [lambda: scatter(idx), lambda: scatter(_compact_rows(sf, k2)), full])


def make_runner_tiered(targets: dict[str, np.ndarray], n_e: int, n_i: int, n_steps: int, dt: float = 0.1,
                       k1: int = 16, k2: int = 48, unroll: int = 1, per_step: bool = False,
                       fused_state: bool = True, counts: bool = True) -> Callable:
    """The fastest run-only variants found so far: ``run(V0) -> (final V, counts)``.

    One fused table with :func:`tiered_counts` (k1 = 16, k2 = 48 for N = 4000).
    ``fused_state``: one 4000-neuron state with 2 conductance vectors, or
    (False) separate E and I states with 4 conductance vectors (the layout of
    a network of 2 groups and 4 projections; as fast at ``unroll=1``, but
    ~3x slower at ``unroll=4``, where XLA:CPU fuses across steps and
    recomputes). ``counts``: total E and I spikes, int32 (2,), summed in the
    loop carry; ``per_step=True`` records them per step, (n_steps, 2), like
    :func:`make_runner` (a per-step output costs ~10-20% here); ``counts=False``
    computes no output but the final state (the like-for-like baseline of a
    neurodyn run without monitors) and returns ``(final V, None)``. V0 is the
    (n_e + n_i,) initial potential, E first.
    """
    table = jnp.asarray(fuse_targets(targets, n_e, n_i))
    c = _consts(dt)
    P = PARAMS
    n = n_e + n_i
    de, di = c.decay["EE"], c.decay["IE"]
    inp = jnp.full((n,), P["input"], jnp.float32)

    def step_fused(s):
        V, ref, spk, g_e, g_i = s
        count = tiered_counts(spk, table, 2 * n, k1, k2)
        g_e = g_e * de + P["w_e"] * count[:n]
        g_i = g_i * di + P["w_i"] * count[n:]
        V, ref, spk = _lif(V, ref, g_e, g_i, inp, c)
        return (V, ref, spk, g_e, g_i), spk[:n_e], spk[n_e:]

    def step_groups(s):
        VE, VI, rE, rI, sE, sI, gEE, gEI, gIE, gII = s
        count = tiered_counts(jnp.concatenate([sE, sI]), table, 2 * n, k1, k2)
        gEE = gEE * de + P["w_e"] * count[:n_e]
        gEI = gEI * de + P["w_e"] * count[n_e:n]
        gIE = gIE * di + P["w_i"] * count[n:n + n_e]
        gII = gII * di + P["w_i"] * count[n + n_e:]
        VE, rE, sE = _lif(VE, rE, gEE, gIE, inp[:n_e], c)
        VI, rI, sI = _lif(VI, rI, gEI, gII, inp[n_e:], c)
        return (VE, VI, rE, rI, sE, sI, gEE, gEI, gIE, gII), sE, sI

    step = step_fused if fused_state else step_groups

    def init(V0):
        if fused_state:
            return _init_fused(V0)
        zE, zI = jnp.zeros(n_e, jnp.float32), jnp.zeros(n_i, jnp.float32)
        return (V0[:n_e], V0[n_e:], jnp.zeros(n_e, jnp.int32), jnp.zeros(n_i, jnp.int32),
                jnp.zeros(n_e, bool), jnp.zeros(n_i, bool), zE, zI, zE, zI)

    def final_V(s):
        return s[0] if fused_state else jnp.concatenate([s[0], s[1]])

    if not counts:
        @jax.jit
        def run_state_only(V0):
            s = lax.fori_loop(0, n_steps, lambda i, s: step(s)[0], init(V0), unroll=unroll)
            return final_V(s), None
        return run_state_only

    @jax.jit
    def run(V0):
        def body(carry, _):
            s, total = carry
            s, sE, sI = step(s)
            counts = jnp.stack([sE.sum(dtype=jnp.int32), sI.sum(dtype=jnp.int32)])
            if per_step:
                return (s, total), counts
            return (s, total + counts), None
        (s, total), per = lax.scan(body, (init(V0), jnp.zeros(2, jnp.int32)), None, length=n_steps,
                                   unroll=unroll)
        return final_V(s), (per if per_step else total)

    return run


def make_ref_runner(targets, n_e, n_i, n_steps, dt=0.1, mode="event", k=128, unroll=1):
    """The reference (separate groups and projections) as a jitted ``run(V0_E, V0_I) -> spikes``."""
    tabs = _tables(targets, mode, n_e, n_i)
    return lambda V0_E, V0_I: _simulate_ref(tabs, V0_E, V0_I, n_steps, dt, mode, k, unroll)


# ---------------------------------------------------------------------------
# Script
# ---------------------------------------------------------------------------
def _median_times(fns: dict, rounds: int) -> dict:
    import statistics
    ts = {k: [] for k in fns}
    names = list(fns)
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            t0 = time.perf_counter()
            jax.block_until_ready(fns[name]())
            ts[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in ts.items()}


def _compile(f, *args):
    t0 = time.perf_counter()
    c = jax.jit(f).lower(*args).compile() if not hasattr(f, "lower") else f.lower(*args).compile()
    return c, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="skip the dense variant")
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    t_start = time.perf_counter()
    dt, T = 0.1, 1000.0
    n_steps = int(round(T / dt))
    print(f"COBA 3200 E + 800 I, p = 0.02, dt = {dt} ms, {T / 1000:g} s = {n_steps} steps; "
          f"jax {jax.__version__} on {jax.devices()[0].device_kind}")
    t0 = time.perf_counter()
    targets = build_coba(seed=0)
    t_build = time.perf_counter() - t0
    t0 = time.perf_counter()
    fuse_targets(targets, N_E, N_I)
    t_fuse = time.perf_counter() - t0
    syn = sum(int((t < {"E": N_E, "I": N_I}[name[1]]).sum()) for name, t in targets.items())
    print(f"build: {t_build * 1e3:.0f} ms for 4 projections ({syn} synapses, k_max "
          f"{ {k: v.shape[1] for k, v in targets.items()} }); fused table {t_fuse * 1e3:.0f} ms")
    VE, VI = initial_V(seed=1)
    V0 = jnp.asarray(np.concatenate([VE, VI]))
    VEj, VIj = jnp.asarray(VE), jnp.asarray(VI)

    # -- variants --------------------------------------------------------------------
    variants: dict[str, tuple] = {}  # name -> (compiled, args, kind)
    ref_tabs = _tables(targets, "event", N_E, N_I)
    ref_fn = functools.partial(_simulate_ref, n_steps=n_steps, dt=dt, mode="event", k=32, unroll=1)
    c, tc = _compile(jax.jit(lambda tabs, a, b: ref_fn(tabs, a, b)), ref_tabs, VEj, VIj)
    variants["reference: 2 groups, 4 projections, top_k k=32"] = (c, (ref_tabs, VEj, VIj), "spikes", tc)
    fused_cfgs = {
        "fused 4000, top_k k=16": dict(method="top_k", k=16, gather="take"),
        "fused 4000, nonzero k=16": dict(method="nonzero", k=16, gather="take"),
        "fused 4000, block-top_k k=16, jnp gather": dict(method="block", k=16, gather="take"),
        "fused 4000, block-top_k k=16, dslice gather": dict(method="block", k=16, gather="dslice"),
        "fused 4000, block-top_k k=16, dslice, unroll 4": dict(method="block", k=16, gather="dslice", unroll=4),
        "fused 4000, block-top_k k=32, dslice gather": dict(method="block", k=32, gather="dslice"),
        "fused 4000, block-top_k k=8, k2=32, dslice": dict(method="block", k=8, k2=32, gather="dslice"),
    }
    for name, cfg in fused_cfgs.items():
        c, tc = _compile(make_runner(targets, N_E, N_I, n_steps, dt, **cfg), V0)
        variants[name] = (c, (V0,), "counts", tc)

    # correctness: every variant's per-step spike counts equal the reference's
    ref_E, ref_I = (np.asarray(x) for x in variants["reference: 2 groups, 4 projections, top_k k=32"][0](ref_tabs, VEj, VIj))
    ref_counts = np.stack([ref_E.sum(1), ref_I.sum(1)], axis=1)
    results = {}
    for name, (c, a, kind, tc) in variants.items():
        out = c(*a)
        counts = ref_counts if kind == "spikes" else np.asarray(out[1])
        results[name] = (counts, np.array_equal(counts, ref_counts))
    fE, fI = simulate_fused(targets, VE, VI, n_steps, dt)
    bit_exact = np.array_equal(fE, ref_E) and np.array_equal(fI, ref_I)

    times = _median_times({name: (lambda c=c, a=a: c(*a)) for name, (c, a, _, _) in variants.items()}, args.rounds)
    print()
    hdr = f"{'variant':<48} {'compile s':>9} {'run s':>7} {'RTF':>6} {'E Hz':>6} {'I Hz':>6} {'same':>5}"
    print(hdr)
    print("-" * len(hdr))
    for name, (c, a, kind, tc) in variants.items():
        counts, same = results[name]
        rE, rI = counts[:, 0].sum() / N_E / (T / 1000), counts[:, 1].sum() / N_I / (T / 1000)
        print(f"{name:<48} {tc:>9.2f} {times[name]:>7.3f} {times[name] / (T / 1000):>6.3f} {rE:>6.2f} {rI:>6.2f} "
              f"{'yes' if same else 'NO':>5}")
    if not args.quick:
        # 0.2 s only (a 4000 x 4000 product per step is ~3.5 ms); run time scaled to 1 s
        nd_steps = n_steps // 5
        dense_tabs = _tables(targets, "dense", N_E, N_I)
        dfn = functools.partial(_simulate_ref, n_steps=nd_steps, dt=dt, mode="dense", k=32, unroll=1)
        c, tc = _compile(jax.jit(lambda tabs, a, b: dfn(tabs, a, b)), dense_tabs, VEj, VIj)
        t0 = time.perf_counter()
        dE, dI = jax.block_until_ready(c(dense_tabs, VEj, VIj))
        td = (time.perf_counter() - t0) * n_steps / nd_steps
        same = np.array_equal(np.asarray(dE), ref_E[:nd_steps]) and np.array_equal(np.asarray(dI), ref_I[:nd_steps])
        print(f"{'reference dense: spikes @ W, 0.2 s run x 5':<48} {tc:>9.2f} {td:>7.3f} {td / (T / 1000):>6.3f} "
              f"{np.asarray(dE).sum() / N_E / 0.2:>6.2f} {np.asarray(dI).sum() / N_I / 0.2:>6.2f} {'yes' if same else 'NO':>5}")
    n_spk = ref_counts.sum(1)
    print(f"spikes per step (E+I): mean {n_spk.mean():.1f}, 99th pct {np.percentile(n_spk, 99):.0f}, max {n_spk.max()}")
    print(f"simulate_fused spikes bit-identical to the reference simulate: {bit_exact}")
    print("run s: median of", args.rounds, "interleaved runs, compile excluded; RTF = run time / simulated time; "
          "same = per-step spike counts equal the reference")

    # -- scaling ----------------------------------------------------------------------
    print()
    print("Scaling: event-driven fused (block-top_k), 0.2 s simulated (2000 steps), ~80 synapses per neuron")
    hdr = f"{'N':>6} {'k':>4} {'build s':>8} {'compile s':>9} {'run s':>7} {'E Hz':>6} {'I Hz':>6}"
    print(hdr)
    print("-" * len(hdr))
    for N in (4000, 16000, 64000):
        n_e, n_i = N * 4 // 5, N // 5
        t0 = time.perf_counter()
        tg = build_coba(seed=0, n_e=n_e, n_i=n_i, p=80.0 / N)
        t_b = time.perf_counter() - t0
        vE, vI = initial_V(seed=1, n_e=n_e, n_i=n_i)
        v0 = jnp.asarray(np.concatenate([vE, vI]))
        k = max(16, int(N * 0.005))  # ~2.5x the mean number of spikes per step (N * 20 Hz * dt)
        run = make_runner(tg, n_e, n_i, 2000, dt, method="block", k=k, k2=4 * k, gather="auto")
        c, tc = _compile(run, v0)
        jax.block_until_ready(c(v0))
        tr = _median_times({"r": lambda: c(v0)}, 3)["r"]
        counts = np.asarray(c(v0)[1])
        print(f"{N:>6} {k:>4} {t_b:>8.2f} {tc:>9.2f} {tr:>7.3f} {counts[:, 0].sum() / n_e / 0.2:>6.2f} "
              f"{counts[:, 1].sum() / n_i / 0.2:>6.2f}")
    print()
    print(f"total script time {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
