"""Data-parallel training across 2 processes on this machine (loopback, CPU devices, gloo).

The launcher starts two copies of this script as workers. Each joins the job
with ``nd.distributed.initialize`` (a thin layer over ``jax.distributed``),
builds the same model from the same seed, and trains on *its own half* of
every batch; ``nd.Trainer(mesh=...)`` assembles the global batch from the
processes' halves and XLA all-reduces the gradients over gloo. The launcher
then trains the same model on the whole batches in one process and checks
that the two loss curves agree within float tolerance.

Run:  python examples/distributed_training.py [--epochs 3] [--timeout 120]
Worker (started by the launcher):  ... --worker --process-id I --port P --out FILE
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np

N_PROCESSES = 2
BATCH = 32          # global batch; each process feeds BATCH // N_PROCESSES samples
N_BATCHES = 8


def make_data(seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """A fixed list of global batches of a noisy linear regression with a nonlinearity."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(8, 2))
    out = []
    for _ in range(N_BATCHES):
        x = rng.normal(size=(BATCH, 8)).astype(np.float32)
        y = (np.tanh(x @ w) + 0.05 * rng.normal(size=(BATCH, 2))).astype(np.float32)
        out.append((x, y))
    return out


def train(batches: list, epochs: int, mesh) -> list[float]:
    """Train a small MLP; ``batches`` are this process's parts of the global batches."""
    import jax
    import jax.numpy as jnp
    import neurodyn as nd
    from neurodyn import nn, optim

    nd.random.seed(0)  # the same initial parameters in every process
    model = nn.Sequential(nn.Linear(8, 32), jax.nn.tanh, nn.Linear(32, 2))
    trainer = nd.Trainer(model, lambda m, b: jnp.mean((m(b[0]) - b[1]) ** 2), optim.Adam(1e-2),
                         mesh=mesh, progress_bar=False)
    return trainer.fit(batches, epochs=epochs)["loss"]


def worker(args: argparse.Namespace) -> None:
    import neurodyn as nd
    # before anything else touches JAX: the job spans both processes
    nd.distributed.initialize(f"127.0.0.1:{args.port}", num_processes=N_PROCESSES,
                              process_id=args.process_id, initialization_timeout=args.timeout)
    try:
        mesh = nd.distributed.make_mesh()  # one CPU device per process, 2 in all
        half = BATCH // N_PROCESSES
        lo = args.process_id * half
        mine = [(x[lo:lo + half], y[lo:lo + half]) for x, y in make_data()]
        losses = train(mine, args.epochs, mesh)
        if nd.distributed.process_index() == 0:
            with open(args.out, "w") as f:
                json.dump({"losses": losses, "devices": len(mesh.devices.flat),
                           "processes": nd.distributed.process_count()}, f)
    finally:
        nd.distributed.shutdown()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(epochs: int, timeout: float) -> dict:
    """Run the 2-process job and the 1-process reference; returns both curves (raises on failure)."""
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=1")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "losses.json")
        port = free_port()
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--port", str(port), "--out", out,
               "--epochs", str(epochs), "--timeout", str(int(timeout))]
        t0 = time.perf_counter()
        procs = [subprocess.Popen(cmd + ["--process-id", str(i)], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True) for i in range(N_PROCESSES)]
        logs = []
        try:
            for p in procs:
                # one deadline for the whole job: a worker waiting on a dead peer must not hang us
                left = max(1.0, timeout - (time.perf_counter() - t0))
                logs.append(p.communicate(timeout=left)[0])
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        bad = [(i, p.returncode) for i, p in enumerate(procs) if p.returncode != 0]
        if bad:
            raise RuntimeError(f"distributed_training: workers {bad} failed:\n" + "\n".join(logs))
        with open(out) as f:
            result = json.load(f)
        result["wall_s"] = time.perf_counter() - t0
    # the single-process reference on whole batches, one device
    ref = subprocess.run([sys.executable, os.path.abspath(__file__), "--reference", "--epochs", str(epochs)],
                         env=env, capture_output=True, text=True, timeout=timeout)
    if ref.returncode != 0:
        raise RuntimeError("distributed_training: reference run failed:\n" + ref.stdout + ref.stderr)
    result["reference"] = json.loads(ref.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=120., help="seconds for the whole job")
    parser.add_argument("--worker", action="store_true")
    parser.add_argument("--reference", action="store_true")
    parser.add_argument("--process-id", type=int, default=0)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    if args.reference:
        print(json.dumps(train(make_data(), args.epochs, None)))
        return
    r = launch(args.epochs, args.timeout)
    multi, single = np.asarray(r["losses"]), np.asarray(r["reference"])
    print(f"{r['processes']} processes, {r['devices']} devices, {r['wall_s']:.1f} s")
    for e, (a, b) in enumerate(zip(multi, single)):
        print(f"  epoch {e + 1}: loss {a:.6f} (2 processes)  {b:.6f} (1 process)")
    diff = float(np.max(np.abs(multi - single)))
    print(f"  max |difference| {diff:.2e}")
    if not np.allclose(multi, single, rtol=1e-5, atol=1e-6):
        sys.exit("loss curves differ beyond float tolerance")


if __name__ == "__main__":
    main()
