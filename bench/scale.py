"""Throughput with 1, 2 and 4 devices: data-parallel training and a sharded COBA simulation.

Training: an MLP trained with ``nd.Trainer(mesh=n)`` against a hand-written
``jax.jit`` + optax step with the same shardings (batch ``P('data')``, params
and optimizer state replicated), interleaved in rounds in this process;
steps/s and samples/s, medians. Simulation: the COBA network of
``examples/ei_network.py`` run by ``nd.Runner(mesh=n)``; simulated seconds
per wall second (there is no sharded pure-JAX COBA to compare with: the
reference in ``bench/coba_jax.py`` takes a fixed single-device layout).

On a CPU-only machine the script asks XLA for 4 virtual CPU devices (they
share the same cores), so the figures only show whether anything serialises
or blows up; a speed-up needs real devices (run it where ``jax.devices()``
lists several GPUs, and it uses those instead).

Run: ``python bench/scale.py [--quick]``
"""

from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import sys
import time

if "--xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4").strip()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec as P  # noqa: E402

import neurodyn as nd  # noqa: E402
from neurodyn import nn, optim  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "examples"))
from ei_network import COBANet  # noqa: E402

LAYERS = (784, 512, 512, 10)


def mlp_loss(model, batch):
    x, y = batch
    return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()


def ref_loss(p, x, y):
    h = x
    n = len(LAYERS) - 1
    for i in range(n):
        h = h @ p[f"layers.{2 * i}.weight"] + p[f"layers.{2 * i}.bias"]
        if i < n - 1:
            h = jax.nn.relu(h)
    return optax.softmax_cross_entropy_with_integer_labels(h, y).mean()


def build_trainer(mesh):
    nd.random.seed(0)
    mods = []
    for i in range(len(LAYERS) - 1):
        mods.append(nn.Linear(LAYERS[i], LAYERS[i + 1]))
        if i < len(LAYERS) - 2:
            mods.append(jax.nn.relu)
    model = nn.Sequential(*mods)
    return nd.Trainer(model, mlp_loss, optim.Adam(1e-3), mesh=mesh, progress_bar=False)


def build_ref(trainer, mesh):
    """A hand-written step on the same initial parameters, with the same shardings."""
    tx = optax.adam(1e-3)
    rep = NamedSharding(mesh, P())
    params = {k: jax.device_put(np.asarray(v.value), rep) for k, v in trainer.model.train_vars().items()}
    state = jax.device_put(tx.init(params), rep)

    @jax.jit
    def step(params, state, x, y):
        loss, g = jax.value_and_grad(ref_loss)(params, x, y)
        upd, state = tx.update(g, state, params)
        return optax.apply_updates(params, upd), state, loss

    return step, params, state


def bench_training(counts, batch, steps, rounds):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, LAYERS[0])).astype(np.float32)
    y = rng.integers(0, LAYERS[-1], size=batch).astype(np.int32)
    print(f"\nTraining: MLP {LAYERS}, Adam, batch {batch} (split over the devices), {steps} steps per timing")
    print(f"{'devices':>7} | {'nd steps/s':>10} | {'jax steps/s':>11} | {'nd/jax':>6} | {'nd samples/s':>12}")
    rows = []
    for n in counts:
        mesh = nd.distributed.make_mesh(n)
        trainer = build_trainer(mesh)
        data = NamedSharding(mesh, P("data"))
        xb, yb = jax.device_put(x, data), jax.device_put(y, data)
        step, params, state = build_ref(trainer, mesh)
        jax.block_until_ready(trainer.step((xb, yb)))          # compile both
        params, state, _ = jax.block_until_ready(step(params, state, xb, yb))
        t_nd, t_jax = [], []
        for _ in range(rounds):
            t0 = time.perf_counter()
            for _ in range(steps):
                out = trainer.step((xb, yb))
            jax.block_until_ready((out, [v.value for v in trainer.model.train_vars().values()]))
            t_nd.append((time.perf_counter() - t0) / steps)
            t0 = time.perf_counter()
            for _ in range(steps):
                params, state, loss = step(params, state, xb, yb)
            jax.block_until_ready((params, loss))
            t_jax.append((time.perf_counter() - t0) / steps)
        a, b = statistics.median(t_nd), statistics.median(t_jax)
        rows.append((n, 1 / a, 1 / b))
        print(f"{n:>7} | {1 / a:>10.1f} | {1 / b:>11.1f} | {b / a:>6.2f} | {batch / a:>12.0f}")
    return rows


def bench_simulation(counts, scale, duration, rounds):
    n_neurons = int(3200 * scale) + int(800 * scale)
    print(f"\nSimulation: COBA, {n_neurons} neurons, {duration:g} ms per timing, state split along the neuron axis")
    print(f"{'devices':>7} | {'sim s / wall s':>14} | {'compile s':>9} | {'E spikes':>8}")
    rows = []
    for n in counts:
        nd.random.seed(1)
        net = COBANet(scale=scale, seed=1)
        runner = nd.Runner(net, monitors=["E.spike"], inputs=[("E.input", 20.), ("I.input", 20.)],
                           progress_bar=False, mesh=None if n == 0 else n, chunk_size=1000)
        runner.run(duration)  # compile + warm up
        compile_s = runner.stats["compile_s"]
        times = []
        for _ in range(rounds):
            runner.run(duration)
            times.append(runner.stats["run_s"])
        spikes = int(runner.mon["E.spike"].sum())
        speed = (duration / 1000.) / statistics.median(times)
        label = "none" if n == 0 else str(n)
        rows.append((label, speed))
        print(f"{label:>7} | {speed:>14.3f} | {compile_s:>9.2f} | {spikes:>8}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and a smaller network")
    args = parser.parse_args()
    have = jax.device_count()
    counts = [n for n in (1, 2, 4) if n <= have]
    print(f"jax {jax.__version__}, {have} {jax.devices()[0].platform} devices "
          f"({os.cpu_count()} CPU cores), counts {counts}")
    if args.quick:
        bench_training(counts, batch=256, steps=10, rounds=3)
        bench_simulation([0] + counts, scale=0.5, duration=100., rounds=2)
    else:
        bench_training(counts, batch=512, steps=20, rounds=5)
        bench_simulation([0] + counts, scale=1.0, duration=200., rounds=3)


if __name__ == "__main__":
    main()
