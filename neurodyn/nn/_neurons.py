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

import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from .._environ import get as _get_shared
from .._environ import float_dtype, get_dt, half_up_steps, time_to_steps
from .._integrators import get_method
from .._module import Module
from .._state import Variable, in_trace
from ._drive import Conductance, Drive, Jump
from ._init import Constant, Initializer, Normal, Uniform, init_value

__all__ = ["Group", "NeuronGroup", "LIF", "ALIF", "Izhikevich", "HH", "AdEx", "reset_var"]

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


def _as_param(owner: str, name: str, value: Any, size: int, positive: bool = False,
              nonneg: bool = False, unit: str = "") -> float | np.ndarray:
    """A scalar parameter as a Python float (a compile-time constant), or one value per
    neuron as a float64 NumPy array of shape ``(size,)``; anything else is an error."""
    if isinstance(value, Variable):
        raise TypeError(f"{owner}: {name} must be a number or an array, not a Variable "
                        "(parameters are constants of the compiled step)")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{owner}: {name} must be a number or one value per neuron, "
                        f"got {type(value).__name__}") from None
    if arr.shape not in ((), (size,)):
        raise ValueError(f"{owner}: {name} must be a scalar or have one value per neuron "
                         f"(shape ({size},)), got shape {arr.shape}")
    if positive and not np.all(arr > 0):
        raise ValueError(f"{owner}: {name} must be > 0{unit}, got {_show(arr)}")
    if nonneg and not np.all(arr >= 0):
        raise ValueError(f"{owner}: {name} must be >= 0{unit}, got {_show(arr)}")
    return float(arr) if arr.shape == () else arr


def _show(arr: np.ndarray) -> str:
    if arr.shape == ():
        return f"{float(arr):g}"
    return f"an array with minimum {arr.min():g}"


def _exp_decay(tau: Any, dt: float) -> Any:
    """``exp(-dt / tau)``: a Python float for a scalar tau, a float64 array otherwise."""
    return math.exp(-dt / tau) if isinstance(tau, float) else np.exp(-dt / tau)


def _ref_steps(tau_ref: Any, dt: float) -> Any:
    """``tau_ref`` in steps, rounded half up: an int, or an int32 array per neuron."""
    if isinstance(tau_ref, float):
        return time_to_steps(tau_ref, dt, "tau_ref")
    return half_up_steps(tau_ref, dt).astype(np.int32)


# -- base classes ----------------------------------------------------------------
class Group(Module):
    """A population of ``size`` units with a ``spike`` Variable (base class).

    Network containers update every ``Group`` after the projections.

    Example:
        >>> import neurodyn.nn as nn
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
        self.spike = Variable(jax.device_put(np.zeros((self.size,), bool)))

    def reset_state(self, batch_size: int | None = None) -> None:
        """Clear the spikes; state shape ``(size,)`` or ``(batch_size, size)``."""
        reset_var(self.spike, jnp.zeros(_state_shape(self.size, batch_size), self.spike.dtype))


class NeuronGroup(Group):
    """Base class of neuron models: inputs, state declaration, spikes, refractoriness.

    The contract for writing a model (every built-in model follows it):

    * ``__init__`` calls ``super().__init__(size, spike_fn, detach_reset)``,
      checks its parameters with :meth:`param` (a scalar or one value per
      neuron) and declares every state variable with :meth:`add_state`
      (an initializer per variable). The default :meth:`reset_state`
      re-evaluates these initializers in declaration order (and clears
      ``input``, ``spike`` and the refractory counter); override it only for
      states derived from others, calling ``super().reset_state(batch_size)``
      first.
    * ``update(x=0.)`` reads this step's inputs with :meth:`drive`,
      integrates, adds ``Drive.jump``, then calls :meth:`spike_and_reset`
      (:meth:`refractory_step` and :meth:`fire`), and returns ``self.spike.value``.

    See :class:`NeuronModel` to define a model from its derivatives alone.

    Example:
        >>> import neurodyn as nd
        >>> import neurodyn.nn as nn
        >>> class QIF(nn.NeuronGroup):
        ...     def __init__(self, size, tau=10.0, V_th=30.0, V_reset=-70.0, tau_ref=0.0):
        ...         super().__init__(size)
        ...         self.tau = self.param('tau', tau, positive=True)
        ...         self.V_th, self.V_reset = V_th, V_reset
        ...         self.add_state('V', -65.0)
        ...         self.add_refractory(tau_ref)
        ...     def update(self, x=0.0):
        ...         V = self.V.value
        ...         d = self.drive(V, x)
        ...         dV = ((V + 65.0) * (V + 50.0) / 15.0 + d.current(V)) / self.tau
        ...         V_new = d.add_jump(V + nd.get_dt() * dV)
        ...         self.V.value = self.spike_and_reset(V, V_new, self.V_th, self.V_reset)
        ...         return self.spike.value
    """

    #: ``'brian2'`` (default): after a spike in step k, V is clamped in steps k+1 ... k+n-1
    #: (n = tau_ref / dt rounded half up), as Brian2; ``'nest'``: in steps k+1 ... k+n, as
    #: NEST. Set it on a group (or on the class) before compiling.
    refractory_convention: str = "brian2"

    def __init__(self, size: int, spike_fn: Callable | None = None, detach_reset: bool = False) -> None:
        super().__init__(size)
        if spike_fn is not None and not callable(spike_fn):
            raise TypeError(f"{type(self).__name__}: spike_fn must be callable (e.g. "
                            f"surrogate.Sigmoid()), got {type(spike_fn).__name__}")
        self.spike_fn = spike_fn
        self.detach_reset = bool(detach_reset)
        self.current_inputs: dict[str, Callable] = {}
        self.state_initializers: dict[str, tuple[Initializer, Any]] = {}
        # device_put of a NumPy array compiles nothing (an eager jnp.zeros compiles per shape)
        self.input = Variable(jax.device_put(np.zeros((self.size,), float_dtype())))
        self.spike.reset_value(jax.device_put(np.zeros((self.size,), self._spike_dtype)))

    @property
    def _spike_dtype(self) -> Any:
        return bool if self.spike_fn is None else float_dtype()

    # -- parameters and state ----------------------------------------------------------
    def param(self, name: str, value: Any, positive: bool = False, nonneg: bool = False,
              unit: str = "") -> float | np.ndarray:
        """Check a parameter: a scalar (returned as a Python float) or one value per
        neuron (a float64 NumPy array of shape ``(size,)``).

        Raises ValueError naming the model, the parameter, the expected and the
        received shape; ``positive`` / ``nonneg`` also check the sign.

        Example:
            >>> import neurodyn.nn as nn
            >>> nn.LIF(3).param('tau', [10., 20., 30.], positive=True, unit=' ms')
            array([10., 20., 30.])
        """
        return _as_param(type(self).__name__, name, value, self.size, positive, nonneg, unit)

    def add_state(self, name: str, initializer: Initializer, dtype: Any = None) -> Variable:
        """Declare the state variable ``name`` (a Variable of shape ``(size,)``) and its initializer.

        ``initializer`` is anything :func:`init_value` takes (a number, one value
        per neuron, ``nn.Normal(...)``, a ``jax.nn.initializers`` function);
        :meth:`reset_state` re-evaluates it. ``dtype`` defaults to ``nd.float_dtype()``.

        Example:
            >>> import neurodyn.nn as nn
            >>> import neurodyn.nn as nn
            >>> lif = nn.LIF(3)
            >>> lif.add_state('w', nn.Uniform(0., 1.)).shape   # then lif.w.value
            (3,)
        """
        what = f"{type(self).__name__} {name} initializer"
        var = Variable(init_value(initializer, (self.size,), dtype, what=what))
        setattr(self, name, var)
        self.state_initializers = {**self.state_initializers, name: (initializer, dtype)}
        return var

    def add_refractory(self, tau_ref: Any, initializer: Initializer = 0) -> None:
        """Declare a refractory period of ``tau_ref`` ms (scalar or per neuron) and its counter.

        The counter (the int32 Variable ``refractory``: the number of steps the
        neuron will still be clamped) starts from ``initializer``. See
        :meth:`refractory_step` for the convention.
        """
        self.tau_ref = self.param("tau_ref", tau_ref, nonneg=True, unit=" ms")
        self.add_state("refractory", initializer, jnp.int32)

    def reset_state(self, batch_size: int | None = None) -> None:
        """Re-initialize every declared state variable, clear ``input`` and ``spike``.

        State shape ``(size,)`` or ``(batch_size, size)``.
        """
        shape = self._reset_common(batch_size)
        for name, (init, dtype) in self.state_initializers.items():
            reset_var(getattr(self, name),
                      init_value(init, shape, dtype, what=f"{type(self).__name__} {name} initializer"))

    def _reset_common(self, batch_size: int | None) -> tuple[int, ...]:
        shape = _state_shape(self.size, batch_size)
        reset_var(self.input, jnp.zeros(shape, self.input.dtype))
        reset_var(self.spike, jnp.zeros(shape, self._spike_dtype))
        return shape

    # -- inputs ---------------------------------------------------------------------
    def add_input(self, name: str, fn: Callable[[jax.Array], Any]) -> None:
        """Register ``fn(V)``, called every step; it returns a current, an
        ``nn.Conductance`` or an ``nn.Jump`` (see :meth:`drive`).

        Inputs are summed in registration order (after ``input``, before the
        ``x`` of ``update``). Call it outside compiled code; compiled steps
        re-trace afterwards.

        Example:
            >>> import neurodyn.nn as nn
            >>> lif = nn.LIF(3)
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
            >>> import neurodyn.nn as nn
            >>> lif = nn.LIF(3)
            >>> d = lif.drive(lif.V.value)
            >>> d.current(lif.V.value).tolist()   # I + gE - g V
            [0.0, 0.0, 0.0]
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

    # -- spikes and refractoriness -----------------------------------------------------
    def refractory_step(self, V: jax.Array, V_new: jax.Array) -> tuple[jax.Array, Any]:
        """Clamp refractory neurons: returns ``(V_new with refractory neurons kept at V, can_spike)``.

        With ``n = tau_ref / dt`` rounded half up, a neuron that spikes in
        step k is clamped during the next ``n - 1`` steps and integrates freely
        again from step ``k + n`` (:attr:`refractory_convention` ``'brian2'``,
        the default: Brian2's spike times; the spiking step counts as the
        first refractory step, so ``tau_ref <= dt`` clamps nothing), or during
        the next ``n`` steps (``'nest'``: NEST's, one step longer). The
        ``refractory`` Variable counts the clamped steps still to come. Call
        :meth:`fire` after this with ``can_spike``; it restarts the counter of
        neurons that spike. ``can_spike`` is None when no neuron is ever
        clamped. See docs/conventions.md.
        """
        if self._clamped_steps() is None:
            return V_new, None
        ref = self.refractory.value
        is_ref = ref > 0
        self.refractory.value = jnp.maximum(ref - 1, 0)
        return jnp.where(is_ref, V, V_new), ~is_ref

    def _clamped_steps(self) -> Any:
        """The number of clamped steps after a spike, or None if it is always 0."""
        if "tau_ref" not in self.__dict__:
            return None
        conv = self.refractory_convention
        if conv not in ("brian2", "nest"):
            raise ValueError(f"{type(self).__name__}: refractory_convention must be 'brian2' or 'nest', "
                             f"got {conv!r}")
        n = _ref_steps(self.tau_ref, get_dt())
        if conv == "brian2":
            n = n - 1
        return None if np.max(n) <= 0 else n

    def fire(self, V_new: jax.Array, V_th: Any, V_reset: Any, can_spike: Any = None) -> tuple[jax.Array, jax.Array]:
        """Spike where ``V_new >= V_th`` (and ``can_spike``); return ``(V after reset, spike bool)``.

        Writes the ``spike`` Variable (a surrogate spike with ``spike_fn``) and,
        with a refractory period, restarts the counter of spiking neurons.
        ``V_reset=None`` means no reset (HH).
        """
        spike = V_new >= V_th
        if can_spike is not None:
            spike = spike & can_spike
            n = self._clamped_steps()
            if n is not None:
                self.refractory.value = jnp.where(spike, n, self.refractory.value)
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

    def spike_and_reset(self, V: jax.Array, V_new: jax.Array, V_th: Any, V_reset: Any) -> jax.Array:
        """The end of a step shared by the reset models: :meth:`refractory_step` then :meth:`fire`.

        ``V`` is the potential before the step, ``V_new`` after the integration
        (jumps included). Writes ``spike`` (and the refractory counter); returns V
        after the clamp and the reset.

        Example:
            >>> import jax.numpy as jnp
            >>> import neurodyn.nn as nn
            >>> lif = nn.LIF(2, V_th=1., V_reset=0.)
            >>> lif.spike_and_reset(jnp.zeros(2), jnp.array([0.5, 1.5]), 1., 0.).tolist()
            [0.5, 0.0]
            >>> lif.spike.value.tolist()
            [False, True]
        """
        V_new, can_spike = self.refractory_step(V, V_new)
        return self.fire(V_new, V_th, V_reset, can_spike)[0]

    def _spike_float(self, dtype: Any) -> jax.Array:
        """This step's spikes as floats (gradient stopped with ``detach_reset``): for jumps of
        adaptation variables at a spike."""
        s = self.spike.value.astype(dtype)
        return jax.lax.stop_gradient(s) if self.detach_reset else s

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size})"


# -- models -----------------------------------------------------------------------
class LIF(NeuronGroup):
    """Leaky integrate-and-fire neurons with a refractory period.

    ``tau dV/dt = -(V - V_rest) + R (I + sum_k g_k (E_k - V))``, integrated
    exactly over a step with the input current ``I`` and the conductances
    ``g_k`` (from ``nn.COBA`` inputs) held constant. Voltage jumps
    (``nn.Jump``) are added after the step. After a spike ``V = V_reset`` and V
    is clamped until ``t_spike + tau_ref`` (see :meth:`NeuronGroup.refractory_step`).

    Args:
        size: number of neurons.
        V_rest, V_reset, V_th: resting, reset and threshold potentials (mV).
        tau: membrane time constant (ms). R: membrane resistance.
        tau_ref: refractory period (ms).
        V_initializer: initial V (default ``V_rest``).
        refractory_initializer: the number of steps each neuron starts clamped (default 0).
        spike_fn: surrogate spike function for training (None: boolean spikes).
        detach_reset: stop the gradient through the reset (with ``spike_fn``).

    Every parameter is a scalar or one value per neuron.

    Example:
        >>> import neurodyn.nn as nn
        >>> import jax.numpy as jnp
        >>> lif = nn.LIF(100, tau=20., V_th=-50., V_initializer=nn.Normal(-55., 2.))
        >>> lif.input.value = jnp.full(100, 20.)
        >>> spikes = lif.update()
    """

    def __init__(self, size: int, V_rest: Any = 0.0, V_reset: Any = -5.0, V_th: Any = 20.0,
                 tau: Any = 10.0, R: Any = 1.0, tau_ref: Any = 0.0,
                 V_initializer: Initializer = None, spike_fn: Callable | None = None,
                 detach_reset: bool = False, refractory_initializer: Initializer = 0) -> None:
        super().__init__(size, spike_fn, detach_reset)
        self.V_rest, self.V_reset = self.param("V_rest", V_rest), self.param("V_reset", V_reset)
        self.V_th, self.R = self.param("V_th", V_th), self.param("R", R)
        self.tau = self.param("tau", tau, positive=True, unit=" ms")
        self.V_initializer = self.V_rest if V_initializer is None else V_initializer
        self.add_state("V", self.V_initializer)
        self.add_refractory(tau_ref, refractory_initializer)

    def update(self, x: Any = 0.0) -> jax.Array:
        dt = get_dt()
        V = self.V.value
        d = self.drive(V, x)
        V_new = _lif_step(V, d, self.V_rest, self.R, self.tau, dt)
        self.V.value = self.spike_and_reset(V, V_new, self.V_th, self.V_reset)
        return self.spike.value


class ALIF(NeuronGroup):
    """LIF neurons with an adaptive threshold (Bellec et al. 2018, LSNN).

    The threshold is ``V_th + beta * a`` where the adaptation ``a`` decays
    with ``tau_a`` and jumps by 1 at each spike:
    ``a <- a exp(-dt/tau_a) + spike`` (after this step's threshold test).
    Every parameter is a scalar or one value per neuron.

    Example:
        >>> import neurodyn.nn as nn
        >>> alif = nn.ALIF(100, tau_a=200., beta=1.8)
    """

    def __init__(self, size: int, V_rest: Any = 0.0, V_reset: Any = 0.0, V_th: Any = 1.0,
                 tau: Any = 20.0, tau_a: Any = 200.0, beta: Any = 1.8, R: Any = 1.0,
                 tau_ref: Any = 0.0, V_initializer: Initializer = None,
                 spike_fn: Callable | None = None, detach_reset: bool = False,
                 a_initializer: Initializer = 0.0, refractory_initializer: Initializer = 0) -> None:
        super().__init__(size, spike_fn, detach_reset)
        self.V_rest, self.V_reset = self.param("V_rest", V_rest), self.param("V_reset", V_reset)
        self.V_th, self.R, self.beta = self.param("V_th", V_th), self.param("R", R), self.param("beta", beta)
        self.tau = self.param("tau", tau, positive=True, unit=" ms")
        self.tau_a = self.param("tau_a", tau_a, positive=True, unit=" ms")
        self.V_initializer = self.V_rest if V_initializer is None else V_initializer
        self.add_state("V", self.V_initializer)
        self.add_state("a", a_initializer)
        self.add_refractory(tau_ref, refractory_initializer)

    @property
    def threshold(self) -> jax.Array:
        """The current effective threshold ``V_th + beta * a``."""
        return self.V_th + self.beta * self.a.value

    def update(self, x: Any = 0.0) -> jax.Array:
        dt = get_dt()
        V = self.V.value
        d = self.drive(V, x)
        V_new = _lif_step(V, d, self.V_rest, self.R, self.tau, dt)
        a = self.a.value
        self.V.value = self.spike_and_reset(V, V_new, self.V_th + self.beta * a, self.V_reset)
        self.a.value = a * _exp_decay(self.tau_a, dt) + self.spike.value.astype(a.dtype)
        return self.spike.value


class Izhikevich(NeuronGroup):
    """Izhikevich (2003) neurons: ``dV/dt = 0.04 V^2 + 5 V + 140 - u + I``, ``du/dt = a (b V - u)``.

    On ``V >= V_th``: ``V = c``, ``u += d``. Defaults are regular spiking.
    Every parameter is a scalar or one value per neuron; ``u`` starts at
    ``b * V`` unless ``u_initializer`` is given.

    Args:
        method: integrator for (V, u): ``'exp_euler'`` (default), ``'euler'``, ``'rk2'``, ``'rk4'``.

    Example:
        >>> import neurodyn.nn as nn
        >>> neu = nn.Izhikevich(10, a=0.02, b=0.2, c=-65., d=8.)
    """

    def __init__(self, size: int, a: Any = 0.02, b: Any = 0.2, c: Any = -65.0, d: Any = 8.0,
                 V_th: Any = 30.0, tau_ref: Any = 0.0, V_initializer: Initializer = None,
                 u_initializer: Initializer = None, method: str | Callable = "exp_euler",
                 spike_fn: Callable | None = None, detach_reset: bool = False,
                 refractory_initializer: Initializer = 0) -> None:
        super().__init__(size, spike_fn, detach_reset)
        self.a, self.b = self.param("a", a), self.param("b", b)
        self.c, self.d, self.V_th = self.param("c", c), self.param("d", d), self.param("V_th", V_th)
        self.method = get_method(method)
        self.V_initializer = Constant(-65.0) if V_initializer is None else V_initializer
        self.u_initializer = u_initializer
        self.add_state("V", self.V_initializer)
        self.add_state("u", 0.0 if u_initializer is None else u_initializer)
        self.add_refractory(tau_ref, refractory_initializer)
        self.reset_state()

    def reset_state(self, batch_size: int | None = None) -> None:
        super().reset_state(batch_size)
        if self.u_initializer is None:
            reset_var(self.u, self.b * self.V.value)

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
        self.V.value = self.spike_and_reset(V, d.add_jump(V_new), self.V_th, self.c)
        self.u.value = u_new + self.d * self._spike_float(u_new.dtype)
        return self.spike.value


def _vtrap(x: jax.Array, k: float) -> jax.Array:
    """``x / (1 - exp(-x / k))`` with its limit ``k`` at ``x = 0`` (the HH rate singularities)."""
    small = jnp.abs(x) < 1e-4
    safe = jnp.where(small, 1.0, x)
    return jnp.where(small, k + x / 2, safe / -jnp.expm1(-safe / k))


class _SteadyGate:
    """The default gate initializer of HH: the steady state at the initial V."""

    def __init__(self, which: int) -> None:
        self.which = which

    def __repr__(self) -> str:
        return f"steady state of gate {'mhn'[self.which]} at V0"


class HH(NeuronGroup):
    """Hodgkin-Huxley (1952) squid axon neurons, classic parameters (rest ~ -65 mV).

    ``C dV/dt = g_Na m^3 h (E_Na - V) + g_K n^4 (E_K - V) + g_L (E_L - V) + I``
    with the classic alpha/beta rate functions. A spike is an upward crossing
    of ``V_th``; there is no reset. Gating variables start at their steady
    state for the initial V (in ``nd.float_dtype()``) unless ``m_initializer``,
    ``h_initializer`` or ``n_initializer`` is given. Every parameter is a
    scalar or one value per neuron.

    Example:
        >>> import neurodyn.nn as nn
        >>> import jax.numpy as jnp
        >>> hh = nn.HH(10)
        >>> hh.input.value = jnp.full(10, 10.)   # uA/cm^2: tonic firing
    """

    def __init__(self, size: int, E_Na: Any = 50.0, E_K: Any = -77.0, E_L: Any = -54.387,
                 g_Na: Any = 120.0, g_K: Any = 36.0, g_L: Any = 0.3, C: Any = 1.0,
                 V_th: Any = 20.0, V_initializer: Initializer = None,
                 method: str | Callable = "exp_euler", spike_fn: Callable | None = None,
                 m_initializer: Initializer = None, h_initializer: Initializer = None,
                 n_initializer: Initializer = None) -> None:
        super().__init__(size, spike_fn, False)
        self.E_Na, self.E_K, self.E_L = self.param("E_Na", E_Na), self.param("E_K", E_K), self.param("E_L", E_L)
        self.g_Na, self.g_K = self.param("g_Na", g_Na, nonneg=True), self.param("g_K", g_K, nonneg=True)
        self.g_L = self.param("g_L", g_L, nonneg=True)
        self.C, self.V_th = self.param("C", C, positive=True), self.param("V_th", V_th)
        self.method = get_method(method)
        self.V_initializer = Constant(-65.0) if V_initializer is None else V_initializer
        self.add_state("V", self.V_initializer)
        self.gate_initializers = (m_initializer, h_initializer, n_initializer)
        for name, init in zip("mhn", self.gate_initializers):
            self.add_state(name, 0.0 if init is None else init)
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
        super().reset_state(batch_size)
        am, bm, ah, bh, an, bn = self.rates(self.V.value)
        steady = (am / (am + bm), ah / (ah + bh), an / (an + bn))
        for name, init, value in zip("mhn", self.gate_initializers, steady):
            if init is None:
                reset_var(getattr(self, name), value)

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
        self.V.value, _ = self.fire(V_new, self.V_th, None, V < self.V_th)
        self.m.value, self.h.value, self.n.value = m, h, n
        return self.spike.value


class AdEx(NeuronGroup):
    """Adaptive exponential integrate-and-fire neurons (Brette & Gerstner 2005).

    ``tau dV/dt = -(V - V_rest) + delta_T exp((V - V_T)/delta_T) - R w + R I``,
    ``tau_w dw/dt = a (V - V_rest) - w``; on ``V >= V_th``: ``V = V_reset``,
    ``w += b``. Defaults follow BrainPy. Every parameter is a scalar or one
    value per neuron; ``w`` starts from ``w_initializer`` (default 0).

    Example:
        >>> import neurodyn.nn as nn
        >>> neu = nn.AdEx(10, a=1., b=1., tau_w=30.)
    """

    def __init__(self, size: int, V_rest: Any = -65.0, V_reset: Any = -68.0, V_th: Any = -30.0,
                 V_T: Any = -59.9, delta_T: Any = 3.48, a: Any = 1.0, b: Any = 1.0,
                 tau: Any = 10.0, tau_w: Any = 30.0, R: Any = 1.0, tau_ref: Any = 0.0,
                 V_initializer: Initializer = None, method: str | Callable = "exp_euler",
                 spike_fn: Callable | None = None, detach_reset: bool = False,
                 w_initializer: Initializer = 0.0, refractory_initializer: Initializer = 0) -> None:
        super().__init__(size, spike_fn, detach_reset)
        self.V_rest, self.V_reset = self.param("V_rest", V_rest), self.param("V_reset", V_reset)
        self.V_th, self.V_T = self.param("V_th", V_th), self.param("V_T", V_T)
        self.delta_T = self.param("delta_T", delta_T, positive=True, unit=" mV")
        self.a, self.b, self.R = self.param("a", a), self.param("b", b), self.param("R", R)
        self.tau = self.param("tau", tau, positive=True, unit=" ms")
        self.tau_w = self.param("tau_w", tau_w, positive=True, unit=" ms")
        self.method = get_method(method)
        self.V_initializer = self.V_rest if V_initializer is None else V_initializer
        self.add_state("V", self.V_initializer)
        self.add_state("w", w_initializer)
        self.add_refractory(tau_ref, refractory_initializer)

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
        self.V.value = self.spike_and_reset(V, d.add_jump(V_new), self.V_th, self.V_reset)
        self.w.value = w_new + self.b * self._spike_float(w_new.dtype)
        return self.spike.value


def _lif_step(V: Any, d: Drive, V_rest: Any, R: Any, tau: Any, dt: float) -> jax.Array:
    """``tau dV/dt = -(V - V_rest) + R (I + gE - g V)`` solved exactly over one step
    (``I``, ``g`` constant), then the voltage jumps added."""
    if d.g is None:
        V_inf = V_rest + R * d.I
        V_new = V_inf + (V - V_inf) * _exp_decay(tau, dt)
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
