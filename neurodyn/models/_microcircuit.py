"""The cortical microcircuit of Potjans & Diesmann (2014)."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._environ import get_dt
from .._module import Module
from .._state import Variable
from .. import nn
from ._common import DelayedCurrents, PoissonCounts, PopulationsMixin, psc_exp_factor

__all__ = ["PotjansDiesmann2014"]

POPULATIONS = ("L23E", "L23I", "L4E", "L4I", "L5E", "L5I", "L6E", "L6I")
N_FULL = np.array([20683, 5834, 21915, 5479, 4850, 1065, 14395, 2948])
# Connection probabilities, target (rows) x source (columns), Table 5 of the paper.
CONN_PROBS = np.array([
    [0.1009, 0.1689, 0.0437, 0.0818, 0.0323, 0.0, 0.0076, 0.0],
    [0.1346, 0.1371, 0.0316, 0.0515, 0.0755, 0.0, 0.0042, 0.0],
    [0.0077, 0.0059, 0.0497, 0.135, 0.0067, 0.0003, 0.0453, 0.0],
    [0.0691, 0.0029, 0.0794, 0.1597, 0.0033, 0.0, 0.1057, 0.0],
    [0.1004, 0.0622, 0.0505, 0.0057, 0.0831, 0.3726, 0.0204, 0.0],
    [0.0548, 0.0269, 0.0257, 0.0022, 0.06, 0.3158, 0.0086, 0.0],
    [0.0156, 0.0066, 0.0211, 0.0166, 0.0572, 0.0197, 0.0396, 0.2252],
    [0.0364, 0.001, 0.0034, 0.0005, 0.0277, 0.008, 0.0658, 0.1443]])
K_EXT = np.array([1600, 1500, 2100, 1900, 2000, 1900, 2900, 2100])
# Full-scale mean rates (Hz) of NEST's PyNEST microcircuit example (NEST 3, 12 MPI
# processes, N_scaling = K_scaling = 1): the reference for reduced versions and the
# rates the in-degree scaling compensates for.
REFERENCE_RATES = dict(zip(POPULATIONS, [0.943, 3.026, 4.368, 5.882, 7.733, 8.664, 1.096, 7.851]))
# Population-specific initial membrane potentials (mean, sd; mV) that avoid the start-up burst.
V0_OPTIMIZED = ([-68.28, -63.16, -63.33, -63.45, -63.11, -61.66, -66.72, -61.43],
                [5.36, 4.57, 4.74, 4.94, 4.94, 4.55, 5.46, 4.48])


def psp_to_psc(C_m: float, tau_m: float, tau_syn: float) -> float:
    """The amplitude (pA) of an exponential current giving a PSP peak of 1 mV on a resting LIF."""
    t_peak = tau_m * tau_syn / (tau_m - tau_syn) * math.log(tau_m / tau_syn)
    peak = tau_m * tau_syn / (C_m * (tau_m - tau_syn)) * (math.exp(-t_peak / tau_m) - math.exp(-t_peak / tau_syn))
    return 1.0 / peak


def _redraw_normal(rng: np.random.Generator, mean: float, sd: float, size: int, low: float,
                   high: float) -> np.ndarray:
    """float32 normal values; those outside ``[low, high]`` are redrawn (as NEST's ``redraw``)."""
    def draw(m: int) -> np.ndarray:
        x = rng.standard_normal(m, dtype=np.float32)
        x *= sd
        x += mean
        return x

    def outside(x: np.ndarray) -> np.ndarray:
        out = np.zeros(x.shape, bool) if low == -np.inf else x < low
        return out if high == np.inf else out | (x > high)

    x = draw(size)
    bad = np.flatnonzero(outside(x))
    while bad.size:
        x[bad] = draw(bad.size)
        bad = bad[outside(x[bad])]
    return x


class PotjansDiesmann2014(PopulationsMixin, nn.Network):
    """The cortical microcircuit model of Potjans & Diesmann (2014), as NEST's PyNEST example builds it.

    Eight populations of current-based LIF neurons under 1 mm^2 of early sensory cortex,
    ``L23E, L23I, L4E, L4I, L5E, L5I, L6E, L6I`` (77,169 neurons at full scale), with
    ~0.3 billion synapses:

    * connectivity: between every pair of populations a fixed total number of synapses,
      ``K = log(1 - p) / log(1 - 1 / (N_pre N_post))`` for the paper's connection
      probability ``p`` (sources and targets drawn uniformly, multapses and autapses
      allowed; :class:`nn.FixedTotalNum`);
    * synapses: exponentially decaying currents, ``tau_syn = 0.5`` ms, integrated exactly
      together with the membrane (NEST's ``iaf_psc_exp`` propagators); weights normal with
      mean ``87.8`` pA (a 0.15 mV PSP), ``g = -4`` times that for inhibitory sources, doubled
      from L4E to L2/3E, relative SD 0.1, redrawn to keep their sign;
    * delays: normal, 1.5 +- 0.75 ms (excitatory sources) and 0.75 +- 0.375 ms
      (inhibitory), redrawn below one step, rounded half up to steps;
    * neurons: ``C_m = 250`` pF, ``tau_m = 10`` ms, ``E_L = V_reset = -65`` mV, ``V_th = -50`` mV,
      ``t_ref = 2`` ms (NEST's refractory convention: V clamped for 20 steps after the
      spiking step); initial V normal with population-specific mean and SD (NEST's
      ``'optimized'`` initial condition);
    * background: ``K_ext`` (1600 ... 2900 per population) Poisson inputs at 8 Hz per
      neuron with the excitatory weight, or (``background='dc'``) the equal mean current
      (NEST's choice for benchmarks at full scale; reduced networks, with fewer and
      stronger recurrent synapses, lose the external fluctuations and can fall silent:
      at 10 % they do).

    Scaling (van Albada et al. 2015): ``scale`` multiplies the neuron numbers,
    ``k_scale`` (default ``scale``) the in-degrees and the external in-degrees. With
    ``k_scale < 1`` weights are divided by ``sqrt(k_scale)`` and a DC current restores
    each population's full-scale mean input, computed from the full-scale rates
    (:data:`REFERENCE_RATES`), so reduced versions keep the full model's rates.

    All synaptic currents share one time constant, so the network keeps one summed
    synaptic current per neuron, fed through one event-driven table of all 64 projections
    with per-synapse delays (8 bytes per synapse). Spikes of step ``t`` arrive at
    ``t + D`` and change V from the next step on.

    Across devices, ``nd.Runner(net, mesh=...)`` gives the same spikes as one device:
    populations whose size divides by the device count and the ring buffer of delayed
    input are split along their neurons; the synapse table is replicated on every device
    (its memory is not divided).

    Args:
        scale: fraction of neurons (1.0: 77,169).
        k_scale: fraction of in-degrees (default: ``scale``).
        background: ``'poisson'`` or ``'dc'``.
        seed: seed of connectivity, weights, delays, initial state and background.
        g, bg_rate, psp_e: relative inhibitory weight, background rate (Hz), mean
            excitatory PSP (mV), as in the paper.

    Reference: T. C. Potjans and M. Diesmann (2014), The cell-type specific cortical
    microcircuit: relating structure and activity in a full-scale spiking network model.
    Cerebral Cortex 24(3):785-806. S. J. van Albada, M. Helias and M. Diesmann (2015),
    Scalability of asynchronous networks is limited by one-to-one mapping between
    effective connectivity and correlations. PLoS Comput Biol 11(9):e1004490.

    Example:
        >>> import neurodyn as nd
        >>> from neurodyn import analysis
        >>> from neurodyn.models import PotjansDiesmann2014
        >>> net = PotjansDiesmann2014(scale=0.01)          # NEST's example: scale=0.1, 1500 ms
        >>> runner = nd.Runner(net, monitors=net.spike_monitor(), progress_bar=False)
        >>> _ = runner.run(20.)
        >>> st = net.spike_trains(runner).window(10., 20.)
        >>> rates = analysis.summary(st, populations=net.population_slices())['L4E']['rate']
    """

    population_names = POPULATIONS
    reference_rates = REFERENCE_RATES

    def __init__(self, scale: float = 1.0, k_scale: float | None = None, background: str = "poisson",
                 seed: int = 55, g: float = -4.0, bg_rate: float = 8.0, psp_e: float = 0.15) -> None:
        scale = float(scale)
        k_scale = scale if k_scale is None else float(k_scale)
        if not 0 < scale <= 1:
            raise ValueError(f"PotjansDiesmann2014: scale must be in (0, 1], got {scale}")
        if not 0 < k_scale <= 1:
            raise ValueError(f"PotjansDiesmann2014: k_scale must be in (0, 1], got {k_scale}")
        if background not in ("poisson", "dc"):
            raise ValueError(f"PotjansDiesmann2014: background must be 'poisson' or 'dc', got {background!r}")
        self.scale, self.k_scale, self.background, self.seed = scale, k_scale, background, int(seed)
        self.g, self.bg_rate, self.psp_e = float(g), float(bg_rate), float(psp_e)
        dt = get_dt()
        C_m, tau_m, tau_syn = 250.0, 10.0, 0.5
        self.C_m, self.tau_m, self.tau_syn, self.E_L, self.V_th, self.t_ref = C_m, tau_m, tau_syn, -65.0, -50.0, 2.0
        rng = np.random.default_rng(self.seed)

        n = np.maximum(np.round(N_FULL * scale).astype(int), 1)
        self.sizes = dict(zip(POPULATIONS, n.tolist()))
        prod = np.outer(N_FULL, N_FULL).astype(np.float64)
        full_syn = np.log(1.0 - CONN_PROBS) / np.log((prod - 1.0) / prod)
        self.num_synapses = np.round(full_syn * scale * k_scale).astype(np.int64)  # target x source
        k_ext = np.round(K_EXT * k_scale).astype(np.int64)

        psc = psp_to_psc(C_m, tau_m, tau_syn)
        w_mean = np.tile(np.array([psp_e, psp_e * self.g]), 4)[None, :] * psc * np.ones((8, 1))
        w_mean[0, 2] *= 2.0  # L4E -> L2/3E
        w_ext = psp_e * psc
        dc = np.zeros(8) if background == "poisson" else bg_rate * K_EXT * w_ext * tau_syn * 1e-3
        if k_scale < 1:
            indegree = full_syn / N_FULL[:, None]
            rates = np.array([REFERENCE_RATES[p] for p in POPULATIONS])
            missing = (1.0 - math.sqrt(k_scale)) * np.sum(w_mean * indegree * rates, axis=1)
            if background == "poisson":
                missing = missing + (1.0 - math.sqrt(k_scale)) * w_ext * K_EXT * bg_rate
            dc = dc + 1e-3 * tau_syn * missing
            w_mean = w_mean / math.sqrt(k_scale)
            w_ext = w_ext / math.sqrt(k_scale)
        self.weight_mean, self.weight_ext, self.dc = w_mean, w_ext, dc
        self.k_ext = k_ext

        # Neurons: R = tau_m / C_m turns pA into mV; the synaptic current enters through
        # the exact-integration factor (constant per step), the DC as a held current.
        R = tau_m / C_m
        factor = psc_exp_factor(tau_m, tau_syn, C_m, dt)
        offsets = np.concatenate([[0], np.cumsum(n)])
        self._offsets = offsets
        means, sds = V0_OPTIMIZED
        for i, name in enumerate(POPULATIONS):
            v0 = rng.normal(means[i], sds[i], n[i]).astype(np.float32)
            grp = nn.LIF(int(n[i]), V_rest=self.E_L, V_reset=-65.0, V_th=self.V_th, tau=tau_m, R=R,
                         tau_ref=self.t_ref, V_initializer=jnp.asarray(v0))
            grp.refractory_convention = "nest"  # clamped for t_ref / dt whole steps after the spike
            lo, hi = int(offsets[i]), int(offsets[i + 1])
            grp.add_input("synapses", self._current_fn(lo, hi, factor, float(dc[i])))
            setattr(self, name, grp)

        # Connectivity of all 64 projections in one table, built on the host one source
        # population at a time (bounded peak memory).
        seeds = rng.integers(2**31 - 1, size=(8, 8))

        def parts(s: int) -> list:
            out = []
            for t in range(8):
                num = int(self.num_synapses[t, s])
                if num == 0:
                    continue
                conn = nn.FixedTotalNum(num, seed=int(seeds[t, s]))
                indptr, post = conn.csr(int(n[s]), int(n[t]))
                conn._cache.clear()
                pre = np.repeat(np.arange(n[s], dtype=np.int32), np.diff(indptr))
                part_rng = np.random.default_rng(int(seeds[t, s]) + 1)
                mean = w_mean[t, s]
                sign_ok = (0.0, np.inf) if mean > 0 else (-np.inf, 0.0)
                w = _redraw_normal(part_rng, mean, abs(mean) * 0.1, num, *sign_ok)
                d_mean = 1.5 if s % 2 == 0 else 0.75
                d = _redraw_normal(part_rng, d_mean, 0.5 * d_mean, num, dt, np.inf)
                d *= 1.0 / dt
                d += 0.5
                steps = np.floor(d, out=d).astype(np.int16 if d.max(initial=0) < 2**15 else np.int32)
                del d
                out.append((int(offsets[t]), pre, post, w, steps))
            return out

        total = int(offsets[-1])
        sources = ((int(offsets[s]), int(n[s]), parts(s)) for s in range(8))
        self.synapses = DelayedCurrents(total, sources, nnz=int(self.num_synapses.sum()),
                                        name="PotjansDiesmann2014")
        self.I_syn = Variable(jnp.zeros((total,), jnp.float32))
        self.I_now = Variable(jnp.zeros((total,), jnp.float32))
        self._p11 = math.exp(-dt / tau_syn)
        self._dt = dt
        if background == "poisson":
            w_bg = np.repeat(np.full(8, w_ext), n)
            self.poisson = PoissonCounts(np.repeat(k_ext, n), bg_rate, w_bg, int(rng.integers(2**31 - 1)))
        else:
            self.poisson = None

    def _current_fn(self, lo: int, hi: int, factor: float, dc: float) -> Any:
        def current(V: Any) -> jax.Array:
            return self.I_now.value[lo:hi] * factor + dc
        return current

    @property
    def n_synapses(self) -> int:
        """The number of synapses between the populations."""
        return self.synapses.nnz

    def reset_state(self, batch_size: int | None = None) -> None:
        super().reset_state(batch_size)
        self.I_syn.value = jnp.zeros_like(self.I_syn.value)
        self.I_now.value = jnp.zeros_like(self.I_now.value)

    def update(self) -> None:
        """One step: deliver last step's spikes, then integrate every population exactly."""
        if get_dt() != self._dt:
            raise RuntimeError(f"PotjansDiesmann2014 was built for dt={self._dt} ms, but dt is now "
                               f"{get_dt()} ms; build the model under the dt you simulate with")
        groups = [getattr(self, p) for p in POPULATIONS]
        spikes = jnp.concatenate([g.spike.value for g in groups])
        x = self.synapses.update(spikes)
        if self.poisson is not None:
            x = x + self.poisson.update()
        # V integrates the current at the start of the step; arrivals join it after (iaf_psc_exp).
        self.I_now.value = self.I_syn.value
        self.I_syn.value = self.I_syn.value * self._p11 + x
        for grp in groups:
            grp.update()
