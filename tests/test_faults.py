"""Fault injection: NaN batches, interrupts (SIGINT in a subprocess), threads, memory limits,
killed saves, and bad input that must be refused before anything changes."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import threading
import types
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import neurodyn as nd
from neurodyn import nn, optim, surrogate

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _run_py(code, timeout=120, preexec=None, env_extra=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu", **(env_extra or {})}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=str(ROOT), preexec_fn=preexec)


# -- NaN batches --------------------------------------------------------------------------------------
def _lin_data(n=40, d=5):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = (x @ np.linspace(-1, 1, d) + 0.3).astype(np.float32)[:, None]
    return x, y


def _mse(model, batch):
    x, y = batch
    return jnp.mean((model(x) - y) ** 2)


def _params(model):
    return {k: np.asarray(v.value) for k, v in model.train_vars().items()}


def _reference(x, y, batches, lr=0.05):
    """Plain SGD over the given batch indices (batches of 10, in order)."""
    nd.random.seed(0)
    model = nn.Linear(5, 1)
    p = {k: jnp.asarray(v) for k, v in _params(model).items()}
    for b in batches:
        xb, yb = x[b * 10:(b + 1) * 10], y[b * 10:(b + 1) * 10]
        g = jax.grad(lambda p: jnp.mean((xb @ p["weight"] + p["bias"] - yb) ** 2))(p)
        p = {k: p[k] - lr * g[k] for k in p}
    return p


@pytest.mark.parametrize("spc", [1, 2])
def test_nan_batch_is_skipped_with_one_warning_and_counted(spc):
    x, y = _lin_data()
    y_bad = y.copy()
    y_bad[25] = np.nan  # batch 2 of 4
    nd.random.seed(0)
    model = nn.Linear(5, 1)
    tr = nd.Trainer(model, _mse, optim.SGD(0.05), progress_bar=False, steps_per_call=spc)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        h = tr.fit((x, y_bad), batch_size=10, shuffle=False)
    msgs = [str(m.message) for m in w if "non-finite" in str(m.message)]
    assert msgs == ["Trainer: non-finite loss nan at training step 2 (epoch 0, batch 2); its update was skipped"]
    ref = _reference(x, y, [0, 1, 3])
    for k, v in _params(model).items():
        assert np.all(np.isfinite(v))
        np.testing.assert_allclose(v, ref[k], rtol=1e-5, atol=1e-6)
    assert h["skipped"] == [1.0]
    assert np.isfinite(h["loss"][0])
    tr.fit((x, y), batch_size=10, shuffle=False)
    assert tr.history["skipped"] == [1.0, 0.0]


def test_nan_gradient_with_finite_loss_is_skipped():
    nd.random.seed(0)
    model = nn.Linear(5, 1)
    before = _params(model)
    # sqrt at 0 has an infinite derivative: a finite loss with a non-finite gradient
    tr = nd.Trainer(model, lambda m, b: jnp.sum(jnp.sqrt(jnp.abs(m(b) - m(b)))), optim.SGD(0.1),
                    progress_bar=False)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        tr.fit([np.ones((4, 5), np.float32)])
    assert any("non-finite gradient at training step 0" in str(m.message) for m in w)
    for k, v in _params(model).items():
        np.testing.assert_array_equal(v, before[k])


def test_stop_on_nan_stops_at_once_with_parameters_before_the_bad_step():
    x, y = _lin_data(n=60)
    y_bad = y.copy()
    y_bad[25] = np.nan  # batch 2 of 6; batches 3..5 are dispatched before the host sees it
    nd.random.seed(0)
    model = nn.Linear(5, 1)
    tr = nd.Trainer(model, _mse, optim.SGD(0.05), progress_bar=False, stop_on_nan=True, log_every=20)
    with pytest.raises(FloatingPointError, match=r"non-finite loss nan at training step 2 \(epoch 0, batch 2\)"):
        tr.fit((x, y_bad), batch_size=10, shuffle=False)
    ref = _reference(x, y, [0, 1])
    for k, v in _params(model).items():
        np.testing.assert_allclose(v, ref[k], rtol=1e-5, atol=1e-6)
    assert tr.global_step == 2 and tr.batch_in_epoch == 2
    # a direct step raises at once as well, and the Trainer is usable afterwards
    with pytest.raises(FloatingPointError, match="step 2"):
        tr.step((x[20:30], y_bad[20:30]))
    tr.step((x[20:30], y[20:30]))
    assert tr.global_step == 3


def test_nan_step_leaves_batchnorm_statistics_and_optimizer_state_alone():
    nd.random.seed(0)
    model = nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))
    tr = nd.Trainer(model, _mse, optim.Adam(1e-2), progress_bar=False)
    x, y = _lin_data(n=10)
    tr.step((x, y))
    state = {k: np.asarray(v.value) for k, v in {**model.vars(), **tr.optimizer.vars()}.items()}
    x_bad = x.copy()
    x_bad[0, 0] = np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tr.fit([(x_bad, y)])
    for k, v in {**model.vars(), **tr.optimizer.vars()}.items():
        np.testing.assert_array_equal(np.asarray(v.value), state[k], err_msg=k)


# -- Trainer checkpoints and interrupted fits -------------------------------------------------------
class _TinySNN(nd.Module):
    reset_state_per_batch = True

    def __init__(self):
        self.fc = nn.Linear(6, 8, w_init=jax.nn.initializers.normal(1.0))
        self.lif = nn.LIF(8, V_rest=0.0, V_reset=0.0, V_th=1.0, tau=5.0, R=5.0, spike_fn=surrogate.Sigmoid(4.0))
        self.out = nn.LeakyReadout(8, 3, tau=10.0)

    def update(self, x_t):
        return self.out(self.lif(self.fc(x_t)))


def _snn_loss(model, batch):
    x, y = batch
    V = nd.for_loop(model.update, x)
    logits = V.mean(0)
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], 1))


def _snn_data(n=14, T=12):
    rng = np.random.default_rng(3)
    x = (rng.random((T, n, 6)) < 0.3).astype(np.float32)
    return x, rng.integers(0, 3, n).astype(np.int32)


def _snn_trainer(seed):
    nd.random.seed(seed)
    return nd.Trainer(_TinySNN(), _snn_loss, optim.Adam(1e-2), progress_bar=False, batch_axis=(1, 0))


def test_trainer_checkpoint_of_per_batch_reset_model_loads_fresh_and_resumes_exactly(tmp_path):
    x, y = _snn_data()
    batches = [(x[:, :4], y[:4]), (x[:, 4:8], y[4:8]), (x[:, 8:12], y[8:12]), (x[:, 12:], y[12:])]
    straight = _snn_trainer(0)
    straight.fit(batches, epochs=2)

    first = _snn_trainer(0)
    first.fit(batches, epochs=1)  # ends on the short batch of 2: neuron state has batch size 2
    assert first.model.lif.V.shape == (2, 8)
    path = tmp_path / "snn.npz"
    first.save(path)
    with np.load(path) as f:
        assert "model/lif.V" not in f.files and "model/fc.weight" in f.files

    resumed = _snn_trainer(5)  # a fresh model and Trainer: state shapes from construction
    resumed.load(path)
    resumed.fit(batches, epochs=1)
    for k, v in _params(straight.model).items():
        np.testing.assert_array_equal(_params(resumed.model)[k], v, err_msg=k)
    assert resumed.history == straight.history


def test_interrupted_fit_resumes_at_the_batch_reached(tmp_path):
    x, y = _lin_data(n=60)

    def make():
        nd.random.seed(0)
        # one host batch per call: the test interrupts Trainer._step
        return nd.Trainer(nn.Linear(5, 1), _mse, optim.Adam(1e-2), progress_bar=False, log_every=2,
                          steps_per_call=1)

    straight = make()
    straight.fit((x, y), epochs=2, batch_size=10, seed=3)

    tr = make()
    real_step, calls = tr._step, [0]

    def interrupted(batch):
        calls[0] += 1
        if calls[0] == 9:  # epoch 1, batch 2
            raise KeyboardInterrupt
        return real_step(batch)

    tr._step = interrupted
    with pytest.raises(KeyboardInterrupt):
        tr.fit((x, y), epochs=2, batch_size=10, seed=3)
    assert (tr.epoch, tr.batch_in_epoch, tr.global_step) == (1, 2, 8)
    path = tmp_path / "mid.npz"
    tr.save(path)
    tr.fit((x, y), epochs=1, batch_size=10, seed=3)
    for k, v in _params(straight.model).items():
        np.testing.assert_array_equal(_params(tr.model)[k], v)
    np.testing.assert_allclose(tr.history["loss"], straight.history["loss"], rtol=1e-6)
    assert tr.global_step == 12 and tr.epoch == 2 and tr.batch_in_epoch == 0
    # the position survives a checkpoint
    again = make()
    again.load(path)
    assert (again.epoch, again.batch_in_epoch) == (1, 2)
    again.fit((x, y), epochs=1, batch_size=10, seed=3)
    for k, v in _params(straight.model).items():
        np.testing.assert_array_equal(_params(again.model)[k], v)
    np.testing.assert_allclose(again.history["loss"], straight.history["loss"], rtol=1e-6)


# -- nd.save / nd.load ------------------------------------------------------------------------------------
def test_metadata_round_trips_or_is_refused_before_writing(tmp_path):
    model = nn.Linear(3, 2)
    path = tmp_path / "m.npz"
    meta = {"cfg": {"lr": 1e-3, "layers": [3, 2]}, "note": None, "epoch": 4, "name": "run-1",
            "curve": np.arange(3.0)}
    nd.save(path, model, metadata=meta)
    back = nd.load(path, model)
    assert back["cfg"] == {"lr": 1e-3, "layers": [3, 2]} and back["note"] is None
    assert int(back["epoch"]) == 4 and str(back["name"]) == "run-1"
    np.testing.assert_array_equal(back["curve"], np.arange(3.0))
    with pytest.raises(TypeError, match=r"metadata\['bad'\] is a object.*nothing was written"):
        nd.save(tmp_path / "n.npz", model, metadata={"bad": object()})
    assert not (tmp_path / "n.npz").exists() and os.listdir(tmp_path) == ["m.npz"]


def test_killed_save_leaves_the_old_file_and_its_temporary_is_cleaned_up(tmp_path):
    path = tmp_path / "big.npz"
    model = nn.Linear(3, 2)
    nd.save(path, model)
    old = path.read_bytes()
    code = f"""
        import os, signal
        import numpy as np
        import neurodyn as nd
        from neurodyn import nn
        model = nn.Linear(300, 300)
        real = np.savez
        def dying(f, **arrays):
            f.write(b"x" * 100000)
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        np.savez = dying
        nd.save({str(path)!r}, model)
    """
    r = _run_py(code)
    assert r.returncode == -signal.SIGKILL
    left = [n for n in os.listdir(tmp_path) if n != "big.npz"]
    assert len(left) == 1 and left[0].startswith(".tmp-big.npz-")
    assert path.read_bytes() == old
    nd.save(path, model)  # the next save to that path removes what the killed one left
    assert os.listdir(tmp_path) == ["big.npz"]
