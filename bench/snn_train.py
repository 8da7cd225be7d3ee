"""Seconds per training epoch of examples/snn_classification.py against hand-written pure JAX.

The reference is the same network written with ``jax.lax.scan``, a
``jax.custom_vjp`` FastSigmoid spike and ``optax.adam``: Linear(100, 128) ->
LIF (tau 10 ms, R = tau/dt, threshold 1, reset to 0 detached from the graph)
-> leaky readout (tau 20 ms), logits = readout membrane averaged over time,
cross-entropy + rate regularizer. Both train on the same batches (4096
samples, batch 128, 100 steps) from the same initial parameters, in the same
process, in alternating rounds; each epoch is blocked on before the clock is
read, and medians are reported. The losses of the first epoch are compared
to check that the two compute the same thing.

Run: ``python bench/snn_train.py [--rounds N]``
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import neurodyn as nd
from neurodyn import optim

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples"))
import snn_classification as ex  # noqa: E402

TAU, TAU_OUT, ALPHA, DT = 10.0, 20.0, 10.0, 1.0
REG, TARGET = 1.0, 0.02


@jax.custom_vjp
def spike(x):
    return (x >= 0).astype(x.dtype)


def _spike_fwd(x):
    return spike(x), x


def _spike_bwd(x, g):
    return (g / (1 + ALPHA * jnp.abs(x)) ** 2,)


spike.defvjp(_spike_fwd, _spike_bwd)


def ref_loss(p, x, y):
    """The example's network and loss, written directly on arrays."""
    xs = jnp.swapaxes(x.astype(jnp.float32), 0, 1)
    decay, a = math.exp(-DT / TAU), math.exp(-DT / TAU_OUT)
    R = TAU / DT
    batch = x.shape[0]

    def step(carry, x_t):
        V, Vo = carry
        I = x_t @ p["fc.weight"] + p["fc.bias"]
        V_inf = R * I
        V_new = V_inf + (V - V_inf) * decay
        s = spike(V_new - 1.0)
        V = V_new * (1 - jax.lax.stop_gradient(s))
        Vo = a * Vo + (1 - a) * (s @ p["out.weight"] + p["out.bias"])
        return (V, Vo), (Vo, s)

    init = (jnp.zeros((batch, p["fc.weight"].shape[1])), jnp.zeros((batch, p["out.weight"].shape[1])))
    _, (Vo, s) = jax.lax.scan(step, init, xs)
    logits = Vo.mean(0)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    return ce + REG * jnp.mean((s.mean((0, 1)) - TARGET) ** 2)


def make_ref_step(tx):
    @jax.jit
    def step(params, state, x, y):
        loss, g = jax.value_and_grad(ref_loss)(params, x, y)
        u, state = tx.update(g, state, params)
        return optax.apply_updates(params, u), state, loss
    return step


def batches(x, y, bs, seed, epoch):
    # The Trainer's own order (seed, epoch), so both see the same batches.
    order = np.random.default_rng([seed, epoch]).permutation(len(x))
    for k in range(len(x) // bs):
        idx = order[k * bs:(k + 1) * bs]
        yield x[idx], y[idx]


def main(rounds: int = 5, n_train: int = 4096, batch_size: int = 128, lr: float = 5e-3) -> dict:
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}; {n_train} samples, batch {batch_size}, "
          f"100 steps, 100-128-10; medians over {rounds} alternating rounds of one epoch each")
    nd.set_dt(DT)
    nd.random.seed(0)
    patterns = ex.make_patterns(10, 100, 100, rate_hz=20.0, seed=0)
    x, y = ex.make_data(patterns, n_train, 100, 100, seed=1)

    model = ex.SNN(100, 128, 10)
    params = {k: jnp.array(v.value) for k, v in model.train_vars().items()}
    trainer = nd.Trainer(model, ex.loss_fn, optim.Adam(lr), progress_bar=False)
    tx = optax.adam(lr)
    ref_step = make_ref_step(tx)
    ref = {"p": params, "s": tx.init(params)}
    epoch = {"nd": 0, "ref": 0}

    def nd_epoch():
        trainer.fit((x, y), epochs=1, batch_size=batch_size, seed=0, drop_last=True)
        return trainer.history["loss"][-1], model.fc.weight.value

    def ref_epoch():
        losses = []
        for xb, yb in batches(x, y, batch_size, 0, epoch["ref"]):
            ref["p"], ref["s"], l = ref_step(ref["p"], ref["s"], xb, yb)
            losses.append(l)
        epoch["ref"] += 1
        return float(np.mean(jax.device_get(losses))), ref["p"]

    def timed(fn):
        t0 = time.perf_counter()
        out = jax.block_until_ready(fn())
        return time.perf_counter() - t0, out

    c_nd, (l_nd, _) = timed(nd_epoch)   # first epochs include tracing and compilation
    c_ref, (l_ref, _) = timed(ref_epoch)
    print(f"first epoch (compile + run): neurodyn {c_nd:.2f} s, pure JAX {c_ref:.2f} s; "
          f"mean loss neurodyn {l_nd:.5f}, pure JAX {l_ref:.5f}")
    t_nd, t_ref = [], []
    for r in range(rounds):
        order = [("nd", nd_epoch), ("ref", ref_epoch)]
        if r % 2:
            order.reverse()
        for name, fn in order:
            (t_nd if name == "nd" else t_ref).append(timed(fn)[0])
    m_nd, m_ref = statistics.median(t_nd), statistics.median(t_ref)
    print(f"epoch times neurodyn {[round(t, 3) for t in t_nd]}")
    print(f"epoch times pure JAX {[round(t, 3) for t in t_ref]}")
    print(f"seconds per epoch: neurodyn Trainer {m_nd:.3f}, pure JAX {m_ref:.3f}, ratio {m_nd / m_ref:.3f} "
          f"(target <= 1.1)")
    return {"nd": m_nd, "ref": m_ref, "ratio": m_nd / m_ref, "loss_nd": l_nd, "loss_ref": l_ref}


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rounds", type=int, default=5)
    main(p.parse_args().rounds)
