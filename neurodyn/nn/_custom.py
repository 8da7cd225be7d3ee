"""Neuron groups defined by their equations: derivatives, threshold, reset, refractory period."""

from __future__ import annotations

from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp

from .._environ import get_dt
from .._integrators import get_method
from ._drive import Drive
from ._init import Initializer
from ._neurons import NeuronGroup, _as_current, _current_at, _time

__all__ = ["NeuronModel"]

_RESERVED = {"input", "spike", "refractory", "size"}


class NeuronModel(NeuronGroup):
    """A neuron group from its derivatives, threshold, reset and refractory period.

    ``states`` maps each state variable to its initializer; the first is the
    membrane potential V. ``derivative(*states, I)`` returns the time
    derivatives (per ms) in the same order (a single value for one state),
    where ``I`` is the group's input current at the current V: conductance
    inputs (``nn.COBA``) enter it as ``g (E - V)`` inside the derivative, so
    the integrator sees their dependence on V. Voltage jumps are added to V
    after each step.

    Spikes: with a ``reset``, where ``V >= V_th`` after the step; then each
    variable named in ``reset`` is set to its value (a number, one value per
    neuron, or a function of the variable, e.g. ``lambda w: w + 0.5``) and V
    is clamped until ``t_spike + tau_ref``. Without a reset, a spike is an
    upward crossing of ``V_th`` (as in ``nn.HH``).

    Args:
        size: number of neurons.
        derivative: ``derivative(*states, I) -> derivatives``, elementwise.
        states: ``{name: initializer}``, V first; each becomes a Variable attribute.
        V_th: threshold (scalar or per neuron); None: the model never spikes.
        reset: ``{name: value or function}`` applied to spiking neurons, or None.
        tau_ref: refractory period in ms (with a reset).
        method: integrator, ``'exp_euler'`` (default), ``'euler'``, ``'rk2'``, ``'rk4'`` or a callable.
        spike_fn, detach_reset: surrogate spikes for training, as for ``nn.LIF``.

    Example (a quadratic integrate-and-fire neuron):
        >>> import neurodyn.nn as nn
        >>> qif = nn.NeuronModel(
        ...     10, lambda V, I: ((V + 65.) * (V + 50.) / 15. + I) / 10.,
        ...     states={'V': -65.}, V_th=30., reset={'V': -70.}, tau_ref=1.)
    """

    def __init__(self, size: int, derivative: Callable[..., Any], states: Mapping[str, Initializer],
                 V_th: Any = None, reset: Mapping[str, Any] | None = None, tau_ref: Any = 0.0,
                 method: str | Callable = "exp_euler", spike_fn: Callable | None = None,
                 detach_reset: bool = False) -> None:
        super().__init__(size, spike_fn, detach_reset)
        if not callable(derivative):
            raise TypeError(f"NeuronModel: derivative must be callable derivative(*states, I), "
                            f"got {type(derivative).__name__}")
        if not isinstance(states, Mapping) or not states:
            raise ValueError(f"NeuronModel: states must be a non-empty dict {{name: initializer}} "
                             f"(the membrane potential first), got {states!r}")
        bad = [k for k in states if not isinstance(k, str) or not k.isidentifier() or k in _RESERVED
               or k.startswith("_")]
        if bad:
            raise ValueError(f"NeuronModel: state names must be identifiers other than "
                             f"{sorted(_RESERVED)}, got {bad}")
        reset = {} if reset is None else dict(reset)
        unknown = [k for k in reset if k not in states]
        if unknown:
            raise ValueError(f"NeuronModel: reset names {unknown} are not states; states: {list(states)}")
        if reset and V_th is None:
            raise ValueError("NeuronModel: a reset needs a threshold V_th")
        self.derivative_fn = derivative
        self.state_names = tuple(states)
        self.method = get_method(method)
        self.V_th = None if V_th is None else self.param("V_th", V_th)
        self.reset = {k: v if callable(v) else self.param(f"reset[{k!r}]", v) for k, v in reset.items()}
        for name, init in states.items():
            self.add_state(name, init)
        if reset:
            self.add_refractory(tau_ref)
        elif tau_ref != 0.0:
            raise ValueError("NeuronModel: tau_ref needs a reset (a model without reset has no refractory period)")

    def derivative(self, state: tuple, t: Any, I: Any) -> tuple:
        """The derivatives at ``state`` (a tuple in ``states`` order) for the input ``I``."""
        I = _current_at(I, state[0])
        out = self.derivative_fn(*state, I)
        if len(state) == 1 and not isinstance(out, (tuple, list)):
            out = (out,)
        if not isinstance(out, (tuple, list)) or len(out) != len(state):
            raise ValueError(f"NeuronModel: derivative must return {len(state)} values "
                             f"(d{'/dt, d'.join(self.state_names)}/dt), got "
                             f"{len(out) if isinstance(out, (tuple, list)) else type(out).__name__}")
        return tuple(out)

    def update(self, x: Any = 0.0) -> jax.Array:
        names = self.state_names
        old = tuple(getattr(self, k).value for k in names)
        V = old[0]
        d: Drive = self.drive(V, x)
        new = list(self.method(self.derivative, old, _time(), get_dt(), _as_current(d)))
        V_new = d.add_jump(new[0])
        if self.V_th is None:
            self.spike.value = jnp.zeros_like(self.spike.value)
            new[0] = V_new
        elif not self.reset:
            new[0], _ = self.fire(V_new, self.V_th, None, V < self.V_th)
        else:
            V_new, can_spike = self.refractory_step(V, V_new)
            V_reset = self.reset.get(names[0])
            if callable(V_reset):
                V_reset = V_reset(V_new)
            new[0], spike = self.fire(V_new, self.V_th, V_reset, can_spike)
            for i, name in enumerate(names[1:], 1):
                if name in self.reset:
                    r = self.reset[name]
                    target = r(new[i]) if callable(r) else r
                    if self.spike_fn is None:
                        new[i] = jnp.where(spike, target, new[i])
                    else:  # differentiable through the surrogate spike
                        new[i] = new[i] + self._spike_float(new[i].dtype) * (target - new[i])
        for name, value in zip(names, new):
            getattr(self, name).value = value
        return self.spike.value

    def __repr__(self) -> str:
        return f"NeuronModel(size={self.size}, states={list(self.state_names)})"
