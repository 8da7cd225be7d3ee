"""Statistics of spike trains: rates, irregularity, variability, correlations, synchrony.

Every function takes spikes as an *event record*: spike times (ms), neuron
indices, the number of neurons and the observation window ``(t_start,
t_stop]`` in ms. Pass them as plain arrays::

    analysis.firing_rates(times, indices, n_neurons, t_start, t_stop)

or as one object that has those attributes (``times``, ``indices``,
``t_start``, ``t_stop`` and ``n_neurons`` or ``size``), such as a
:class:`SpikeTrains` or a spike monitor's record::

    analysis.firing_rates(record)

A dense ``(steps, neurons)`` boolean spike array from a Runner monitor
becomes a record with :meth:`SpikeTrains.from_dense`. Neurons are numbered
``0 .. n_neurons - 1``; :meth:`SpikeTrains.select` cuts out a population.

Conventions: a spike is labelled with the end of the step that produced it
(``k dt`` for step ``k``, like Runner rows and ``nd.SpikeRecord``), so a
window ``(t_start, t_stop]`` holds the steps that ended in it, and bins of
``bin_ms`` are ``(t_start + j bin_ms, t_start + (j + 1) bin_ms]``. As in Brunel
(2000), Potjans & Diesmann (2014) and the NEST microcircuit example: rates in
Hz over the window; the CV of the
inter-spike intervals per neuron with at least ``min_spikes`` spikes; the
Fano factor and correlations of spike counts in bins of ``bin_ms``;
synchrony as Golomb's chi, ``sqrt(var(mean count) / mean(var(count_i)))``
(1 for identical trains, about ``1/sqrt(N)`` for independent ones).

Plots (:func:`raster`, :func:`distributions`, :func:`rate_boxplot`) import
matplotlib only when called (``pip install neurodyn[plot]``).

Example:
    >>> from neurodyn import analysis
    >>> st = analysis.SpikeTrains([1., 5., 9.], [0, 1, 0], n_neurons=2, t_start=0., t_stop=1000.)
    >>> analysis.firing_rates(st)
    array([2., 1.])
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ["SpikeTrains", "as_spike_trains", "firing_rates", "population_rate", "population_rate_monitor",
           "spike_counts",
           "cv_isi", "fano_factor", "spike_count_correlations", "population_spectrum",
           "synchrony", "summary", "raster", "distributions", "rate_boxplot"]


class SpikeTrains:
    """An event record of the spikes of ``n_neurons`` neurons in the window ``(t_start, t_stop]`` ms.

    ``times`` (float64, ms) and ``indices`` (int64) are sorted by time (stable
    in the given order). Spikes outside ``[t_start, t_stop]`` or with an index
    outside ``0 .. n_neurons - 1`` are an error.

    Example:
        >>> from neurodyn.analysis import SpikeTrains
        >>> st = SpikeTrains(times=[0.5, 2.0], indices=[3, 1], n_neurons=4, t_start=0., t_stop=10.)
        >>> st
        SpikeTrains(2 spikes, n_neurons=4, window=(0, 10] ms)
        >>> st.select(0, 2).indices
        array([1])
        >>> st.window(1., 10.).times
        array([2.])
    """

    def __init__(self, times: Any, indices: Any, n_neurons: int, t_start: float, t_stop: float) -> None:
        times = np.asarray(times, dtype=np.float64).reshape(-1)
        indices = np.asarray(indices).reshape(-1)
        if times.shape != indices.shape:
            raise ValueError(f"SpikeTrains: times has {times.size} entries but indices has {indices.size}")
        if indices.size and not np.issubdtype(indices.dtype, np.integer):
            raise TypeError(f"SpikeTrains: indices must be integers, got dtype {indices.dtype}")
        if not isinstance(n_neurons, (int, np.integer)) or isinstance(n_neurons, bool) or n_neurons < 1:
            raise ValueError(f"SpikeTrains: n_neurons must be a positive int, got {n_neurons!r}")
        t_start, t_stop = float(t_start), float(t_stop)
        if not t_stop > t_start:
            raise ValueError(f"SpikeTrains: t_stop ({t_stop}) must be > t_start ({t_start})")
        indices = indices.astype(np.int64)
        if indices.size:
            if indices.min() < 0 or indices.max() >= n_neurons:
                raise ValueError(f"SpikeTrains: indices must lie in [0, {n_neurons}), got "
                                 f"[{indices.min()}, {indices.max()}]")
            if times.min() < t_start or times.max() > t_stop:
                raise ValueError(f"SpikeTrains: spike times must lie in [t_start, t_stop] = "
                                 f"[{t_start}, {t_stop}], got [{times.min()}, {times.max()}]")
            if np.any(np.diff(times) < 0):
                order = np.argsort(times, kind="stable")
                times, indices = times[order], indices[order]
        self.times, self.indices = times, indices
        self.n_neurons, self.t_start, self.t_stop = int(n_neurons), t_start, t_stop

    @property
    def duration(self) -> float:
        """``t_stop - t_start`` in ms."""
        return self.t_stop - self.t_start

    @classmethod
    def from_dense(cls, spikes: Any, dt: float, t_start: float = 0.0) -> "SpikeTrains":
        """From a ``(steps, neurons)`` spike array recorded every step of ``dt`` ms.

        Row ``k`` holds the spikes of the step ending at ``t_start + (k + 1) dt``, their
        time (as Runner's ``mon.ts``: ``t_start = mon.ts[0] - dt``); the window is
        ``(t_start, t_start + steps dt]``.

        Example:
            >>> import numpy as np
            >>> from neurodyn.analysis import SpikeTrains
            >>> spikes = np.zeros((5, 2), bool)      # 5 steps of 0.1 ms, as a Runner records them
            >>> spikes[1, 0] = spikes[4, 1] = True
            >>> st = SpikeTrains.from_dense(spikes, dt=0.1)
            >>> st.times, st.indices, st.t_stop
            (array([0.2, 0.5]), array([0, 1]), 0.5)
        """
        spikes = np.asarray(spikes)
        if spikes.ndim != 2:
            raise ValueError(f"SpikeTrains.from_dense: expected a (steps, neurons) array, got shape {spikes.shape}")
        step, idx = np.nonzero(spikes)
        return cls(t_start + (step + 1) * float(dt), idx, spikes.shape[1], t_start,
                   t_start + spikes.shape[0] * float(dt))

    def select(self, start: int, stop: int) -> "SpikeTrains":
        """Neurons ``start .. stop - 1``, renumbered from 0 (a population)."""
        if not 0 <= start < stop <= self.n_neurons:
            raise ValueError(f"SpikeTrains.select: need 0 <= start < stop <= {self.n_neurons}, "
                             f"got start={start}, stop={stop}")
        keep = (self.indices >= start) & (self.indices < stop)
        return SpikeTrains(self.times[keep], self.indices[keep] - start, stop - start, self.t_start, self.t_stop)

    def window(self, t_start: float, t_stop: float) -> "SpikeTrains":
        """The spikes in ``(t_start, t_stop]`` (e.g. to drop an initial transient)."""
        if not self.t_start <= t_start < t_stop <= self.t_stop:
            raise ValueError(f"SpikeTrains.window: need {self.t_start} <= t_start < t_stop <= {self.t_stop}, "
                             f"got ({t_start}, {t_stop}]")
        keep = (self.times > t_start) & (self.times <= t_stop)
        return SpikeTrains(self.times[keep], self.indices[keep], self.n_neurons, t_start, t_stop)

    def __len__(self) -> int:
        return int(self.times.size)

    def __repr__(self) -> str:
        return (f"SpikeTrains({self.times.size} spikes, n_neurons={self.n_neurons}, "
                f"window=({self.t_start:g}, {self.t_stop:g}] ms)")


def as_spike_trains(spikes: Any, indices: Any = None, n_neurons: int | None = None,
                    t_start: float | None = None, t_stop: float | None = None) -> SpikeTrains:
    """Normalise the accepted spike inputs to a :class:`SpikeTrains`.

    ``spikes`` is either an object with ``times``, ``indices``, ``t_start``,
    ``t_stop`` and ``n_neurons`` (or ``size``), or the spike times, with the
    other four arguments given.

    Example:
        >>> from neurodyn import analysis
        >>> st = analysis.as_spike_trains([3., 1.], [1, 0], 2, 0., 10.)    # sorted by time
        >>> st.times, st.indices
        (array([1., 3.]), array([0, 1]))
        >>> analysis.as_spike_trains(st) is st
        True
    """
    if isinstance(spikes, SpikeTrains) and indices is None:
        return spikes
    if indices is None and hasattr(spikes, "times") and hasattr(spikes, "indices"):
        n = getattr(spikes, "n_neurons", None)
        if n is None:
            n = getattr(spikes, "size", None)
        if n is None or not hasattr(spikes, "t_start") or not hasattr(spikes, "t_stop"):
            raise TypeError(f"as_spike_trains: {type(spikes).__name__} has times and indices but lacks "
                            "n_neurons (or size), t_start or t_stop")
        return SpikeTrains(spikes.times, spikes.indices, int(n), spikes.t_start, spikes.t_stop)
    missing = [name for name, v in (("indices", indices), ("n_neurons", n_neurons),
                                    ("t_start", t_start), ("t_stop", t_stop)) if v is None]
    if missing:
        raise TypeError(f"as_spike_trains: with spike times as an array, also pass {', '.join(missing)} "
                        "(or pass one record object with those attributes)")
    return SpikeTrains(spikes, indices, n_neurons, t_start, t_stop)


def _bins(st: SpikeTrains, bin_ms: float) -> int:
    bin_ms = float(bin_ms)
    if not bin_ms > 0:
        raise ValueError(f"bin_ms must be > 0 ms, got {bin_ms}")
    n_bins = int(np.floor(st.duration / bin_ms + 1e-9))
    if n_bins < 2:
        raise ValueError(f"the window of {st.duration:g} ms holds fewer than 2 bins of {bin_ms:g} ms")
    return n_bins


def _bin_index(st: SpikeTrains, bin_ms: float) -> np.ndarray:
    # bins (t_start + j b, t_start + (j + 1) b]; the tolerance absorbs float error of k * dt
    b = np.ceil((st.times - st.t_start) / bin_ms - 1e-6).astype(np.int64) - 1
    return np.maximum(b, 0)


def firing_rates(spikes: Any, *args: Any) -> np.ndarray:
    """The firing rate of every neuron in Hz: spike count / window.

    Example:
        >>> from neurodyn import analysis
        >>> analysis.firing_rates([10., 20., 30.], [0, 0, 2], 3, 0., 1000.)   # times (ms), indices, n, window
        array([2., 0., 1.])
    """
    st = as_spike_trains(spikes, *args)
    counts = np.bincount(st.indices, minlength=st.n_neurons)
    return counts * (1000.0 / st.duration)


def population_rate(spikes: Any, *args: Any, bin_ms: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The population rate (Hz per neuron) in bins of ``bin_ms``: ``(bin start times, rate)``.

    A partial last bin is dropped.

    Example:
        >>> from neurodyn import analysis
        >>> st = analysis.SpikeTrains([0.5, 1.5, 1.7], [0, 0, 1], n_neurons=2, t_start=0., t_stop=3.)
        >>> t, r = analysis.population_rate(st, bin_ms=1.)
        >>> t, r                               # 2 spikes of 2 neurons in 1 ms: 1000 Hz per neuron
        (array([0., 1., 2.]), array([ 500., 1000.,    0.]))
    """
    st = as_spike_trains(spikes, *args)
    n_bins = _bins(st, bin_ms)
    b = _bin_index(st, bin_ms)
    b = b[b < n_bins]
    counts = np.bincount(b, minlength=n_bins)
    return st.t_start + np.arange(n_bins) * bin_ms, counts * (1000.0 / bin_ms / st.n_neurons)


def population_rate_monitor(groups: Any) -> Any:
    """A Runner monitor: the number of spikes of ``groups`` in each step, summed on the device.

    ``groups``: a neuron group (anything with a boolean ``spike`` Variable) or a
    list of them. The record is one int32 per step instead of one bit per neuron;
    the population rate in Hz is ``count * 1000 / (dt * n_neurons)``, the same
    as :func:`population_rate` of the event record with ``bin_ms = dt``.

    Example:
        >>> import neurodyn as nd
        >>> from neurodyn import analysis, nn
        >>> E = nn.LIF(20, V_rest=-60., V_reset=-60., V_th=-50., tau=20.)
        >>> runner = nd.Runner(E, monitors={'E_count': analysis.population_rate_monitor(E)},
        ...                    inputs=[('input', 20.)], progress_bar=False)
        >>> mon = runner.run(20.)
        >>> mon['E_count'].shape, mon['E_count'].dtype
        ((200,), dtype('int32'))
        >>> rate_hz = mon['E_count'] * 1000. / (runner.dt * E.size)
    """
    import jax.numpy as jnp  # the statistics above need NumPy only

    gs = list(groups) if isinstance(groups, (list, tuple)) else [groups]
    if not gs:
        raise ValueError("population_rate_monitor: expected a neuron group or a non-empty list of groups, got []")
    for g in gs:
        spike = getattr(g, "spike", None)
        if getattr(spike, "ndim", None) is None:
            raise TypeError(f"population_rate_monitor: expected neuron groups with a 'spike' Variable, "
                            f"got {type(g).__name__}")

    def count(model: Any) -> Any:
        return sum(jnp.sum(g.spike.value, dtype=jnp.int32) for g in gs)

    return count


def spike_counts(spikes: Any, *args: Any, bin_ms: float = 5.0,
                 neurons: Sequence[int] | None = None) -> np.ndarray:
    """Spike counts ``(len(neurons), n_bins)`` in bins of ``bin_ms`` (a partial last bin is dropped).

    ``neurons`` (default: all) selects the rows, which bounds memory for large networks.

    Example:
        >>> from neurodyn import analysis
        >>> st = analysis.SpikeTrains([1., 2., 7.], [0, 2, 2], n_neurons=3, t_start=0., t_stop=10.)
        >>> analysis.spike_counts(st, bin_ms=5., neurons=[0, 2])
        array([[1, 0],
               [1, 1]])
    """
    st = as_spike_trains(spikes, *args)
    n_bins = _bins(st, bin_ms)
    neurons = np.arange(st.n_neurons) if neurons is None else np.asarray(neurons, np.int64)
    row = np.full(st.n_neurons, -1, np.int64)
    row[neurons] = np.arange(neurons.size)
    r = row[st.indices]
    b = _bin_index(st, bin_ms)
    keep = (r >= 0) & (b < n_bins)
    flat = np.bincount(r[keep] * n_bins + b[keep], minlength=neurons.size * n_bins)
    return flat.reshape(neurons.size, n_bins)


def cv_isi(spikes: Any, *args: Any, min_spikes: int = 3) -> np.ndarray:
    """Coefficient of variation (std / mean) of the inter-spike intervals, per neuron.

    Only neurons with at least ``min_spikes`` spikes (so at least 2 intervals)
    are included; the result has one entry per such neuron, in index order.
    Poisson trains give about 1, regular trains 0.

    Example:
        >>> from neurodyn import analysis
        >>> regular = analysis.SpikeTrains([10., 20., 30., 40.], [0, 0, 0, 0], 1, 0., 50.)
        >>> analysis.cv_isi(regular)
        array([0.])
    """
    st = as_spike_trains(spikes, *args)
    if min_spikes < 3:
        raise ValueError(f"cv_isi: min_spikes must be >= 3 (two intervals), got {min_spikes}")
    order = np.lexsort((st.times, st.indices))
    idx, t = st.indices[order], st.times[order]
    same = idx[1:] == idx[:-1]
    isi, owner = np.diff(t)[same], idx[1:][same]
    n_isi = np.bincount(owner, minlength=st.n_neurons)
    ok = n_isi >= min_spikes - 1
    mean = np.bincount(owner, weights=isi, minlength=st.n_neurons) / np.maximum(n_isi, 1)
    dev = isi - mean[owner]  # two passes: no cancellation for regular trains
    var = np.bincount(owner, weights=dev * dev, minlength=st.n_neurons) / np.maximum(n_isi, 1)
    return np.sqrt(var[ok]) / mean[ok]


def fano_factor(spikes: Any, *args: Any, bin_ms: float = 100.0) -> np.ndarray:
    """Fano factor (variance / mean) of each active neuron's spike counts in bins of ``bin_ms``.

    Neurons without spikes are left out. A Poisson train gives about 1, a
    regular train (period dividing the bin) 0.

    Example:
        >>> from neurodyn import analysis
        >>> st = analysis.SpikeTrains([50., 150., 160.], [0, 0, 0], 1, 0., 200.)   # counts 1, 2
        >>> analysis.fano_factor(st, bin_ms=100.)                                   # 0.25 / 1.5
        array([0.16666667])
    """
    st = as_spike_trains(spikes, *args)
    c = spike_counts(st, bin_ms=bin_ms)
    mean = c.mean(axis=1)
    active = mean > 0
    return c[active].var(axis=1) / mean[active]


def spike_count_correlations(spikes: Any, *args: Any, bin_ms: float = 5.0, n_pairs: int = 1000,
                             seed: int | None = 0) -> np.ndarray:
    """Pearson correlation coefficients of spike counts of distinct neuron pairs.

    ``n_pairs`` pairs are drawn uniformly among the active neurons (those with a
    nonzero count variance); ``n_pairs=None`` takes all pairs. Returns one
    coefficient per pair.

    Example:
        >>> from neurodyn import analysis
        >>> st = analysis.SpikeTrains([1., 1., 11., 11., 12.], [0, 1, 0, 1, 2], 3, 0., 20.)
        >>> analysis.spike_count_correlations(st, bin_ms=5., n_pairs=None)   # pairs (0,1) (0,2) (1,2)
        array([1.        , 0.57735027, 0.57735027])
    """
    st = as_spike_trains(spikes, *args)
    counts_all = np.bincount(st.indices, minlength=st.n_neurons)
    candidates = np.flatnonzero(counts_all > 0)
    if candidates.size < 2:
        return np.zeros(0)
    rng = np.random.default_rng(seed)
    if n_pairs is None:
        a, b = np.triu_indices(candidates.size, k=1)
    else:
        n_pairs = int(n_pairs)
        if n_pairs < 1:
            raise ValueError(f"spike_count_correlations: n_pairs must be >= 1 or None, got {n_pairs}")
        a = rng.integers(0, candidates.size, n_pairs)
        b = rng.integers(0, candidates.size - 1, n_pairs)
        b = b + (b >= a)  # a different neuron than a
    used, inv = np.unique(np.concatenate([candidates[a], candidates[b]]), return_inverse=True)
    c = spike_counts(st, bin_ms=bin_ms, neurons=used).astype(np.float64)
    c -= c.mean(axis=1, keepdims=True)
    sd = np.sqrt((c * c).mean(axis=1))
    ia, ib = inv[:a.size], inv[a.size:]
    ok = (sd[ia] > 0) & (sd[ib] > 0)
    cov = (c[ia[ok]] * c[ib[ok]]).mean(axis=1)
    return cov / (sd[ia[ok]] * sd[ib[ok]])


def population_spectrum(spikes: Any, *args: Any, bin_ms: float = 1.0,
                        segment_ms: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Power spectrum of the population rate: ``(frequencies in Hz, power in Hz^2 / Hz)``.

    The rate (Hz per neuron, bins of ``bin_ms``) minus its mean is split into
    segments of ``segment_ms`` (default: the whole window; Welch's average of
    periodograms otherwise, Hann window). One-sided, so that the power sums
    (times the frequency step) to the variance of the rate.

    Example:
        >>> import numpy as np
        >>> from neurodyn import analysis
        >>> times = np.arange(10., 1000., 25.)    # one neuron firing at 40 Hz for 1 s
        >>> f, p = analysis.population_spectrum(times, np.zeros(times.size, int), 1, 0., 1000.,
        ...                                     bin_ms=1., segment_ms=500.)
        >>> float(f[np.argmax(p[1:]) + 1])        # the dominant oscillation frequency in Hz
        40.0
    """
    st = as_spike_trains(spikes, *args)
    _, rate = population_rate(st, bin_ms=bin_ms)
    n = rate.size if segment_ms is None else int(round(float(segment_ms) / bin_ms))
    if not 2 <= n <= rate.size:
        raise ValueError(f"population_spectrum: segment_ms={segment_ms} gives {n} bins; need 2..{rate.size}")
    n_seg = rate.size // n
    segs = rate[:n_seg * n].reshape(n_seg, n)
    segs = segs - segs.mean(axis=1, keepdims=True)
    win = np.ones(n) if segment_ms is None else np.hanning(n)
    fs = 1000.0 / bin_ms
    spec = np.abs(np.fft.rfft(segs * win, axis=1)) ** 2 / (fs * np.sum(win * win))
    spec = spec.mean(axis=0)
    if n % 2 == 0:
        spec[1:-1] *= 2
    else:
        spec[1:] *= 2
    return np.fft.rfftfreq(n, d=bin_ms / 1000.0), spec


def synchrony(spikes: Any, *args: Any, bin_ms: float = 1.0, n_neurons: int | None = None,
              seed: int | None = 0) -> float:
    """Golomb's synchrony measure chi of spike counts in bins of ``bin_ms``.

    ``chi^2 = var_t(mean_i c_i(t)) / mean_i var_t(c_i(t))``: 1 when all neurons
    fire identically, about ``1/sqrt(N)`` for ``N`` independent neurons (so
    compare networks on samples of equal size: ``n_neurons`` draws that many
    neurons at random, default all). Returns NaN without any spike.

    Example:
        >>> from neurodyn import analysis
        >>> same = analysis.SpikeTrains([2.5, 2.5, 7.5, 7.5], [0, 1, 0, 1], 2, 0., 10.)
        >>> analysis.synchrony(same, bin_ms=1.)      # identical trains
        1.0
    """
    st = as_spike_trains(spikes, *args)
    neurons = None
    if n_neurons is not None and n_neurons < st.n_neurons:
        neurons = np.sort(np.random.default_rng(seed).choice(st.n_neurons, int(n_neurons), replace=False))
    c = spike_counts(st, bin_ms=bin_ms, neurons=neurons).astype(np.float64)
    individual = c.var(axis=1).mean()
    if individual == 0:
        return float("nan")
    return float(np.sqrt(c.mean(axis=0).var() / individual))


def _populations(st: SpikeTrains, populations: Any) -> dict[str, SpikeTrains]:
    if populations is None:
        return {"all": st}
    if isinstance(populations, Mapping):
        out = {}
        for name, sl in populations.items():
            start, stop = (sl.start, sl.stop) if isinstance(sl, slice) else sl
            out[str(name)] = st.select(int(start), int(stop))
        return out
    raise TypeError(f"populations must be a dict name -> slice or (start, stop), got {type(populations).__name__}")


def summary(spikes: Any, *args: Any, populations: Mapping[str, Any] | None = None,
            bin_ms: float = 1.0, n_sync: int | None = 1000) -> dict[str, dict[str, float]]:
    """Per population: mean rate (Hz), mean CV of ISIs, synchrony (chi on ``n_sync`` neurons).

    ``populations`` maps names to index ranges (``slice`` or ``(start, stop)``),
    e.g. a model's ``population_slices()``.

    Example:
        >>> from neurodyn import analysis
        >>> st = analysis.SpikeTrains([100., 200., 300., 400.], [0, 0, 0, 1], 2, 0., 1000.)
        >>> s = analysis.summary(st, populations={'E': slice(0, 1), 'I': (1, 2)})
        >>> s['E']['rate'], s['E']['cv'], s['I']['rate']
        (3.0, 0.0, 1.0)
    """
    st = as_spike_trains(spikes, *args)
    out = {}
    for name, sub in _populations(st, populations).items():
        cv = cv_isi(sub)
        out[name] = {"rate": float(firing_rates(sub).mean()),
                     "cv": float(cv.mean()) if cv.size else float("nan"),
                     "synchrony": synchrony(sub, bin_ms=bin_ms, n_neurons=n_sync)}
    return out


# -- plots -------------------------------------------------------------------------------
def _pyplot(path: Any, ax: Any) -> Any:
    try:
        import matplotlib

        if path is not None and ax is None:
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("neurodyn.analysis plots need matplotlib: pip install 'neurodyn[plot]'") from e
    return plt


def raster(spikes: Any, *args: Any, populations: Mapping[str, Any] | None = None,
           max_neurons: int | None = 200, t_range: tuple[float, float] | None = None,
           path: str | None = None, ax: Any = None, markersize: float = 1.0, title: str | None = None) -> Any:
    """Raster plot, one band per population (top to bottom in the given order).

    ``max_neurons`` (per population) keeps the first neurons of each population
    so that large networks stay readable. Returns the figure; writes ``path``.

    Example:
        >>> from neurodyn import analysis
        >>> st = analysis.SpikeTrains([1., 5., 9.], [0, 1, 3], n_neurons=4, t_start=0., t_stop=10.)
        >>> fig = analysis.raster(st, populations={'E': (0, 3), 'I': (3, 4)}, t_range=(0., 10.))
        >>> fig.savefig('raster.png')  # doctest: +SKIP
    """
    st = as_spike_trains(spikes, *args)
    plt = _pyplot(path, ax)
    fig, ax = (plt.subplots(figsize=(8, 6)) if ax is None else (ax.figure, ax))
    pops = _populations(st, populations)
    y0, ticks, labels = 0, [], []
    colors = ["#1f4e79", "#b22222"]
    for k, (name, sub) in enumerate(reversed(list(pops.items()))):
        m = sub.n_neurons if max_neurons is None else min(sub.n_neurons, int(max_neurons))
        keep = sub.indices < m
        t, i = sub.times[keep], sub.indices[keep]
        if t_range is not None:
            w = (t >= t_range[0]) & (t < t_range[1])
            t, i = t[w], i[w]
        ax.plot(t, y0 + m - 1 - i, ".", markersize=markersize, color=colors[k % 2])
        ticks.append(y0 + m / 2)
        labels.append(name)
        y0 += m
    ax.set_yticks(ticks)
    ax.set_yticklabels(labels)
    ax.set_xlabel("time (ms)")
    ax.set_xlim(*(t_range if t_range is not None else (st.t_start, st.t_stop)))
    if title:
        ax.set_title(title)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def distributions(spikes: Any, *args: Any, populations: Mapping[str, Any] | None = None,
                  bin_ms: float = 5.0, n_pairs: int = 500, path: str | None = None) -> Any:
    """Histograms of firing rates, CVs of ISIs and pairwise count correlations per population.

    Example:
        >>> import numpy as np
        >>> from neurodyn import analysis
        >>> rng = np.random.default_rng(0)        # 4 Poisson neurons at about 100 Hz for 1 s
        >>> st = analysis.SpikeTrains(rng.uniform(0., 1000., 400), rng.integers(0, 4, 400),
        ...                           n_neurons=4, t_start=0., t_stop=1000.)
        >>> fig = analysis.distributions(st, populations={'E': (0, 2), 'I': (2, 4)})
        >>> [ax.get_xlabel() for ax in fig.axes]
        ['rate (Hz)', 'CV of ISI', 'count correlation (5 ms bins)']
    """
    st = as_spike_trains(spikes, *args)
    plt = _pyplot(path, None)
    pops = _populations(st, populations)
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
    for name, sub in pops.items():
        for ax, vals in zip(axes, (firing_rates(sub), cv_isi(sub),
                                   spike_count_correlations(sub, bin_ms=bin_ms, n_pairs=n_pairs))):
            if vals.size:
                ax.hist(vals, bins=30, histtype="step", label=name, density=True)
    for ax, label in zip(axes, ("rate (Hz)", "CV of ISI", f"count correlation ({bin_ms:g} ms bins)")):
        ax.set_xlabel(label)
    axes[0].set_ylabel("density")
    axes[-1].legend(fontsize="small")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def rate_boxplot(spikes: Any, *args: Any, populations: Mapping[str, Any] | None = None,
                 reference: Mapping[str, float] | None = None, path: str | None = None, ax: Any = None) -> Any:
    """Box plot of single-neuron rates per population (Potjans & Diesmann 2014, Fig. 6 style).

    Horizontal boxes, the first population on top; ``reference`` rates (Hz) are
    marked with a cross.

    Example:
        >>> from neurodyn import analysis
        >>> st = analysis.SpikeTrains([1., 5., 9.], [0, 1, 3], n_neurons=4, t_start=0., t_stop=10.)
        >>> fig = analysis.rate_boxplot(st, populations={'E': (0, 3), 'I': (3, 4)})
    """
    st = as_spike_trains(spikes, *args)
    plt = _pyplot(path, ax)
    fig, ax = (plt.subplots(figsize=(7, 5)) if ax is None else (ax.figure, ax))
    pops = _populations(st, populations)
    names = list(pops)[::-1]
    data = [firing_rates(pops[n]) for n in names]
    bp = ax.boxplot(data, orientation="horizontal", patch_artist=True, sym="+",
                    medianprops=dict(color="firebrick", linewidth=2))
    for k, box in enumerate(bp["boxes"]):
        box.set_facecolor("#888888" if k % 2 else "#dddddd")
    if reference:
        pos = [k + 1 for k, n in enumerate(names) if n in reference]
        ax.plot([reference[n] for n in names if n in reference], pos, "x", color="tab:blue",
                label="reference mean")
        ax.legend(fontsize="small")
    ax.set_yticks(range(1, len(names) + 1))
    ax.set_yticklabels(names)
    ax.set_xlabel("firing rate (Hz)")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig
