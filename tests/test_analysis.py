import numpy as np
import pytest

from neurodyn import analysis as an


def poisson_trains(n, rate_hz, t_stop_ms, seed=0):
    rng = np.random.default_rng(seed)
    counts = rng.poisson(rate_hz * t_stop_ms / 1000.0, size=n)
    idx = np.repeat(np.arange(n), counts)
    times = rng.uniform(0.0, t_stop_ms, size=idx.size)
    return an.SpikeTrains(times, idx, n, 0.0, t_stop_ms)


def regular_trains(n, period_ms, t_stop_ms, phases=None):
    phases = np.zeros(n) if phases is None else np.asarray(phases)
    times, idx = [], []
    for i in range(n):
        t = np.arange(phases[i], t_stop_ms, period_ms)
        times.append(t)
        idx.append(np.full(t.size, i))
    return an.SpikeTrains(np.concatenate(times), np.concatenate(idx), n, 0.0, t_stop_ms)


def test_rates_hand_computed_and_plain_array_and_attribute_forms():
    times = np.array([1.0, 5.0, 9.0, 12.0])
    idx = np.array([0, 1, 0, 0])
    expected = np.array([3, 1, 0]) / 0.5  # spikes per 500 ms
    np.testing.assert_allclose(an.firing_rates(times, idx, 3, 0.0, 500.0), expected)

    class Record:  # any object with the attributes of a spike record
        pass

    r = Record()
    r.times, r.indices, r.size, r.t_start, r.t_stop = times, idx, 3, 0.0, 500.0
    np.testing.assert_allclose(an.firing_rates(r), expected)
    st = an.as_spike_trains(r)
    assert st.n_neurons == 3 and st.duration == 500.0


def test_from_dense_times_are_step_ends():
    dense = np.zeros((10, 3), bool)
    dense[2, 1] = dense[7, 0] = True
    st = an.SpikeTrains.from_dense(dense, dt=0.5, t_start=100.0)
    np.testing.assert_allclose(st.times, [101.5, 104.0])  # row k ends at t_start + (k + 1) dt
    np.testing.assert_array_equal(st.indices, [1, 0])
    assert (st.t_start, st.t_stop, st.n_neurons) == (100.0, 105.0, 3)


def test_spike_monitor_record_is_accepted_as_is():
    import neurodyn as nd
    from neurodyn import nn

    lif = nn.LIF(20, V_rest=0.0, V_reset=0.0, V_th=1.0, tau=10.0)
    runner = nd.Runner(lif, monitors={"rec": nd.SpikeMonitor("spike"), "dense": "spike"},
                       inputs=[("input", np.linspace(1.5, 3.0, 20))], progress_bar=False)
    mon = runner.run(100.0)
    rec = mon["rec"]
    st = an.as_spike_trains(rec)
    ref = an.SpikeTrains.from_dense(mon["dense"], dt=nd.get_dt(), t_start=mon.ts[0] - nd.get_dt())
    np.testing.assert_allclose(st.times, ref.times)
    np.testing.assert_array_equal(st.indices, ref.indices)
    np.testing.assert_allclose(an.firing_rates(rec), mon["dense"].sum(0) / 0.1)
    np.testing.assert_allclose(an.cv_isi(rec), 0.0, atol=1e-6)  # constant input: regular firing


def test_select_and_window():
    st = an.SpikeTrains([1.0, 2.0, 3.0, 4.0], [0, 3, 4, 1], 5, 0.0, 10.0)
    sub = st.select(3, 5)
    np.testing.assert_array_equal(sub.indices, [0, 1])
    np.testing.assert_allclose(sub.times, [2.0, 3.0])
    w = st.window(2.0, 4.0)  # (2, 4]
    np.testing.assert_allclose(w.times, [3.0, 4.0])
    assert w.duration == 2.0


def test_cv_hand_computed_regular_and_poisson():
    # ISIs 1 and 3 ms: mean 2, std 1 -> CV 0.5; neuron 1 has too few spikes
    st = an.SpikeTrains([0.0, 1.0, 4.0, 2.0], [0, 0, 0, 1], 2, 0.0, 10.0)
    np.testing.assert_allclose(an.cv_isi(st), [0.5])
    reg = regular_trains(20, 7.0, 1000.0, phases=np.linspace(0, 6, 20))
    np.testing.assert_allclose(an.cv_isi(reg), 0.0, atol=1e-9)
    cv = an.cv_isi(poisson_trains(500, 20.0, 10_000.0))
    # 200 intervals per neuron: the CV of each is ~1 within ~0.07; the mean over 500 within 0.02
    assert abs(cv.mean() - 1.0) < 0.02


def test_fano_regular_zero_poisson_one():
    reg = regular_trains(10, 10.0, 2000.0, phases=np.full(10, 5.0))  # 10 spikes in each 100 ms bin
    np.testing.assert_allclose(an.fano_factor(reg, bin_ms=100.0), 0.0, atol=1e-12)
    ff = an.fano_factor(poisson_trains(500, 20.0, 20_000.0, seed=1), bin_ms=100.0)
    assert abs(ff.mean() - 1.0) < 0.03


def test_spike_counts_and_correlations_against_numpy():
    st = poisson_trains(6, 50.0, 2000.0, seed=2)
    c = an.spike_counts(st, bin_ms=10.0)
    assert c.shape == (6, 200) and c.sum() == len(st)
    cc = an.spike_count_correlations(st, bin_ms=10.0, n_pairs=None)
    ref = np.corrcoef(c)[np.triu_indices(6, k=1)]
    np.testing.assert_allclose(cc, ref, rtol=1e-10)
    # identical trains are perfectly correlated; independent ones are not
    n, rng = 50, np.random.default_rng(3)
    t = np.sort(rng.uniform(0, 5000, 200))
    same = an.SpikeTrains(np.tile(t, n), np.repeat(np.arange(n), t.size), n, 0.0, 5000.0)
    np.testing.assert_allclose(an.spike_count_correlations(same, n_pairs=100), 1.0)
    ind = an.spike_count_correlations(poisson_trains(200, 20.0, 10_000.0, seed=4), n_pairs=2000)
    assert abs(ind.mean()) < 0.01 and ind.size == 2000


def test_synchrony_identical_one_independent_small():
    n, rng = 100, np.random.default_rng(5)
    t = np.sort(rng.uniform(0, 2000, 100))
    same = an.SpikeTrains(np.tile(t, n), np.repeat(np.arange(n), t.size), n, 0.0, 2000.0)
    assert an.synchrony(same) == pytest.approx(1.0)
    chi = an.synchrony(poisson_trains(400, 20.0, 5000.0, seed=6), bin_ms=1.0)
    assert 0.7 / np.sqrt(400) < chi < 1.3 / np.sqrt(400)
    assert np.isnan(an.synchrony(an.SpikeTrains([], np.zeros(0, int), 5, 0.0, 100.0)))


def test_population_spectrum_peak_and_parseval():
    # neurons fire with a rate modulated at 40 Hz: the spectrum peaks there
    rng = np.random.default_rng(7)
    T, n = 4000.0, 300
    t_fine = np.arange(0, T, 0.1)
    lam = 10.0 * (1 + 0.9 * np.sin(2 * np.pi * 40.0 * t_fine / 1000.0)) * 0.1 / 1000.0
    spikes = rng.random((t_fine.size, n)) < lam[:, None]
    st = an.SpikeTrains.from_dense(spikes, dt=0.1)
    f, p = an.population_spectrum(st, bin_ms=1.0)
    assert f[np.argmax(p[1:]) + 1] == pytest.approx(40.0, abs=0.5)
    _, rate = an.population_rate(st, bin_ms=1.0)
    assert np.sum(p) * (f[1] - f[0]) == pytest.approx(rate.var(), rel=1e-6)
    fw, pw = an.population_spectrum(st, bin_ms=1.0, segment_ms=500.0)
    assert fw[1] == pytest.approx(2.0) and fw[np.argmax(pw[1:]) + 1] == pytest.approx(40.0)


def test_population_rate_hand_computed():
    st = an.SpikeTrains([0.2, 1.0, 1.5, 3.0], [0, 1, 1, 0], 2, 0.0, 3.0)
    t, r = an.population_rate(st, bin_ms=1.0)  # bins (0, 1], (1, 2], (2, 3]
    np.testing.assert_allclose(t, [0.0, 1.0, 2.0])
    np.testing.assert_allclose(r, [1000.0, 500.0, 500.0])  # 2 spikes / 2 neurons / 1 ms


def test_summary_per_population():
    st = poisson_trains(300, 10.0, 5000.0, seed=8)
    s = an.summary(st, populations={"A": slice(0, 100), "B": (100, 300)})
    assert set(s) == {"A", "B"}
    rates = an.firing_rates(st)
    assert s["B"]["rate"] == pytest.approx(rates[100:].mean())
    assert abs(s["A"]["cv"] - 1.0) < 0.05


def test_errors_are_clear():
    with pytest.raises(ValueError, match="indices must lie in \\[0, 3\\)"):
        an.SpikeTrains([1.0], [3], 3, 0.0, 10.0)
    with pytest.raises(ValueError, match="spike times must lie in"):
        an.SpikeTrains([10.5], [0], 3, 0.0, 10.0)
    with pytest.raises(ValueError, match="times has 2 entries but indices has 1"):
        an.SpikeTrains([1.0, 2.0], [0], 3, 0.0, 10.0)
    with pytest.raises(TypeError, match="also pass indices, n_neurons"):
        an.firing_rates(np.array([1.0]))
    with pytest.raises(ValueError, match="fewer than 2 bins"):
        an.fano_factor(an.SpikeTrains([1.0], [0], 1, 0.0, 10.0), bin_ms=100.0)
    with pytest.raises(ValueError, match="min_spikes must be >= 3"):
        an.cv_isi(an.SpikeTrains([1.0], [0], 1, 0.0, 10.0), min_spikes=2)
    with pytest.raises(TypeError, match="lacks n_neurons"):
        class Bad:
            times, indices = np.zeros(1), np.zeros(1, int)
        an.firing_rates(Bad())


def test_plots_write_files(tmp_path):
    pytest.importorskip("matplotlib")
    st = poisson_trains(200, 10.0, 1000.0)
    pops = {"E": (0, 150), "I": (150, 200)}
    for fn, name in ((an.raster, "r.png"), (an.distributions, "d.png")):
        fn(st, populations=pops, path=str(tmp_path / name))
        assert (tmp_path / name).stat().st_size > 1000
    fig = an.rate_boxplot(st, populations=pops, reference={"E": 10.0, "I": 10.0}, path=str(tmp_path / "b.png"))
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["I", "E"]
