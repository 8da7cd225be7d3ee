"""STDP makes the weight distribution bimodal: Song, Miller & Abbott (2000).

1000 Poisson inputs at 15 Hz drive one conductance-based LIF neuron through
excitatory synapses with additive pair STDP (all-to-all pairing, hard bounds
[0, g_max], depression 5% stronger than potentiation). With the parameters of
Brian2's STDP example (tau_m = 10 ms, E_L = -74 mV, V_th = -54 mV,
V_reset = -60 mV, E_e = 0 mV, tau_e = 5 ms, g_max = 0.01, A_plus = 0.01 g_max,
A_minus = 1.05 A_plus, tau_pre = tau_post = 20 ms, initial weights uniform in
[0, g_max]) and 100 s of biological time, the weights end near 0 or near
g_max: competition between inputs, with the output rate held in check.

Second part (``--coba``): the COBA network of ``examples/ei_network.py`` with
the same rule (scaled to its weights) on the E -> E projection.

Run:  python examples/stdp_song2000.py [--duration 100] [--no-plot] [--coba]
"""

from __future__ import annotations

import argparse
import pathlib
import time

import numpy as np

import neurodyn as nd
from neurodyn import nn

G_MAX = 0.01


class Song2000(nn.Network):
    """``n_inputs`` Poisson inputs onto one LIF neuron with plastic COBA synapses."""

    def __init__(self, n_inputs: int = 1000, rate: float = 15., g_max: float = G_MAX, seed: int = 0,
                 A_plus: float = 0.01):
        nd.random.seed(seed)
        self.inputs = nn.PoissonGroup(n_inputs, freq=rate)
        self.neuron = nn.LIF(1, V_rest=-74., V_reset=-60., V_th=-54., tau=10., V_initializer=-74.)
        # A_plus in units of g_max; depression 5% stronger
        stdp = nn.STDP(tau_pre=20., tau_post=20., A_plus=A_plus * g_max, A_minus=1.05 * A_plus * g_max,
                       w_min=0., w_max=g_max)
        w0 = np.random.default_rng(seed).uniform(0., g_max, n_inputs).astype(np.float32)
        # a conductance in units of the leak conductance: tau_m dV/dt = E_L - V + g (E_e - V)
        self.syn = nn.Projection(self.inputs, self.neuron, nn.AllToAll(), w0, nn.Expon(1, tau=5.),
                                 nn.COBA(E=0.), plasticity=stdp)


def simulate(duration_s: float = 100., seed: int = 0, progress_bar: bool = True,
             snapshot_ms: float = 1000.) -> dict:
    """Run the Song et al. setup; returns the final weights (/ g_max), snapshots and timing."""
    net = Song2000(seed=seed)
    every = int(round(snapshot_ms / nd.get_dt()))
    # weights every snapshot_ms and the mean weight (a device-side reduction), not every step
    runner = nd.Runner(net, monitors={"w": "syn.weight", "w_mean": nn.weight_mean(net.syn),
                                      "spikes": lambda m: m.neuron.spike.value.sum()},
                       monitor_every=every, chunk_size=every * 5, progress_bar=progress_bar)
    mon = runner.run(duration_s * 1000.)
    w = np.asarray(net.syn.weight.value) / G_MAX
    return {"w": w, "snapshots": mon["w"] / G_MAX, "ts": mon.ts, "runner": runner,
            "fraction_low": float(np.mean(w < 0.1)), "fraction_high": float(np.mean(w > 0.9)),
            "sim_s_per_wall_s": duration_s / runner.stats["run_s"]}


class COBASTDP(nn.Network):
    """The COBA network of ``examples/ei_network.py`` (4000 LIF, p = 0.02), with pair
    STDP on E -> E when ``plastic`` (weights start at w_e = 0.6 and stay in [0, 2 w_e])."""

    def __init__(self, plastic: bool = True, seed: int = 42, scale: float = 1.0):
        nd.random.seed(seed)
        n_e, n_i = int(3200 * scale), int(800 * scale)
        p = 0.02 / scale
        lif = dict(V_rest=-60., V_reset=-60., V_th=-50., tau=20., tau_ref=5.,
                   V_initializer=nn.Normal(-55., 2.))
        self.E, self.I = nn.LIF(n_e, **lif), nn.LIF(n_i, **lif)
        w_e, w_i = 0.6, 6.7
        stdp = nn.STDP(tau_pre=20., tau_post=20., A_plus=0.01 * w_e, A_minus=0.0105 * w_e,
                       w_min=0., w_max=2 * w_e) if plastic else None

        def proj(pre, post, tau, E_rev, w, k, plasticity=None):
            return nn.Projection(pre, post, nn.FixedProb(p, seed=seed + k), w, nn.Expon(post.size, tau=tau),
                                 nn.COBA(E=E_rev), mode="event", plasticity=plasticity)

        self.E2E = proj(self.E, self.E, 5., 0., w_e, 1, stdp)
        self.E2I = proj(self.E, self.I, 5., 0., w_e, 2)
        self.I2E = proj(self.I, self.E, 10., -80., w_i, 3)
        self.I2I = proj(self.I, self.I, 10., -80., w_i, 4)


def coba_with_stdp(duration_ms: float = 1000., progress_bar: bool = True) -> dict:
    """Run :class:`COBASTDP` and report rates and the mean E -> E weight over time."""
    net = COBASTDP()
    runner = nd.Runner(net, monitors={"E": "E.spike", "w_mean": nn.weight_mean(net.E2E)},
                       inputs=[("E.input", 20.), ("I.input", 20.)], progress_bar=progress_bar)
    mon = runner.run(duration_ms)
    return {"rate_E": float(mon["E"].mean() / nd.get_dt() * 1000.), "w_mean": mon["w_mean"],
            "run_s": runner.stats["run_s"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=100., help="biological time in s (default 100)")
    ap.add_argument("--no-plot", action="store_true")
    ap.add_argument("--coba", action="store_true", help="also run the COBA network with STDP on E->E")
    args = ap.parse_args()
    t0 = time.perf_counter()
    out = simulate(args.duration)
    r = out["runner"].stats
    print(f"Song et al. (2000), {args.duration:g} s: {out['fraction_low']:.0%} of weights < 0.1 g_max, "
          f"{out['fraction_high']:.0%} > 0.9 g_max; compile {r['compile_s']:.1f} s, run {r['run_s']:.1f} s "
          f"({out['sim_s_per_wall_s']:.1f} simulated s per wall-clock s); total {time.perf_counter() - t0:.1f} s")
    if args.coba:
        c = coba_with_stdp()
        print(f"COBA with STDP on E->E, 1 s: E rate {c['rate_E']:.1f} Hz, mean E->E weight "
              f"{c['w_mean'][0]:.3f} -> {c['w_mean'][-1]:.3f}, run {c['run_s']:.2f} s")
    if not args.no_plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(1, 3, figsize=(12, 3.2))
        ax[0].plot(out["w"], ".k", ms=2)
        ax[0].set(xlabel="synapse", ylabel="w / g_max")
        ax[1].hist(out["w"], 20, color="k")
        ax[1].set(xlabel="w / g_max", ylabel="count", title=f"after {args.duration:g} s")
        ax[2].plot(out["ts"] / 1000., out["snapshots"][:, :5])
        ax[2].set(xlabel="time (s)", ylabel="w / g_max")
        fig.tight_layout()
        path = pathlib.Path(__file__).with_suffix(".png").name
        fig.savefig(path, dpi=100)
        print(f"plot: {path}")


if __name__ == "__main__":
    main()
