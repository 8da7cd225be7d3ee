"""The Potjans & Diesmann (2014) cortical microcircuit, compared with NEST's published rates.

Builds ``neurodyn.models.PotjansDiesmann2014`` at ``--scale`` (fraction of neurons and
in-degrees, with van Albada et al.'s DC compensation below 1), simulates ``--t-presim``
+ ``--t-sim`` ms, and prints per population the mean rate, the CV of inter-spike
intervals and Golomb's synchrony next to the reference rates: NEST's PyNEST example at
full scale (``N_scaling = K_scaling = 1``) and at its default 10 %. Writes a raster
(``microcircuit_raster.png``) and the box plot of single-neuron rates in the style of the
paper's Fig. 6 (``microcircuit_rates.png``).

Run:  python examples/microcircuit.py [--scale 0.1] [--t-sim 1000] [--background poisson|dc] [--no-plot]
"""

from __future__ import annotations

import argparse
import time

import neurodyn as nd
from neurodyn import analysis, models

# NEST's example at its default 10 % of neurons and in-degrees (means of its published box plot)
NEST_10_PERCENT = {"L23E": 0.4, "L23I": 2.0, "L4E": 3.9, "L4I": 5.0, "L5E": 6.6, "L5I": 7.7,
                   "L6E": 0.85, "L6I": 7.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=0.1, help="fraction of neurons and in-degrees")
    ap.add_argument("--k-scale", type=float, default=None, help="fraction of in-degrees (default: --scale)")
    ap.add_argument("--t-presim", type=float, default=500.0, help="transient left out (ms)")
    ap.add_argument("--t-sim", type=float, default=1000.0, help="analysed biological time (ms)")
    ap.add_argument("--background", choices=["poisson", "dc"], default="poisson")
    ap.add_argument("--seed", type=int, default=55)
    ap.add_argument("--no-plot", action="store_true")
    args = ap.parse_args()

    t0 = time.perf_counter()
    net = models.PotjansDiesmann2014(scale=args.scale, k_scale=args.k_scale, background=args.background,
                                     seed=args.seed)
    build = time.perf_counter() - t0
    print(f"Potjans & Diesmann (2014) microcircuit: scale {args.scale:g}, {net.n_neurons:,} neurons, "
          f"{net.n_synapses:,} synapses, {args.background} background, built in {build:.1f} s")
    runner = nd.Runner(net, monitors=net.spike_monitor(), progress_bar=True)
    runner.run(args.t_presim + args.t_sim)
    print(f"compile {runner.stats['compile_s']:.1f} s, run {runner.stats['run_s']:.1f} s "
          f"(real-time factor {runner.stats['realtime_factor']:.1f})")
    st = net.spike_trains(runner).window(args.t_presim, args.t_presim + args.t_sim)
    pops = net.population_slices()
    stats = analysis.summary(st, populations=pops, n_sync=1000)
    print(f"{'':6s}{'rate (Hz)':>10s}{'NEST 100%':>11s}{'NEST 10%':>10s}{'CV ISI':>8s}{'synchrony':>11s}")
    for name, s in stats.items():
        print(f"{name:6s}{s['rate']:10.3f}{net.reference_rates[name]:11.3f}{NEST_10_PERCENT[name]:10.2f}"
              f"{s['cv']:8.2f}{s['synchrony']:11.3f}")
    if args.no_plot:
        return
    try:
        t_end = args.t_presim + args.t_sim
        analysis.raster(st, populations=pops, max_neurons=max(20, int(2000 * args.scale)),
                        t_range=(max(args.t_presim, t_end - 200.0), t_end), path="microcircuit_raster.png",
                        title="Potjans & Diesmann (2014) microcircuit")
        analysis.rate_boxplot(st, populations=pops, reference=net.reference_rates, path="microcircuit_rates.png")
        print("wrote microcircuit_raster.png and microcircuit_rates.png")
    except ImportError:
        print("(install matplotlib for the plots: pip install -e '.[plot]')")


if __name__ == "__main__":
    main()
