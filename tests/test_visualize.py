"""firing_rate (keyword-only dt, no edge bias) and line_plot."""

import numpy as np
import pytest

from neurodyn.visualize import firing_rate, line_plot, raster_plot


def test_firing_rate_dt_is_keyword_only():
    spikes = np.zeros((100, 4), bool)
    with pytest.raises(TypeError):
        firing_rate(spikes, 5.0)  # a window passed where BrainPy put it: refused, not 50x too low
    with pytest.raises(ValueError, match="dt must be a positive number of ms, got 0"):
        firing_rate(spikes, dt=0.0)
    with pytest.raises(ValueError, match=r"expects a \(time, neurons\) array, got shape \(2, 2, 2\)"):
        firing_rate(np.zeros((2, 2, 2)), dt=0.1)


def test_firing_rate_has_no_edge_bias():
    # exactly one of 100 neurons spikes at every step: 1% per 0.1 ms step = 100 Hz throughout
    spikes = np.zeros((500, 100), bool)
    spikes[np.arange(500), np.arange(500) % 100] = True
    np.testing.assert_allclose(firing_rate(spikes, dt=0.1), 100.0)
    np.testing.assert_allclose(firing_rate(spikes, dt=0.1, window=5.0), 100.0)  # edges too


def test_firing_rate_matches_a_centred_moving_average_over_existing_steps():
    rng = np.random.default_rng(0)
    spikes = rng.random((300, 50)) < 0.02
    out = firing_rate(spikes, dt=0.1, window=1.0)   # 10 steps
    inst = spikes.mean(axis=1) / 0.1 * 1000.0
    ref = [inst[max(0, i - 5):min(300, i + 5)].mean() for i in range(300)]
    np.testing.assert_allclose(out, ref, rtol=1e-12)
    np.testing.assert_allclose(firing_rate(spikes[:, 0], dt=0.1), spikes[:, 0] * 10000.0)


def test_line_plot(tmp_path):
    pytest.importorskip("matplotlib")
    ts = np.arange(200) * 0.1
    V = np.stack([np.sin(ts), np.cos(ts), ts], axis=1)
    fig = line_plot(ts, V, plot_ids=[0, 2], path=str(tmp_path / "v.png"), ylabel="V (mV)", legend="V")
    ax = fig.axes[0]
    assert [l.get_label() for l in ax.lines] == ["V[0]", "V[2]"]
    np.testing.assert_array_equal(ax.lines[1].get_ydata(), V[:, 2])
    assert ax.get_ylabel() == "V (mV)" and (tmp_path / "v.png").stat().st_size > 1000
    assert len(line_plot(ts, V[:, 0]).axes[0].lines) == 1
    with pytest.raises(ValueError, match=r"plot_ids \[3\] are out of range for 3 neurons"):
        line_plot(ts, V, plot_ids=[3])
    with pytest.raises(ValueError, match=r"values of shape \(len\(ts\),\) or \(len\(ts\), neurons\) = \(200, n\), got \(10, 3\)"):
        line_plot(ts, V[:10])
    fig = raster_plot(ts, np.zeros((200, 3), bool))  # still draws its rate panel
    assert len(fig.axes) == 2
