"""brainevent's CPU event kernel against neurodyn's fused propagation, per step inside one compiled loop.

The question: could an optional brainevent backend (one custom call per step for the
fused event-driven scatter) beat the pure-JAX path on XLA:CPU? Both propagate the same
spike raster through the fused target table of ``examples/ei_network.py``'s COBANet (4000
neurons; about 8 spikes per step, as in COBA): brainevent's ``binary_fcnmv``
(``transpose=True``: ``out[table[i, :]] += 1`` for every spiking ``i``; numba backend)
against ``Fusion.counts``. A loop that only reads the raster is the baseline. Counts
must be equal (exact integers). Compile time and the first call (numba compiles the
kernel there) are printed too.

Needs brainevent and numba, which neurodyn does not depend on:
    pip install brainevent numba
    PYTHONPATH=. python bench/brainevent_cpu.py [--steps 10000] [--spikes 8]
"""

from __future__ import annotations

import argparse
import importlib.util
import pathlib
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import neurodyn as nd

ROOT = pathlib.Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10000)
    ap.add_argument("--spikes", type=float, default=8.0, help="mean spikes per step")
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    import brainevent

    spec = importlib.util.spec_from_file_location("ei_network_example", ROOT / "examples/ei_network.py")
    ei = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ei)
    nd.random.seed(0)
    fusion = ei.COBANet(scale=1.0, seed=0)._fusion
    n_in, n_out, T = fusion.n_in, fusion.n_out, args.steps
    raster = jnp.asarray(np.random.default_rng(0).random((T, n_in)) < args.spikes / n_in)
    table = fusion.table.value[:-1]  # padding entries are n_out: one extra output slot takes them
    one = jnp.ones((1,), jnp.float32)

    steps = {
        "raster only": lambda s: jnp.tile(s.astype(jnp.float32), n_out // n_in),
        "neurodyn Fusion.counts": lambda s: fusion.counts([s]),
        "brainevent binary_fcnmv (numba)": lambda s: brainevent.binary_fcnmv(
            one, table, s, shape=(n_in, n_out + 1), transpose=True, backend="numba")[:n_out],
    }
    compiled, results, cpu, wall = {}, {}, {}, {}
    for name, step in steps.items():
        f = jax.jit(lambda r, step=step: jax.lax.scan(lambda c, s: (c + step(s), None), jnp.zeros(n_out), r)[0])
        t0 = time.perf_counter()
        compiled[name] = f.lower(raster).compile()
        t1 = time.perf_counter()
        results[name] = np.asarray(compiled[name](raster))
        print(f"{name}: compile {t1 - t0:.2f} s, first call {time.perf_counter() - t1:.2f} s", flush=True)
        cpu[name], wall[name] = [], []
    for r in range(args.rounds):
        for name in (list(compiled) if r % 2 == 0 else list(compiled)[::-1]):
            w0, c0 = time.perf_counter(), time.process_time()
            jax.block_until_ready(compiled[name](raster))
            wall[name].append(time.perf_counter() - w0)
            cpu[name].append(time.process_time() - c0)
    base = statistics.median(cpu["raster only"])
    for name in compiled:
        c = statistics.median(cpu[name])
        print(f"{name:34s} cpu {c / T * 1e6:6.2f} µs/step ({(c - base) / T * 1e6:+6.2f} over the raster loop), "
              f"wall min {min(wall[name]) / T * 1e6:6.2f} µs/step")
    same = np.array_equal(results["neurodyn Fusion.counts"], results["brainevent binary_fcnmv (numba)"])
    print("equal counts:", same)
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
