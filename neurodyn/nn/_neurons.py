"""Spiking neuron groups: LIF, ALIF, Izhikevich, Hodgkin-Huxley, AdEx.

Every group is an ``nd.Module`` holding its state in Variables shaped
``(size,)`` (or ``(batch_size, size)`` after ``reset_state(batch_size)``).
Each step a group sums its inputs in a fixed order (:meth:`NeuronGroup.drive`)::

    I = input                      # external current Variable (the Runner writes it)
    for fn in current_inputs:      # registered with add_input(), in order
        I = I + fn(V)              # V: membrane potential before this step
    I = I + x                      # the argument of update(x)

An input function may also return an ``nn.Conductance`` (summed separately
and folded into the membrane's decay: stable for large conductances) or an
``nn.Jump`` (a voltage jump in mV, added after the integration and before
the threshold test; discarded during the refractory period). Projections
register their synaptic output through :meth:`NeuronGroup.add_input`, so any
number of projections and currents add up.

Spikes: without ``spike_fn`` the ``spike`` Variable is boolean (simulation).
With a surrogate ``spike_fn`` (see :mod:`neurodyn.surrogate`) it is a float
0/1 whose gradient is the surrogate derivative, for training. The reset is
then ``V = V_new * (1 - s) + V_reset * s``; ``detach_reset=True`` stops the
gradient through ``s`` in that reset (as in SpikingJelly / snnTorch), which
often trains better because the reset does not feed back a gradient.
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from .. import random as _nd_random
from .._environ import get as _get_shared
from .._environ import float_dtype, get_dt
from .._integrators import get_method
from .._module import Module
from .._state import Variable, in_trace
from ._drive import Conductance, Drive, Jump

__all__ = ["Group", "NeuronGroup", "LIF", "ALIF", "Izhikevich", "HH", "AdEx",
           "Constant", "Normal", "Uniform", "init_value", "reset_var"]

Initializer = Any  # a number, an array, a callable (shape) -> array, or jax.nn.initializers-style


# -- initializers ----------------------------------------------------------------
class Constant:
    """Initializer filling every neuron with ``value``.

    Example:
        >>> nn.LIF(10, V_initializer=nn.Constant(-65.))
    """

    def __init__(self, value: float) -> None:
        self.value = float(value)

    def __call__(self, shape: tuple[int, ...], dtype: Any = None) -> jax.Array:
        return jnp.full(shape, self.value, dtype or float_dtype())

    def __repr__(self) -> str:
        return f"Constant({self.value})"


class Normal:
    """Initializer drawing ``Normal(mean, std)`` values from ``nd.random``.

    Example:
        >>> nn.LIF(10, V_initializer=nn.Normal(-55., 2.))
    """

    def __init__(self, mean: float = 0.0, std: float = 1.0) -> None:
        if std < 0:
            raise ValueError(f"Normal: std must be >= 0, got {std}")
        self.mean, self.std = float(mean), float(std)

    def __call__(self, shape: tuple[int, ...], dtype: Any = None) -> jax.Array:
        return _nd_random.normal(self.mean, self.std, size=shape, dtype=dtype or float_dtype())

    def __repr__(self) -> str:
        return f"Normal({self.mean}, {self.std})"


class Uniform:
    """Initializer drawing ``Uniform(low, high)`` values from ``nd.random``.

    Example:
        >>> nn.LIF(10, V_initializer=nn.Uniform(-70., -50.))
    """

    def __init__(self, low: float = 0.0, high: float = 1.0) -> None:
        if high < low:
            raise ValueError(f"Uniform: high ({high}) must be >= low ({low})")
        self.low, self.high = float(low), float(high)

    def __call__(self, shape: tuple[int, ...], dtype: Any = None) -> jax.Array:
        return _nd_random.uniform(self.low, self.high, size=shape, dtype=dtype or float_dtype())

    def __repr__(self) -> str:
        return f"Uniform({self.low}, {self.high})"


_OWN_INITS = (Constant, Normal, Uniform)


def _required_positional(fn: Callable) -> int:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return 1
    return sum(1 for p in sig.parameters.values()
               if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty)


def init_value(init: Initializer, shape: tuple[int, ...], dtype: Any = None,
               what: str = "initializer") -> jax.Array:
    """Evaluate an initializer for ``shape``.

    ``init`` may be a number or array (broadcast to ``shape``), a callable
    ``init(shape)`` (like :class:`Normal`), or a ``jax.nn.initializers``-style
    ``init(key, shape, dtype)``, which gets a key from ``nd.random``.

    ``dtype`` defaults to ``nd.float_dtype()``.

    Example:
        >>> init_value(jax.nn.initializers.normal(1.), (3,))
    """
    dtype = float_dtype() if dtype is None else dtype
    if callable(init):
        if isinstance(init, _OWN_INITS) or _required_positional(init) < 2:
            out = init(shape)
        else:
            out = init(_nd_random.split_key(), shape, dtype)
    else:
        out = init
    out = jnp.asarray(out, dtype=dtype)
    try:
        return jnp.broadcast_to(out, shape)
    except ValueError:
        raise ValueError(f"{what} produced shape {out.shape}, which does not broadcast to {shape}") from None


def _state_shape(size: int, batch_size: int | None) -> tuple[int, ...]:
    if batch_size is None:
        return (size,)
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int or None, got {batch_size!r}")
    return (int(batch_size), size)


def reset_var(var: Variable, value: Any) -> None:
    """Set a state Variable to ``value`` in a ``reset_state``.

    Inside compiled code (the Trainer's per-batch reset) the shape is the one
    the step was traced with, so this is an in-place assignment; outside it is
    ``reset_value``, which may change the shape (a new batch size).
    """
    if in_trace():
        var.value = value
    else:
        var.reset_value(value)


def _n_steps(what: str, ms: float, dt: float) -> int:
    if ms < 0:
        raise ValueError(f"{what} must be >= 0 ms, got {ms}")
    return int(round(ms / dt))


# -- base classes ----------------------------------------------------------------
class Group(Module):
    """A population of ``size`` units with a ``spike`` Variable (base class).

    Network containers update every ``Group`` after the projections.

    Example:
        >>> class Silent(nn.Group):
        ...     def __init__(self, size):
        ...         super().__init__(size)
        ...     def update(self):
        ...         return self.spike.value
    """

    def __init__(self, size: int) -> None:
        if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 1:
            raise ValueError(f"{type(self).__name__}: size must be a positive int, got {size!r}")
        self.size = int(size)
        self.spike = Variable(jnp.zeros((self.size,), bool))

    def reset_state(self, batch_size: int | None = None) -> None:
        """Clear the spikes; state shape ``(size,)`` or ``(batch_size, size)``."""
        reset_var(self.spike, jnp.zeros(_state_shape(self.size, batch_size), self.spike.dtype))

    @property
    def varshape(self) -> tuple[int, ...]:
        """The state shape: ``(size,)`` or ``(batch_size, size)``."""
        return tuple(self.spike.shape)


class NeuronGroup(Group):
    """A neuron group with an external ``input`` and registered current inputs.

    Subclasses call ``super().__init__(size, spike_fn, detach_reset)`` and use
    :meth:`sum_inputs` and :meth:`_fire` in ``update``.

    Example:
        >>> lif = nn.LIF(100)
        >>> lif.add_input('bias', lambda V: 2.)
    """

    def __init__(self, size: int, spike_fn: Callable | None = None, detach_reset: bool = False) -> None:
        super().__init__(size)
        if spike_fn is not None and not callable(spike_fn):
            raise TypeError(f"{type(self).__name__}: spike_fn must be callable (e.g. "
                            f"surrogate.Sigmoid()), got {type(spike_fn).__name__}")
        self.spike_fn = spike_fn
        self.detach_reset = bool(detach_reset)
        self.current_inputs: dict[str, Callable] = {}
        self.input = Variable(jnp.zeros((self.size,), float_dtype()))
        self.spike.reset_value(jnp.zeros((self.size,), self._spike_dtype))

    @property
    def _spike_dtype(self) -> Any:
        return bool if self.spike_fn is None else float_dtype()

    # -- inputs ---------------------------------------------------------------------
    def add_input(self, name: str, fn: Callable[[jax.Array], Any]) -> None:
        """Register ``fn(V) -> current``, called every step and added to the input.

        Inputs are summed in registration order (after ``input``, before the
        ``x`` of ``update``). Call it outside compiled code; compiled steps
        re-trace afterwards.

        Example:
            >>> lif.add_input('leak2', lambda V: 0.1 * (-70. - V))
        """
        if not isinstance(name, str):
            raise TypeError(f"{type(self).__name__}.add_input: name must be a str, got {type(name).__name__}")
        if not callable(fn):
            raise TypeError(f"{type(self).__name__}.add_input('{name}'): fn must be callable fn(V) -> current, "
                            f"got {type(fn).__name__}")
        if name in self.current_inputs:
            raise ValueError(f"{type(self).__name__} already has an input named '{name}'; "
                             f"registered: {list(self.current_inputs)}")
        # A new dict (not an in-place edit) so compiled code sees the change and re-traces.
        self.current_inputs = {**self.current_inputs, name: fn}

    def remove_input(self, name: str) -> None:
        """Unregister the input ``name``."""
        if name not in self.current_inputs:
            raise KeyError(f"{type(self).__name__} has no input '{name}'; registered: {list(self.current_inputs)}")
        self.current_inputs = {k: v for k, v in self.current_inputs.items() if k != name}

    def drive(self, V: Any, x: Any = 0.0) -> Drive:
        """This step's inputs at potential ``V``, summed by kind.

        Currents: ``input + fn_1(V) + ... + fn_k(V) + x`` in exactly this order
        (skipping the functions that return a conductance or a jump).
        Conductances (:class:`nn.Conductance`) and voltage jumps
        (:class:`nn.Jump`) are summed in registration order into
        ``Drive.g``, ``Drive.gE`` and ``Drive.jump`` (None when there are none).

        Example:
            >>> d = lif.drive(lif.V.value)
            >>> d.current(lif.V.value)   # I + gE - g V
        """
        current = self.input.value
        g = gE = jump = None
        for fn in self.current_inputs.values():
            out = fn(V)
            if isinstance(out, Conductance):
                g = out.g if g is None else g + out.g
                gE = out.gE if gE is None else gE + out.gE
            elif isinstance(out, Jump):
                jump = out.dV if jump is None else jump + out.dV
            else:
                current = current + out
        return Drive(current + x, g, gE, jump)

    def sum_inputs(self, V: Any, x: Any = 0.0) -> jax.Array:
        """The total current at ``V``: :meth:`drive` with conductances evaluated explicitly.

        For models integrated with an explicit method. Raises TypeError if a
        voltage-jump input is registered (a jump is not a current: use
        :meth:`drive` and add ``Drive.jump`` to V).
        """
        d = self.drive(V, x)
        if d.jump is not None:
            jumps = [k for k, fn in self.current_inputs.items() if isinstance(fn(V), Jump)]
            raise TypeError(f"{type(self).__name__}.sum_inputs: the inputs {jumps} are voltage jumps "
                            "(nn.Jump), not currents; read the inputs with drive(V) and add Drive.jump to V")
        return d.current(V)

    # -- spikes ---------------------------------------------------------------------
    def _fire(self, V_new: jax.Array, V_th: Any, V_reset: Any, can_spike: Any = None) -> tuple[jax.Array, jax.Array]:
        """Spike where ``V_new >= V_th`` (and ``can_spike``); return (V after reset, spike bool).

        Writes the ``spike`` Variable. ``V_reset=None`` means no reset (HH).
        """
        spike = V_new >= V_th
        if can_spike is not None:
            spike = spike & can_spike
        if self.spike_fn is None:
            self.spike.value = spike
            V = V_new if V_reset is None else jnp.where(spike, V_reset, V_new)
            return V, spike
        s = self.spike_fn(V_new - V_th)
        if can_spike is not None:
            s = s * can_spike
        self.spike.value = s
        if V_reset is None:
            return V_new, spike
        s_r = jax.lax.stop_gradient(s) if self.detach_reset else s
        return V_new * (1 - s_r) + V_reset * s_r, spike

    def _reset_common(self, batch_size: int | None) -> tuple[int, ...]:
        shape = _state_shape(self.size, batch_size)
        reset_var(self.input, jnp.zeros(shape, float_dtype()))
        reset_var(self.spike, jnp.zeros(shape, self._spike_dtype))
        return shape

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size})"


# -- models -----------------------------------------------------------------------
class LIF(NeuronGroup):
    """Leaky integrate-and-fire neurons with a refractory period.

    ``tau dV/dt = -(V - V_rest) + R I``, integrated exactly for constant ``I``
    over a step: ``V_inf = V_rest + R I``, ``V = V_inf + (V - V_inf) exp(-dt/tau)``.
    After a spike ``V = V_reset`` and V is clamped for ``tau_ref`` ms
    (``round(tau_ref / dt)`` steps).

    Args:
        size: number of neurons.
        V_rest, V_reset, V_th: resting, reset and threshold potentials (mV).
        tau: membrane time constant (ms). R: membrane resistance.
        tau_ref: refractory period (ms).
        V_initializer: initial V (number, array, ``nn.Normal(...)``, or a
            ``jax.nn.initializers`` function).
        spike_fn: surrogate spike function for training (None: boolean spikes).
        detach_reset: stop the gradient through the reset (with ``spike_fn``).

    Example:
        >>> lif = nn.LIF(100, tau=20., V_th=-50., V_initializer=nn.Normal(-55., 2.))
        >>> lif.input.value = jnp.full(100, 20.)
        >>> spikes = lif.update()
    """

    def __init__(self, size: int, V_rest: float = 0.0, V_reset: float = -5.0, V_th: float = 20.0,
                 tau: float = 10.0, R: float = 1.0, tau_ref: float = 0.0,
                 V_initializer: Initializer = None, spike_fn: Callable | None = None,
                 detach_reset: bool = False) -> None:
        super().__init__(size, spike_fn, detach_reset)
        if not tau > 0:
            raise ValueError(f"LIF: tau must be > 0 ms, got {tau}")
        if tau_ref < 0:
            raise ValueError(f"LIF: tau_ref must be >= 0 ms, got {tau_ref}")
        self.V_rest, self.V_reset, self.V_th = V_rest, V_reset, V_th
        self.tau, self.R, self.tau_ref = float(tau), R, float(tau_ref)
        self.V_initializer = V_rest if V_initializer is None else V_initializer
        self.V = Variable(init_value(self.V_initializer, (self.size,), what="LIF V_initializer"))
        self.refractory = Variable(jnp.zeros((self.size,), jnp.int32))

    def reset_state(self, batch_size: int | None = None) -> None:
        shape = self._reset_common(batch_size)
        reset_var(self.V, init_value(self.V_initializer, shape, what="LIF V_initializer"))
        reset_var(self.refractory, jnp.zeros(shape, jnp.int32))

    def update(self, x: Any = 0.0) -> jax.Array:
        dt = get_dt()
        decay = math.exp(-dt / self.tau)
        n_ref = int(round(self.tau_ref / dt))
        V = self.V.value
        d = self.drive(V, x)
        V_new = _lif_step(V, d, self.V_rest, self.R, self.tau, dt, decay)
        if n_ref == 0:
            # No refractory period: the counter would stay 0, so leave it out of the step
            # (one state array fewer carried through loops and through backprop in time).
            self.V.value, _ = self._fire(V_new, self.V_th, self.V_reset)
            return self.spike.value
        ref = self.refractory.value
        is_ref = ref > 0
        V_new = jnp.where(is_ref, V, V_new)
        V_after, spike = self._fire(V_new, self.V_th, self.V_reset, ~is_ref)
        self.V.value = V_after
        self.refractory.value = jnp.where(spike, n_ref, jnp.maximum(ref - 1, 0))
        return self.spike.value


class ALIF(NeuronGroup):
    """LIF neurons with an adaptive threshold (Bellec et al. 2018, LSNN).

    The threshold is ``V_th + beta * a`` where the adaptation ``a`` decays
    with ``tau_a`` and jumps by 1 at each spike:
    ``a <- a exp(-dt/tau_a) + spike`` (after this step's threshold test).

    Example:
        >>> alif = nn.ALIF(100, tau_a=200., beta=1.8)
    """

    def __init__(self, size: int, V_rest: float = 0.0, V_reset: float = 0.0, V_th: float = 1.0,
                 tau: float = 20.0, tau_a: float = 200.0, beta: float = 1.8, R: float = 1.0,
                 tau_ref: float = 0.0, V_initializer: Initializer = None,
                 spike_fn: Callable | None = None, detach_reset: bool = False) -> None:
        super().__init__(size, spike_fn, detach_reset)
        if not (tau > 0 and tau_a > 0):
            raise ValueError(f"ALIF: tau and tau_a must be > 0 ms, got tau={tau}, tau_a={tau_a}")
        self.V_rest, self.V_reset, self.V_th = V_rest, V_reset, V_th
        self.tau, self.tau_a, self.beta, self.R = float(tau), float(tau_a), beta, R
        self.tau_ref = float(tau_ref)
        self.V_initializer = V_rest if V_initializer is None else V_initializer
        self.V = Variable(init_value(self.V_initializer, (self.size,), what="ALIF V_initializer"))
        self.a = Variable(jnp.zeros((self.size,), float_dtype()))
        self.refractory = Variable(jnp.zeros((self.size,), jnp.int32))

    def reset_state(self, batch_size: int | None = None) -> None:
        shape = self._reset_common(batch_size)
        reset_var(self.V, init_value(self.V_initializer, shape, what="ALIF V_initializer"))
        reset_var(self.a, jnp.zeros(shape, float_dtype()))
        reset_var(self.refractory, jnp.zeros(shape, jnp.int32))

    @property
    def threshold(self) -> jax.Array:
        """The current effective threshold ``V_th + beta * a``."""
        return self.V_th + self.beta * self.a.value

    def update(self, x: Any = 0.0) -> jax.Array:
        dt = get_dt()
        n_ref = int(round(self.tau_ref / dt))
        V = self.V.value
        d = self.drive(V, x)
        V_new = _lif_step(V, d, self.V_rest, self.R, self.tau, dt, math.exp(-dt / self.tau))
        a = self.a.value
        if n_ref == 0:  # as in LIF: no refractory counter to carry
            self.V.value, _ = self._fire(V_new, self.V_th + self.beta * a, self.V_reset)
            self.a.value = a * math.exp(-dt / self.tau_a) + self.spike.value.astype(a.dtype)
            return self.spike.value
        ref = self.refractory.value
        is_ref = ref > 0
        V_new = jnp.where(is_ref, V, V_new)
        V_after, spike = self._fire(V_new, self.V_th + self.beta * a, self.V_reset, ~is_ref)
        self.V.value = V_after
        self.a.value = a * math.exp(-dt / self.tau_a) + self.spike.value.astype(a.dtype)
        self.refractory.value = jnp.where(spike, n_ref, jnp.maximum(ref - 1, 0))
        return self.spike.value


class Izhikevich(NeuronGroup):
    """Izhikevich (2003) neurons: ``dV/dt = 0.04 V^2 + 5 V + 140 - u + I``, ``du/dt = a (b V - u)``.

    On ``V >= V_th``: ``V = c``, ``u += d``. Defaults are regular spiking.

    Args:
        method: integrator for (V, u): ``'exp_euler'`` (default), ``'euler'``, ``'rk2'``, ``'rk4'``.

    Example:
        >>> neu = nn.Izhikevich(10, a=0.02, b=0.2, c=-65., d=8.)
    """

    def __init__(self, size: int, a: float = 0.02, b: float = 0.2, c: float = -65.0, d: float = 8.0,
                 V_th: float = 30.0, tau_ref: float = 0.0, V_initializer: Initializer = None,
                 u_initializer: Initializer = None, method: str | Callable = "exp_euler",
                 spike_fn: Callable | None = None, detach_reset: bool = False) -> None:
        super().__init__(size, spike_fn, detach_reset)
        self.a, self.b, self.c, self.d, self.V_th = a, b, c, d, V_th
        self.tau_ref = float(tau_ref)
        self.method = get_method(method)
        self.V_initializer = Constant(-65.0) if V_initializer is None else V_initializer
        self.u_initializer = u_initializer
        self.V = Variable(jnp.zeros((self.size,), float_dtype()))
        self.u = Variable(jnp.zeros((self.size,), float_dtype()))
        self.refractory = Variable(jnp.zeros((self.size,), jnp.int32))
        self.reset_state()

    def reset_state(self, batch_size: int | None = None) -> None:
        shape = self._reset_common(batch_size)
        V = init_value(self.V_initializer, shape, what="Izhikevich V_initializer")
        reset_var(self.V, V)
        u = self.b * V if self.u_initializer is None else init_value(self.u_initializer, shape)
        reset_var(self.u, jnp.broadcast_to(jnp.asarray(u, float_dtype()), shape))
        reset_var(self.refractory, jnp.zeros(shape, jnp.int32))

    def derivative(self, state: tuple, t: Any, I: Any) -> tuple:
        """``(dV/dt, du/dt)`` at ``state = (V, u)``."""
        V, u = state
        I = _current_at(I, V)
        return 0.04 * V * V + 5.0 * V + 140.0 - u + I, self.a * (self.b * V - u)

    def update(self, x: Any = 0.0) -> jax.Array:
        dt = get_dt()
        V, u = self.V.value, self.u.value
        d = self.drive(V, x)
        V_new, u_new = self.method(self.derivative, (V, u), _time(), dt, _as_current(d))
        V_new = d.add_jump(V_new)
        ref = self.refractory.value
        is_ref = ref > 0
        V_new = jnp.where(is_ref, V, V_new)
        V_after, spike = self._fire(V_new, self.V_th, self.c, ~is_ref)
        self.V.value = V_after
        s = self.spike.value.astype(u_new.dtype)
        self.u.value = u_new + self.d * (jax.lax.stop_gradient(s) if self.detach_reset else s)
        self.refractory.value = jnp.where(spike, int(round(self.tau_ref / dt)), jnp.maximum(ref - 1, 0))
        return self.spike.value


def _vtrap(x: jax.Array, k: float) -> jax.Array:
    """``x / (1 - exp(-x / k))`` with its limit ``k`` at ``x = 0`` (the HH rate singularities)."""
    small = jnp.abs(x) < 1e-4
    safe = jnp.where(small, 1.0, x)
    return jnp.where(small, k + x / 2, safe / -jnp.expm1(-safe / k))


class HH(NeuronGroup):
    """Hodgkin-Huxley (1952) squid axon neurons, classic parameters (rest ~ -65 mV).

    ``C dV/dt = g_Na m^3 h (E_Na - V) + g_K n^4 (E_K - V) + g_L (E_L - V) + I``
    with the classic alpha/beta rate functions. A spike is an upward crossing
    of ``V_th``; there is no reset. Gating variables start at their steady
    state for the initial V.

    Example:
        >>> hh = nn.HH(10)
        >>> hh.input.value = jnp.full(10, 10.)   # uA/cm^2: tonic firing
    """

    def __init__(self, size: int, E_Na: float = 50.0, E_K: float = -77.0, E_L: float = -54.387,
                 g_Na: float = 120.0, g_K: float = 36.0, g_L: float = 0.3, C: float = 1.0,
                 V_th: float = 20.0, V_initializer: Initializer = None,
                 method: str | Callable = "exp_euler", spike_fn: Callable | None = None) -> None:
        super().__init__(size, spike_fn, False)
        self.E_Na, self.E_K, self.E_L = E_Na, E_K, E_L
        self.g_Na, self.g_K, self.g_L, self.C, self.V_th = g_Na, g_K, g_L, C, V_th
        self.method = get_method(method)
        self.V_initializer = Constant(-65.0) if V_initializer is None else V_initializer
        self.V = Variable(jnp.zeros((self.size,), float_dtype()))
        self.m = Variable(jnp.zeros((self.size,), float_dtype()))
        self.h = Variable(jnp.zeros((self.size,), float_dtype()))
        self.n = Variable(jnp.zeros((self.size,), float_dtype()))
        self.reset_state()

    @staticmethod
    def rates(V: jax.Array) -> tuple:
        """``(alpha_m, beta_m, alpha_h, beta_h, alpha_n, beta_n)`` in 1/ms at V (mV)."""
        am = 0.1 * _vtrap(V + 40.0, 10.0)
        bm = 4.0 * jnp.exp(-(V + 65.0) / 18.0)
        ah = 0.07 * jnp.exp(-(V + 65.0) / 20.0)
        bh = 1.0 / (1.0 + jnp.exp(-(V + 35.0) / 10.0))
        an = 0.01 * _vtrap(V + 55.0, 10.0)
        bn = 0.125 * jnp.exp(-(V + 65.0) / 80.0)
        return am, bm, ah, bh, an, bn

    def reset_state(self, batch_size: int | None = None) -> None:
        shape = self._reset_common(batch_size)
        V = init_value(self.V_initializer, shape, what="HH V_initializer")
        am, bm, ah, bh, an, bn = self.rates(V)
        reset_var(self.V, V)
        reset_var(self.m, am / (am + bm))
        reset_var(self.h, ah / (ah + bh))
        reset_var(self.n, an / (an + bn))

    def derivative(self, state: tuple, t: Any, I: Any) -> tuple:
        """``(dV, dm, dh, dn)/dt`` at ``state = (V, m, h, n)``."""
        V, m, h, n = state
        I = _current_at(I, V)
        am, bm, ah, bh, an, bn = self.rates(V)
        I_ion = (self.g_Na * m**3 * h * (self.E_Na - V) + self.g_K * n**4 * (self.E_K - V)
                 + self.g_L * (self.E_L - V))
        return ((I_ion + I) / self.C, am * (1 - m) - bm * m, ah * (1 - h) - bh * h,
                an * (1 - n) - bn * n)

    def update(self, x: Any = 0.0) -> jax.Array:
        V = self.V.value
        d = self.drive(V, x)
        V_new, m, h, n = self.method(self.derivative, (V, self.m.value, self.h.value, self.n.value),
                                     _time(), get_dt(), _as_current(d))
        V_new = d.add_jump(V_new)
        V_after, _ = self._fire(V_new, self.V_th, None, V < self.V_th)
        self.V.value = V_after
        self.m.value, self.h.value, self.n.value = m, h, n
        return self.spike.value


class AdEx(NeuronGroup):
    """Adaptive exponential integrate-and-fire neurons (Brette & Gerstner 2005).

    ``tau dV/dt = -(V - V_rest) + delta_T exp((V - V_T)/delta_T) - R w + R I``,
    ``tau_w dw/dt = a (V - V_rest) - w``; on ``V >= V_th``: ``V = V_reset``,
    ``w += b``. Defaults follow BrainPy.

    Example:
        >>> neu = nn.AdEx(10, a=1., b=1., tau_w=30.)
    """

    def __init__(self, size: int, V_rest: float = -65.0, V_reset: float = -68.0, V_th: float = -30.0,
                 V_T: float = -59.9, delta_T: float = 3.48, a: float = 1.0, b: float = 1.0,
                 tau: float = 10.0, tau_w: float = 30.0, R: float = 1.0, tau_ref: float = 0.0,
                 V_initializer: Initializer = None, method: str | Callable = "exp_euler",
                 spike_fn: Callable | None = None, detach_reset: bool = False) -> None:
        super().__init__(size, spike_fn, detach_reset)
        if not (tau > 0 and tau_w > 0 and delta_T > 0):
            raise ValueError(f"AdEx: tau, tau_w and delta_T must be > 0, got {tau}, {tau_w}, {delta_T}")
        self.V_rest, self.V_reset, self.V_th, self.V_T = V_rest, V_reset, V_th, V_T
        self.delta_T, self.a, self.b = delta_T, a, b
        self.tau, self.tau_w, self.R, self.tau_ref = tau, tau_w, R, float(tau_ref)
        self.method = get_method(method)
        self.V_initializer = V_rest if V_initializer is None else V_initializer
        self.V = Variable(init_value(self.V_initializer, (self.size,), what="AdEx V_initializer"))
        self.w = Variable(jnp.zeros((self.size,), float_dtype()))
        self.refractory = Variable(jnp.zeros((self.size,), jnp.int32))

    def reset_state(self, batch_size: int | None = None) -> None:
        shape = self._reset_common(batch_size)
        reset_var(self.V, init_value(self.V_initializer, shape, what="AdEx V_initializer"))
        reset_var(self.w, jnp.zeros(shape, float_dtype()))
        reset_var(self.refractory, jnp.zeros(shape, jnp.int32))

    def derivative(self, state: tuple, t: Any, I: Any) -> tuple:
        """``(dV/dt, dw/dt)`` at ``state = (V, w)``."""
        V, w = state
        I = _current_at(I, V)
        # Capping the exponent keeps the upswing finite; V has crossed V_th long before.
        arg = jnp.minimum((V - self.V_T) / self.delta_T, 30.0)
        dV = (-(V - self.V_rest) + self.delta_T * jnp.exp(arg) - self.R * w + self.R * I) / self.tau
        dw = (self.a * (V - self.V_rest) - w) / self.tau_w
        return dV, dw

    def update(self, x: Any = 0.0) -> jax.Array:
        dt = get_dt()
        V, w = self.V.value, self.w.value
        d = self.drive(V, x)
        V_new, w_new = self.method(self.derivative, (V, w), _time(), dt, _as_current(d))
        V_new = d.add_jump(V_new)
        ref = self.refractory.value
        is_ref = ref > 0
        V_new = jnp.where(is_ref, V, V_new)
        V_after, spike = self._fire(V_new, self.V_th, self.V_reset, ~is_ref)
        self.V.value = V_after
        s = self.spike.value.astype(w_new.dtype)
        self.w.value = w_new + self.b * (jax.lax.stop_gradient(s) if self.detach_reset else s)
        self.refractory.value = jnp.where(spike, int(round(self.tau_ref / dt)), jnp.maximum(ref - 1, 0))
        return self.spike.value


def _lif_step(V: Any, d: Drive, V_rest: Any, R: Any, tau: Any, dt: float, decay: Any) -> jax.Array:
    """``tau dV/dt = -(V - V_rest) + R (I + gE - g V)`` solved exactly over one step
    (``I``, ``g`` constant), then the voltage jumps added."""
    if d.g is None:
        V_inf = V_rest + R * d.I
        V_new = V_inf + (V - V_inf) * decay
    else:
        # The conductance shortens the time constant to tau / (1 + R g) and moves the
        # fixed point to a weighted mean of V_rest, the reversal potentials and R I.
        a = 1.0 + R * d.g
        V_inf = (V_rest + R * (d.I + d.gE)) / a
        V_new = V_inf + (V - V_inf) * jnp.exp(a * (-dt / tau))
    return d.add_jump(V_new)


def _as_current(d: Drive) -> Any:
    """What a ``derivative(state, t, I)`` receives: the current, or the Drive when the
    current depends on V (conductances), so the integrator sees that dependence."""
    return d.I if d.g is None else Drive(d.I, d.g, d.gE)


def _current_at(I: Any, V: Any) -> Any:
    return I.current(V) if isinstance(I, Drive) else I


def _time() -> Any:
    # Autonomous models ignore t; outside a Runner it may be unset.
    return _get_shared("t", 0.0)
