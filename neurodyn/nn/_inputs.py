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
from ._neurons import Group, NeuronGroup, _state_shape, reset_var

__all__ = ["section_input", "constant_input", "ramp_input", "ConstantInput", "TimedInput",
           "PoissonGroup", "PoissonInput"]


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
        >>> I = nn.constant_input(5., 100.)    # shape (1000,) at dt = 0.1
    """
    return section_input([value], [duration], dt)


def ramp_input(c_start: float, c_end: float, duration: float, t_start: float = 0.0,
               t_end: float | None = None, dt: float | None = None) -> jax.Array:
    """A current rising linearly from ``c_start`` (at ``t_start``) to ``c_end`` (at ``t_end``).

    Zero before ``t_start`` and after ``t_end`` (default: ``duration``).

    Example:
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
    """Adds ``currents[nd.share.i]`` to ``target`` every step (a time-varying current).

    ``currents`` has one row per step (e.g. from :func:`section_input`); after
    the last row the current is 0.

    Example:
        >>> lif = nn.LIF(10)
        >>> stim = nn.TimedInput(lif, nn.section_input([0., 5.], [10., 40.]))
        >>> with nd.context(t=0., i=0):
        ...     lif.update()
    """

    def __init__(self, target: NeuronGroup, currents: Any, name: str | None = None) -> None:
        if not isinstance(target, NeuronGroup):
            raise TypeError(f"TimedInput: target must be a NeuronGroup, got {type(target).__name__}")
        currents = jnp.asarray(currents, float_dtype())
        if currents.ndim == 0:
            raise ValueError("TimedInput: currents needs a leading time axis (one row per step), got a scalar")
        self.currents = Variable(currents)
        self.name = name or f"timed{len(target.current_inputs)}"
        target.add_input(self.name, self._current)

    def _current(self, V: Any) -> jax.Array:
        i = jnp.asarray(_get_shared("i"))
        table = self.currents.value
        n = table.shape[0]
        row = table[jnp.clip(i, 0, n - 1)]
        return jnp.where((i >= 0) & (i < n), row, jnp.zeros_like(row))


def _freq_prob(cls: str, freq: Any, dt: float) -> Any:
    f = np.asarray(freq, float_dtype())
    if np.any(f < 0):
        raise ValueError(f"{cls}: freq must be >= 0 Hz, got {freq}")
    p = f * dt / 1000.0
    if np.any(p > 1):
        raise ValueError(f"{cls}: freq * dt = {float(np.max(p))} > 1 spike per step; lower freq or dt")
    return p


class PoissonGroup(Group):
    """Independent Poisson spike trains at ``freq`` Hz (a spike source).

    Each step, each unit spikes with probability ``freq * dt / 1000``, drawn
    from ``rng`` (default ``nd.random.DEFAULT``). Usable as the ``pre`` of a
    :class:`Projection`.

    Example:
        >>> src = nn.PoissonGroup(100, freq=20.)
        >>> proj = nn.Projection(src, lif, nn.FixedProb(0.1), 0.5, nn.Expon(lif.size, 5.), nn.CUBA())
    """

    def __init__(self, size: int, freq: Any, rng: RandomState | None = None) -> None:
        super().__init__(size)
        _freq_prob("PoissonGroup", freq, get_dt())
        self.freq = freq
        self.rng = rng

    def reset_state(self, batch_size: int | None = None) -> None:
        reset_var(self.spike, jnp.zeros(_state_shape(self.size, batch_size), bool))

    def update(self) -> jax.Array:
        p = _freq_prob("PoissonGroup", self.freq, get_dt())
        rng = self.rng if self.rng is not None else _nd_random.DEFAULT
        self.spike.value = rng.random(self.spike.shape) < p
        return self.spike.value

    def __repr__(self) -> str:
        return f"PoissonGroup(size={self.size}, freq={self.freq})"


class PoissonInput(Module):
    """The summed current of ``num_input`` independent Poisson inputs onto each neuron.

    Every step each neuron of ``target`` receives ``weight * k`` with
    ``k ~ Binomial(num_input, freq * dt / 1000)`` (a delta current, like
    BrainPy's ``PoissonInput`` applied to the membrane current).

    Example:
        >>> lif = nn.LIF(10)
        >>> noise = nn.PoissonInput(lif, num_input=100, freq=10., weight=0.5)
    """

    def __init__(self, target: NeuronGroup, num_input: int, freq: float, weight: float,
                 rng: RandomState | None = None, name: str | None = None) -> None:
        if not isinstance(target, NeuronGroup):
            raise TypeError(f"PoissonInput: target must be a NeuronGroup, got {type(target).__name__}")
        if not isinstance(num_input, (int, np.integer)) or num_input < 0:
            raise ValueError(f"PoissonInput: num_input must be a non-negative int, got {num_input!r}")
        _freq_prob("PoissonInput", freq, get_dt())
        self.num_input, self.freq, self.weight = int(num_input), float(freq), weight
        self.rng = rng
        self.target = target
        self.name = name or f"poisson{len(target.current_inputs)}"
        target.add_input(self.name, self._current)

    def reset_state(self, batch_size: int | None = None) -> None:
        pass  # stateless; the target is reset by its owner

    def _current(self, V: Any) -> jax.Array:
        p = float(_freq_prob("PoissonInput", self.freq, get_dt()))
        rng = self.rng if self.rng is not None else _nd_random.DEFAULT
        k = jax.random.binomial(rng.split_key(), self.num_input, p, jnp.shape(V))
        return self.weight * k.astype(float_dtype())
