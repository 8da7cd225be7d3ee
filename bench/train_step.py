"""Per-step time of ``nd.Trainer.step`` against a hand-written ``jax.jit`` + optax step.

Same model, same data, same process; the two are interleaved in alternating
rounds, every step is blocked on before the clock is read, and medians are
reported. Also: compile time of the first step, the throughput of
``steps_per_call=10`` against one step per call on the small model, and the
cost of the progress bar in a whole-epoch call (ticked from the device every
tenth of the epoch, against a tick every step and no bar).

Run: ``python bench/train_step.py [--quick]``
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import neurodyn as nd
from neurodyn import nn, optim


class LinearNet(nd.Module):
    """The seed's LinearNet: ``(x @ w + b) @ r``."""

    def __init__(self, n_in: int, n_out: int) -> None:
        self.w = nd.TrainVar(nd.random.random((n_in, n_out)))
        self.b = nd.TrainVar(jnp.zeros(n_out))
        self.r = nd.TrainVar(nd.random.random((n_out, 1)))

    def update(self, x):
        return (x @ self.w + self.b) @ self.r


def linear_loss(model, batch):
    x, y = batch
    return jnp.mean((model(x) - y) ** 2)


def linear_ref_loss(p, x, y):
    return jnp.mean(((x @ p["w"] + p["b"]) @ p["r"] - y) ** 2)


def mlp_loss(model, batch):
    x, y = batch
    return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()


def mlp_ref_loss(p, x, y):
    h = jax.nn.relu(x @ p["layers.0.weight"] + p["layers.0.bias"])
    h = jax.nn.relu(h @ p["layers.2.weight"] + p["layers.2.bias"])
    logits = h @ p["layers.4.weight"] + p["layers.4.bias"]
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def make_ref_step(loss, tx, donate: bool):
    def step(params, state, x, y):
        l, g = jax.value_and_grad(loss)(params, x, y)
        u, state = tx.update(g, state, params)
        return optax.apply_updates(params, u), state, l
    return jax.jit(step, donate_argnums=(0, 1) if donate else ())


def timed(fn) -> float:
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - t0


def compare(name: str, model, loss, ref_loss, make_opt, tx, batch, rounds: int, per_round: int,
            donate: bool = False) -> None:
    params = {k: jnp.array(v.value) for k, v in model.train_vars().items()}
    trainer = nd.Trainer(model, loss, make_opt(), progress_bar=False, donate=donate)
    ref = make_ref_step(ref_loss, tx, donate)
    ref_state = [params, tx.init(params)]

    def ref_call():
        p, s, l = ref(ref_state[0], ref_state[1], *batch)
        ref_state[0], ref_state[1] = p, s
        return l, p

    first_param = next(iter(model.train_vars().values()))

    def nd_call():
        return trainer.step(batch), first_param.value

    c_nd, c_ref = timed(nd_call), timed(ref_call)
    for _ in range(3):
        nd_call(), ref_call()
    t_nd, t_ref = [], []
    for r in range(rounds):
        first, second = (nd_call, ref_call) if r % 2 == 0 else (ref_call, nd_call)
        a = [timed(first) for _ in range(per_round)]
        b = [timed(second) for _ in range(per_round)]
        if r % 2 == 1:
            a, b = b, a
        t_nd += a
        t_ref += b
    m_nd, m_ref = statistics.median(t_nd), statistics.median(t_ref)
    tag = " (donate=True)" if donate else ""
    print(f"{name}{tag}: trainer.step {m_nd * 1e3:.3f} ms, jax.jit+optax {m_ref * 1e3:.3f} ms, "
          f"ratio {m_nd / m_ref:.3f}  | first step (trace+compile+run): trainer {c_nd:.2f} s, "
          f"jax.jit {c_ref:.2f} s")


def steps_per_call(model, batch, k: int, rounds: int) -> None:
    one = nd.Trainer(model, linear_loss, optim.SGD(1e-6), progress_bar=False)
    stacked = jax.tree.map(lambda a: np.stack([np.asarray(a)] * k), batch)
    one.step(batch), one.steps(stacked)  # compile both
    t_one, t_k = [], []
    for _ in range(rounds):
        t_one.append(timed(lambda: [one.step(batch) for _ in range(k)][-1]) / k)
        t_k.append(timed(lambda: one.steps(stacked)) / k)
    m1, mk = statistics.median(t_one), statistics.median(t_k)
    print(f"LinearNet 100-200-1 SGD, batch {len(batch[0])}, steps_per_call={k}: {1 / mk:,.0f} steps/s vs one step per call {1 / m1:,.0f} steps/s "
          f"(throughput x{m1 / mk:.2f})")


def progress_ticks(model, x, y, rounds: int) -> None:
    import contextlib
    import io

    import neurodyn._trainer as trainer_module

    default = trainer_module._TICKS
    trainers = {}
    for name, ticks, bar in (("no bar", default, False), ("bar ticked every step", 10 ** 9, True),
                             (f"bar ticked {default} times per epoch", default, True)):
        trainer_module._TICKS = ticks  # read when the epoch call is traced
        tr = nd.Trainer(model, linear_loss, optim.SGD(1e-6), progress_bar=bar)
        with contextlib.redirect_stderr(io.StringIO()):
            tr.fit((x, y), batch_size=4, seed=0)
        trainers[name] = tr
    trainer_module._TICKS = default
    times = {k: [] for k in trainers}
    with contextlib.redirect_stderr(io.StringIO()):
        for r in range(rounds):
            for k in (list(trainers) if r % 2 == 0 else list(trainers)[::-1]):
                times[k].append(timed(lambda: (trainers[k].fit((x, y), batch_size=4, seed=0),
                                               trainers[k].model.w.value)[1]))
    base = statistics.median(times["no bar"])
    steps = len(x) // 4
    print(f"whole-epoch fit, LinearNet, {steps} steps of batch 4: " + ", ".join(
        f"{k} {statistics.median(t) / steps * 1e6:.1f} us/step ({statistics.median(t) / base:.2f}x)"
        for k, t in times.items()))


def main(quick: bool = False) -> None:
    rounds, per_round = (6, 5) if quick else (20, 10)
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}; medians over {rounds} alternating rounds "
          f"of {per_round} blocked steps")
    nd.random.seed(0)
    x = np.asarray(nd.random.random((1000, 100)))
    y = np.asarray(nd.random.random((1000, 1)))
    net = LinearNet(100, 200)
    compare("LinearNet 100-200-1 SGD, batch 1000", net, linear_loss, linear_ref_loss,
            lambda: optim.SGD(1e-6), optax.sgd(1e-6), (x, y), rounds, per_round)

    rng = np.random.default_rng(0)
    xb = rng.normal(size=(128, 784)).astype(np.float32)
    yb = rng.integers(0, 10, size=128).astype(np.int32)
    for donate in (False, True):
        nd.random.seed(1)
        mlp = nn.Sequential(nn.Linear(784, 256), jax.nn.relu, nn.Linear(256, 256), jax.nn.relu, nn.Linear(256, 10))
        compare("MLP 784-256-256-10 Adam, batch 128", mlp, mlp_loss, mlp_ref_loss,
                lambda: optim.Adam(1e-3), optax.adam(1e-3), (xb, yb), rounds, per_round, donate)

    nd.random.seed(2)
    small = LinearNet(100, 200)
    steps_per_call(small, (x[:32], y[:32]), 10, rounds)
    progress_ticks(small, x, y, max(rounds // 2, 3))


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="fewer rounds")
    main(p.parse_args().quick)
