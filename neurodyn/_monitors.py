"""Event spike monitors: spikes recorded as (step, neuron) events in bounded memory."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ._state import Variable

__all__ = ["SpikeMonitor", "SpikeRecord"]


class SpikeMonitor:
    """Record a boolean spike Variable as events (step, neuron index) instead of a dense array.

    Use it as a value of ``Runner(monitors={...})``; after a run,
    ``runner.mon[name]`` is a :class:`SpikeRecord`. On the device, each step
    packs the spikes into one bit per neuron (one fused operation, whatever the
    number of spikes); each chunk's bits are copied to the host, where they
    become events. The host keeps only the events, so its memory grows with the
    number of spikes, and the device holds one chunk's bits (``chunk_size x N /
    8`` bytes): 100k neurons can be recorded for seconds. No spike is ever
    dropped, and the result does not depend on ``chunk_size``.

    Args:
        target: the spike Variable, or its dotted path in the model (``'E.spike'``).
        index: record only these neurons (indices along the last axis); the
            record's columns are then numbered ``0..len(index)-1`` and
            :attr:`SpikeRecord.neurons` holds the model's indices.
        rate: no longer used (it sized the device buffer of an earlier design);
            passing it warns (``DeprecationWarning``).

    Example:
        >>> import neurodyn as nd
        >>> from neurodyn import nn
        >>> lif = nn.LIF(4)      # V_th 20, driven by a constant input of 30: regular spiking
        >>> runner = nd.Runner(lif, monitors={"E": nd.SpikeMonitor("spike")}, inputs=[("input", 30.)],
        ...                    progress_bar=False)
        >>> rec = runner.run(100.)["E"]
        >>> len(rec.times), rec.indices[:4], rec.rates()
        (32, array([0, 1, 2, 3]...), array([80., 80., 80., 80.]))
    """

    def __init__(self, target: str | Variable, index: Any = None, *, rate: float | None = None) -> None:
        if not isinstance(target, (str, Variable)):
            raise TypeError(f"SpikeMonitor: target must be a dotted path or a spike Variable, got "
                            f"{type(target).__name__}")
        if rate is not None:
            warnings.warn("SpikeMonitor: rate is no longer used (the record takes one bit per neuron and "
                          "step on the device, whatever the rate); leave it out", DeprecationWarning,
                          stacklevel=2)
        self.target = target
        self.index = None if index is None else np.asarray(index)
        if self.index is not None and (self.index.ndim != 1 or self.index.dtype.kind not in "iu"):
            raise TypeError(f"SpikeMonitor: index must be a 1-d array of neuron indices, got "
                            f"shape {self.index.shape} dtype {self.index.dtype}")

    def __repr__(self) -> str:
        target = self.target if isinstance(self.target, str) else self.target.label
        return f"SpikeMonitor({target!s})" if self.index is None else f"SpikeMonitor({target!s}, index=[{self.index.size} neurons])"


class SpikeRecord:
    """Spikes of one run as events; what a :class:`SpikeMonitor` returns.

    A spike at step ``k`` (the ``k``-th step of the simulation, which advances
    time from ``(k-1) dt`` to ``k dt``) has time ``k * dt``: the time at which
    the model's state holds it, the same label as the row of a dense monitor.

    Attributes:
        times: spike times in ms (float64), sorted.
        indices: the neuron (column) of each spike (int64).
        steps: the step number of each spike (int64); ``times == steps * dt``.
        size: the number of recorded neurons (columns).
        neurons: the model's index of every column.
        dt: the step in ms.
        t_start, t_stop: the recorded interval in ms (``t_stop - t_start`` is the
            simulated duration; rates are per that duration).
        first_step: the step of the first dense row (0 when the initial state
            was recorded), so ``to_dense()`` has rows ``first_step .. t_stop / dt``.

    Example:
        >>> import numpy as np
        >>> import neurodyn as nd
        >>> rec = nd.SpikeRecord(steps=np.array([3, 5, 9]), indices=np.array([0, 2, 0]), size=3, dt=0.1,
        ...                      t_start=0.0, t_stop=1.0, first_step=1)
        >>> rec.times, rec.duration
        (array([0.3, 0.5, 0.9]), 1.0)
    """

    def __init__(self, steps: Any, indices: Any, size: int, dt: float, t_start: float, t_stop: float,
                 first_step: int, neurons: Any = None) -> None:
        self.steps = np.asarray(steps, np.int64)
        self.indices = np.asarray(indices, np.int64)
        self.size = int(size)
        self.dt = float(dt)
        self.t_start = float(t_start)
        self.t_stop = float(t_stop)
        self.first_step = int(first_step)
        self.neurons = np.arange(self.size) if neurons is None else np.asarray(neurons)
        self.times = self.steps.astype(np.float64) * self.dt

    def __len__(self) -> int:
        return int(self.steps.size)

    def __repr__(self) -> str:
        return (f"SpikeRecord({len(self)} spikes of {self.size} neurons, "
                f"{self.t_start:g}-{self.t_stop:g} ms, dt={self.dt:g})")

    @property
    def duration(self) -> float:
        """``t_stop - t_start`` in ms."""
        return self.t_stop - self.t_start

    def count(self) -> np.ndarray:
        """Spikes per neuron (shape ``(size,)``).

        Example:
            >>> import numpy as np
            >>> import neurodyn as nd
            >>> rec = nd.SpikeRecord(steps=np.array([3, 5, 9]), indices=np.array([0, 2, 0]), size=3, dt=0.1,
            ...                      t_start=0.0, t_stop=1.0, first_step=1)
            >>> rec.count()
            array([2, 0, 1])
        """
        return np.bincount(self.indices, minlength=self.size)

    def rates(self) -> np.ndarray:
        """Mean firing rate of every neuron in Hz over ``t_start .. t_stop``.

        Example:
            >>> import numpy as np
            >>> import neurodyn as nd
            >>> rec = nd.SpikeRecord(steps=np.array([3, 5, 9]), indices=np.array([0, 2, 0]), size=3, dt=0.1,
            ...                      t_start=0.0, t_stop=1.0, first_step=1)
            >>> rec.rates()      # Hz over 1 ms
            array([2000.,    0., 1000.])
        """
        if self.duration <= 0:
            raise ValueError("SpikeRecord.rates: the record covers no time (t_stop == t_start)")
        return self.count() / (self.duration / 1000.0)

    def population_rate(self, bin_ms: float) -> np.ndarray:
        """Population rate in Hz in consecutive bins of ``bin_ms`` from ``t_start``.

        Bin ``b`` covers spikes with ``t_start + b * bin_ms < t <= t_start + (b + 1) * bin_ms``
        (a spike at ``k dt`` happened during the step that ends there); a last
        partial bin is dropped. ``bin_ms`` is rounded to whole steps.

        Example:
            >>> import numpy as np
            >>> import neurodyn as nd
            >>> rec = nd.SpikeRecord(steps=np.array([3, 5, 9]), indices=np.array([0, 2, 0]), size=3, dt=0.1,
            ...                      t_start=0.0, t_stop=1.0, first_step=1)
            >>> rec.population_rate(0.5)     # Hz per 0.5 ms bin: steps 1-5 and 6-10
            array([1333.33333333,  666.66666667])
        """
        width = int(round(float(bin_ms) / self.dt))
        if width < 1:
            raise ValueError(f"SpikeRecord.population_rate: bin_ms must be at least dt = {self.dt} ms, got {bin_ms}")
        n_steps = int(round(self.duration / self.dt))
        n_bins = n_steps // width
        first = int(round(self.t_start / self.dt))
        b = (self.steps - first - 1) // width
        b = b[(b >= 0) & (b < n_bins)]
        counts = np.bincount(b, minlength=n_bins)[:n_bins]
        return counts / (self.size * width * self.dt / 1000.0)

    def to_dense(self) -> np.ndarray:
        """The spikes as a (steps, size) boolean array, one row per step from ``first_step``.

        Equal to what a dense monitor of the same Variable records.

        Example:
            >>> import numpy as np
            >>> import neurodyn as nd
            >>> rec = nd.SpikeRecord(steps=np.array([3, 5, 9]), indices=np.array([0, 2, 0]), size=3, dt=0.1,
            ...                      t_start=0.0, t_stop=1.0, first_step=1)
            >>> rec.to_dense().shape, np.flatnonzero(rec.to_dense()[:, 0]) + 1    # rows are steps 1..10
            ((10, 3), array([3, 9]))
        """
        last = int(round(self.t_stop / self.dt))
        out = np.zeros((last - self.first_step + 1, self.size), bool)
        out[self.steps - self.first_step, self.indices] = True
        return out
