"""Spike encoders against their definitions and event binning against a per-event loop."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import neurodyn as nd
from neurodyn import encoders


def test_rate_is_bernoulli_with_clipped_probability():
    x = jnp.array([0.0, 0.1, 0.5, 0.9, 1.0])
    s = encoders.rate(x, num_steps=4000, key=jax.random.PRNGKey(0))
    assert s.shape == (4000, 5) and s.dtype == jnp.float32
    assert set(np.unique(np.asarray(s))) <= {0.0, 1.0}
    p = np.asarray(x)
    assert np.all(np.abs(np.asarray(s.mean(0)) - p) <= 4 * np.sqrt(p * (1 - p) / 4000) + 1e-9)
    # gain scales the probability and is clipped to 1
    s2 = encoders.rate(x, 10, gain=2.0, key=jax.random.PRNGKey(1))
    np.testing.assert_array_equal(s2[:, 3:], 1.0)
    np.testing.assert_array_equal(s2[:, 0], 0.0)
    # without a key, nd.random draws (reproducible with its seed)
    nd.random.seed(5)
    a = encoders.rate(x, 50)
    nd.random.seed(5)
    np.testing.assert_array_equal(a, encoders.rate(x, 50))


def test_poisson_counts_have_poisson_mean_and_variance():
    x = jnp.array([[0.0, 0.25], [1.0, 0.5]])
    c = np.asarray(encoders.poisson(x, num_steps=5000, max_rate=0.8, dt=2.0, key=jax.random.PRNGKey(2)))
    assert c.shape == (5000, 2, 2) and c.max() >= 2  # several events may share a step
    lam = np.asarray(x) * 1.6
    assert np.all(np.abs(c.mean(0) - lam) <= 4 * np.sqrt(lam / 5000) + 1e-9)
    np.testing.assert_allclose(c.var(0), lam, rtol=0.1, atol=1e-9)
    with pytest.raises(ValueError, match=r"encoders.poisson: max_rate must be >= 0 and dt > 0, got max_rate=1.0, dt=0"):
        encoders.poisson(x, 10, max_rate=1.0, dt=0)


def test_latency_linear_and_rc():
    x = jnp.array([1.0, 0.5, 0.25, 0.005, 0.0])
    s = np.asarray(encoders.latency(x, num_steps=11))
    assert s.shape == (11, 5)
    np.testing.assert_array_equal(s.sum(0), [1, 1, 1, 0, 0])  # at most one spike each
    assert [int(np.argmax(s[:, i])) for i in range(3)] == [0, 5, 8]  # round((1 - x) * 10)
    s = np.asarray(encoders.latency(x, num_steps=20, tau=5.0, threshold=0.2))
    expect = [round(5.0 * math.log(v / (v - 0.2))) for v in (1.0, 0.5, 0.25)]
    assert [int(np.argmax(s[:, i])) for i in range(3)] == [expect[0], expect[1], min(expect[2], 19)]
    np.testing.assert_array_equal(s.sum(0), [1, 1, 1, 0, 0])
    with pytest.raises(ValueError, match=r"encoders.latency: num_steps must be a positive int, got 0"):
        encoders.latency(x, 0)


def test_delta_on_and_off_spikes():
    x = jnp.array([[0.0], [0.5], [0.55], [0.2], [0.2], [1.0]])
    np.testing.assert_array_equal(encoders.delta(x, threshold=0.3)[:, 0], [0, 1, 0, 0, 0, 1])
    np.testing.assert_array_equal(encoders.delta(x, threshold=0.3, off_spike=True)[:, 0], [0, 1, 0, -1, 0, 1])
    # the first step is compared with 0
    np.testing.assert_array_equal(encoders.delta(jnp.array([0.4, 0.4]), threshold=0.3), [1, 0])


def _events(n, W, H, P, t_max, seed, with_y=True):
    rng = np.random.default_rng(seed)
    fields = [("x", np.int16)] + ([("y", np.int16)] if with_y else []) + [("t", np.int64), ("p", np.int8)]
    ev = np.zeros(n, dtype=fields)
    ev["x"] = rng.integers(0, W, n)
    if with_y:
        ev["y"] = rng.integers(0, H, n)
    ev["t"] = np.sort(rng.integers(0, t_max, n))
    ev["p"] = rng.integers(0, P, n)
    return ev


def test_bin_events_counts_every_event_once():
    ev = _events(3000, W=8, H=6, P=2, t_max=10_000, seed=0)
    assert ev.dtype.names == encoders.EVENT_DTYPE.names
    frames = encoders.bin_events(ev, (8, 6, 2), time_window=1000.0)
    ref = np.zeros((10, 2, 6, 8))
    for e in ev:
        ref[int(e["t"]) // 1000, e["p"], e["y"], e["x"]] += 1
    np.testing.assert_array_equal(frames, ref)
    assert frames.sum() == len(ev) and frames.dtype == np.float32
    # equal bins over [first, last] event; the last event falls into the last bin
    frames = encoders.bin_events(ev, (8, 6, 2), n_time_bins=7)
    t0, t1 = ev["t"].min(), ev["t"].max()
    ref = np.zeros((7, 2, 6, 8))
    for e in ev:
        k = min(int((e["t"] - t0) / ((t1 - t0) / 7)), 6)
        ref[k, e["p"], e["y"], e["x"]] += 1
    np.testing.assert_array_equal(frames, ref)
    binary = encoders.bin_events(ev, (8, 6, 2), n_time_bins=7, binary=True, dtype=np.uint8)
    np.testing.assert_array_equal(binary, (ref > 0).astype(np.uint8))
    # a window ending before the last event drops the later ones
    cut = encoders.bin_events(ev, (8, 6, 2), time_window=1000.0, t_end=4000)
    assert cut.shape[0] == 4 and cut.sum() == np.sum(ev["t"] < 4000)


def test_bin_events_audio_sensor_without_y():
    ev = _events(500, W=700, H=1, P=2, t_max=50_000, seed=1, with_y=False)  # SHD-like: x, t, p
    frames = encoders.bin_events(ev, (700, 1, 1), time_window=5000.0)
    assert frames.shape == (10, 1, 1, 700)
    ref = np.zeros((10, 700))
    for e in ev:
        ref[int(e["t"]) // 5000, e["x"]] += 1  # a single-polarity sensor counts every polarity
    np.testing.assert_array_equal(frames.reshape(10, 700), ref)


def test_bin_events_errors():
    ev = _events(10, 4, 4, 2, 100, 2)
    with pytest.raises(ValueError, match="give exactly one of n_time_bins and time_window"):
        encoders.bin_events(ev, (4, 4, 2))
    with pytest.raises(ValueError, match=r"lack the fields \['p'\]"):
        encoders.bin_events(ev[["x", "y", "t"]], (4, 4, 2), n_time_bins=2)
    with pytest.raises(TypeError, match="structured array with fields x, t, p.*got ndarray of dtype float64"):
        encoders.bin_events(np.zeros((3, 4)), (4, 4, 2), n_time_bins=2)
    with pytest.raises(ValueError, match=r"sensor_size must be \(width, height, polarities\).*got \(4, 4\)"):
        encoders.bin_events(ev, (4, 4), n_time_bins=2)


def test_pad_sequences():
    seqs = [np.ones((3, 2)), 2 * np.ones((5, 2)), np.zeros((1, 2))]
    x, lengths = encoders.pad_sequences(seqs)
    assert x.shape == (3, 5, 2) and lengths.tolist() == [3, 5, 1]
    np.testing.assert_array_equal(x[0, 3:], 0)
    np.testing.assert_array_equal(x[1], 2)
    x, lengths = encoders.pad_sequences(seqs, length=4, value=-1)
    assert x.shape == (3, 4, 2) and lengths.tolist() == [3, 4, 1] and x[2, 1, 0] == -1
    with pytest.raises(ValueError, match=r"sequence 1 has shape \(2, 3\); every sequence must be \(time, \*\(2,\)\)"):
        encoders.pad_sequences([np.ones((3, 2)), np.ones((2, 3))])


# -- the synthetic SHD example -----------------------------------------------------------------
def test_shd_synthetic_streams_and_training_at_tiny_size():
    import os
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples"))
    import shd_synthetic as ex

    classes = ex.make_classes(3, n_tracks=3, seed=0)
    ev = ex.make_stream(classes[0], np.random.default_rng(0))
    assert ev.dtype.names == ("x", "t", "p") and np.all(np.diff(ev["t"]) >= 0)
    assert 0 <= ev["x"].min() and ev["x"].max() < 700 and 0.0 < ev["t"].max() <= 1e6
    x, y, lengths = ex.make_data(classes, 16, seed=1, bin_us=25_000.0)
    assert x.shape[0] == 16 and x.shape[2] == 700 and len(set(lengths.tolist())) > 1  # variable lengths
    assert np.all(x[np.arange(16), lengths - 1].sum(-1) > 0)  # the stream reaches its last bin
    for i in range(16):
        assert not x[i, lengths[i]:].any()  # zero padding after the stream's end
    r = ex.main(n_classes=4, n_hidden=32, n_train=128, n_test=64, epochs=3, batch_size=32, lr=5e-3,
                bin_us=50_000.0, progress_bar=False)
    assert r["history"]["loss"][-1] < r["history"]["loss"][0]
    assert r["test_acc"][-1] > 0.45  # chance is 0.25
