import os
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import neurodyn as nd
from neurodyn import nn, optim


def _data(n=96, d=5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = (x @ np.linspace(-1, 1, d) + 0.3).astype(np.float32)[:, None]
    return x, y


def mse(model, batch):
    x, y = batch
    return jnp.mean((model(x) - y) ** 2)


def test_step_matches_hand_written_jax_optax_step():
    nd.random.seed(0)
    model = nn.Sequential(nn.Linear(5, 8), jnp.tanh, nn.Linear(8, 1))
    params = {k: v.value for k, v in model.train_vars().items()}
    tr = nd.Trainer(model, mse, optim.Adam(1e-2), progress_bar=False)
    tx = optax.adam(1e-2)
    state = tx.init(params)

    def ref_loss(p, x, y):
        h = jnp.tanh(x @ p["layers.0.weight"] + p["layers.0.bias"])
        return jnp.mean((h @ p["layers.2.weight"] + p["layers.2.bias"] - y) ** 2)

    @jax.jit
    def ref_step(params, state, x, y):
        l, g = jax.value_and_grad(ref_loss)(params, x, y)
        u, state = tx.update(g, state, params)
        return l, optax.apply_updates(params, u), state

    x, y = _data()
    for k in range(3):
        b = (x[k * 32:(k + 1) * 32], y[k * 32:(k + 1) * 32])
        out = tr.step(b)
        l_ref, params, state = ref_step(params, state, *b)
        np.testing.assert_allclose(out["loss"], l_ref, rtol=1e-5)
    for k, v in model.train_vars().items():
        np.testing.assert_allclose(v.value, params[k], rtol=1e-5, atol=1e-6)
    assert tr.global_step == 3


def test_fit_history_evaluate_predict_and_steps_per_call_equivalence():
    x, y = _data()
    results = []
    for spc in (1, 4):
        nd.random.seed(1)
        model = nn.Sequential(nn.Linear(5, 16), jax.nn.relu, nn.Linear(16, 1))
        tr = nd.Trainer(model, lambda m, b: (mse(m, b), {"mae": jnp.mean(jnp.abs(m(b[0]) - b[1]))}),
                        optim.SGD(0.05), metrics={"max_err": lambda m, b: jnp.max(jnp.abs(m(b[0]) - b[1]))},
                        progress_bar=False, steps_per_call=spc, log_every=3)
        # 96 samples / 20 = 4 full batches + a short one (which runs on its own)
        h = tr.fit((x, y), epochs=3, batch_size=20, seed=0, eval_data=(x, y))
        results.append((h, {k: v.value for k, v in model.train_vars().items()}, tr))
    (h1, p1, tr1), (h4, p4, tr4) = results
    assert set(h1) == {"loss", "mae", "eval_loss", "eval_mae", "eval_max_err"}
    assert len(h1["loss"]) == 3 and h1["loss"][2] < h1["loss"][0]
    np.testing.assert_allclose(h1["loss"], h4["loss"], rtol=1e-5)
    for k in p1:
        np.testing.assert_allclose(p1[k], p4[k], rtol=1e-5, atol=1e-6)
    assert tr4.global_step == tr1.global_step == 15
    ev = tr1.evaluate((x, y), batch_size=50)
    pred = tr1.predict(x)
    np.testing.assert_allclose(ev["loss"], float(jnp.mean((pred - y) ** 2)), rtol=1e-5)
    np.testing.assert_allclose(ev["loss"], h1["eval_loss"][-1], rtol=1e-5)
    # other batch sizes take other matmul reduction orders on CPU: equal up to float rounding
    np.testing.assert_allclose(tr1.predict(x, batch_size=40), pred, rtol=1e-5, atol=1e-6)


class _DropNet(nd.Module):
    def __init__(self):
        self.net = nn.Sequential(nn.Linear(5, 16), nn.BatchNorm1d(16), jax.nn.relu, nn.Dropout(0.2),
                                 nn.Linear(16, 1))

    def forward(self, x):
        return self.net(x)


def _make_trainer(seed):
    nd.random.seed(seed)
    return nd.Trainer(_DropNet(), mse, optim.Adam(5e-3), progress_bar=False)


def test_resume_from_checkpoint_reproduces_straight_run(tmp_path):
    x, y = _data()
    straight = _make_trainer(0)
    h = straight.fit((x, y), epochs=3, batch_size=32, seed=7)

    first = _make_trainer(0)
    first.fit((x, y), epochs=1, batch_size=32, seed=7)
    path = tmp_path / "ckpt.npz"
    first.save(path)
    first.fit((x, y), epochs=1, batch_size=32, seed=7)  # random state moves on after the save

    resumed = _make_trainer(123)  # different initial weights and random state
    resumed.load(path)
    assert resumed.epoch == 1 and resumed.global_step == 3
    h2 = resumed.fit((x, y), epochs=2, batch_size=32, seed=7)
    np.testing.assert_allclose(h2["loss"], h["loss"], rtol=1e-5)
    for k, v in straight.model.vars().items():
        np.testing.assert_allclose(resumed.model.get(k).value, v.value, rtol=1e-5, atol=1e-6)


def test_save_is_atomic_and_load_checks(tmp_path, monkeypatch):
    model = nn.Linear(3, 2)
    path = str(tmp_path / "m.npz")
    nd.save(path, model, metadata={"epoch": 4})
    before = open(path, "rb").read()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError, match="disk full"):
        nd.save(path, model)
    monkeypatch.undo()
    assert open(path, "rb").read() == before
    assert os.listdir(tmp_path) == ["m.npz"]  # no temporary left behind

    w = model.weight.value
    model.weight.value = jnp.zeros((3, 2))
    assert int(nd.load(path, model)["epoch"]) == 4
    np.testing.assert_array_equal(model.weight.value, w)
    with pytest.raises(ValueError, match=r"module/weight.*\(3, 2\).*expected shape \(4, 2\)"):
        nd.load(path, nn.Linear(4, 2))
    with pytest.raises(KeyError, match="lacks"):
        nd.load(path, nn.Sequential(nn.Linear(3, 2)))


def test_bad_batches_give_clear_errors_before_compiling():
    nd.random.seed(0)
    tr = nd.Trainer(nn.Linear(5, 1), mse, optim.SGD(0.1), progress_bar=False)
    x, y = _data()
    tr.step((x[:8], y[:8]))
    n = tr._step_fn.trace_count
    with pytest.raises(ValueError, match=r"shape \(8, 6\).*first batch had shape \(8, 5\)"):
        tr.step((np.ones((8, 6), np.float32), y[:8]))
    with pytest.raises(ValueError, match="dtype int32"):
        tr.step((x[:8].astype(np.int32), y[:8]))
    assert tr._step_fn.trace_count == n
    tr.step((x[:4], y[:4]))  # another batch size is fine


def test_non_finite_loss_reported_with_step_number():
    x, y = _data(n=40)
    y_bad = y.copy()
    y_bad[25] = np.nan  # lands in batch 2 (samples 20..29)
    for stop in (False, True):
        nd.random.seed(0)
        tr = nd.Trainer(nn.Linear(5, 1), mse, optim.SGD(0.01), progress_bar=False, stop_on_nan=stop)
        if stop:
            with pytest.raises(FloatingPointError, match="step 2 "):
                tr.fit((x, y_bad), batch_size=10, shuffle=False)
        else:
            with warnings.catch_warnings(record=True) as w:
                warnings.simplefilter("always")
                tr.fit((x, y_bad), batch_size=10, shuffle=False)
            assert any("non-finite loss nan at training step 2 " in str(m.message) for m in w)


class _Stateful(nd.Module):
    """A GRU cell stepped over time with its state held in Variables (BPTT)."""

    reset_state_per_batch = True

    def __init__(self):
        self.cell = nn.GRUCell(3, 6)
        self.out = nn.Linear(6, 1)
        self.resets = nd.Variable(0)

    def reset_state(self, batch_size=None):
        self.cell.reset_state(batch_size)
        self.resets += 1

    def forward(self, xs):  # (time, batch, features)
        hs = nd.for_loop(self.cell, xs)
        return self.out(hs[-1])


def test_reset_state_hook_runs_in_the_step_and_handles_new_batch_sizes():
    nd.random.seed(0)
    model = _Stateful()
    seen = []
    tr = nd.Trainer(model, lambda m, b: jnp.mean((m(b[0]) - b[1]) ** 2), optim.Adam(1e-2),
                    progress_bar=False, batch_axis=(1, 0),
                    before_step=lambda m, b: seen.append(jnp.shape(b[0])))
    xs = np.random.default_rng(0).normal(size=(4, 10, 3)).astype(np.float32)
    ys = xs.sum((0, 2))[:, None]
    l0 = float(tr.step((xs[:, :8], ys[:8]))["loss"])
    for _ in range(5):
        l = float(tr.step((xs[:, :8], ys[:8]))["loss"])
    assert l < l0
    assert model.cell.h.shape == (8, 6)
    assert int(model.resets.value) == 1 + 6  # once outside for the new shape, then in every step
    tr.step((xs[:, 8:], ys[8:]))  # batch of 2: reset outside with the new shape
    assert model.cell.h.shape == (2, 6)
    assert seen and seen[0] == (4, 8, 3)


def test_predict_splits_and_joins_along_the_batch_axis():
    nd.random.seed(0)
    model = _Stateful()
    tr = nd.Trainer(model, lambda m, b: jnp.mean((m(b[0]) - b[1]) ** 2), optim.SGD(0.01),
                    progress_bar=False, batch_axis=(1, 0))
    xs = np.random.default_rng(1).normal(size=(4, 10, 3)).astype(np.float32)  # (time, batch, features)
    whole = tr.predict(xs)
    assert whole.shape == (10, 1) and model.cell.h.shape == (10, 6)
    # the time-major input is cut along axis 1 (state reset for each piece's size); the
    # batch-major outputs are joined along axis 0
    parts = tr.predict(xs, batch_size=4)
    assert model.cell.h.shape == (2, 6)
    np.testing.assert_allclose(parts, whole, rtol=1e-5, atol=1e-6)

    class Seq(nd.Module):  # keeps the time axis: outputs (time, batch, 1)
        def __init__(self):
            self.fc = nn.Linear(3, 1)

        def forward(self, xs):
            return self.fc(xs)

    seq = nd.Trainer(Seq(), lambda m, b: jnp.mean(m(b[0]) ** 2), optim.SGD(0.01), batch_axis=(1, 0))
    out = seq.predict(xs, batch_size=4)  # time-major outputs: joined along axis 1
    assert out.shape == (4, 10, 1)
    np.testing.assert_allclose(out, xs @ np.asarray(seq.model.fc.weight.value) + np.asarray(seq.model.fc.bias.value),
                               rtol=1e-5, atol=1e-6)


def test_print_shows_what_a_step_runs():
    nd.random.seed(0)

    def mse_loss(model, batch):
        return mse(model, batch)

    tr = nd.Trainer(nn.Linear(5, 1), mse_loss, optim.Adam(1e-3), progress_bar=False, steps_per_call=4,
                    metrics={"acc": lambda m, b: 0.0}, batch_axis=(1, 0))
    text = repr(tr)
    assert text.startswith("Trainer(\n  model:\n    ")
    assert repr(tr.model).splitlines()[0] in text
    for part in ("optimizer: Adam(params=2, state_leaves=5), 2 parameters (6 values)",
                 "loss: test_print_shows_what_a_step_runs.<locals>.mse_loss, metrics: acc",
                 "batch axis: (1, 0)", "steps per call: 4 steps", "state reset before every step: no",
                 "non-finite steps: skipped with a warning", "placement: default device",
                 "at epoch 0, batch 0, step 0"):
        assert part in text, (part, text)
    x, y = _data(n=16)
    tr2 = nd.Trainer(nn.Linear(5, 1), mse, optim.SGD(0.1), progress_bar=False, stop_on_nan=True, donate=True)
    tr2.step((x, y))
    text = str(tr2)
    assert "steps per call: a whole epoch per call when the data fit on the device, else 1 step, donated" in text
    assert "non-finite steps: stop" in text and "step 1" in text
    dp = nd.Trainer(nn.Linear(5, 1), mse, optim.SGD(0.1), mesh=1,
                    param_sharding=nd.distributed.shard_largest_axis("data", min_size=1))
    assert "placement: data-parallel over mesh (data=1) along 'data'; 2 Variables split" in repr(dp)
