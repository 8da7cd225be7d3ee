"""A recurrent spiking network on a synthetic Spiking-Heidelberg-Digits-shaped task.

The Spiking Heidelberg Digits (SHD) are spoken digits turned into spikes of
700 cochlear channels, one variable-length event stream per utterance
(tonic's event arrays with fields ``x`` (channel), ``t`` (microseconds) and
``p``). No download is possible here, so this example makes streams of the
same shape: every class is a few "formant" tracks, straight lines in
(normalised time, channel) space; an utterance lasts 0.5-1 s, draws its
events along its class's tracks with channel jitter, and adds background
events. Classes differ only in where the tracks run, as spoken digits do.

Pipeline: event arrays -> ``encoders.bin_events`` (10 ms bins) ->
``encoders.pad_sequences`` (zero padding after each stream's end) ->
Linear(700, hidden) -> ``nn.RLeaky`` (explicit recurrent weights) ->
Linear(hidden, classes) -> ``nn.LeakyIntegrator``; the logits are the
readout's maximum over time. The Trainer resets the state before every batch
on its own (the spiking layers ask for it).

Run: ``python examples/shd_synthetic.py [--small] [--epochs N]``
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import neurodyn as nd
from neurodyn import encoders, nn, optim, surrogate

N_CHANNELS = 700
SHD_DTYPE = np.dtype([("x", np.int16), ("t", np.int64), ("p", np.int8)])  # tonic's SHD events


def make_classes(n_classes: int, n_tracks: int, seed: int) -> np.ndarray:
    """Each class's tracks: ``(n_classes, n_tracks, 2)`` start and end channel."""
    rng = np.random.default_rng(seed)
    return rng.uniform(50, N_CHANNELS - 50, size=(n_classes, n_tracks, 2))


def make_stream(tracks: np.ndarray, rng: np.random.Generator, events_per_track: int = 300,
                jitter: float = 12.0, noise_events: int = 200) -> np.ndarray:
    """One utterance: a tonic-style event array (``x``, ``t`` in us, ``p``), sorted by time."""
    duration_us = rng.uniform(0.5e6, 1.0e6)
    xs, ts = [], []
    for start, end in tracks:
        tau = rng.random(events_per_track)
        xs.append(start + (end - start) * tau + rng.normal(0.0, jitter, events_per_track))
        ts.append(tau * duration_us)
    xs.append(rng.uniform(0, N_CHANNELS, noise_events))
    ts.append(rng.uniform(0, duration_us, noise_events))
    x, t = np.concatenate(xs), np.concatenate(ts)
    keep = (x >= 0) & (x < N_CHANNELS)
    order = np.argsort(t[keep])
    ev = np.zeros(int(keep.sum()), SHD_DTYPE)
    ev["x"], ev["t"] = np.rint(x[keep][order]), t[keep][order]
    return ev


def make_data(classes: np.ndarray, n: int, seed: int, bin_us: float = 10_000.0,
              n_steps: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` utterances binned: spikes ``(n, n_steps, 700)`` uint8, labels, and stream lengths in bins."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, len(classes), size=n).astype(np.int32)
    frames = [encoders.bin_events(make_stream(classes[c], rng), (N_CHANNELS, 1, 1), time_window=bin_us,
                                  dtype=np.uint8).reshape(-1, N_CHANNELS) for c in y]
    x, lengths = encoders.pad_sequences(frames, length=n_steps)
    return x, y, lengths


class RSNN(nd.Module):
    """Linear -> RLeaky -> Linear -> LeakyIntegrator, one time step per ``update``."""

    def __init__(self, n_in: int, n_hidden: int, n_out: int, beta: float = 0.9, beta_out: float = 0.9) -> None:
        self.fc_in = nn.Linear(n_in, n_hidden, w_init=jax.nn.initializers.normal(0.05))
        self.hidden = nn.RLeaky(n_hidden, beta=beta, spike_fn=surrogate.FastSigmoid(10.0),
                                w_init=jax.nn.initializers.orthogonal(0.3))
        self.fc_out = nn.Linear(n_hidden, n_out)
        self.out = nn.LeakyIntegrator(n_out, beta=beta_out)

    def update(self, x_t: jax.Array) -> tuple[jax.Array, jax.Array]:
        s = self.hidden(self.fc_in(x_t))
        return self.out(self.fc_out(s)), s


def loss_fn(model: RSNN, batch: tuple) -> tuple:
    x, y = batch
    V, s = nd.for_loop(model.update, jnp.swapaxes(x.astype(jnp.float32), 0, 1))
    logits = nn.max_over_time(V)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    return ce + nn.rate_regularizer(s, target=0.05, strength=1.0), {
        "acc": jnp.mean(logits.argmax(-1) == y), "rate": jnp.mean(s)}


def main(n_classes: int = 20, n_hidden: int = 128, n_train: int = 2048, n_test: int = 512, epochs: int = 5,
         batch_size: int = 64, lr: float = 2e-3, bin_us: float = 10_000.0, seed: int = 0,
         progress_bar: bool = True) -> dict:
    t0 = time.perf_counter()
    nd.random.seed(seed)
    classes = make_classes(n_classes, n_tracks=3, seed=seed)
    x, y, lengths = make_data(classes, n_train, seed + 1, bin_us)
    x_test, y_test, _ = make_data(classes, n_test, seed + 2, bin_us, n_steps=x.shape[1])
    print(f"{n_train} streams of {lengths.min()}-{lengths.max()} bins x {N_CHANNELS} channels "
          f"({x.mean() * N_CHANNELS:.2f} events per bin); {n_classes} classes")
    model = RSNN(N_CHANNELS, n_hidden, n_classes)
    trainer = nd.Trainer(model, loss_fn, optim.Adam(lr), progress_bar=progress_bar)
    h = trainer.fit((x, y), epochs=epochs, eval_data=(x_test, y_test), batch_size=batch_size, seed=seed,
                    drop_last=True)
    test_acc = h["eval_acc"]
    for epoch in range(epochs):
        print(f"epoch {epoch + 1}/{epochs}: train loss {h['loss'][epoch]:.4f} acc {h['acc'][epoch]:.3f} "
              f"rate {h['rate'][epoch]:.3f} | test acc {test_acc[epoch]:.3f}")
    seconds = time.perf_counter() - t0
    print(f"chance {1 / n_classes:.3f}; final test accuracy {test_acc[-1]:.3f}; {seconds:.1f} s in all")
    return {"test_acc": test_acc, "history": trainer.history, "seconds": seconds, "chance": 1 / n_classes}


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--small", action="store_true", help="reduced sizes (for smoke tests)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    kw: dict = dict(seed=a.seed)
    if a.small:
        kw.update(n_classes=5, n_hidden=48, n_train=256, n_test=128, epochs=3, bin_us=25_000.0)
    if a.epochs is not None:
        kw["epochs"] = a.epochs
    main(**kw)
