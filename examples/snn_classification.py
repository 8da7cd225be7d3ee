"""A two-layer spiking network trained with BPTT and surrogate gradients.

Task: classify spike patterns. Each of ``n_classes`` classes is a fixed random
spike pattern over ``n_in`` input channels and ``n_steps`` time steps (on
average ``rate_hz`` per channel). A sample is its class's pattern with every
spike moved by Gaussian jitter, a fraction of the spikes deleted and Poisson
background spikes added, all generated on the fly with NumPy (no download).
Every class has the same spike count per channel on average, so the network
must use spike timing. Chance is ``1 / n_classes``.

Network: input spikes -> Linear -> LIF (surrogate gradient, detached reset)
-> LeakyReadout; the logits are the readout membrane averaged over time. The
model's ``update()`` is one time step, the loss runs it over the sequence
with ``nd.for_loop``, and ``nd.Trainer`` differentiates the whole
sequence (backprop through time) and resets the state before every batch
(``reset_state_per_batch = True``).

Run: ``python examples/snn_classification.py [--small] [--epochs N] [--out snn.npz]``
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import neurodyn as nd
from neurodyn import nn, optim, surrogate


def make_patterns(n_classes: int, n_in: int, n_steps: int, rate_hz: float, seed: int,
                  dt: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The class templates: spike times and channels, each ``(n_classes, k)``.

    Every class uses the same channels the same number of times; only the
    spike times differ, so firing rates carry no information about the class.
    """
    rng = np.random.default_rng(seed)
    k = int(round(rate_hz * dt / 1000 * n_steps * n_in))
    times = rng.integers(0, n_steps, size=(n_classes, k))
    channels = np.broadcast_to(rng.integers(0, n_in, size=k), (n_classes, k))
    return times, channels


def make_data(patterns: tuple[np.ndarray, np.ndarray], n: int, n_in: int, n_steps: int, seed: int,
              jitter: float = 3.0, p_drop: float = 0.2, noise_hz: float = 10.0,
              dt: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` noisy samples: spikes ``(n, n_steps, n_in)`` as uint8 and labels ``(n,)`` int32."""
    times, channels = patterns
    rng = np.random.default_rng(seed)
    y = rng.integers(0, times.shape[0], size=n).astype(np.int32)
    t = times[y] + np.rint(rng.normal(0.0, jitter, size=(n, times.shape[1]))).astype(np.int64)
    keep = (rng.random(t.shape) >= p_drop) & (t >= 0) & (t < n_steps)
    x = (rng.random((n, n_steps, n_in)) < noise_hz * dt / 1000).astype(np.uint8)
    rows = np.broadcast_to(np.arange(n)[:, None], t.shape)
    x[rows[keep], t[keep], channels[y][keep]] = 1
    return x, y


class SNN(nd.Module):
    """Linear -> LIF -> LeakyReadout; ``update`` is one time step of the network.

    ``checkpoint=True`` rematerialises each time step in the backward pass
    (see ``nd.for_loop``): memory independent of the sequence length for
    about one extra forward pass of compute.
    """

    reset_state_per_batch = True  # the Trainer calls reset_state(batch_size) before each batch

    def __init__(self, n_in: int, n_hidden: int, n_out: int, tau: float = 10.0, tau_out: float = 20.0,
                 neuron: str = "lif", checkpoint: bool = False) -> None:
        self.fc = nn.Linear(n_in, n_hidden)
        # R = tau / dt: an input of weight w moves V by about w (instead of w dt / tau).
        common = dict(V_rest=0.0, V_reset=0.0, V_th=1.0, tau=tau, R=tau / nd.get_dt(),
                      spike_fn=surrogate.FastSigmoid(alpha=10.0), detach_reset=True)
        if neuron == "lif":
            self.hidden = nn.LIF(n_hidden, **common)
        elif neuron == "alif":
            self.hidden = nn.ALIF(n_hidden, tau_a=100.0, beta=0.2, **common)
        else:
            raise ValueError(f"SNN: neuron must be 'lif' or 'alif', got {neuron!r}")
        self.out = nn.LeakyReadout(n_hidden, n_out, tau=tau_out)
        self.checkpoint = checkpoint

    def update(self, x_t: jax.Array) -> tuple[jax.Array, jax.Array]:
        spikes = self.hidden(self.fc(x_t))
        return self.out(spikes), spikes



def run(model: SNN, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Step ``model`` over ``x`` (batch, time, n_in); readout V and hidden spikes, time-major."""
    xs = jnp.swapaxes(jnp.asarray(x, jnp.float32), 0, 1)
    return nd.for_loop(model.update, xs, checkpoint=model.checkpoint)


def loss_fn(model: SNN, batch: tuple, reg: float = 1.0, target_rate: float = 0.02) -> tuple:
    x, y = batch
    V, spikes = run(model, x)
    logits = nn.mean_over_time(V)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    loss = ce + nn.rate_regularizer(spikes, target=target_rate, strength=reg)
    return loss, {"acc": jnp.mean(logits.argmax(-1) == y), "rate": jnp.mean(spikes)}


def main(n_classes: int = 10, n_in: int = 100, n_steps: int = 100, n_hidden: int = 128,
         n_train: int = 4096, n_test: int = 1024, epochs: int = 10, batch_size: int = 128,
         lr: float = 5e-3, neuron: str = "lif", seed: int = 0, out: str | None = "snn_classifier.npz",
         progress_bar: bool = True) -> dict:
    t_start = time.perf_counter()
    nd.set_dt(1.0)
    nd.random.seed(seed)
    patterns = make_patterns(n_classes, n_in, n_steps, rate_hz=20.0, seed=seed)
    x, y = make_data(patterns, n_train, n_in, n_steps, seed=seed + 1)
    x_test, y_test = make_data(patterns, n_test, n_in, n_steps, seed=seed + 2)
    model = SNN(n_in, n_hidden, n_classes, neuron=neuron)
    trainer = nd.Trainer(model, loss_fn, optim.Adam(lr), progress_bar=progress_bar)
    h = trainer.fit((x, y), epochs=epochs, eval_data=(x_test, y_test), batch_size=batch_size, seed=seed,
                    drop_last=True)
    test_acc = h["eval_acc"]
    for epoch in range(epochs):
        print(f"epoch {epoch + 1}/{epochs}: train loss {h['loss'][epoch]:.4f} acc {h['acc'][epoch]:.3f} "
              f"rate {h['rate'][epoch]:.3f} | test acc {test_acc[epoch]:.3f}")
    seconds = time.perf_counter() - t_start
    print(f"chance {1 / n_classes:.3f}; final test accuracy {test_acc[-1]:.3f}; "
          f"{seconds:.1f} s in all (data, compile, training, evaluation)")
    if out:
        model.reset_state()  # store the unbatched state so a fresh SNN(...) can nd.load it
        nd.save(out, model)
        print(f"saved the trained model to {out}")
    return {"test_acc": test_acc, "history": trainer.history, "seconds": seconds,
            "chance": 1 / n_classes, "model": model}


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--small", action="store_true", help="reduced sizes (for smoke tests)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--neuron", choices=["lif", "alif"], default="lif")
    p.add_argument("--out", default="snn_classifier.npz", help="where to save the model ('' to skip)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    kw = dict(neuron=a.neuron, out=a.out or None, seed=a.seed)
    if a.small:
        kw.update(n_classes=5, n_steps=50, n_hidden=64, n_train=1024, n_test=256, epochs=4)
    if a.epochs is not None:
        kw["epochs"] = a.epochs
    main(**kw)
