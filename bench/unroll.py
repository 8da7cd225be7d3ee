"""Compile and run time of ``nd.for_loop(..., unroll=k)`` for a spiking network's training step.

The step is bench/snn_peers.py's network (Linear 100-256, Leaky, Linear 256-10, leaky readout,
batch 128, 100 time steps): loss and gradients through ``nd.for_loop`` with ``unroll=k``. For
each ``k``: the first call (trace + compile + run) and the minimum and median of ``--calls``
further calls, all in one process.

Run: ``python bench/unroll.py [--unrolls 1,2,5,10] [--calls 20]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import neurodyn as nd  # noqa: E402
from neurodyn import nn, surrogate  # noqa: E402


def main(unrolls: list[int], calls: int) -> None:
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} CPUs")
    x = (np.random.default_rng(0).random((128, 100, 100)) < 0.02).astype(np.float32)
    y = np.random.default_rng(1).integers(0, 10, 128).astype(np.int32)
    base = None
    for k in unrolls:
        nd.random.seed(0)
        net = nn.Sequential(nn.Linear(100, 256), nn.Leaky(256, beta=0.9, spike_fn=surrogate.FastSigmoid(10.0)),
                            nn.Linear(256, 10), nn.LeakyIntegrator(10, beta=0.9))

        def loss(xb, yb):
            net.reset_state(128)
            V = nd.for_loop(net, jnp.swapaxes(xb, 0, 1), unroll=k)
            return optax.softmax_cross_entropy_with_integer_labels(V.mean(0), yb).mean()

        net.reset_state(128)  # batch-shaped state, outside compiled code
        step = nd.jit(nd.value_and_grad(loss, grad_vars=net.train_vars()))
        t0 = time.perf_counter()
        jax.block_until_ready(step(x, y))
        first = time.perf_counter() - t0
        ts = []
        for _ in range(calls):
            t0 = time.perf_counter()
            jax.block_until_ready(step(x, y))
            ts.append(time.perf_counter() - t0)
        med = statistics.median(ts)
        base = base or med
        print(f"unroll={k:>3}: first call {first:6.2f} s, per call min {min(ts) * 1e3:7.1f} ms, median "
              f"{med * 1e3:7.1f} ms ({med / base:.2f}x unroll=1's median)", flush=True)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--unrolls", default="1,2,5,10")
    p.add_argument("--calls", type=int, default=20)
    a = p.parse_args()
    main([int(u) for u in a.unrolls.split(",")], a.calls)
