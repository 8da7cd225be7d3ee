"""Synaptic conductance dynamics (Expon, Alpha, DualExpon, Delta) and outputs (CUBA, COBA, VoltageJump).

A synapse model holds the conductance of every postsynaptic neuron in a
Variable ``g``; ``update(x)`` first decays its state over one step (exactly:
these are linear ODEs) and then adds the input ``x`` (e.g. the weighted spike
counts from a projection). An output turns ``g`` into a current for the
postsynaptic membrane potential ``V``: a current (CUBA), an
``nn.Conductance`` (COBA: the neuron folds it into its membrane decay) or an
``nn.Jump`` (VoltageJump: ``g`` mV added to V at this step).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._environ import float_dtype, get_dt
from .._module import Module
from .._state import Variable
from ._drive import Conductance, Jump
from ._neurons import _as_param, _exp_decay, _state_shape, reset_var

__all__ = ["Synapse", "Expon", "Alpha", "DualExpon", "Delta", "SynOut", "CUBA", "COBA", "VoltageJump"]


def _tau(cls: str, name: str, tau: Any, size: int) -> Any:
    """A time constant: a Python float, or one value per neuron (float64 NumPy array)."""
    return _as_param(cls, name, tau, size, positive=True, unit=" ms")


class Synapse(Module):
    """Base class of synapse models: ``size`` postsynaptic conductances ``g``.

    Time constants are a scalar or one value per postsynaptic neuron.

    Example:
        >>> import neurodyn.nn as nn
        >>> import jax.numpy as jnp
        >>> syn = nn.Expon(100, tau=5.)
        >>> g = syn.update(jnp.ones(100))
    """

    def __init__(self, size: int) -> None:
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"{type(self).__name__}: size must be a positive int, got {size!r}")
        self.size = size
        self.g = Variable(jax.device_put(np.zeros((size,), float_dtype())))

    def reset_state(self, batch_size: int | None = None) -> None:
        shape = _state_shape(self.size, batch_size)
        for v in self.vars().values():
            reset_var(v, jnp.zeros(shape, v.dtype))

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items()
                           if isinstance(v, (int, float)) and not k.startswith("_"))
        return f"{type(self).__name__}({params})"


class Expon(Synapse):
    """Single-exponential synapse: ``dg/dt = -g / tau``, ``g += x`` on input.

    Per step: ``g = g * exp(-dt / tau) + x`` (the factor is a Python float for a scalar tau).

    Example:
        >>> import neurodyn.nn as nn
        >>> syn = nn.Expon(100, tau=5.)
    """

    def __init__(self, size: int, tau: float = 8.0) -> None:
        super().__init__(size)
        self.tau = _tau("Expon", "tau", tau, size)

    def update(self, x: Any = 0.0) -> jax.Array:
        self.g.value = self.g.value * _exp_decay(self.tau, get_dt()) + x
        return self.g.value


class Alpha(Synapse):
    """Alpha-function synapse: an input of 1 at t = 0 gives ``g(t) = (t/tau) exp(-t/tau)``.

    Two linear ODEs, ``dh/dt = -h/tau`` and ``dg/dt = (h - g)/tau``, solved
    exactly per step: ``g <- e (g + (dt/tau) h)``, ``h <- e h`` with
    ``e = exp(-dt/tau)``; then ``h += x``. The peak ``1/e`` is reached at ``t = tau``.

    Example:
        >>> import neurodyn.nn as nn
        >>> syn = nn.Alpha(100, tau=2.)
    """

    def __init__(self, size: int, tau: float = 8.0) -> None:
        super().__init__(size)
        self.tau = _tau("Alpha", "tau", tau, size)
        self.h = Variable(jax.device_put(np.zeros((size,), float_dtype())))

    def update(self, x: Any = 0.0) -> jax.Array:
        dt = get_dt()
        e = _exp_decay(self.tau, dt)
        h = self.h.value
        self.g.value = (self.g.value + (dt / self.tau) * h) * e
        self.h.value = h * e + x
        return self.g.value


class DualExpon(Synapse):
    """Difference of exponentials: ``g = A (g_decay - g_rise)``, both jump by ``x``.

    An input of 1 at t = 0 gives ``g(t) = A (exp(-t/tau_decay) - exp(-t/tau_rise))``.
    ``A=None`` normalises the peak of that response to 1.

    Example:
        >>> import neurodyn.nn as nn
        >>> syn = nn.DualExpon(100, tau_rise=1., tau_decay=5.)
    """

    def __init__(self, size: int, tau_rise: float = 1.0, tau_decay: float = 10.0, A: float | None = None) -> None:
        super().__init__(size)
        self.tau_rise = _tau("DualExpon", "tau_rise", tau_rise, size)
        self.tau_decay = _tau("DualExpon", "tau_decay", tau_decay, size)
        if not np.all(np.asarray(self.tau_rise) < np.asarray(self.tau_decay)):
            raise ValueError(f"DualExpon: tau_rise ({tau_rise}) must be < tau_decay ({tau_decay})")
        if A is None:
            tr, td = np.asarray(self.tau_rise), np.asarray(self.tau_decay)
            t_peak = tr * td / (td - tr) * np.log(td / tr)
            A = 1.0 / (np.exp(-t_peak / td) - np.exp(-t_peak / tr))
        A = _as_param("DualExpon", "A", A, size)
        self.A = A
        self.g_rise = Variable(jax.device_put(np.zeros((size,), float_dtype())))
        self.g_decay = Variable(jax.device_put(np.zeros((size,), float_dtype())))

    def update(self, x: Any = 0.0) -> jax.Array:
        dt = get_dt()
        self.g_rise.value = self.g_rise.value * _exp_decay(self.tau_rise, dt) + x
        self.g_decay.value = self.g_decay.value * _exp_decay(self.tau_decay, dt) + x
        self.g.value = self.A * (self.g_decay.value - self.g_rise.value)
        return self.g.value


class Delta(Synapse):
    """No dynamics: ``g`` is this step's input, ``g = x`` (a delta synapse).

    With ``nn.VoltageJump()`` as the output, a presynaptic spike moves the
    postsynaptic V by the weight (mV) at the step it arrives, as NEST's
    ``iaf_psc_delta`` (see :class:`VoltageJump`).

    Example:
        >>> import neurodyn.nn as nn
        >>> E = nn.LIF(100)
        >>> proj = nn.Projection(E, E, nn.FixedProb(0.1), 0.1, nn.Delta(E.size), nn.VoltageJump())
    """

    def update(self, x: Any = 0.0) -> jax.Array:
        self.g.value = jnp.broadcast_to(jnp.asarray(x, self.g.dtype), self.g.shape)
        return self.g.value


class SynOut(Module):
    """Base class of synaptic outputs: ``out(g, V) -> current``.

    Example:
        >>> import neurodyn.nn as nn
        >>> class Shunting(nn.SynOut):
        ...     def update(self, g, V):
        ...         return -g * V
    """

    def update(self, g: Any, V: Any) -> jax.Array:
        raise NotImplementedError

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items() if not k.startswith("_"))
        return f"{type(self).__name__}({params})"


class CUBA(SynOut):
    """Current-based output: the current is the conductance itself, ``I = g``.

    Example:
        >>> import neurodyn.nn as nn
        >>> out = nn.CUBA()
    """

    def update(self, g: Any, V: Any) -> jax.Array:
        return g


class COBA(SynOut):
    """Conductance-based output: the current ``g * (E - V)`` with reversal potential ``E`` (mV).

    Returns an ``nn.Conductance(g, g * E)``: the neuron adds ``g`` to the
    membrane's leak and integrates V exactly over the step with ``g`` held
    constant (exponential Euler), so V stays on the near side of ``E`` however
    large ``g`` is. ``.current(V)`` of the result is the current ``g E - g V``.

    Example:
        >>> import neurodyn.nn as nn
        >>> import jax.numpy as jnp
        >>> out = nn.COBA(E=0.)
        >>> out(jnp.array([0.5]), jnp.array([-60.])).current(-60.).tolist()   # 0.5 * (0 - -60)
        [30.0]
    """

    def __init__(self, E: float) -> None:
        self.E = E

    def update(self, g: Any, V: Any) -> Conductance:
        return Conductance(g, g * self.E)


class VoltageJump(SynOut):
    """Delta-synapse output: ``g`` is a jump of the postsynaptic V in mV at this step.

    The neuron adds the jump after integrating the step and before its
    threshold test; jumps arriving while the neuron is refractory are
    discarded (as NEST's ``iaf_psc_delta``). Use with ``nn.Delta`` so that a
    spike's weight is the jump.

    Example:
        >>> import neurodyn.nn as nn
        >>> E, I = nn.LIF(100), nn.LIF(25)
        >>> proj = nn.Projection(E, I, nn.FixedProb(0.1), 0.2, nn.Delta(I.size), nn.VoltageJump())
    """

    def update(self, g: Any, V: Any) -> Jump:
        return Jump(g)
