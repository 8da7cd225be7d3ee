"""Runner monitors: time labels, the initial state, event spike monitors (nd.SpikeMonitor), spikes under
monitor_every, and records streamed to disk."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

import neurodyn as nd
from neurodyn import nn


class Noisy(nd.Module):
    """Leaky units with noise and a threshold: spikes depend on every step and on the random state."""

    def __init__(self, n):
        self.V = nd.Variable(jnp.zeros(n))
        self.input = nd.Variable(jnp.zeros(n))
        self.spike = nd.Variable(jnp.zeros(n, bool))

    def update(self):
        V = self.V + (-self.V + self.input) * 0.01 + nd.random.normal(0., 0.1, size=self.V.shape)
        self.spike.value = V > 0.5
        self.V.value = jnp.where(self.spike, 0., V)


class Net(nd.Module):
    def __init__(self, n=40):
        self.E = Noisy(n)

    def update(self):
        self.E.update()


def _runner(net, **kw):
    kw.setdefault("progress_bar", False)
    return nd.Runner(net, inputs=[("E.input", 1.)], **kw)


def test_rows_hold_the_state_after_step_k_at_t_k_dt_and_the_initial_state_on_request():
    lif = nn.LIF(2, V_rest=0., V_th=1e9, tau=10.)
    r = nd.Runner(lif, monitors=["V"], inputs=[("input", 20.)], progress_bar=False, record_initial=True)
    mon = r.run(3.)
    np.testing.assert_allclose(mon.ts, np.arange(31) * 0.1, atol=1e-12)
    # exact integration: the row at t holds V(t) = 20 (1 - exp(-t / 10)), the initial row V(0) = 0
    np.testing.assert_allclose(mon["V"][:, 0], 20 * (1 - np.exp(-mon.ts / 10.)), rtol=1e-5, atol=1e-6)
    more = r.run(1.)  # a continuation has no second initial row
    np.testing.assert_allclose(more.ts, np.arange(31, 41) * 0.1, atol=1e-12)
    np.testing.assert_allclose(more["V"][:, 0], 20 * (1 - np.exp(-more.ts / 10.)), rtol=1e-5)
    r.reset()  # from t = 0 again: the initial row is recorded again
    again = r.run(0.5)
    np.testing.assert_allclose(again.ts, np.arange(6) * 0.1, atol=1e-12)
    assert again["V"][0, 0] == 0.


def _events_and_dense(chunk_size, index=None, duration=30., seed=3):
    nd.random.seed(seed)
    net = Net()
    dense = "E.spike" if index is None else ("E.spike", index)
    r = _runner(net, monitors={"ev": nd.SpikeMonitor("E.spike", index), "dense": dense},
                chunk_size=chunk_size)
    return r.run(duration), r


def test_event_monitor_equals_the_dense_record_for_any_chunk_size():
    ref, r = _events_and_dense(1000)
    rec = ref["ev"]
    assert isinstance(rec, nd.SpikeRecord) and rec.size == 40 and len(rec) == int(ref["dense"].sum()) > 50
    np.testing.assert_array_equal(rec.to_dense(), ref["dense"])
    steps, idx = np.nonzero(ref["dense"])
    np.testing.assert_array_equal(rec.steps, steps + 1)
    np.testing.assert_array_equal(rec.indices, idx)
    np.testing.assert_allclose(rec.times, ref.ts[steps])
    assert rec.times.dtype == np.float64 and (rec.t_start, rec.t_stop) == (0., 30.)
    np.testing.assert_array_equal(rec.count(), ref["dense"].sum(0))
    np.testing.assert_allclose(rec.rates(), ref["dense"].sum(0) / 0.030)
    pop = rec.population_rate(5.)
    np.testing.assert_allclose(pop, ref["dense"].reshape(6, 50, 40).sum((1, 2)) / (40 * 5e-3))
    for chunk in (7, 64, 300):
        other, _ = _events_and_dense(chunk)
        np.testing.assert_array_equal(other["ev"].steps, rec.steps)
        np.testing.assert_array_equal(other["ev"].indices, rec.indices)
        np.testing.assert_array_equal(other["dense"], ref["dense"])
    sel = np.array([3, 17, 0])
    part, _ = _events_and_dense(100, index=sel)
    np.testing.assert_array_equal(part["ev"].to_dense(), ref["dense"][:, sel])
    np.testing.assert_array_equal(part["ev"].neurons, sel)


def test_event_record_continues_identically_after_save_and_load_mid_run(tmp_path):
    straight, _ = _events_and_dense(70, duration=40.)
    nd.random.seed(3)
    net = Net()
    r = _runner(net, monitors={"ev": nd.SpikeMonitor("E.spike"), "V": "E.V"}, chunk_size=70)
    r.run(20.)
    nd.save(tmp_path / "mid.npz", net)
    nd.random.seed(99)
    fresh = Net()
    nd.load(tmp_path / "mid.npz", fresh)
    r2 = _runner(fresh, monitors={"ev": nd.SpikeMonitor(fresh.E.spike), "dense": "E.spike"}, chunk_size=70)
    r2.i = r.i  # continue the clock of the saved simulation
    cont = r2.run(20.)
    ref = straight["dense"][200:]
    np.testing.assert_array_equal(cont["dense"], ref)
    np.testing.assert_array_equal(cont["ev"].to_dense(), ref)
    later = straight["ev"].steps > 200
    np.testing.assert_array_equal(cont["ev"].steps, straight["ev"].steps[later])
    np.testing.assert_array_equal(cont["ev"].indices, straight["ev"].indices[later])
    assert (cont["ev"].t_start, cont["ev"].t_stop) == (20., 40.)


def test_spikes_under_monitor_every_are_counted_per_interval_never_dropped():
    nd.random.seed(3)
    full = _runner(Net(), monitors=["E.spike", "E.V"]).run(30.)
    nd.random.seed(3)
    sparse = _runner(Net(), monitors={"s": "E.spike", "V": "E.V", "ev": nd.SpikeMonitor("E.spike")},
                     monitor_every=10).run(30.)
    assert sparse["s"].dtype == np.int32 and sparse["s"].shape == (30, 40)
    np.testing.assert_array_equal(sparse["s"], full["E.spike"].reshape(30, 10, 40).sum(1))
    assert sparse["s"].sum() == full["E.spike"].sum() > 0
    np.testing.assert_array_equal(sparse["V"], full["E.V"][9::10])
    np.testing.assert_allclose(sparse.ts, np.arange(1, 31) * 1.0)
    np.testing.assert_array_equal(sparse["ev"].to_dense(), full["E.spike"])


def test_spike_monitor_errors():
    net = Net()
    with pytest.raises(TypeError, match=r"SpikeMonitor 'x' records a 1-d boolean spike Variable; 'E.V' has shape"):
        _runner(net, monitors={"x": nd.SpikeMonitor("E.V")})
    with pytest.raises(IndexError, match="selects indices up to 40"):
        _runner(net, monitors={"x": nd.SpikeMonitor("E.spike", [40])})
    with pytest.warns(DeprecationWarning, match="rate is no longer used"):
        nd.SpikeMonitor("E.spike", rate=20.)
    with pytest.raises(TypeError, match="a dotted path or a spike Variable"):
        nd.SpikeMonitor(3)


def test_records_streamed_to_disk_read_back(tmp_path):
    nd.random.seed(3)
    ref = _runner(Net(), monitors=["E.V"]).run(20.)
    nd.random.seed(3)
    r = _runner(Net(), monitors=["E.V"], record_to=tmp_path, chunk_size=30)
    mon = r.run(20.)
    assert isinstance(mon["E.V"], np.memmap)
    np.testing.assert_array_equal(mon["E.V"], ref["E.V"])
    np.testing.assert_array_equal(np.load(tmp_path / "E.V.npy"), ref["E.V"])


def test_raster_plot_accepts_a_spike_record(tmp_path):
    pytest.importorskip("matplotlib")
    from neurodyn.visualize import raster_plot

    mon, _ = _events_and_dense(100)
    fig = raster_plot(mon["ev"], path=str(tmp_path / "r.png"))
    xs, ys = fig.axes[0].lines[0].get_data()
    np.testing.assert_allclose(xs, mon["ev"].times)
    np.testing.assert_array_equal(ys, mon["ev"].indices)
    assert (tmp_path / "r.png").exists()


def test_synchronous_volleys_are_all_kept():
    class Volley(nd.Module):
        """All 300 units fire together every 7th step, one unit in between."""

        def __init__(self):
            self.spike = nd.Variable(jnp.zeros(300, bool))

        def update(self):
            i = nd.share.i
            self.spike.value = (i % 7 == 0) | (jnp.arange(300) == i % 300)

    r = nd.Runner(Volley(), monitors={"ev": nd.SpikeMonitor("spike"), "d": "spike"},
                  progress_bar=False, chunk_size=50)
    mon = r.run(20.)
    assert mon["d"].sum() > 300 * 25
    np.testing.assert_array_equal(mon["ev"].to_dense(), mon["d"])


def test_streamed_records_of_an_earlier_run_stay_valid_after_the_next_run(tmp_path):
    nd.random.seed(3)
    r = _runner(Net(), monitors=["E.V"], record_to=tmp_path)
    first = r.run(2.)
    keep = np.array(first["E.V"])
    second = r.run(3.)
    np.testing.assert_array_equal(first["E.V"], keep)  # still readable, unchanged
    assert second["E.V"].shape == (30, 40) and sorted(p.name for p in tmp_path.iterdir()) == ["E.V.npy"]


class Bursts(nd.Module):
    """200 units: all spike together every 25th step, 4 at the other steps."""

    def __init__(self, n=200):
        self.i = nd.Variable(jnp.int32(0))
        self.spike = nd.Variable(jnp.zeros(n, bool))

    def update(self):
        self.i.value = self.i + 1
        n = self.spike.shape[0]
        self.spike.value = (self.i % 25 == 0) | (jnp.arange(n) % 50 == self.i % 50)


def test_bursts_of_every_neuron_are_recorded_at_any_chunk_size():
    net = Bursts()
    dense = nd.Runner(net, monitors=["spike"], progress_bar=False).run(20.)["spike"]
    assert dense.sum(1).max() == 200
    for chunk in (50, 1000):
        net.reset_state()
        rec = nd.Runner(net, monitors={"ev": nd.SpikeMonitor("spike")}, progress_bar=False,
                        chunk_size=chunk).run(20.)["ev"]
        np.testing.assert_array_equal(rec.to_dense(), dense)


@pytest.mark.parametrize("n", [1, 31, 32, 33, 64, 200])
def test_spikes_packed_32_to_a_word_unpack_to_every_event(n):
    from neurodyn._runner import _pack_bits, _unpack_events
    rng = np.random.default_rng(n)
    spikes = rng.random((9, n)) < 0.3
    spikes[2] = True  # every bit of a row, the top bit of each word included
    spikes[5] = False
    words = np.stack([np.asarray(_pack_bits(jnp.asarray(row))) for row in spikes])
    assert words.dtype == np.uint32 and words.shape == (9, -(-n // 32))
    np.testing.assert_array_equal(words[:, 0] & 1, spikes[:, 0])
    steps, neurons = _unpack_events(words)
    ref_steps, ref_neurons = np.nonzero(spikes)
    np.testing.assert_array_equal(steps, ref_steps)
    np.testing.assert_array_equal(neurons, ref_neurons)
    assert steps.dtype == neurons.dtype == np.int64