"""Whole-epoch calls from device-resident data: the same batches and results as host batching,
one trace for every epoch, the short last batch, skipped non-finite steps, the automatic choice."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import neurodyn as nd
from neurodyn import _data, nn, optim


def _data_xy(n=90, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)).astype(np.float32)
    y = (x @ rng.normal(size=(5, 1)) + 0.1).astype(np.float32)
    return x, y


def _loss(m, b):
    err = m(b[0]) - b[1]
    return jnp.mean(err ** 2), {"mae": jnp.mean(jnp.abs(err))}


def _trainer(spc, **kw):
    nd.random.seed(1)
    model = nn.Sequential(nn.Linear(5, 16), jax.nn.relu, nn.Linear(16, 1))
    return nd.Trainer(model, _loss, optim.Adam(1e-2), progress_bar=False, steps_per_call=spc, **kw)


def _params(tr):
    return {k: np.asarray(v.value) for k, v in tr.model.train_vars().items()}


@pytest.mark.parametrize("drop_last", [False, True])
def test_whole_epoch_calls_match_host_batches(drop_last):
    x, y = _data_xy()
    host, dev = _trainer(1), _trainer(None)
    for tr in (host, dev):
        for _ in range(2):  # fit called once per epoch, as in the examples
            tr.fit((x, y), epochs=1, batch_size=20, seed=3, drop_last=drop_last)
    np.testing.assert_allclose(dev.history["loss"], host.history["loss"], rtol=1e-5)
    np.testing.assert_allclose(dev.history["mae"], host.history["mae"], rtol=1e-5)
    for k, v in _params(host).items():
        np.testing.assert_allclose(_params(dev)[k], v, rtol=1e-5, atol=1e-6)
    assert dev.global_step == host.global_step == (8 if drop_last else 10)
    # the full batches ran in one compiled call per epoch, traced once for both epochs
    assert dev._gathered_fn.trace_count == host._gathered_fn.trace_count + 1 >= 1
    assert host._gathered_fn.trace_count == 0
    # the short last batch (10 samples) ran as a step of its own
    assert (dev._step_fn.trace_count > 0) == (not drop_last)


def test_epoch_mode_resumes_mid_epoch_and_skips_non_finite_steps():
    x, y = _data_xy(n=100)
    x[37] = np.nan  # poisons one batch of every epoch
    runs = []
    for spc in (1, "epoch"):
        tr = _trainer(spc)
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            tr.fit((x, y), epochs=2, batch_size=10, seed=0)
        assert sum("non-finite loss nan" in str(m.message) for m in w) == 2
        tr.batch_in_epoch = 4  # start the next epoch at its fifth batch
        with pytest.warns(RuntimeWarning, match=r"non-finite loss nan at training step 23 \(epoch 2, batch 7\)"):
            tr.fit((x, y), epochs=1, batch_size=10, seed=0)
        runs.append(tr)
    host, dev = runs
    assert dev.history["skipped"] == host.history["skipped"] and host.history["skipped"][:2] == [1.0, 1.0]
    np.testing.assert_allclose(dev.history["loss"], host.history["loss"], rtol=1e-5)
    for k, v in _params(host).items():
        assert np.all(np.isfinite(v))
        np.testing.assert_allclose(_params(dev)[k], v, rtol=1e-5, atol=1e-6)
    assert dev.global_step == host.global_step == 26


def test_automatic_choice_and_errors(monkeypatch):
    x, y = _data_xy()
    tr = _trainer(None)
    tr.fit((x, y), epochs=1, batch_size=30)
    assert tr._gathered_fn.trace_count > 0
    monkeypatch.setattr(_data, "DEVICE_FRACTION", 0.0)  # "does not fit": batches from the host
    tr = _trainer(None)
    tr.fit((x, y), epochs=1, batch_size=30)
    assert tr._gathered_fn.trace_count == 0 and tr.global_step == 3
    tr = _trainer("epoch")  # forced
    tr.fit((x, y), epochs=1, batch_size=30)
    assert tr._gathered_fn.trace_count > 0
    # an iterable of batches is not an array dataset: batch by batch as before
    tr = _trainer(None)
    tr.fit([(x[:30], y[:30]), (x[30:60], y[30:60])], epochs=1)
    assert tr._gathered_fn.trace_count == 0 and tr.global_step == 2
    with pytest.raises(ValueError, match=r"steps_per_call must be None, 'epoch' or an int >= 1, got 'all'"):
        _trainer("all")
    with pytest.raises(ValueError, match=r"steps_per_call must be None, 'epoch' or an int >= 1, got 0"):
        _trainer(0)


def test_progress_bar_counts_every_batch(capsys):
    x, y = _data_xy()
    nd.random.seed(0)
    tr = nd.Trainer(nn.Linear(5, 1), lambda m, b: jnp.mean((m(b[0]) - b[1]) ** 2), optim.SGD(0.01))
    tr.fit((x, y), epochs=1, batch_size=20)
    err = capsys.readouterr().err
    assert "5/5" in err and "loss=" in err
