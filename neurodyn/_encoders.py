"""Spike encoders (rate, Poisson, latency, delta) and event-stream binning.

Encoders return spike trains time-major, ``(num_steps, *x.shape)``, the layout
``nd.for_loop`` steps over. Random encoders draw from ``nd.random`` unless
given ``key``. Event functions work on the host (NumPy) with tonic's event
arrays: NumPy structured arrays with fields ``x``, ``t``, ``p`` and, for 2-d
sensors, ``y`` (``t`` in microseconds in tonic, any unit here).
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from . import random as _random

__all__ = ["rate", "poisson", "latency", "delta", "bin_events", "pad_sequences", "EVENT_DTYPE"]

#: tonic's event layout for 2-d sensors (audio sensors such as SHD's have no ``y``).
EVENT_DTYPE = np.dtype([("x", np.int16), ("y", np.int16), ("t", np.int64), ("p", np.int8)])


def _steps(fn: str, num_steps: Any) -> int:
    if not isinstance(num_steps, (int, np.integer)) or isinstance(num_steps, bool) or num_steps < 1:
        raise ValueError(f"encoders.{fn}: num_steps must be a positive int, got {num_steps!r}")
    return int(num_steps)


def _key(key: Any) -> jax.Array:
    return _random.split_key() if key is None else key


def rate(x: Any, num_steps: int, gain: float = 1.0, key: Any = None) -> jax.Array:
    """Bernoulli rate code: at every step, spike with probability ``clip(gain * x, 0, 1)``.

    Returns float32 spikes shaped ``(num_steps, *x.shape)`` (snnTorch's
    ``spikegen.rate``); ``x`` is typically an intensity in ``[0, 1]``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from neurodyn import encoders
        >>> spikes = encoders.rate(jnp.array([0., 0.5, 1.]), num_steps=100, key=jax.random.key(0))
        >>> spikes.shape
        (100, 3)
        >>> spikes.mean(0)[0], spikes.mean(0)[2]
        (Array(0., dtype=float32), Array(1., dtype=float32))
    """
    n = _steps("rate", num_steps)
    p = jnp.clip(gain * jnp.asarray(x, jnp.float32), 0.0, 1.0)
    return jax.random.bernoulli(_key(key), p, (n, *p.shape)).astype(jnp.float32)


def poisson(x: Any, num_steps: int, max_rate: float, dt: float, key: Any = None) -> jax.Array:
    """Binned Poisson process: spike counts per step with rate ``x * max_rate``.

    ``x`` in ``[0, 1]`` scales ``max_rate`` (events per unit of time, e.g.
    per ms with ``dt`` in ms); each step's count is ``Poisson(rate * dt)``,
    so several events may fall into one step (unlike :func:`rate`).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from neurodyn import encoders
        >>> x = jnp.array([0.5, 1.])           # 50 Hz and 100 Hz with max_rate 0.1 per ms
        >>> counts = encoders.poisson(x, num_steps=200, max_rate=0.1, dt=1.0, key=jax.random.key(0))
        >>> counts.shape
        (200, 2)
    """
    n = _steps("poisson", num_steps)
    if not (max_rate >= 0 and dt > 0):
        raise ValueError(f"encoders.poisson: max_rate must be >= 0 and dt > 0, got max_rate={max_rate}, dt={dt}")
    lam = jnp.clip(jnp.asarray(x, jnp.float32), 0.0, None) * (max_rate * dt)
    return jax.random.poisson(_key(key), lam, (n, *lam.shape)).astype(jnp.float32)


def latency(x: Any, num_steps: int, threshold: float = 0.01, tau: float | None = None) -> jax.Array:
    """Time-to-first-spike code: each feature above ``threshold`` spikes once; stronger is earlier.

    ``x`` in ``[0, 1]``. Linear (``tau=None``): the spike step is
    ``round((1 - x) (num_steps - 1))``. With ``tau``, the time an RC circuit
    driven by ``x`` takes to charge to ``threshold``,
    ``tau log(x / (x - threshold))`` steps (snnTorch's ``spikegen.latency``
    without normalisation), clipped to the last step. Features with
    ``x <= threshold`` never spike.

    Example:
        >>> import jax.numpy as jnp
        >>> from neurodyn import encoders
        >>> spikes = encoders.latency(jnp.array([1., 0.5, 0.]), num_steps=5)
        >>> spikes.argmax(0), spikes.sum(0)    # step of the first spike; 0. never spikes
        (Array([0, 2, 0], dtype=int32), Array([1., 1., 0.], dtype=float32))
    """
    n = _steps("latency", num_steps)
    x = jnp.clip(jnp.asarray(x, jnp.float32), 0.0, 1.0)
    fires = x > threshold
    if tau is None:
        t = jnp.round((1.0 - x) * (n - 1))
    else:
        if not tau > 0:
            raise ValueError(f"encoders.latency: tau must be > 0 steps, got {tau}")
        safe = jnp.where(fires, x, 1.0)
        t = jnp.minimum(jnp.round(tau * jnp.log(safe / (safe - threshold))), n - 1)
    steps = jnp.arange(n).reshape((n,) + (1,) * x.ndim)
    return ((steps == t.astype(jnp.int32)) & fires).astype(jnp.float32)


def delta(x: Any, threshold: float = 0.1, off_spike: bool = False) -> jax.Array:
    """Delta modulation of a time-major signal ``(time, ...)``: spike where it rose by ``>= threshold``.

    Step ``t`` compares ``x[t]`` with ``x[t-1]`` (the first step with 0, as
    snnTorch's ``spikegen.delta`` without padding). ``off_spike=True`` also
    emits ``-1`` where it fell by ``>= threshold``.

    Example:
        >>> import jax.numpy as jnp
        >>> from neurodyn import encoders
        >>> encoders.delta(jnp.array([0., 0.2, 0.2, 0.]), threshold=0.1, off_spike=True)
        Array([ 0.,  1.,  0., -1.], dtype=float32)
    """
    x = jnp.asarray(x, jnp.float32)
    if x.ndim < 1:
        raise ValueError(f"encoders.delta: expected a time-major array (time, ...), got shape {tuple(x.shape)}")
    d = jnp.diff(x, axis=0, prepend=jnp.zeros_like(x[:1]))
    on = (d >= threshold).astype(jnp.float32)
    return on - (d <= -threshold).astype(jnp.float32) if off_spike else on


# -- event streams ------------------------------------------------------------------------------
def bin_events(events: np.ndarray, sensor_size: Sequence[int], n_time_bins: int | None = None,
               time_window: float | None = None, t_start: float | None = None, t_end: float | None = None,
               binary: bool = False, dtype: Any = np.float32) -> np.ndarray:
    """Bin a tonic-style event stream into a spike tensor ``(time, polarities, height, width)``.

    ``events`` is a structured array with fields ``x``, ``t``, ``p`` and
    optionally ``y`` (absent for 1-d sensors such as audio cochleas);
    ``sensor_size`` is ``(width, height, polarities)`` as in tonic (SHD:
    ``(700, 1, 1)``). Give either ``n_time_bins`` (equal bins spanning
    ``[t_start, t_end]``, by default the first and last event) or
    ``time_window`` (bins of that duration from ``t_start``, default 0; the
    number of bins covers ``t_end``). Each bin holds the event count (or 1
    where any, with ``binary``); events outside the span or the sensor are
    dropped. Flatten the last three axes for a dense layer.

    Example:
        >>> import numpy as np
        >>> from neurodyn import encoders
        >>> ev = np.zeros(3, dtype=encoders.EVENT_DTYPE)        # an SHD-like stream, times in us
        >>> ev["x"], ev["t"] = [3, 3, 699], [10., 1500., 2100.]
        >>> frames = encoders.bin_events(ev, (700, 1, 1), time_window=1000)   # 1 ms bins
        >>> frames.shape
        (3, 1, 1, 700)
        >>> x = frames.reshape(len(frames), -1)                  # (time, 700) for a dense layer
        >>> x[:, 3], x[:, 699]
        (array([1., 1., 0.], dtype=float32), array([0., 0., 1.], dtype=float32))
    """
    if not isinstance(events, np.ndarray) or events.dtype.names is None:
        raise TypeError(f"encoders.bin_events: events must be a NumPy structured array with fields x, t, p "
                        f"(and y), got {type(events).__name__}"
                        f"{'' if not hasattr(events, 'dtype') else ' of dtype ' + str(events.dtype)}")
    missing = [f for f in ("x", "t", "p") if f not in events.dtype.names]
    if missing:
        raise ValueError(f"encoders.bin_events: events lack the fields {missing}; got fields {events.dtype.names}")
    if len(sensor_size) != 3 or any(int(s) < 1 for s in sensor_size):
        raise ValueError(f"encoders.bin_events: sensor_size must be (width, height, polarities) of positive "
                         f"ints, got {tuple(sensor_size)}")
    if (n_time_bins is None) == (time_window is None):
        raise ValueError("encoders.bin_events: give exactly one of n_time_bins and time_window, got "
                         f"n_time_bins={n_time_bins}, time_window={time_window}")
    W, H, P = (int(s) for s in sensor_size)
    t = events["t"].astype(np.float64)
    t_min = float(t.min()) if t.size else 0.0
    t_max = float(t.max()) if t.size else 0.0
    if n_time_bins is not None:
        n = int(n_time_bins)
        if n < 1:
            raise ValueError(f"encoders.bin_events: n_time_bins must be >= 1, got {n_time_bins}")
        t0 = t_min if t_start is None else float(t_start)
        t1 = t_max if t_end is None else float(t_end)
        width = (t1 - t0) / n
        if width > 0:
            idx = np.minimum(np.floor((t - t0) / width).astype(np.int64), n - 1)  # t1 joins the last bin
        else:
            idx = np.zeros(t.shape, np.int64)
        inside = (t >= t0) & (t <= t1)
    else:
        if not time_window > 0:
            raise ValueError(f"encoders.bin_events: time_window must be > 0, got {time_window}")
        t0 = 0.0 if t_start is None else float(t_start)
        if t_end is None:  # bins up to and including the last event
            n = max(int(np.floor((t_max - t0) / time_window)) + 1, 1)
        else:  # half-open bins [t0, t0 + w), ... covering [t0, t_end)
            n = max(int(np.ceil((float(t_end) - t0) / time_window)), 1)
        idx = np.floor((t - t0) / time_window).astype(np.int64)
        inside = (idx >= 0) & (idx < n)
    x = events["x"].astype(np.int64)
    y = events["y"].astype(np.int64) if "y" in events.dtype.names else np.zeros_like(x)
    p = events["p"].astype(np.int64)
    if P == 1:
        p = np.zeros_like(p)  # single-polarity sensors (tonic's SHD stores p = 0 or 1)
    keep = inside & (x >= 0) & (x < W) & (y >= 0) & (y < H) & (p >= 0) & (p < P)
    flat = ((idx[keep] * P + p[keep]) * H + y[keep]) * W + x[keep]
    counts = np.bincount(flat, minlength=n * P * H * W).reshape(n, P, H, W)
    if binary:
        counts = counts > 0
    return counts.astype(dtype)


def pad_sequences(seqs: Sequence[np.ndarray], length: int | None = None,
                  value: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Stack variable-length time-major arrays ``(T_i, ...)`` into ``(N, length, ...)`` and their lengths.

    Shorter sequences are padded at the end with ``value``; longer ones are
    cut to ``length`` (default: the longest).

    Example:
        >>> import numpy as np
        >>> from neurodyn import encoders
        >>> x, lengths = encoders.pad_sequences([np.ones((2, 4)), np.ones((3, 4))])
        >>> x.shape, lengths.tolist()
        ((2, 3, 4), [2, 3])
    """
    if not len(seqs):
        raise ValueError("encoders.pad_sequences: got no sequences")
    seqs = [np.asarray(s) for s in seqs]
    tail = seqs[0].shape[1:]
    for i, s in enumerate(seqs):
        if s.ndim < 1 or s.shape[1:] != tail:
            raise ValueError(f"encoders.pad_sequences: sequence {i} has shape {s.shape}; every sequence must be "
                             f"(time, *{tail})")
    L = max(s.shape[0] for s in seqs) if length is None else int(length)
    out = np.full((len(seqs), L, *tail), value, dtype=np.result_type(*seqs))
    lengths = np.zeros(len(seqs), np.int32)
    for i, s in enumerate(seqs):
        k = min(s.shape[0], L)
        out[i, :k] = s[:k]
        lengths[i] = k
    return out, lengths
