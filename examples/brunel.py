"""Brunel (2000) model A: sparsely connected excitatory and inhibitory LIF neurons with delta synapses.

N_E = 10,000 excitatory and N_I = 2,500 inhibitory LIF neurons (tau = 20 ms,
theta = 20 mV, V_r = 10 mV, tau_rp = 2 ms, no leak reversal offset), each
receiving C_E = 0.1 N_E excitatory and C_I = 0.1 N_I inhibitory synapses
(fixed in-degree), a voltage jump of J = 0.1 mV (excitatory) or -g J
(inhibitory) after a delay of 1.5 ms, and C_E external Poisson inputs at
nu_ext = eta * nu_thr with nu_thr = theta / (J C_E tau). dt = 0.1 ms.

The regimes of the paper's Fig. 8 (``--regime``):
    A  g = 3,   eta = 2    synchronous regular (SR)
    B  g = 6,   eta = 4    asynchronous irregular, fast oscillation (AI/SI fast)
    C  g = 5,   eta = 2    asynchronous irregular (AI), the benchmark setting
    D  g = 4.5, eta = 0.9  synchronous irregular, slow oscillation (SI slow)

``--scale s`` multiplies N_E and N_I; in-degrees stay 10% of the populations
and J is multiplied by 1/s so that J C_E (the mean input) is that of the full
network (fluctuations grow as the network shrinks).

Run:  python examples/brunel.py [--regime C] [--duration 600] [--scale 1.0] [--no-plot]
"""

from __future__ import annotations

import argparse
import math
import time

import jax.numpy as jnp
import numpy as np

import neurodyn as nd
from neurodyn import nn

REGIMES = {"A": (3.0, 2.0), "B": (6.0, 4.0), "C": (5.0, 2.0), "D": (4.5, 0.9)}

TAU, THETA, V_R, TAU_RP = 20.0, 20.0, 10.0, 2.0


class _Jump(nn.Synapse):
    """This step's summed spike weights, to be added to V as a jump (no synaptic memory)."""

    def update(self, x=0.0):
        self.g.value = jnp.zeros_like(self.g.value) + x
        return self.g.value


class _JumpOut(nn.SynOut):
    """The current that moves an exactly integrated LIF membrane (``R``, ``tau``) by ``g`` mV
    over one step: ``g / (R (1 - exp(-dt / tau)))``. Spikes arriving during the refractory
    period are lost, as in NEST's ``iaf_psc_delta``."""

    def __init__(self, tau: float, R: float = 1.0) -> None:
        self.tau, self.R = tau, R

    def update(self, g, V):
        return g / (self.R * (1.0 - math.exp(-nd.get_dt() / self.tau)))


class BrunelNetwork(nn.Network):
    """Brunel (2000) model A (see the module docstring); ``E`` and ``I`` are the populations.

    Example:
        >>> net = BrunelNetwork(g=5., eta=2., scale=0.1)
        >>> runner = nd.Runner(net, monitors=["E.spike", "I.spike"])
    """

    def __init__(self, g: float = 5.0, eta: float = 2.0, scale: float = 1.0, J: float = 0.1,
                 delay: float = 1.5, seed: int = 42, max_spikes: float | None = None) -> None:
        n_e, n_i = int(round(10000 * scale)), int(round(2500 * scale))
        c_e, c_i = max(1, int(round(0.1 * n_e))), max(1, int(round(0.1 * n_i)))
        J = J / scale
        self.params = dict(N_E=n_e, N_I=n_i, C_E=c_e, C_I=c_i, J=J, g=g, eta=eta, delay=delay)
        nu_thr = THETA / (J * c_e * TAU) * 1000.0  # Hz
        self.nu_ext = eta * nu_thr
        lif = dict(V_rest=0.0, V_reset=V_R, V_th=THETA, tau=TAU, tau_ref=TAU_RP,
                   V_initializer=nn.Uniform(0.0, THETA))
        self.E = nn.LIF(n_e, **lif)
        self.I = nn.LIF(n_i, **lif)
        out = _JumpOut(TAU)
        # Compaction buffers sized for bursts of 3x the mean activity of the AI state (~40 Hz).
        per_step = lambda n: max(16, int(3 * n * 40.0 * nd.get_dt() / 1000.0)) if max_spikes is None \
            else max(1, int(max_spikes * n))

        def proj(pre, post, c, w, k):
            return nn.Projection(pre, post, nn.FixedPreNum(c, seed=seed + k), w, _Jump(post.size), out,
                                 delay=delay, mode="event", max_spikes=per_step(pre.size))

        self.E2E = proj(self.E, self.E, c_e, J, 1)
        self.E2I = proj(self.E, self.I, c_e, J, 2)
        self.I2E = proj(self.I, self.E, c_i, -g * J, 3)
        self.I2I = proj(self.I, self.I, c_i, -g * J, 4)
        self.ext_E = nn.PoissonInput(self.E, num_input=c_e, freq=self.nu_ext, weight=J, name="ext")
        self.ext_I = nn.PoissonInput(self.I, num_input=c_e, freq=self.nu_ext, weight=J, name="ext")
        # PoissonInput adds weight * k as a current: make it the same jump as a synapse
        for inp in (self.ext_E, self.ext_I):
            inp.weight = J / (1.0 - math.exp(-nd.get_dt() / TAU))


def statistics(spikes_E: np.ndarray, spikes_I: np.ndarray, dt: float, skip: float = 100.0) -> dict:
    """Rates (Hz), the mean CV of interspike intervals (neurons with >= 3 spikes), and a synchrony
    measure: the Fano factor of the population spike count in 1 ms bins (about 1 for an
    asynchronous state, much larger for a synchronous one). The first ``skip`` ms are left out."""
    k0 = int(round(skip / dt))
    out = {}
    for name, s in (("E", spikes_E[k0:]), ("I", spikes_I[k0:])):
        T = s.shape[0] * dt / 1000.0
        steps, neurons = np.nonzero(s)
        out[f"rate_{name}_hz"] = len(steps) / s.shape[1] / T if T > 0 else float("nan")
        order = np.lexsort((steps, neurons))
        n_sorted, t_sorted = neurons[order], steps[order] * dt
        isi = np.diff(t_sorted)
        same = n_sorted[1:] == n_sorted[:-1]
        cvs = []
        if same.any():
            idx = n_sorted[1:][same]
            vals = isi[same]
            cnt = np.bincount(idx, minlength=s.shape[1])
            mean = np.bincount(idx, vals, minlength=s.shape[1]) / np.maximum(cnt, 1)
            sq = np.bincount(idx, vals ** 2, minlength=s.shape[1]) / np.maximum(cnt, 1)
            ok = cnt >= 2
            cvs = np.sqrt(np.maximum(sq[ok] - mean[ok] ** 2, 0.0)) / mean[ok]
        out[f"cv_{name}"] = float(np.mean(cvs)) if len(cvs) else float("nan")
        per_bin = max(1, int(round(1.0 / dt)))
        nb = s.shape[0] // per_bin
        counts = s[:nb * per_bin].reshape(nb, per_bin, -1).sum(axis=(1, 2))
        out[f"sync_{name}"] = float(counts.var() / counts.mean()) if counts.mean() > 0 else float("nan")
    return out


def simulate(regime: str = "C", duration: float = 600.0, scale: float = 1.0, seed: int = 42,
             progress_bar: bool = True) -> tuple[nd.Runner, dict]:
    """Build and run the network; returns the runner and a summary (times, rates, CV, synchrony)."""
    g, eta = REGIMES[regime]
    nd.random.seed(seed)
    t0 = time.perf_counter()
    net = BrunelNetwork(g=g, eta=eta, scale=scale, seed=seed)
    build_s = time.perf_counter() - t0
    runner = nd.Runner(net, monitors=["E.spike", "I.spike"], progress_bar=progress_bar)
    mon = runner.run(duration)
    summary = {"build_s": build_s, "compile_s": runner.stats["compile_s"], "run_s": runner.stats["run_s"],
               "synapses": sum(p.nnz for p in net.projections().values()), **net.params,
               "nu_ext_hz": net.nu_ext}
    summary.update(statistics(mon["E.spike"], mon["I.spike"], nd.get_dt(), skip=min(100.0, duration / 4)))
    return runner, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regime", choices=sorted(REGIMES), default="C")
    parser.add_argument("--duration", type=float, default=600.0, help="biological time in ms")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply population sizes")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no-plot", action="store_true", help="do not write brunel_raster.png")
    args = parser.parse_args()
    g, eta = REGIMES[args.regime]
    print(f"Brunel (2000) model A, regime {args.regime} (g = {g}, eta = {eta}), scale {args.scale}, "
          f"{args.duration:g} ms, dt = {nd.get_dt()} ms")
    runner, s = simulate(args.regime, args.duration, args.scale, args.seed)
    print(f"  neurons           {s['N_E']:,} E + {s['N_I']:,} I, C_E = {s['C_E']}, C_I = {s['C_I']}, "
          f"J = {s['J']:g} mV, nu_ext = {s['nu_ext_hz']:.1f} Hz")
    print(f"  synapses          {s['synapses']:,}")
    print(f"  build / compile   {s['build_s']:.2f} s / {s['compile_s']:.2f} s")
    print(f"  run               {s['run_s']:.2f} s")
    for p in ("E", "I"):
        print(f"  {p}: rate {s[f'rate_{p}_hz']:6.1f} Hz   CV(ISI) {s[f'cv_{p}']:.2f}   "
              f"synchrony (Fano, 1 ms bins) {s[f'sync_{p}']:.1f}")
    if not args.no_plot:
        try:
            from neurodyn.visualize import raster_plot
            mon = runner.mon
            k = min(len(mon.ts), int(round(200.0 / nd.get_dt())))
            spikes = np.concatenate([mon["E.spike"][-k:, :400], mon["I.spike"][-k:, :100]], axis=1)
            raster_plot(mon.ts[-k:], spikes, path="brunel_raster.png", markersize=1.5,
                        title=f"Brunel regime {args.regime}: E {s['rate_E_hz']:.1f} Hz "
                              f"(neurons 0-399 E, 400-499 I)")
            print("  raster plot       brunel_raster.png")
        except ImportError:
            print("  (install matplotlib for a raster plot: pip install -e '.[plot]')")


if __name__ == "__main__":
    main()
