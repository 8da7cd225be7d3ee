"""A GRU trained with nd.Trainer on delayed recall: remember the first symbol of a sequence.

Each sequence starts with a cue symbol (one of ``n_symbols``, one-hot), followed
by ``length - 1`` random distractor symbols from the same alphabet; at the end
the network must name the cue. Chance is ``1 / n_symbols``; solving it needs
memory over the whole sequence (the last symbols carry no information).

Run: ``python examples/gru_sequence.py [--small]``
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

import neurodyn as nd
from neurodyn import nn, optim


def make_data(n: int, length: int, n_symbols: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    symbols = rng.integers(0, n_symbols, size=(n, length))
    x = np.eye(n_symbols, dtype=np.float32)[symbols]  # (batch, time, symbols)
    return x, symbols[:, 0].astype(np.int32)


class Recall(nd.Module):
    """GRU over a batch-major sequence, then a linear read-out of the last hidden state."""

    def __init__(self, n_symbols: int, hidden: int) -> None:
        self.gru = nn.GRU(n_symbols, hidden, batch_first=True)
        self.out = nn.Linear(hidden, n_symbols)

    def forward(self, x):
        return self.out(self.gru(x)[:, -1])


def loss_fn(model: Recall, batch):
    x, y = batch
    logits = model(x)
    loss = -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1))
    return loss, {"acc": jnp.mean(logits.argmax(-1) == y)}


def main(length: int = 12, n_symbols: int = 4, hidden: int = 48, n_train: int = 2048, epochs: int = 8,
         batch_size: int = 64, lr: float = 1e-2, seed: int = 0, progress_bar: bool = True) -> dict:
    nd.random.seed(seed)
    x, y = make_data(n_train, length, n_symbols, seed)
    x_test, y_test = make_data(512, length, n_symbols, seed + 1)
    model = Recall(n_symbols, hidden)
    trainer = nd.Trainer(model, loss_fn, optim.Adam(lr), progress_bar=progress_bar)
    before = trainer.evaluate((x_test, y_test), batch_size=256)
    history = trainer.fit((x, y), epochs=epochs, batch_size=batch_size, seed=seed)
    after = trainer.evaluate((x_test, y_test), batch_size=256)
    print(f"chance accuracy {1 / n_symbols:.3f}")
    print(f"test accuracy before training {before['acc']:.3f}, after {after['acc']:.3f}")
    print(f"train loss per epoch: {[round(v, 4) for v in history['loss']]}")
    return {"chance": 1 / n_symbols, "before": before, "after": after, "history": history}


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--small", action="store_true", help="reduced sizes (for smoke tests)")
    a = p.parse_args()
    if a.small:
        main(length=6, hidden=24, n_train=1024, epochs=6, progress_bar=False)
    else:
        main()
