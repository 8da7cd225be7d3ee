"""The COBA network: 4000 conductance-based LIF neurons, 1 s of biological time.

Brette et al. (2007), benchmark 1, after Vogels & Abbott (2005): 3200 excitatory
and 800 inhibitory LIF neurons, random connectivity with p = 0.02, exponential
conductance synapses (tau_e = 5 ms, tau_i = 10 ms, E_e = 0 mV, E_i = -80 mV,
w_e = 0.6, w_i = 6.7), V_rest = V_reset = -60 mV, V_th = -50 mV, tau_m = 20 ms,
5 ms refractory period, a constant external current of 20, dt = 0.1 ms.

Run:  python examples/ei_network.py [--duration 1000] [--scale 1.0] [--no-plot]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import neurodyn as nd
from neurodyn import nn


class COBANet(nn.Network):
    """The E/I network; ``scale`` multiplies both population sizes (weights are
    rescaled so that each neuron keeps ~80 synapses)."""

    def __init__(self, scale: float = 1.0, seed: int = 42, mode: str = "auto", p: float = 0.02):
        n_e, n_i = int(3200 * scale), int(800 * scale)
        p = p / scale  # same expected in-degree (~80) at every scale
        lif = dict(V_rest=-60., V_reset=-60., V_th=-50., tau=20., tau_ref=5.,
                   V_initializer=nn.Normal(-55., 2.))
        self.E = nn.LIF(n_e, **lif)
        self.I = nn.LIF(n_i, **lif)

        def proj(pre, post, tau, E_rev, w, k):
            return nn.Projection(pre, post, nn.FixedProb(p, seed=seed + k), w,
                                 nn.Expon(post.size, tau=tau), nn.COBA(E=E_rev), mode=mode)

        self.E2E = proj(self.E, self.E, 5., 0., 0.6, 1)
        self.E2I = proj(self.E, self.I, 5., 0., 0.6, 2)
        self.I2E = proj(self.I, self.E, 10., -80., 6.7, 3)
        self.I2I = proj(self.I, self.I, 10., -80., 6.7, 4)


def simulate(duration: float = 1000., scale: float = 1.0, seed: int = 42, progress_bar: bool = True,
             mode: str = "auto") -> tuple[nd.Runner, dict]:
    """Build and run the network; returns the runner and a summary dict."""
    nd.random.seed(seed)
    t0 = time.perf_counter()
    net = COBANet(scale=scale, seed=seed, mode=mode)
    build_s = time.perf_counter() - t0
    runner = nd.Runner(net, monitors=["E.spike", "I.spike"],
                       inputs=[("E.input", 20.), ("I.input", 20.)], progress_bar=progress_bar)
    mon = runner.run(duration)
    seconds = duration / 1000.
    summary = {
        "build_s": build_s,
        "compile_s": runner.stats["compile_s"],
        "run_s": runner.stats["run_s"],
        "realtime_factor": runner.stats["realtime_factor"],
        "rate_E_hz": float(mon["E.spike"].sum() / net.E.size / seconds),
        "rate_I_hz": float(mon["I.spike"].sum() / net.I.size / seconds),
        "synapses": sum(p.nnz for p in net.projections().values()),
    }
    return runner, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=1000., help="biological time in ms")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply population sizes")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no-plot", action="store_true", help="do not write raster.png")
    args = parser.parse_args()

    n = int(3200 * args.scale) + int(800 * args.scale)
    print(f"COBA network: {n} LIF neurons, {args.duration:g} ms of biological time, dt = {nd.get_dt()} ms")
    runner, s = simulate(args.duration, args.scale, args.seed)
    print(f"  synapses          {s['synapses']:,}")
    print(f"  build             {s['build_s']:.2f} s")
    print(f"  compile           {s['compile_s']:.2f} s")
    print(f"  run               {s['run_s']:.3f} s  ({s['realtime_factor']:.2f} s per simulated second)")
    print(f"  E rate            {s['rate_E_hz']:.1f} Hz")
    print(f"  I rate            {s['rate_I_hz']:.1f} Hz")
    if not args.no_plot:
        try:
            from neurodyn.visualize import raster_plot
        except ImportError:
            return
        try:
            mon = runner.mon
            # 400 E and 100 I neurons: a readable sample of the 4000
            spikes = np.concatenate([mon["E.spike"][:, :400], mon["I.spike"][:, :100]], axis=1)
            raster_plot(mon.ts, spikes, path="raster.png", markersize=1.5,
                        title=f"COBA: E {s['rate_E_hz']:.1f} Hz, I {s['rate_I_hz']:.1f} Hz "
                              "(neurons 0-399 E, 400-499 I)")
            print("  raster plot       raster.png")
        except ImportError:
            print("  (install matplotlib for a raster plot: pip install -e '.[plot]')")


if __name__ == "__main__":
    main()
