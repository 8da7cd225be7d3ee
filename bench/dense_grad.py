"""The weight-gradient layout of nn's dense product (nn/_dense.py), on and off, in one process.

Each workload is a compiled gradient (or Trainer step) of a neurodyn model, traced twice: with
``nn._dense`` laying out the weight gradient itself (the default) and with it switched off
(``MAX_ROWS = 0``: plain ``x @ w`` autodiff, the previous behaviour). The two are called
alternately, ``--rounds`` times ``--calls`` calls; the script prints the minimum and median time
per call and the ratio on / off, and checks that both give the same gradients.

Workloads: ``snn`` (issue 17's task: Linear 100-256, Leaky, Linear 256-10, LeakyIntegrator,
100 steps, batch 128), ``readout`` (the same with nn.LeakyReadout as the output layer), ``rleaky`` (nn.RLeaky(128) over 50 steps, batch 64),
``mlp`` (784-256-10, batch 128 and 1024).

Run: ``PYTHONPATH=. python bench/dense_grad.py [--rounds 15] [--calls 3] [--only snn,mlp]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

import neurodyn as nd  # noqa: E402
from neurodyn import nn, surrogate  # noqa: E402
from neurodyn.nn import _dense  # noqa: E402


def _spikes(shape, seed=0):
    return jnp.asarray(np.random.default_rng(seed).random(shape) < 0.05, jnp.float32)


def _labels(n, k=10, seed=1):
    return jnp.asarray(np.random.default_rng(seed).integers(0, k, n))


def snn(readout=False):
    nd.random.seed(0)
    out = [nn.LeakyReadout(256, 10, tau=10.0)] if readout else [nn.Linear(256, 10), nn.LeakyIntegrator(10, beta=0.9)]
    net = nn.Sequential(nn.Linear(100, 256), nn.Leaky(256, beta=0.9, spike_fn=surrogate.FastSigmoid(10.0)), *out)
    xs, y = _spikes((100, 128, 100)), _labels(128)
    net.reset_state(128)  # the batch shape, set outside compiled code

    def loss():
        net.reset_state(128)
        V = nd.for_loop(net, xs)
        return optax.softmax_cross_entropy_with_integer_labels(V.mean(0), y).mean()

    return net, loss


def rleaky():
    nd.random.seed(0)
    net = nn.Sequential(nn.Linear(100, 128), nn.RLeaky(128, beta=0.9, spike_fn=surrogate.FastSigmoid(10.0)),
                        nn.Linear(128, 10), nn.LeakyIntegrator(10, beta=0.9))
    xs, y = _spikes((50, 64, 100)), _labels(64)
    net.reset_state(64)

    def loss():
        net.reset_state(64)
        V = nd.for_loop(net, xs)
        return optax.softmax_cross_entropy_with_integer_labels(V.mean(0), y).mean()

    return net, loss


def mlp(batch):
    def make():
        nd.random.seed(0)
        net = nn.Sequential(nn.Linear(784, 256), jax.nn.relu, nn.Linear(256, 10))
        x = jnp.asarray(np.random.default_rng(0).random((batch, 784)), jnp.float32)
        y = _labels(batch)
        return net, lambda: optax.softmax_cross_entropy_with_integer_labels(net(x), y).mean()
    return make


WORKLOADS = {"snn": snn, "readout": lambda: snn(True), "rleaky": rleaky,
             "mlp128": mlp(128), "mlp1024": mlp(1024)}


def compiled_grad(make, max_rows):
    """The model's compiled gradient function, traced with ``_dense.MAX_ROWS = max_rows``."""
    net, loss = make()
    old = _dense.MAX_ROWS
    _dense.MAX_ROWS = max_rows
    try:
        f = nd.jit(lambda: nd.grad(loss, grad_vars=net.train_vars())())
        g = jax.block_until_ready(f())  # traces now, under this setting
    finally:
        _dense.MAX_ROWS = old
    return f, g


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--calls", type=int, default=3)
    ap.add_argument("--only", default=",".join(WORKLOADS))
    args = ap.parse_args()
    names = args.only.split(",")
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        ap.error(f"unknown workloads {unknown}; known: {list(WORKLOADS)}")
    print(f"jax {jax.__version__} on {jax.default_backend()}, {os.cpu_count()} CPUs; "
          f"{args.rounds} rounds x {args.calls} calls, on / off alternated")
    print(f"{'workload':10s} {'on min':>8s} {'off min':>8s} {'on med':>8s} {'off med':>8s} "
          f"{'min on/off':>10s} {'med on/off':>10s} {'grad rel. diff':>14s}")
    for name in names:
        fns = {}
        grads = {}
        for mode, rows in (("on", _dense.MAX_ROWS), ("off", 0)):
            fns[mode], grads[mode] = compiled_grad(WORKLOADS[name], rows)
        diff = max(float(jnp.max(jnp.abs(grads["on"][k] - grads["off"][k])) / (jnp.max(jnp.abs(grads["off"][k])) + 1e-30))
                   for k in grads["off"])
        times = {m: [] for m in fns}
        for r in range(args.rounds):
            for mode in (("on", "off") if r % 2 == 0 else ("off", "on")):
                t0 = time.perf_counter()
                for _ in range(args.calls):
                    out = fns[mode]()
                jax.block_until_ready(out)
                times[mode].append((time.perf_counter() - t0) / args.calls * 1e3)
        mn = {m: min(t) for m, t in times.items()}
        md = {m: statistics.median(t) for m, t in times.items()}
        print(f"{name:10s} {mn['on']:7.2f}ms {mn['off']:7.2f}ms {md['on']:7.2f}ms {md['off']:7.2f}ms "
              f"{mn['on'] / mn['off']:10.2f} {md['on'] / md['off']:10.2f} {diff:14.1e}", flush=True)


if __name__ == "__main__":
    main()
