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
import time

import numpy as np

import neurodyn as nd
from neurodyn import nn

REGIMES = {"A": (3.0, 2.0), "B": (6.0, 4.0), "C": (5.0, 2.0), "D": (4.5, 0.9)}

TAU, THETA, V_R, TAU_RP = 20.0, 20.0, 10.0, 2.0


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
        # Compaction buffers sized for bursts of 3x the mean activity of the AI state (~40 Hz).
        per_step = lambda n: max(16, int(3 * n * 40.0 * nd.get_dt() / 1000.0)) if max_spikes is None \
            else max(1, int(max_spikes * n))

        def proj(pre, post, c, w, k):
            # delta synapses: a spike moves the postsynaptic V by w mV (lost while refractory)
            return nn.Projection(pre, post, nn.FixedPreNum(c, seed=seed + k), w, nn.Delta(post.size),
                                 nn.VoltageJump(), delay=delay, mode="event", max_spikes=per_step(pre.size))

        self.E2E = proj(self.E, self.E, c_e, J, 1)
        self.E2I = proj(self.E, self.I, c_e, J, 2)
        self.I2E = proj(self.I, self.E, c_i, -g * J, 3)
        self.I2I = proj(self.I, self.I, c_i, -g * J, 4)
        self.ext_E = nn.PoissonInput(self.E, num_input=c_e, freq=self.nu_ext, weight=J, name="ext", jump=True)
        self.ext_I = nn.PoissonInput(self.I, num_input=c_e, freq=self.nu_ext, weight=J, name="ext", jump=True)


def statistics(rec_E: nd.SpikeRecord, rec_I: nd.SpikeRecord, skip: float = 100.0) -> dict:
    """Rates (Hz), the mean CV of interspike intervals (neurons with >= 3 spikes), and a synchrony
    measure: the Fano factor of the population spike count in 1 ms bins (about 1 for an
    asynchronous state, much larger for a synchronous one). The first ``skip`` ms are left out."""
    out = {}
    for name, rec in (("E", rec_E), ("I", rec_I)):
        t0, t1 = rec.t_start + skip, rec.t_stop
        keep = rec.times >= t0
        times, neurons = rec.times[keep], rec.indices[keep]
        T = (t1 - t0) / 1000.0
        out[f"rate_{name}_hz"] = len(times) / rec.size / T if T > 0 else float("nan")
        order = np.lexsort((times, neurons))
        n_sorted, t_sorted = neurons[order], times[order]
        same = n_sorted[1:] == n_sorted[:-1]
        isi, idx = np.diff(t_sorted)[same], n_sorted[1:][same]
        cnt = np.bincount(idx, minlength=rec.size)
        mean = np.bincount(idx, isi, minlength=rec.size) / np.maximum(cnt, 1)
        sq = np.bincount(idx, isi ** 2, minlength=rec.size) / np.maximum(cnt, 1)
        ok = cnt >= 2
        cvs = np.sqrt(np.maximum(sq[ok] - mean[ok] ** 2, 0.0)) / mean[ok]
        out[f"cv_{name}"] = float(np.mean(cvs)) if cvs.size else float("nan")
        counts = np.histogram(times, bins=np.arange(t0, t1 + 1e-9, 1.0))[0]
        out[f"sync_{name}"] = float(counts.var() / counts.mean()) if counts.size and counts.mean() > 0 \
            else float("nan")
    return out


def simulate(regime: str = "C", duration: float = 600.0, scale: float = 1.0, seed: int = 42,
             progress_bar: bool = True) -> tuple[nd.Runner, dict]:
    """Build and run the network; returns the runner and a summary (times, rates, CV, synchrony)."""
    g, eta = REGIMES[regime]
    nd.random.seed(seed)
    t0 = time.perf_counter()
    net = BrunelNetwork(g=g, eta=eta, scale=scale, seed=seed)
    build_s = time.perf_counter() - t0
    runner = nd.Runner(net, monitors={"E": nd.SpikeMonitor("E.spike"),
                                      "I": nd.SpikeMonitor("I.spike")}, progress_bar=progress_bar)
    mon = runner.run(duration)
    summary = {"build_s": build_s, "compile_s": runner.stats["compile_s"], "run_s": runner.stats["run_s"],
               "synapses": sum(p.nnz for p in net.projections().values()), **net.params,
               "nu_ext_hz": net.nu_ext}
    summary.update(statistics(mon["E"], mon["I"], skip=min(100.0, duration / 4)))
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
            raster_plot(runner.mon["E"], path="brunel_raster.png", markersize=0.5,
                        title=f"Brunel regime {args.regime}: E {s['rate_E_hz']:.1f} Hz")
            print("  raster plot       brunel_raster.png")
        except ImportError:
            print("  (install matplotlib for a raster plot: pip install -e '.[plot]')")


if __name__ == "__main__":
    main()
