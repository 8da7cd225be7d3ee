"""The seed LinearNet trained with SGD (lr=1e-6) for 30 steps; prints the loss each step.

Run: ``python examples/linear_net_sgd.py [--small]``
"""

from __future__ import annotations

import argparse

import jax.numpy as jnp

import neurodyn as nd
from neurodyn import optim


class LinearNet(nd.Module):
    def __init__(self, n_in: int, n_out: int) -> None:
        self.w = nd.TrainVar(nd.random.random((n_in, n_out)))
        self.b = nd.TrainVar(jnp.zeros(n_out))
        self.r = nd.TrainVar(nd.random.random((n_out, 1)))

    def update(self, x):
        h = x @ self.w + self.b
        return h @ self.r

    def loss(self, x, y):
        return jnp.mean((self.update(x) - y) ** 2)


def main(n_in: int = 100, n_out: int = 200, n_samples: int = 1000, steps: int = 30, seed: int = 0) -> list[float]:
    nd.random.seed(seed)
    ln = LinearNet(n_in, n_out)
    opt = optim.SGD(lr=1e-6, train_vars=ln.train_vars())
    f_grad = nd.grad(ln.loss, grad_vars=ln.train_vars(), return_value=True)

    def train(X, Y):
        grads, loss = f_grad(X, Y)
        opt.update(grads)
        return loss

    train_jit = nd.jit(train)
    xs = nd.random.random((n_samples, n_in))
    ys = nd.random.random((n_samples, 1))
    losses = []
    for i in range(steps):
        loss = float(train_jit(xs, ys))
        losses.append(loss)
        print(f"Train {i}, loss = {loss:.2f}")
    return losses


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--small", action="store_true", help="reduced sizes (for smoke tests)")
    a = p.parse_args()
    if a.small:
        main(n_in=20, n_out=40, n_samples=100, steps=10)
    else:
        main()
