"""Same-process A/B of the fused propagation: this checkout's ``Fusion.counts`` against another's.

One network is built once; one compiled loop (``nd.jit(nd.for_loop(net.update))``) is traced
with each checkout's ``neurodyn/nn/_kernels.py`` ``Fusion.counts`` (everything else is this
checkout's). The final states must be identical; the loops then alternate over rounds from
the same initial state. CPU time is the steadier figure on a shared machine (one XLA thread:
``NEURODYN_CPU_THREADS=1``); wall time is printed too.

Run:  git worktree add /tmp/old main
      NEURODYN_CPU_THREADS=1 PYTHONPATH=. python bench/fusion_ab.py --other /tmp/old
      ... --scale 4 --steps 2000            (the suite's scaling network, N = 16000)
      ... --net brunel --scale 0.5 --steps 1000
"""

from __future__ import annotations

import argparse
import importlib.util
import pathlib
import statistics
import time

import jax
import numpy as np

import neurodyn as nd
from neurodyn.nn import _kernels

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _load(name: str, path: pathlib.Path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--other", required=True, help="the other checkout (its neurodyn/nn/_kernels.py)")
    ap.add_argument("--net", choices=["coba", "brunel"], default="coba")
    ap.add_argument("--scale", type=float, default=1.0, help="COBANet scale (N = 4000 x scale) or Brunel scale")
    ap.add_argument("--steps", type=int, default=10000)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()

    other = _load("neurodyn.nn._kernels_other", pathlib.Path(args.other) / "neurodyn/nn/_kernels.py")
    nd.random.seed(42)
    if args.net == "brunel":
        brunel = _load("brunel_example", ROOT / "examples/brunel.py")
        g, eta = brunel.REGIMES["C"]
        net = brunel.BrunelNetwork(g=g, eta=eta, scale=args.scale, seed=42)
    else:
        ei = _load("ei_network_example", ROOT / "examples/ei_network.py")
        net = ei.COBANet(scale=args.scale, seed=42)
        net.E.input.value = net.E.input.value + 20.0
        net.I.input.value = net.I.input.value + 20.0
    f = net._fusion
    print(f"{args.net} scale {args.scale}: {f.n_in} presynaptic rows, first tier k1 = {f.k1}, {args.steps} steps")
    state = {k: v.value for k, v in net.vars().items()}

    def restore() -> None:
        for k, v in net.vars().items():
            v.value = state[k]
        nd.random.seed(7)  # the Poisson drive (Brunel) draws from the global stream

    this_counts = _kernels.Fusion.counts
    runs, final = {}, {}
    try:
        for name, counts in (("this", this_counts), ("other", other.Fusion.counts)):
            _kernels.Fusion.counts = counts  # read when the loop is traced (now)
            restore()
            runs[name] = nd.jit(lambda: nd.for_loop(net.update, length=args.steps) and None)
            runs[name]()
            final[name] = {k: np.asarray(v.value) for k, v in net.vars().items()}
    finally:
        _kernels.Fusion.counts = this_counts
    same = all(np.array_equal(final["this"][k], final["other"][k]) for k in final["this"])
    print("identical final state:", same)
    cpu: dict = {k: [] for k in runs}
    wall: dict = {k: [] for k in runs}
    for r in range(args.rounds):
        for name in (list(runs) if r % 2 == 0 else list(runs)[::-1]):
            restore()
            w0, c0 = time.perf_counter(), time.process_time()
            runs[name]()
            jax.block_until_ready(net.E.V.value)
            w1, c1 = time.perf_counter(), time.process_time()
            wall[name].append(w1 - w0)
            cpu[name].append(c1 - c0)
    us = lambda x: x / args.steps * 1e6
    for k in runs:
        print(f"{k:5s}: cpu median {us(statistics.median(cpu[k])):7.2f} min {us(min(cpu[k])):7.2f} µs/step; "
              f"wall median {us(statistics.median(wall[k])):7.2f} min {us(min(wall[k])):7.2f} µs/step")
    print(f"this / other: cpu median {statistics.median(cpu['this']) / statistics.median(cpu['other']):.3f}, "
          f"wall median {statistics.median(wall['this']) / statistics.median(wall['other']):.3f}")


if __name__ == "__main__":
    main()
