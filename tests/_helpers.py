"""Helpers shared by the tests: loading examples, float64 precision, the COBA reference."""

from __future__ import annotations

import importlib.util
import math
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import neurodyn as nd

ROOT = pathlib.Path(__file__).resolve().parents[1]


def load_example(name: str, rel: str):
    """Import the script ``rel`` (relative to the repository root) as the module ``name``."""
    spec = importlib.util.spec_from_file_location(name, ROOT / rel)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def float64():
    """Run a test in float64 (``nd.set_precision(64)``), restoring float32 after it."""
    nd.set_precision(64)
    try:
        yield
    finally:
        nd.set_precision(32)


# -- the COBA network (Brette et al. 2007) in hand-written JAX, no neurodyn --------------------
COBA = dict(V_rest=-60.0, V_reset=-60.0, V_th=-50.0, R=1.0, tau_m=20.0, tau_ref=5.0,
            E_e=0.0, E_i=-80.0, tau_e=5.0, tau_i=10.0, w_e=0.6, w_i=6.7, input=20.0)
# (name, pre group, post group, excitatory?) in update order
COBA_PROJECTIONS = (("EE", "E", "E", True), ("EI", "E", "I", True),
                    ("IE", "I", "E", False), ("II", "I", "I", False))


def coba_targets(net) -> dict[str, np.ndarray]:
    """The padded target tables of ``examples/ei_network.py``'s COBANet, by projection name."""
    return {name: getattr(net, proj).conn.padded(getattr(net, proj).n_pre, getattr(net, proj).n_post)
            for name, proj in (("EE", "E2E"), ("EI", "E2I"), ("IE", "I2E"), ("II", "I2I"))}


def coba_reference(targets: dict[str, np.ndarray], V0_E, V0_I, n_steps: int, dt: float = 0.1,
                   dtype=jnp.float32) -> tuple[np.ndarray, np.ndarray]:
    """Spikes of the COBA network from padded target tables and initial potentials.

    Per step, in this order: every projection counts the previous step's presynaptic spikes
    onto each target (exact integer counts) and updates ``g = g * exp(-dt / tau) + w * count``;
    then E and I integrate ``tau dV/dt = -(V - V_rest) + R (input + g_e (E_e - V) + g_i (E_i - V))``
    exactly over the step with g held, clamp refractory neurons, spike at ``V >= V_th`` and
    reset; the refractory period covers ``round(tau_ref / dt)`` steps including the spiking one.
    """
    P = COBA
    n = {"E": int(np.shape(V0_E)[0]), "I": int(np.shape(V0_I)[0])}
    n_ref = int(math.floor(P["tau_ref"] / dt + 0.5 + 1e-9))
    decay = {name: math.exp(-dt / (P["tau_e"] if exc else P["tau_i"])) for name, _, _, exc in COBA_PROJECTIONS}
    weight = {name: (P["w_e"] if exc else P["w_i"]) for name, _, _, exc in COBA_PROJECTIONS}
    tabs = {name: jnp.asarray(targets[name], jnp.int32) for name, *_ in COBA_PROJECTIONS}

    def lif(V, ref, g_e, g_i):
        g = g_e + g_i
        gE = g_e * P["E_e"] + g_i * P["E_i"]
        a = 1.0 + P["R"] * g
        V_inf = (P["V_rest"] + P["R"] * (jnp.full_like(V, P["input"]) + gE)) / a
        V_new = V_inf + (V - V_inf) * jnp.exp(a * -(dt / P["tau_m"]))
        is_ref = ref > 0
        V_new = jnp.where(is_ref, V, V_new)
        spike = (V_new >= P["V_th"]) & ~is_ref
        return jnp.where(spike, P["V_reset"], V_new), jnp.where(spike, n_ref - 1, jnp.maximum(ref - 1, 0)), spike

    def step(state, _):
        V, ref, spk, g = state
        g = dict(g)
        for name, a, b, _ in COBA_PROJECTIONS:
            # padding entries (n_post) and silent rows are dropped: exact counts
            rows = jnp.where(spk[a][:, None], tabs[name], n[b])
            count = jnp.zeros((n[b],), dtype).at[rows].add(1.0, mode="drop")
            g[name] = g[name] * decay[name] + weight[name] * count
        V, ref, spk = dict(V), dict(ref), dict(spk)
        for grp in "EI":
            V[grp], ref[grp], spk[grp] = lif(V[grp], ref[grp], g["E" + grp], g["I" + grp])
        return (V, ref, spk, g), (spk["E"], spk["I"])

    state = ({"E": jnp.asarray(V0_E, dtype), "I": jnp.asarray(V0_I, dtype)},
             {grp: jnp.zeros(n[grp], jnp.int32) for grp in "EI"},
             {grp: jnp.zeros(n[grp], bool) for grp in "EI"},
             {name: jnp.zeros(n[b], dtype) for name, _, b, _ in COBA_PROJECTIONS})
    run = jax.jit(lambda s: jax.lax.scan(step, s, None, length=n_steps)[1])
    sE, sI = run(state)
    return np.asarray(sE), np.asarray(sI)
