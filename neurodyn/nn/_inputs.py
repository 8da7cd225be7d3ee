"""Inputs: current waveforms, time-varying currents, Poisson spike sources.

* :func:`section_input` / :func:`constant_input` / :func:`ramp_input` build
  per-step current arrays on the host side (shape ``(n_steps, ...)``), e.g. to
  feed a Runner or :class:`TimedInput`.
* :class:`ConstantInput` and :class:`TimedInput` register a current with a
  neuron group (``add_input``), constant or read at step ``nd.share.i``.
* :class:`PoissonGroup` is a spike source (usable as the ``pre`` of a
  Projection); :class:`PoissonInput` adds the summed current of many
  independent Poisson inputs to a group directly.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .. import random as _nd_random
from .._environ import get as _get_shared
from .._environ import float_dtype, get_dt
from .._module import Module
from .._random import RandomState
from .._state import Variable
from . import _sparse_spikes
from ._drive import Jump
from ._neurons import Group, NeuronGroup, _state_shape, reset_var

__all__ = ["section_input", "constant_input", "ramp_input", "ConstantInput", "TimedInput",
           "PoissonGroup", "PoissonInput", "binomial_table", "poisson_table", "stack_tables", "draw_counts"]


def _steps(what: str, duration: float, dt: float) -> int:
    duration = float(duration)
    if duration < 0:
        raise ValueError(f"{what}: durations must be >= 0 ms, got {duration}")
    return int(round(duration / dt))


def section_input(values: Sequence[Any], durations: Sequence[float], dt: float | None = None) -> jax.Array:
    """A piecewise-constant current: ``values[k]`` for ``durations[k]`` ms, one row per step.

    Each value may be a scalar or an array (all of one shape); durations are
    rounded to steps of ``dt`` (default ``nd.get_dt()``).

    Example:
        >>> import neurodyn.nn as nn
        >>> I = nn.section_input([0., 10., 0.], [10., 50., 10.], dt=0.1)   # shape (700,)
    """
    if len(values) != len(durations):
        raise ValueError(f"section_input: {len(values)} values but {len(durations)} durations")
    dt = get_dt() if dt is None else float(dt)
    arrays = [np.asarray(v, float_dtype()) for v in values]
    shape = np.broadcast_shapes(*(a.shape for a in arrays)) if arrays else ()
    pieces = [np.broadcast_to(a, (_steps("section_input", d, dt),) + shape)
              for a, d in zip(arrays, durations)]
    if not pieces:
        return jnp.zeros((0,), float_dtype())
    return jnp.asarray(np.concatenate(pieces, axis=0))


def constant_input(value: Any, duration: float, dt: float | None = None) -> jax.Array:
    """``value`` for ``duration`` ms, one row per step.

    Example:
        >>> import neurodyn.nn as nn
        >>> I = nn.constant_input(5., 100.)    # shape (1000,) at dt = 0.1
    """
    return section_input([value], [duration], dt)


def ramp_input(c_start: float, c_end: float, duration: float, t_start: float = 0.0,
               t_end: float | None = None, dt: float | None = None) -> jax.Array:
    """A current rising linearly from ``c_start`` (at ``t_start``) to ``c_end`` (at ``t_end``).

    Zero before ``t_start`` and after ``t_end`` (default: ``duration``).

    Example:
        >>> import neurodyn.nn as nn
        >>> I = nn.ramp_input(0., 10., 100.)   # 0 -> 10 over 100 ms
    """
    dt = get_dt() if dt is None else float(dt)
    t_end = duration if t_end is None else t_end
    n = _steps("ramp_input", duration, dt)
    i0, i1 = _steps("ramp_input", t_start, dt), _steps("ramp_input", t_end, dt)
    out = np.zeros(n, float_dtype())
    if i1 > i0:
        out[i0:i1] = np.linspace(c_start, c_end, i1 - i0, endpoint=False, dtype=float_dtype())
    return jnp.asarray(out)


class ConstantInput(Module):
    """Adds a constant current ``value`` to ``target`` every step.

    Example:
        >>> import neurodyn.nn as nn
        >>> lif = nn.LIF(10)
        >>> bias = nn.ConstantInput(lif, 2.)
    """

    def __init__(self, target: NeuronGroup, value: Any, name: str | None = None) -> None:
        if not isinstance(target, NeuronGroup):
            raise TypeError(f"ConstantInput: target must be a NeuronGroup, got {type(target).__name__}")
        self.value = jnp.asarray(value, float_dtype())
        self.name = name or f"const{len(target.current_inputs)}"
        target.add_input(self.name, self._current)

    def _current(self, V: Any) -> jax.Array:
        return self.value


class TimedInput(Module):
    """Adds ``currents[row]`` to ``target`` every step (a time-varying current).

    ``currents`` has one row per ``dt`` ms (e.g. from :func:`section_input`),
    ``dt`` being ``nd.get_dt()`` when the input is built unless given. A step
    at time ``t`` uses the row that covers ``t``, so a table built at one dt
    plays at the right speed under another (rows are held for their
    duration). After the last row the current is 0: a stimulus ends, unlike a
    Runner ``'iter'`` input, which must cover the whole run.

    Example:
        >>> import neurodyn as nd
        >>> import neurodyn.nn as nn
        >>> lif = nn.LIF(10)
        >>> stim = nn.TimedInput(lif, nn.section_input([0., 5.], [10., 40.]))
        >>> with nd.context(t=0., i=0):
        ...     spikes = lif.update()
    """

    def __init__(self, target: NeuronGroup, currents: Any, name: str | None = None,
                 dt: float | None = None) -> None:
        if not isinstance(target, NeuronGroup):
            raise TypeError(f"TimedInput: target must be a NeuronGroup, got {type(target).__name__}")
        currents = jnp.asarray(currents, float_dtype())
        if currents.ndim == 0:
            raise ValueError("TimedInput: currents needs a leading time axis (one row per step), got a scalar")
        rows_dt = get_dt() if dt is None else dt
        if not (isinstance(rows_dt, (int, float)) and math.isfinite(rows_dt) and rows_dt > 0):
            raise ValueError(f"TimedInput: dt (the rows' spacing) must be a positive number of ms, got {dt!r}")
        self.rows_dt = float(rows_dt)
        self.currents = Variable(currents)
        self.name = name or f"timed{len(target.current_inputs)}"
        target.add_input(self.name, self._current)

    def _current(self, V: Any) -> jax.Array:
        i = jnp.asarray(_get_shared("i"))
        step_dt = get_dt()
        if math.isclose(step_dt, self.rows_dt, rel_tol=1e-9):
            r = i
        else:
            # the row covering the step's time; the epsilon absorbs float error at row edges
            r = jnp.floor(i * (step_dt / self.rows_dt) + 1e-6).astype(jnp.int32)
        table = self.currents.value
        n = table.shape[0]
        row = table[jnp.clip(r, 0, n - 1)]
        return jnp.where((r >= 0) & (r < n), row, jnp.zeros_like(row))


def _freq_prob(cls: str, freq: Any, dt: float) -> Any:
    f = np.asarray(freq, np.float64)
    if not np.all(np.isfinite(f)) or np.any(f < 0):
        raise ValueError(f"{cls}: freq must be finite and >= 0 Hz, got {freq}")
    p = f * dt / 1000.0
    if np.any(p > 1):
        raise ValueError(f"{cls}: freq * dt = {float(np.max(p))} > 1 spike per step; lower freq or dt")
    return p


_TWO32 = 2.0 ** 32


def _bernoulli_threshold(p: Any) -> np.ndarray:
    """``P(bits < t) = t / 2**32`` for uniform 32-bit ``bits``: ``t = round(p * 2**32)``
    (int64: ``p = 1`` gives ``2**32``, above every draw)."""
    return np.rint(np.asarray(p, np.float64) * _TWO32).astype(np.int64)


def _cdf_table(lo: int, logpmf: np.ndarray) -> tuple[int, np.ndarray]:
    """``(k0, T)`` from the log probabilities of ``lo, lo + 1, ...`` (see :func:`binomial_table`)."""
    cdf = np.cumsum(np.exp(logpmf))
    T = np.rint(cdf * _TWO32)
    k0 = lo + int(np.sum(T <= 0))
    T = T[(T > 0) & (T < _TWO32)]
    return k0, T.astype(np.uint32)


def binomial_table(n: int, p: float) -> tuple[int, np.ndarray]:
    """The inverse CDF of ``Binomial(n, p)`` on 32-bit uniform integers.

    Returns ``(k0, T)``: for a uniform ``u`` in ``[0, 2**32)``,
    ``k = k0 + #{j : T[j] <= u}`` has ``P(k <= k0 + j) = T[j] / 2**32``, the
    CDF rounded to a multiple of ``2**-32`` (values whose probability rounds
    to 0 are never drawn). The CDF is computed in float64 from log
    probabilities, so any ``n`` and ``p`` work.

    Example:
        >>> import neurodyn.nn as nn
        >>> k0, T = nn.binomial_table(1000, 0.002)    # mean 2 spikes per step
        >>> k0, T.size
        (0, 16)
    """
    n = int(n)
    p = float(p)
    if n == 0 or p == 0.0:
        return 0, np.zeros((0,), np.uint32)
    if p >= 1.0:
        return n, np.zeros((0,), np.uint32)
    mean, sd = n * p, math.sqrt(n * p * (1.0 - p))
    # beyond 12 sd (+10) the tail mass is far below 2**-32
    lo = max(0, int(math.floor(mean - 12.0 * sd - 10.0)))
    hi = min(n, int(math.ceil(mean + 12.0 * sd + 10.0)))
    k = np.arange(lo, hi + 1, dtype=np.float64)
    lg = np.vectorize(math.lgamma)
    logpmf = (math.lgamma(n + 1.0) - lg(k + 1.0) - lg(n - k + 1.0)
              + k * math.log(p) + (n - k) * math.log1p(-p))
    return _cdf_table(lo, logpmf)


def poisson_table(lam: float) -> tuple[int, np.ndarray]:
    """The inverse CDF of ``Poisson(lam)`` on 32-bit uniform integers, as :func:`binomial_table`.

    Example:
        >>> import neurodyn.nn as nn
        >>> k0, T = nn.poisson_table(2.0)
        >>> k0, T.size
        (0, 16)
    """
    lam = float(lam)
    if not (math.isfinite(lam) and lam >= 0):
        raise ValueError(f"poisson_table: lam must be finite and >= 0, got {lam}")
    if lam == 0.0:
        return 0, np.zeros((0,), np.uint32)
    sd = math.sqrt(lam)
    lo = max(0, int(math.floor(lam - 12.0 * sd - 10.0)))
    hi = int(math.ceil(lam + 12.0 * sd + 10.0))
    k = np.arange(lo, hi + 1, dtype=np.float64)
    logpmf = k * math.log(lam) - lam - np.vectorize(math.lgamma)(k + 1.0)
    return _cdf_table(lo, logpmf)


def stack_tables(tables: Sequence[tuple[int, np.ndarray]], width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Tables of :func:`binomial_table` / :func:`poisson_table`, one per row, as arrays for
    :func:`draw_counts`: ``(k0, T - 1)``, the thresholds padded to ``width`` with ``2**32 - 1``
    (never exceeded by a 32-bit draw)."""
    w = max([t.size for _, t in tables] + [0]) if width is None else int(width)
    if any(t.size > w for _, t in tables):
        raise ValueError(f"stack_tables: a table has more than width={w} entries")
    out = np.full((len(tables), w), 0xFFFFFFFF, np.uint32)
    for i, (_, t) in enumerate(tables):
        out[i, :t.size] = t - np.uint32(1)
    return np.array([k0 for k0, _ in tables], np.int32), out


# From this many draws on, XLA's RngBitGenerator (keyed from the threefry subkey) beats
# threefry bits on CPU: 0.9 against 2.6 ms for 77k draws; below, threefry is as fast or faster.
_RBG_FROM = 1 << 15


def random_bits(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """Uniform 32-bit integers of ``shape`` from a (threefry) ``key``, by the generator that is
    fastest at that size (threefry, or XLA's RngBitGenerator seeded from the key)."""
    if math.prod(shape) < _RBG_FROM:
        return jax.random.bits(key, shape, jnp.uint32)
    d = jax.random.key_data(key).reshape(-1)[:2].astype(jnp.uint32)
    state = jnp.concatenate([d, d ^ jnp.uint32(0x9E3779B9)])
    return jax.lax.rng_bit_generator(state, shape, dtype=jnp.uint32)[1]


def draw_counts(bits: jax.Array, k0: Any, thresholds: Any) -> jax.Array:
    """Counts from 32-bit uniform ``bits`` by inverting a CDF table: ``k0 + #{j : bits > thresholds[j]}``.

    ``thresholds`` is ``T - 1`` of a table (shape ``(K,)``, shared) or of one table per
    element of ``bits`` (shape ``bits.shape + (K,)``, with ``k0`` of shape ``bits.shape``),
    as :func:`stack_tables` makes them. The law is exact to ``2**-32`` per probability, at
    the cost of one random integer and ``K`` compares per count.

    Example:
        >>> import neurodyn.nn as nn
        >>> import jax.numpy as jnp
        >>> import jax
        >>> k0, tm1 = nn.stack_tables([nn.poisson_table(2.0)])
        >>> bits = jax.random.bits(jax.random.key(0), (10000,), jnp.uint32)
        >>> counts = nn.draw_counts(bits, k0[0], tm1[0])
        >>> bool(abs(float(counts.mean()) - 2.0) < 0.1)
        True
    """
    thresholds = jnp.asarray(thresholds)
    if thresholds.shape[-1] == 0:
        return jnp.broadcast_to(jnp.asarray(k0, jnp.int32), bits.shape)
    if thresholds.ndim == 1 and thresholds.shape[0] > 32:
        # a long shared table: a binary search beats K compares
        k = jnp.searchsorted(thresholds, bits, side="left", method="scan_unrolled").astype(jnp.int32)
    else:
        # a few compares per draw beat a binary search's dependent gathers
        k = jnp.sum(bits[..., None] > thresholds, axis=-1, dtype=jnp.int32)
    return k + jnp.asarray(k0, jnp.int32)


class PoissonGroup(Group):
    """Independent Poisson spike trains at ``freq`` Hz (a spike source).

    Each step, each unit spikes with probability ``freq * dt / 1000`` (a
    scalar or one rate per unit; at most one spike per step), decided by one
    32-bit random integer per unit from ``rng`` (default
    ``nd.random.DEFAULT``), so the probability is exact to ``2**-32``. At a
    low shared rate (a few spikes per step in the group) the step draws the
    spike count and which units spike instead, with a few integers (same law).
    Usable as the ``pre`` of a :class:`Projection`.

    Example:
        >>> import neurodyn.nn as nn
        >>> src, lif = nn.PoissonGroup(100, freq=20.), nn.LIF(50)
        >>> proj = nn.Projection(src, lif, nn.FixedProb(0.1), 0.5, nn.Expon(lif.size, 5.), nn.CUBA())
    """

    def __init__(self, size: int, freq: Any, rng: RandomState | None = None) -> None:
        super().__init__(size)
        f = np.asarray(freq, np.float64)
        if f.shape not in ((), (self.size,)):
            raise ValueError(f"PoissonGroup: freq must be a scalar or one rate per unit "
                             f"(shape ({self.size},)), got shape {f.shape}")
        _freq_prob("PoissonGroup", freq, get_dt())
        self.freq = freq
        self.rng = rng

    def reset_state(self, batch_size: int | None = None) -> None:
        reset_var(self.spike, jnp.zeros(_state_shape(self.size, batch_size), bool))

    def update(self) -> jax.Array:
        p = _freq_prob("PoissonGroup", self.freq, get_dt())
        t = _bernoulli_threshold(p)
        rng = self.rng if self.rng is not None else _nd_random.DEFAULT
        sparse = _sparse_spikes.plan(self.size, float(p)) if p.ndim == 0 else None
        if sparse is not None:  # a few random integers per step instead of one per unit
            self.spike.value = _sparse_spikes.draw_batch(rng.split_key(), self.spike.shape, *sparse)
            return self.spike.value
        bits = jax.random.bits(rng.split_key(), self.spike.shape, jnp.uint32)
        if np.all(t >= _TWO32):
            self.spike.value = jnp.ones(self.spike.shape, bool)
        elif t.ndim == 0:
            self.spike.value = bits < jnp.uint32(t)
        else:
            # per-unit thresholds of 2**32 (p = 1) do not fit in uint32: compare in two parts
            sure = jnp.asarray(t >= _TWO32)
            self.spike.value = sure | (bits < jnp.asarray(np.minimum(t, _TWO32 - 1).astype(np.uint32)))
        return self.spike.value

    def __repr__(self) -> str:
        return f"PoissonGroup(size={self.size}, freq={self.freq})"


class PoissonInput(Module):
    """The summed input of ``num_input`` independent Poisson spike trains onto each neuron.

    Every step each neuron of ``target`` receives ``weight * k`` with
    ``k ~ Binomial(num_input, freq * dt / 1000)`` (each input at most one
    spike per step, as in Brian2's ``PoissonInput``), drawn independently per
    neuron and step by inverting the exact CDF (computed once on the host in
    float64) with one 32-bit random integer per neuron: the law is exact to
    ``2**-32`` per probability, for any rate and number of inputs, at the
    cost of one random integer and a few compares per neuron.

    Units: by default ``weight * k`` is added to the target's input *current*
    for this one step (the unit of ``target.input``; an LIF membrane then
    moves by ``R * weight * k`` towards ``V_inf`` over the step). With
    ``jump=True``, ``weight`` is a voltage jump in mV: ``V`` moves by
    ``weight * k`` at this step, after the integration and before the
    threshold test, and not while refractory (``nn.Jump``; like NEST's
    ``poisson_generator`` onto ``iaf_psc_delta`` and Brian2's ``PoissonInput``
    on ``v``).

    Example:
        >>> import neurodyn.nn as nn
        >>> lif = nn.LIF(10)
        >>> noise = nn.PoissonInput(lif, num_input=100, freq=10., weight=0.5)
        >>> kicks = nn.PoissonInput(lif, num_input=1000, freq=20., weight=0.1, jump=True)  # mV
    """

    def __init__(self, target: NeuronGroup, num_input: int, freq: float, weight: float,
                 rng: RandomState | None = None, name: str | None = None, jump: bool = False) -> None:
        if not isinstance(target, NeuronGroup):
            raise TypeError(f"PoissonInput: target must be a NeuronGroup, got {type(target).__name__}")
        if not isinstance(num_input, (int, np.integer)) or isinstance(num_input, bool) or num_input < 0:
            raise ValueError(f"PoissonInput: num_input must be a non-negative int, got {num_input!r}")
        if np.ndim(freq) != 0:
            raise ValueError(f"PoissonInput: freq must be a scalar rate in Hz, got shape {np.shape(freq)}")
        _freq_prob("PoissonInput", freq, get_dt())
        self.num_input, self.freq, self.weight = int(num_input), float(freq), weight
        self.jump = bool(jump)
        self.rng = rng
        self.target = target
        self._tables: dict[float, tuple[int, np.ndarray]] = {}  # per dt, built on first use
        self.name = name or f"poisson{len(target.current_inputs)}"
        target.add_input(self.name, self._current)

    def reset_state(self, batch_size: int | None = None) -> None:
        pass  # stateless; the target is reset by its owner

    def counts(self, shape: tuple[int, ...]) -> jax.Array:
        """One step's input spike counts for ``shape`` neurons (int32)."""
        dt = get_dt()
        if dt not in self._tables:
            p = float(_freq_prob("PoissonInput", self.freq, dt))
            k0, tm1 = stack_tables([binomial_table(self.num_input, p)])
            self._tables[dt] = (int(k0[0]), tm1[0])
        k0, tm1 = self._tables[dt]
        if tm1.size == 0:
            return jnp.full(shape, k0, jnp.int32)
        rng = self.rng if self.rng is not None else _nd_random.DEFAULT
        return draw_counts(random_bits(rng.split_key(), tuple(shape)), k0, tm1)

    def _current(self, V: Any) -> Any:
        x = self.weight * self.counts(jnp.shape(V)).astype(float_dtype())
        return Jump(x) if self.jump else x
