"""The seed's LogisticRegression: gradient steps on the weights held in a Variable, jitted vs not.

Run: ``python examples/logistic_regression.py [--small]``
"""

from __future__ import annotations

import argparse
import time

import jax.numpy as jnp

import neurodyn as nd


class LogisticRegression(nd.Module):
    def __init__(self, dimension: int) -> None:
        self.dimension = dimension
        self.w = nd.Variable(2.0 * jnp.ones(dimension) - 1.3)

    def __call__(self, X, Y):
        u = jnp.dot(((1.0 / (1.0 + jnp.exp(-Y * jnp.dot(X, self.w))) - 1.0) * Y), X)
        self.w.value = self.w - u


def make_data(n: int, dim: int):
    w_true = nd.random.normal(0.0, 1.0, size=dim)
    X = nd.random.normal(0.0, 1.0, size=(n, dim))
    Y = jnp.where(X @ w_true > 0, 1.0, -1.0)
    return X, Y


def accuracy(model: LogisticRegression, X, Y) -> float:
    return float(jnp.mean(jnp.sign(X @ model.w.value) == Y))


def run(model: LogisticRegression, step, X, Y, iterations: int) -> float:
    step(X, Y)  # warm up (compiles the jitted version)
    model.w.value = 2.0 * jnp.ones(model.dimension) - 1.3
    t0 = time.perf_counter()
    for _ in range(iterations):
        step(X, Y)
    model.w.value.block_until_ready()
    return time.perf_counter() - t0


def main(n: int = 10000, dim: int = 100, iterations: int = 100, seed: int = 0) -> dict:
    nd.random.seed(seed)
    X, Y = make_data(n, dim)
    lr_plain = LogisticRegression(dim)
    acc0 = accuracy(lr_plain, X, Y)
    t_plain = run(lr_plain, lr_plain, X, Y, iterations)
    lr_jit = LogisticRegression(dim)
    t_jit = run(lr_jit, nd.jit(lr_jit), X, Y, iterations)
    acc_plain, acc_jit = accuracy(lr_plain, X, Y), accuracy(lr_jit, X, Y)
    same = bool(jnp.allclose(lr_plain.w.value, lr_jit.w.value, rtol=1e-4, atol=1e-4))
    print(f"accuracy before {acc0:.3f}, after {iterations} steps: eager {acc_plain:.3f}, jitted {acc_jit:.3f}")
    print(f"eager and jitted weights agree: {same}")
    print(f"without jit: {t_plain:.4f} s, with jit: {t_jit:.4f} s, speed-up {t_plain / t_jit:.1f}x")
    return {"acc_before": acc0, "acc_eager": acc_plain, "acc_jit": acc_jit, "same": same,
            "t_eager": t_plain, "t_jit": t_jit}


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--small", action="store_true", help="reduced sizes (for smoke tests)")
    a = p.parse_args()
    if a.small:
        main(n=500, dim=10, iterations=20)
    else:
        main()
