"""Cost of recording spikes of a large population: nd.SpikeMonitor against no monitor and a dense record,
with a hand-written pure-JAX loop (lax.scan, same update, no recording) as the baseline.

Run:  python bench/spike_monitor.py [--n 100000] [--ms 500]

The population: N leaky units driven by constant input and Gaussian noise (threshold and reset),
about 15 Hz. Every variant runs the same number of steps in chunks of 1000; each figure is the best
of 3 runs after a warm-up run (building and compilation excluded: a Runner is built once per
variant and its first run compiles). Host memory of the records is reported from
the arrays themselves.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import neurodyn as nd
from neurodyn import _cpu


class Pop(nd.Module):
    def __init__(self, n: int):
        self.V = nd.Variable(jnp.zeros(n))
        self.spike = nd.Variable(jnp.zeros(n, bool))

    def update(self):
        V = self.V * 0.99 + 0.0095 + 0.035 * nd.random.normal(size=self.V.shape)
        self.spike.value = V > 1.0
        self.V.value = jnp.where(self.spike, 0.0, V)


def pure_jax(n: int, steps: int, chunk: int):
    def body(carry, _):
        V, key = carry
        key, sub = jax.random.split(key)
        V = V * 0.99 + 0.0095 + 0.035 * jax.random.normal(sub, V.shape)
        s = V > 1.0
        return (jnp.where(s, 0.0, V), key), None

    run = jax.jit(lambda c: jax.lax.scan(body, c, None, length=chunk)[0])

    def go():
        c = (jnp.zeros(n), jax.random.PRNGKey(0))
        for _ in range(steps // chunk):
            c = run(c)
        jax.block_until_ready(c)
    return go


def timed(fn, repeats: int = 3) -> float:
    fn()
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--ms", type=float, default=500.0)
    args = ap.parse_args()
    steps = int(round(args.ms / 0.1))
    dense_ms = min(args.ms, 100.0)
    results, sizes = {}, {}
    _cpu.apply_pending()  # neurodyn's thread setting, before this script's first JAX call

    def nd_run(monitors, ms):
        # built and compiled once (by timed's first call); each timed call runs ms more
        nd.random.seed(0)
        pop = Pop(args.n)
        r = nd.Runner(pop, monitors=monitors, progress_bar=False, chunk_size=1000)

        def go():
            go.mon = r.run(ms)
        return go

    results["pure JAX, no record"] = timed(pure_jax(args.n, steps, 1000)) / steps
    none = nd_run(None, args.ms)
    results["nd, no monitor"] = timed(none) / steps
    ev = nd_run({"S": nd.SpikeMonitor("spike")}, args.ms)
    results["nd, SpikeMonitor"] = timed(ev) / steps
    rec = ev.mon["S"]
    sizes["SpikeMonitor"] = rec.steps.nbytes + rec.indices.nbytes
    dense = nd_run(["spike"], dense_ms)
    results[f"nd, dense bool ({dense_ms:g} ms)"] = timed(dense) / int(round(dense_ms / 0.1))
    sizes[f"dense ({dense_ms:g} ms)"] = dense.mon["spike"].nbytes

    print(f"jax {jax.__version__} on {jax.devices()[0].platform}; N = {args.n}, {args.ms:g} ms "
          f"({steps} steps), {len(rec)} spikes ({rec.rates().mean():.1f} Hz)")
    base = results["pure JAX, no record"]
    for k, v in results.items():
        print(f"  {k:32s} {v * 1e6:9.1f} us/step   x{v / base:5.2f} of pure JAX")
    for k, v in sizes.items():
        print(f"  host memory {k:20s} {v / 2**20:9.1f} MiB")


if __name__ == "__main__":
    main()
