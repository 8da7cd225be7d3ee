"""One spiking network trained by neurodyn, hand-written JAX, spyx and snnTorch, side by side.

Task (issue 17's): spike patterns of 100 inputs x 100 steps (examples/snn_classification.py's
generator, 10 classes, 4096 training and 1024 test samples), Linear(100, 256) -> Leaky LIF
(beta 0.9, threshold 1, subtractive reset, detached, fast-sigmoid surrogate with slope 10)
-> Linear(256, 10) -> leaky readout ``V <- 0.9 V + I``; logits are the readout averaged over
time; cross-entropy, Adam(1e-3), batch 128, the same batch order (seeded permutation per epoch).

Every system runs in its own process (so peak RSS is its own) from the same initial weights
(written by the parent), and first computes the gradient of the loss on the first batch: the
parent checks that every system's gradient equals hand-written JAX's, which proves the models
are the same. Then it trains ``--epochs`` epochs, blocking on each before reading the clock.

Systems: ``nd`` (neurodyn Trainer, default: whole-epoch calls from device-resident data),
``nd-bar`` (the same with its progress bar shown, as users run it), ``nd-step`` (``steps_per_call=1``: one host batch per call, the previous default), ``jax``
(jit + lax.scan + optax, one call per batch, batches sliced on the host), ``jax-epoch``
(the same with the whole epoch in one jitted scan), and ``spyx`` (1.0, flax nnx; run by
``--peer-python``, a separate environment). spyx's ``LIF`` emits ``H(V[t-1] - thr)``, the
spike one step later than snnTorch's convention, and does not detach its reset, so its
gradient is checked against hand-written JAX in its own convention. ``snntorch`` (1.0, torch CPU,
2 threads) is the model as snnTorch users write it: ``snn.Leaky`` (its default subtractive,
detached reset from the previous step's membrane, ``surrogate.fast_sigmoid``) and a readout
``snn.Leaky(reset_mechanism="none")``, a Python loop over time, ``torch.optim.Adam``, from the same
weights (transposed into ``nn.Linear``) and batch order; ``snntorch-compile`` is the same module
under ``torch.compile``: its first call's compilation is reported apart from the epochs (the first
epoch still holds one recompilation, reported too, as does the test-set call). Both are run by
``--peer-python`` and checked against hand-written JAX in snnTorch's (= the usual) convention.

``--malloc`` runs every system with ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_``
raised (see bench/README.md); ``--malloc both`` runs each twice.

Run: ``python bench/snn_peers.py [--epochs 5] [--systems nd,nd-step,jax,snntorch] [--malloc off|on|both]``;
``--same-process`` times nd, nd-bar, nd-step, nd-plain, jax and jax-epoch (or those named by
``--systems``) in one process instead, alternating epochs (``--epochs`` rounds), which is the better
comparison on a loaded machine. ``nd-plain`` is ``nd`` with the weight-gradient layout of nn's
dense product switched off (``nn._dense.MAX_ROWS = 0``: plain ``x @ w`` autodiff, as before it).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
N_IN, N_STEPS, N_HID, N_OUT = 100, 100, 256, 10
BETA, BETA_OUT, THR, SLOPE, LR, BS = 0.9, 0.9, 1.0, 10.0, 1e-3, 128
PEER_SYSTEMS = ("spyx", "snntorch", "snntorch-compile")  # run by --peer-python
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(1 << 30), "MALLOC_TRIM_THRESHOLD_": str(1 << 31)}


def make_data(n_train: int, n_test: int):
    sys.path.insert(0, os.path.join(ROOT, "examples"))
    import snn_classification as ex
    patterns = ex.make_patterns(N_OUT, N_IN, N_STEPS, rate_hz=20.0, seed=0)
    x, y = ex.make_data(patterns, n_train, N_IN, N_STEPS, seed=1)
    xt, yt = ex.make_data(patterns, n_test, N_IN, N_STEPS, seed=2)
    return x, y, xt, yt


def orders(n: int, epochs: int):
    # neurodyn's Trainer order: np.random.default_rng([seed, epoch]).permutation(n), seed 0
    return [np.random.default_rng([0, e]).permutation(n) for e in range(epochs)]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- the systems (each run in a child process) -------------------------------------------------------
def timed_epochs(epoch, n, epochs):
    """Run ``epoch(order)`` (returns the epoch's mean loss, blocked on) for each epoch's order."""
    times, losses = [], []
    for order in orders(n, epochs):
        t0 = time.perf_counter()
        losses.append(epoch(order))
        times.append(time.perf_counter() - t0)
    return times, losses


def setup_jax(params, x, y, whole_epoch):
    """Hand-written JAX: (gradient on the first batch, epoch(order) -> mean loss, accuracy(x, y))."""
    import jax
    import jax.numpy as jnp
    import optax

    @jax.custom_vjp
    def spike(v):
        return (v >= 0).astype(v.dtype)

    spike.defvjp(lambda v: (spike(v), v), lambda v, g: (g / (1 + SLOPE * jnp.abs(v)) ** 2,))

    def forward(p, xb):
        xs = jnp.swapaxes(xb.astype(jnp.float32), 0, 1)

        def step(c, x_t):
            v, s, o = c
            v = BETA * v + x_t @ p["w1"] + p["b1"] - jax.lax.stop_gradient(s) * THR
            s = spike(v - THR)
            o = BETA_OUT * o + s @ p["w2"] + p["b2"]
            return (v, s, o), o

        B = xb.shape[0]
        init = (jnp.zeros((B, N_HID)), jnp.zeros((B, N_HID)), jnp.zeros((B, N_OUT)))
        return jax.lax.scan(step, init, xs)[1].mean(0)

    def loss_fn(p, xb, yb):
        return optax.softmax_cross_entropy_with_integer_labels(forward(p, xb), yb).mean()

    tx = optax.adam(LR)
    p = {k: jnp.asarray(v) for k, v in params.items()}
    grads = {k: np.asarray(v) for k, v in jax.grad(loss_fn)(p, x[:BS], y[:BS]).items()}
    st = {"p": p, "s": tx.init(p)}

    def train_step(p, s, xb, yb):
        loss, g = jax.value_and_grad(loss_fn)(p, xb, yb)
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s, loss

    step = jax.jit(train_step)

    @jax.jit
    def epoch_fn(p, s, xd, yd, idx):
        def body(c, i):
            p, s, loss = train_step(c[0], c[1], xd[i], yd[i])
            return (p, s), loss
        (p, s), losses = jax.lax.scan(body, (p, s), idx)
        return p, s, losses

    nb = len(x) // BS

    def epoch(order):
        if whole_epoch:
            xd, yd = jax.device_put(x), jax.device_put(y)  # once per epoch, as the Trainer does per fit
            st["p"], st["s"], ls = epoch_fn(st["p"], st["s"], xd, yd, order[:nb * BS].reshape(nb, BS))
        else:
            ls = []
            for k in range(nb):
                idx = order[k * BS:(k + 1) * BS]
                st["p"], st["s"], l = step(st["p"], st["s"], x[idx], y[idx])
                ls.append(l)
        return float(np.mean(jax.device_get(ls)))

    def accuracy(xt, yt):
        return float(np.mean(np.asarray(jax.jit(forward)(st["p"], xt)).argmax(-1) == yt))

    return grads, epoch, accuracy


def setup_nd(params, x, y, steps_per_call, progress_bar=False, plain_matmul=False):
    """neurodyn: nn.Sequential of the discrete layers and the Trainer (``progress_bar``: its tqdm bar,
    written to stderr, ticked from inside the whole-epoch call; ``plain_matmul``: trace with the
    dense product's weight-gradient layout switched off)."""
    sys.path.insert(0, ROOT)
    import contextlib

    import jax
    import jax.numpy as jnp
    import optax

    import neurodyn as nd
    from neurodyn import nn, optim, surrogate
    from neurodyn.nn import _dense

    @contextlib.contextmanager
    def layout():
        old = _dense.MAX_ROWS
        if plain_matmul:
            _dense.MAX_ROWS = 0
        try:
            yield
        finally:
            _dense.MAX_ROWS = old

    net = nn.Sequential(nn.Linear(N_IN, N_HID), nn.Leaky(N_HID, beta=BETA, spike_fn=surrogate.FastSigmoid(SLOPE)),
                        nn.Linear(N_HID, N_OUT), nn.LeakyIntegrator(N_OUT, beta=BETA_OUT))
    names = {"w1": "layers.0.weight", "b1": "layers.0.bias", "w2": "layers.2.weight", "b2": "layers.2.bias"}
    for key, name in names.items():
        net.get(name).value = jnp.asarray(params[key])

    def loss_fn(model, batch):
        xb, yb = batch
        V = nd.for_loop(model, jnp.swapaxes(xb.astype(jnp.float32), 0, 1))
        return optax.softmax_cross_entropy_with_integer_labels(V.mean(0), yb).mean()

    net.reset_state(BS)
    with layout():
        g = nd.grad(lambda b: loss_fn(net, b), grad_vars=net.train_vars())((x[:BS], y[:BS]))
    grads = {key: np.asarray(g[name]) for key, name in names.items()}
    trainer = nd.Trainer(net, loss_fn, optim.Adam(LR), progress_bar=progress_bar, steps_per_call=steps_per_call)

    def epoch(order):  # the Trainer draws the same order itself (seed 0, its epoch counter)
        with layout():  # the first call traces
            trainer.fit((x, y), epochs=1, batch_size=BS, seed=0, drop_last=True)
        jax.block_until_ready(net.get(names["w1"]).value)
        return trainer.history["loss"][-1]

    def accuracy(xt, yt):
        net.reset_state(len(xt))
        V = nd.for_loop(net, jnp.swapaxes(jnp.asarray(xt, jnp.float32), 0, 1))
        return float(np.mean(np.asarray(V.mean(0)).argmax(-1) == yt))

    return grads, epoch, accuracy


def run_setup(setup, x, xt, yt, epochs):
    grads, epoch, accuracy = setup
    times, losses = timed_epochs(epoch, len(x), epochs)
    return grads, times, losses, accuracy(xt, yt)


def run_jax(params, x, y, xt, yt, epochs, whole_epoch):
    return run_setup(setup_jax(params, x, y, whole_epoch), x, xt, yt, epochs)


def run_nd(params, x, y, xt, yt, epochs, steps_per_call, progress_bar=False):
    return run_setup(setup_nd(params, x, y, steps_per_call, progress_bar), x, xt, yt, epochs)


SAME_PROCESS = ("nd", "nd-bar", "nd-step", "nd-plain", "jax", "jax-epoch")


def same_process(params, data, rounds, systems=SAME_PROCESS):
    """neurodyn (its modes) and hand-written JAX (both) in one process, alternating epochs."""
    x, y, _, _ = data
    make = {"nd": lambda: setup_nd(params, x, y, None), "nd-bar": lambda: setup_nd(params, x, y, None, True),
            "nd-step": lambda: setup_nd(params, x, y, 1),
            "nd-plain": lambda: setup_nd(params, x, y, None, plain_matmul=True),
            "jax": lambda: setup_jax(params, x, y, False), "jax-epoch": lambda: setup_jax(params, x, y, True)}
    setups = {k: make[k]() for k in systems}
    times = {k: [] for k in setups}
    for r, order in enumerate(orders(len(x), rounds)):
        names = list(setups) if r % 2 == 0 else list(setups)[::-1]
        for k in names:
            t0 = time.perf_counter()
            setups[k][1](order)
            times[k].append(time.perf_counter() - t0)
    return times


def run_system(system, params, data, epochs):
    x, y, xt, yt = data
    if system == "jax":
        return run_jax(params, x, y, xt, yt, epochs, False)
    if system == "jax-epoch":
        return run_jax(params, x, y, xt, yt, epochs, True)
    if system == "nd":
        return run_nd(params, x, y, xt, yt, epochs, None)
    if system == "nd-step":
        return run_nd(params, x, y, xt, yt, epochs, 1)
    if system == "nd-bar":
        return run_nd(params, x, y, xt, yt, epochs, None, True)
    if system == "spyx":
        return run_spyx_train(params, x, y, xt, yt, epochs)
    if system in ("snntorch", "snntorch-compile"):
        return run_snntorch_train(params, x, y, xt, yt, epochs, system == "snntorch-compile")
    raise ValueError(f"unknown system {system!r}")


def run_spyx_train(params, x, y, xt, yt, epochs):
    import jax
    import jax.numpy as jnp
    import optax
    import spyx
    from flax import nnx

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.fc1 = nnx.Linear(N_IN, N_HID, rngs=rngs)
            self.lif = spyx.nn.LIF((N_HID,), beta=BETA, threshold=THR, activation=spyx.axn.superspike(SLOPE),
                                   rngs=rngs)
            self.fc2 = nnx.Linear(N_HID, N_OUT, rngs=rngs)
            self.li = spyx.nn.LI((N_OUT,), beta=BETA_OUT, rngs=rngs)

        def __call__(self, xb):  # (batch, time, in)
            def step(c, x_t):
                v, o = c
                s, v = self.lif(self.fc1(x_t), v)
                out, o = self.li(self.fc2(s), o)
                return (v, o), out
            B = xb.shape[0]
            init = (self.lif.initial_state(B), self.li.initial_state(B))
            return jax.lax.scan(step, init, jnp.swapaxes(xb.astype(jnp.float32), 0, 1))[1].mean(0)

    net = Net(nnx.Rngs(0))
    net.fc1.kernel.value, net.fc1.bias.value = jnp.asarray(params["w1"]), jnp.asarray(params["b1"])
    net.fc2.kernel.value, net.fc2.bias.value = jnp.asarray(params["w2"]), jnp.asarray(params["b2"])
    graphdef, state = nnx.split(net)

    def loss_fn(st, xb, yb):
        return optax.softmax_cross_entropy_with_integer_labels(nnx.merge(graphdef, st)(xb), yb).mean()

    def linear_only(g):  # spyx's beta is a parameter; keep it fixed, as in the other systems
        return jax.tree_util.tree_map_with_path(
            lambda path, v: v if any(getattr(k, "key", None) in ("fc1", "fc2") for k in path) else jnp.zeros_like(v), g)

    g = jax.grad(loss_fn)(state, x[:BS], y[:BS])
    grads = {"w1": g["fc1"]["kernel"].value, "b1": g["fc1"]["bias"].value,
             "w2": g["fc2"]["kernel"].value, "b2": g["fc2"]["bias"].value}
    ref = jax_grads(params, x[:BS], y[:BS], spyx_convention=True)
    tx = optax.adam(LR)
    opt = tx.init(state)

    @jax.jit
    def step(st, o, xb, yb):
        loss, gr = jax.value_and_grad(loss_fn)(st, xb, yb)
        u, o = tx.update(linear_only(gr), o, st)
        return optax.apply_updates(st, u), o, loss

    times, losses = [], []
    for order in orders(len(x), epochs):
        t0 = time.perf_counter()
        ls = []
        for k in range(len(x) // BS):
            idx = order[k * BS:(k + 1) * BS]
            state, opt, l = step(state, opt, x[idx], y[idx])
            ls.append(l)
        ls = np.asarray(jax.device_get(ls))
        times.append(time.perf_counter() - t0)
        losses.append(float(ls.mean()))
    logits = jax.jit(lambda st, xb: nnx.merge(graphdef, st)(xb))(state, xt)
    acc = float(np.mean(np.asarray(logits).argmax(-1) == yt))
    return {k: np.asarray(v) for k, v in grads.items()}, times, losses, acc, ref


def run_snntorch_train(params, x, y, xt, yt, epochs, compiled):
    """snnTorch 1.0 as its users write it: ``snn.Leaky`` layers in a module, a Python loop over time,
    ``torch.optim.Adam``; ``compiled`` wraps the module in ``torch.compile``. The gradient call on the
    first batch goes through the (compiled) module, so for ``compiled`` it includes the compilation
    (``compile_s``); the first training step compiles again (``first_step_s``, counted in the first
    epoch: the state buffer ``reset_mem`` reuses now requires grad, failing a guard), and so does the
    accuracy call (no grad, the test set as one batch; ``eval_s``)."""
    import torch
    import snntorch as snn
    from snntorch import surrogate as snn_surrogate

    torch.set_num_threads(2)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = torch.nn.Linear(N_IN, N_HID)
            # snnTorch's default reset: by subtraction, from the previous step's membrane, detached
            self.lif = snn.Leaky(beta=BETA, threshold=THR, spike_grad=snn_surrogate.fast_sigmoid(slope=SLOPE))
            self.fc2 = torch.nn.Linear(N_HID, N_OUT)
            self.li = snn.Leaky(beta=BETA_OUT, reset_mechanism="none")  # readout V <- beta V + I

        def forward(self, xb):  # (batch, time, in)
            mem1, mem2 = self.lif.reset_mem(), self.li.reset_mem()
            out = []
            for t in range(xb.shape[1]):
                spk1, mem1 = self.lif(self.fc1(xb[:, t]), mem1)
                _, mem2 = self.li(self.fc2(spk1), mem2)
                out.append(mem2)
            return torch.stack(out).mean(0)

    net = Net()
    with torch.no_grad():
        for layer, w, b in ((net.fc1, "w1", "b1"), (net.fc2, "w2", "b2")):
            layer.weight.copy_(torch.from_numpy(params[w].T.copy()))
            layer.bias.copy_(torch.from_numpy(params[b]))
    model = torch.compile(net) if compiled else net
    X, Y = torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.int64))
    loss_fn = torch.nn.functional.cross_entropy
    opt = torch.optim.Adam(net.parameters(), lr=LR)

    t0 = time.perf_counter()
    loss_fn(model(X[:BS]), Y[:BS]).backward()
    compile_s = time.perf_counter() - t0
    grads = {"w1": net.fc1.weight.grad.T, "b1": net.fc1.bias.grad,
             "w2": net.fc2.weight.grad.T, "b2": net.fc2.bias.grad}
    grads = {k: v.detach().numpy().copy() for k, v in grads.items()}
    ref = jax_grads(params, x[:BS], y[:BS])

    first_step = []

    def epoch(order):
        ls = []
        for k in range(len(x) // BS):
            t0 = time.perf_counter()
            idx = torch.from_numpy(order[k * BS:(k + 1) * BS])
            opt.zero_grad()
            loss = loss_fn(model(X[idx]), Y[idx])
            loss.backward()
            opt.step()
            ls.append(loss.detach())
            if not first_step:
                first_step.append(time.perf_counter() - t0)
        return float(torch.stack(ls).mean())

    times, losses = timed_epochs(epoch, len(x), epochs)
    t0 = time.perf_counter()
    with torch.no_grad():
        acc = float((model(torch.from_numpy(xt.astype(np.float32))).argmax(-1).numpy() == yt).mean())
    extra = ({"compile_s": compile_s, "first_step_s": first_step[0], "eval_s": time.perf_counter() - t0}
             if compiled else {})
    return grads, times, losses, acc, ref, extra


def jax_grads(params, xb, yb, spyx_convention=False):
    """Hand-written gradients; spyx's LIF emits ``H(V[t-1] - thr)`` (the spike one step later) and
    does not detach its reset."""
    import jax
    import jax.numpy as jnp
    import optax

    @jax.custom_vjp
    def spike(v):
        return (v >= 0).astype(v.dtype)

    spike.defvjp(lambda v: (spike(v), v), lambda v, g: (g / (1 + SLOPE * jnp.abs(v)) ** 2,))

    def loss_fn(p):
        def step(c, x_t):
            v, s, o = c
            if spyx_convention:
                s = spike(v - THR)
                v = BETA * v + x_t @ p["w1"] + p["b1"] - s * THR
            else:
                v = BETA * v + x_t @ p["w1"] + p["b1"] - jax.lax.stop_gradient(s) * THR
                s = spike(v - THR)
            o = BETA_OUT * o + s @ p["w2"] + p["b2"]
            return (v, s, o), o
        B = xb.shape[0]
        init = (jnp.zeros((B, N_HID)), jnp.zeros((B, N_HID)), jnp.zeros((B, N_OUT)))
        logits = jax.lax.scan(step, init, jnp.swapaxes(jnp.asarray(xb, jnp.float32), 0, 1))[1].mean(0)
        return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

    g = jax.grad(loss_fn)({k: jnp.asarray(v) for k, v in params.items()})
    return {k: np.asarray(v) for k, v in g.items()}


def child(args):
    params = dict(np.load(args.params))
    data = make_data(args.n_train, args.n_test)
    if args.system == "same-process":
        print(json.dumps(same_process(params, data, args.epochs, args.systems.split(","))))
        return
    t0 = time.perf_counter()
    grads, times, losses, acc, *ref = run_system(args.system, params, data, args.epochs)
    np.savez(args.out, **{k: np.asarray(v) for k, v in grads.items()},
             **{f"ref_{k}": np.asarray(v) for k, v in (ref[0] if ref else {}).items()})
    print(json.dumps({"times": times, "losses": losses, "acc": acc, "rss_mb": peak_rss_mb(),
                      "total_s": time.perf_counter() - t0, **(ref[1] if len(ref) > 1 else {})}))


# -- the parent -----------------------------------------------------------------------------------
def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--systems", default=None, help="default: jax,nd,nd-step,jax-epoch,spyx,snntorch,"
                   f"snntorch-compile; with --same-process {','.join(SAME_PROCESS)} (jax always)")
    p.add_argument("--malloc", choices=["off", "on", "both"], default="both")
    p.add_argument("--n-train", type=int, default=4096)
    p.add_argument("--n-test", type=int, default=1024)
    p.add_argument("--same-process", action="store_true",
                   help="instead: nd, nd-step, jax and jax-epoch in one process, alternating --epochs rounds")
    p.add_argument("--peer-python", default="/work/venv-ml-peers/bin/python",
                   help="interpreter for spyx and snnTorch (a separate environment)")
    p.add_argument("--system", help=argparse.SUPPRESS)
    p.add_argument("--params", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.systems is None:
        args.systems = ",".join(SAME_PROCESS) if args.same_process else \
            "jax,nd,nd-step,jax-epoch,spyx,snntorch,snntorch-compile"
    if args.same_process:
        unknown = [k for k in args.systems.split(",") if k not in SAME_PROCESS]
        if unknown:
            p.error(f"--same-process times only {list(SAME_PROCESS)}, got {unknown}")
        if "jax" not in args.systems.split(","):
            args.systems += ",jax"  # the reference of every ratio
    if args.system:
        return child(args)

    import jax
    rng = np.random.default_rng(0)
    params = {"w1": rng.normal(0, 1 / np.sqrt(N_IN), (N_IN, N_HID)).astype(np.float32) * 3,
              "b1": np.zeros(N_HID, np.float32),
              "w2": rng.normal(0, 1 / np.sqrt(N_HID), (N_HID, N_OUT)).astype(np.float32),
              "b2": np.zeros(N_OUT, np.float32)}
    tmp = tempfile.mkdtemp(prefix="snn_peers_")
    pfile = os.path.join(tmp, "params.npz")
    np.savez(pfile, **params)
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} CPUs; {args.n_train} samples, "
          f"batch {BS}, {N_STEPS} steps, {N_IN}-{N_HID}-{N_OUT}; {args.epochs} epochs per system, each in its "
          f"own process")
    mallocs = {"off": [False], "on": [True], "both": [False, True]}[args.malloc]
    if args.same_process:
        for malloc in mallocs:
            env = dict(os.environ, PYTHONPATH=ROOT, **(MALLOC_ENV if malloc else {}))
            cmd = [sys.executable, os.path.abspath(__file__), "--system", "same-process", "--params", pfile,
                   "--epochs", str(args.epochs), "--n-train", str(args.n_train), "--n-test", str(args.n_test),
                   "--systems", args.systems]
            times = json.loads(subprocess.run(cmd, env=env, capture_output=True, text=True,
                                              check=True).stdout.strip().splitlines()[-1])
            print(f"one process, {args.epochs} alternating rounds{' +malloc' if malloc else ''} "
                  "(first round includes compilation):")
            ref_med, ref_min = statistics.median(times["jax"][1:]), min(times["jax"][1:])
            for k, t in times.items():
                med, lo = statistics.median(t[1:]), min(t[1:])
                print(f"{k:>12}: first {t[0]:.2f} s, median {med:.3f} s ({med / ref_med:.3f}x jax), "
                      f"min {lo:.3f} s ({lo / ref_min:.3f}x jax)  {[round(v, 2) for v in t]}", flush=True)
        return
    results, ref_grads = [], None
    for system in args.systems.split(","):
        for malloc in mallocs:
            peer = system in PEER_SYSTEMS
            py = args.peer_python if peer else sys.executable
            if not os.path.exists(py):
                print(f"{system}: skipped ({py} not found)")
                break
            out = os.path.join(tmp, f"{system}-{int(malloc)}.npz")
            # the peer environment borrows this one's jax/optax (same versions for everyone)
            path = ROOT + (os.pathsep + os.pathsep.join(p for p in sys.path if p.endswith("site-packages"))
                           if peer else "")
            env = dict(os.environ, PYTHONPATH=path, **(MALLOC_ENV if malloc else {}))
            cmd = [py, os.path.abspath(__file__), "--system", system, "--params", pfile, "--out", out,
                   "--epochs", str(args.epochs), "--n-train", str(args.n_train), "--n-test", str(args.n_test)]
            r = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if r.returncode != 0:
                print(f"{system}: failed ({r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode})")
                break
            res = json.loads(r.stdout.strip().splitlines()[-1])
            g = dict(np.load(out))
            own_ref = {k[4:]: v for k, v in g.items() if k.startswith("ref_")}
            g = {k: v for k, v in g.items() if not k.startswith("ref_")}
            res.update(system=system + (" +malloc" if malloc else ""), grads=g, ref=own_ref or None)
            results.append(res)
            t = res["times"]
            compiled = (f" (after compiling: first call {res['compile_s']:.1f} s; the epoch's first step, "
                        f"compiling again, {res['first_step_s']:.1f} s; test-set call, compiling again, "
                        f"{res['eval_s']:.1f} s)" if "compile_s" in res else "")
            print(f"{res['system']:>24}: first epoch {t[0]:.2f} s{compiled}, median epoch "
                  f"{statistics.median(t[1:] or t):.3f} s (min {min(t[1:] or t):.3f}), "
                  f"peak RSS {res['rss_mb']:.0f} MB, test acc {res['acc']:.3f}, losses "
                  f"{[round(l, 4) for l in res['losses']]}", flush=True)
    ref = next((r for r in results if r["system"] == "jax"), None)
    if ref is None and not any(r["ref"] for r in results):
        return
    print("\nsystem, median epoch / hand-written JAX's (same malloc setting first), max relative gradient "
          "difference vs hand-written JAX (spyx: vs hand-written JAX in spyx's convention; spyx and snnTorch: "
          "computed in their own process)")
    for r in results:
        rg = r["ref"] or (ref["grads"] if ref else None)
        if rg is None:
            print(f"{r['system']:>24}: (no jax run to compare with)")
            continue
        diff = max(float(np.max(np.abs(r["grads"][k] - rg[k])) / (np.max(np.abs(rg[k])) + 1e-12)) for k in rg)
        if ref is None:
            print(f"{r['system']:>24}: (no jax run to time against)   grad diff {diff:.2e}")
            continue
        base = statistics.median(ref["times"][1:] or ref["times"])
        m = statistics.median(r["times"][1:] or r["times"])
        lo = min(r["times"][1:] or r["times"]) / min(ref["times"][1:] or ref["times"])
        print(f"{r['system']:>24}: {m / base:.3f}x (min/min {lo:.3f}x)   grad diff {diff:.2e}")


if __name__ == "__main__":
    main()
