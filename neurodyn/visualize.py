"""Plots of simulation results (needs the optional extra: ``pip install neurodyn[plot]``).

Example:
    >>> import neurodyn as nd
    >>> from neurodyn import nn
    >>> from neurodyn.visualize import raster_plot
    >>> runner = nd.Runner(nn.LIF(5, V_rest=-60., V_reset=-60., V_th=-50.), monitors=['spike'],
    ...                    inputs=[('input', 20.)], progress_bar=False)
    >>> mon = runner.run(20.)
    >>> fig = raster_plot(mon.ts, mon['spike'])   # path='raster.png' writes a PNG
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["raster_plot", "line_plot", "firing_rate"]


def firing_rate(spikes: Any, *, dt: float, window: float | None = None) -> np.ndarray:
    """Population rate in Hz per recorded step, averaged over ``window`` ms if given.

    ``spikes`` is a (time, neurons) array (or a (time,) train of one neuron)
    recorded every step of ``dt`` ms; ``dt`` is keyword-only, so a window
    cannot be passed in its place. The moving average is centred and, near the
    edges, averages only over the steps that exist (no zero padding, so the
    rate does not dip at the start and end of a recording).

    Example:
        >>> import numpy as np
        >>> from neurodyn.visualize import firing_rate
        >>> spikes = np.zeros((100, 2), bool)     # 10 ms at dt = 0.1 ms
        >>> spikes[::10] = True                   # every neuron spikes every 1 ms
        >>> rate = firing_rate(spikes, dt=0.1, window=5.)
        >>> rate.shape, float(rate[50])           # Hz, averaged over the neurons
        ((100,), 1000.0)
    """
    spikes = np.asarray(spikes)
    if spikes.ndim == 1:
        spikes = spikes[:, None]
    if spikes.ndim != 2:
        raise ValueError(f"firing_rate expects a (time, neurons) array, got shape {spikes.shape}")
    dt = float(dt)
    if not dt > 0:
        raise ValueError(f"firing_rate: dt must be a positive number of ms, got {dt}")
    rate = spikes.mean(axis=1, dtype=np.float64) / (dt / 1000.0)
    if window:
        if window < 0:
            raise ValueError(f"firing_rate: window must be >= 0 ms, got {window}")
        width = min(max(1, int(np.floor(window / dt + 0.5 + 1e-9))), len(rate))
        kernel = np.ones(width)
        total = np.convolve(rate, kernel, mode="same")
        count = np.convolve(np.ones(len(rate)), kernel, mode="same")
        rate = total / count
    return rate


def line_plot(ts: Any, values: Any, plot_ids: Any = None, *, path: str | None = None, ax: Any = None,
              title: str | None = None, xlabel: str = "time (ms)", ylabel: str | None = None,
              legend: str | None = None) -> Any:
    """Traces of a (time,) or (time, neurons) array against ``ts``, one line per neuron.

    ``plot_ids`` selects the neurons (default: all; at most 20 are drawn
    unless chosen). ``legend``: a label prefix, e.g. ``'V'`` labels the lines
    ``V[0]``, ``V[3]``... Writes a PNG to ``path`` when given; returns the
    matplotlib figure.

    Example:
        >>> import numpy as np
        >>> from neurodyn.visualize import line_plot
        >>> ts = np.arange(1, 101) * 0.1
        >>> V = -60. + np.random.default_rng(0).normal(size=(100, 8))     # (time, neurons)
        >>> fig = line_plot(ts, V, plot_ids=[0, 5], ylabel='V (mV)', legend='V')
        >>> [line.get_label() for line in fig.axes[0].lines]
        ['V[0]', 'V[5]']
    """
    plt = _pyplot(path is not None and ax is None)
    ts = np.asarray(ts)
    values = np.asarray(values)
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2 or values.shape[0] != ts.shape[0]:
        raise ValueError(f"line_plot expects values of shape (len(ts),) or (len(ts), neurons) = "
                         f"({ts.shape[0]}, n), got {values.shape}")
    ids = list(range(min(values.shape[1], 20))) if plot_ids is None else [int(i) for i in np.ravel(plot_ids)]
    bad = [i for i in ids if not 0 <= i < values.shape[1]]
    if bad:
        raise ValueError(f"line_plot: plot_ids {bad} are out of range for {values.shape[1]} neurons")
    if ax is None:
        fig, ax = plt.subplots(figsize=(8, 3.5))
    else:
        fig = ax.figure
    for i in ids:
        ax.plot(ts, values[:, i], lw=1, label=None if legend is None else f"{legend}[{i}]")
    ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if legend is not None:
        ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def _pyplot(headless: bool) -> Any:
    try:
        import matplotlib

        if headless:
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("plotting needs matplotlib: pip install 'neurodyn[plot]'") from e
    return plt


def raster_plot(ts: Any, spikes: Any = None, path: str | None = None, title: str | None = None,
                ax: Any = None, markersize: float = 1.0, show_rate: bool = True) -> Any:
    """Raster plot of a (time, neurons) spike array, with the population rate below.

    ``ts`` may also be an ``nd.SpikeRecord`` (from ``nd.SpikeMonitor``), with no ``spikes``.
    Writes a PNG to ``path`` when given; returns the matplotlib figure.

    Example:
        >>> import neurodyn as nd
        >>> from neurodyn import nn
        >>> from neurodyn.visualize import raster_plot
        >>> E = nn.LIF(5, V_rest=-60., V_reset=-60., V_th=-50.)
        >>> runner = nd.Runner(E, monitors={'spike': 'spike', 'E': nd.SpikeMonitor('spike')},
        ...                    inputs=[('input', 20.)], progress_bar=False)
        >>> mon = runner.run(20.)
        >>> fig = raster_plot(mon.ts, mon['spike'])       # a dense (time, neurons) record
        >>> fig = raster_plot(mon['E'])                   # an nd.SpikeRecord
        >>> fig.savefig('raster.png')  # doctest: +SKIP
    """
    plt = _pyplot(path is not None and ax is None)
    from ._monitors import SpikeRecord

    record = ts if isinstance(ts, SpikeRecord) else None
    if record is not None:
        t_spk, n_idx = record.times, record.indices
        t_lim = (record.t_start, record.t_stop)
    else:
        ts = np.asarray(ts)
        spikes = np.asarray(spikes)
        if spikes.ndim != 2 or spikes.shape[0] != ts.shape[0]:
            raise ValueError(
                f"raster_plot expects spikes of shape (len(ts), neurons) = ({ts.shape[0]}, n), got {spikes.shape}"
            )
        t_idx, n_idx = np.nonzero(spikes)
        t_spk = ts[t_idx]
        t_lim = (ts[0] if len(ts) else 0, ts[-1] if len(ts) else 1)
    if ax is None:
        rows = 2 if show_rate else 1
        fig, axes = plt.subplots(rows, 1, figsize=(8, 5 if show_rate else 4), sharex=True,
                                 gridspec_kw={"height_ratios": [3, 1][:rows]}, squeeze=False)
        ax, rate_ax = axes[0, 0], (axes[1, 0] if show_rate else None)
    else:
        fig, rate_ax = ax.figure, None
    ax.plot(t_spk, n_idx, ".", markersize=markersize, color="k")
    ax.set_ylabel("neuron")
    ax.set_xlim(*t_lim)
    if title:
        ax.set_title(title)
    if rate_ax is not None and record is not None:
        width = 5 * record.dt if record.dt >= 1 else 5.0
        rate = record.population_rate(width)
        rate_ax.plot(record.t_start + (np.arange(rate.size) + 0.5) * width, rate, lw=1)
        rate_ax.set_ylabel("rate (Hz)")
        rate_ax.set_xlabel("time (ms)")
    elif rate_ax is not None and len(ts) > 1:
        dt = float(ts[1] - ts[0])
        rate_ax.plot(ts, firing_rate(spikes, dt=dt, window=5 * dt if dt >= 1 else 5.0), lw=1)
        rate_ax.set_ylabel("rate (Hz)")
        rate_ax.set_xlabel("time (ms)")
    else:
        ax.set_xlabel("time (ms)")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig
