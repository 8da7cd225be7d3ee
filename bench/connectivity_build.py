"""Build time of large random connectivity: neurodyn's connectors against a plain NumPy loop.

The sparse regime of the scaling benchmarks (about 80 synapses per neuron) at N = 64,000:
``nn.FixedProb(80 / N, allow_self=False)``, ``nn.FixedPreNum(80)`` and ``nn.FixedTotalNum(80 N)``,
each built to CSR, against a per-row NumPy loop (binomial degree, then ``Generator.choice``
without replacement), the way one writes it by hand. Prints seconds and the ratio.

Run:  python bench/connectivity_build.py [--n 64000] [--k 80] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

import neurodyn.nn as nn


def numpy_loop(n: int, k: int, seed: int) -> int:
    rng = np.random.default_rng(seed)
    deg = rng.binomial(n - 1, k / n, n)
    total = 0
    for i in range(n):
        row = rng.choice(n - 1, deg[i], replace=False)
        row[row >= i] += 1  # no self-connection
        row.sort()
        total += row.size
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=64000)
    ap.add_argument("--k", type=int, default=80)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    n, k = a.n, a.k
    cases = {
        "FixedProb": lambda s: nn.FixedProb(k / n, allow_self=False, seed=s).csr(n, n)[1].size,
        "FixedPreNum": lambda s: nn.FixedPreNum(k, allow_self=False, seed=s).csr(n, n)[1].size,
        "FixedTotalNum": lambda s: nn.FixedTotalNum(k * n, seed=s).csr(n, n)[1].size,
        "NumPy loop": lambda s: numpy_loop(n, k, s),
    }
    print(f"connectivity build, N = {n:,}, {k} synapses per neuron, load average {os.getloadavg()[0]:.1f}")
    times = {}
    for name, fn in cases.items():
        ts = []
        for r in range(a.repeat):
            t0 = time.perf_counter()
            nnz = fn(r)
            ts.append(time.perf_counter() - t0)
        times[name] = statistics.median(ts)
        print(f"  {name:<14} {times[name]:7.2f} s  ({nnz:,} synapses)", flush=True)
    base = times["NumPy loop"]
    for name in ("FixedProb", "FixedPreNum", "FixedTotalNum"):
        print(f"  {name:<14} / NumPy loop = {times[name] / base:.3f}")


if __name__ == "__main__":
    main()
