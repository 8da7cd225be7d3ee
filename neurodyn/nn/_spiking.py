"""Discrete-time spiking layers in the machine-learning idiom (snnTorch / spyx style).

These layers step once per call, with no ``dt`` and no units: the decay is a
factor ``beta`` per step and the input is added unscaled. They are
``NeuronGroup`` s, so they hold their state in Variables (``V``, ``spike``,
``input``), accept registered inputs and surrogate spike functions, and take
``reset_state(batch_size)`` like the neuroscience groups.

Convention (that of snnTorch's ``Leaky`` with its default ``reset_delay=True``),
for ``Leaky`` at step ``t`` with input ``I[t]``::

    R[t]  = S[t-1]                            # the spike of the previous step
    V[t]  = beta V[t-1] + I[t] - R[t] thr     # reset='subtract'
    V[t]  = (beta V[t-1] + I[t]) (1 - R[t])   # reset='zero'
    V[t]  = beta V[t-1] + I[t]                # reset='none'
    S[t]  = H(V[t] - thr)                     # spikes at the step V crosses

So a neuron spikes at the same step its membrane crosses the threshold; the
reset is applied while integrating the *next* step and is not decayed by
``beta``; a subtractive reset removes exactly ``thr``. With
``reset_delay=False`` (snnTorch's option of that name, and NIR's semantics)
the reset is applied right after the spike, so the next step decays the
reset membrane: ``V[t] = beta (V[t-1] - S[t-1] thr) + I[t]``. ``detach_reset=True``
(the default, as in snnTorch, where the reset term is computed from a
detached copy) stops the gradient through ``R``. snnTorch tests ``V > thr``
and neurodyn ``V >= thr``: they differ only when ``V`` equals the threshold
exactly. spyx's ``LIF`` computes the spike from the membrane *before*
integrating (``S[t] = H(V[t-1] - thr)``, ``V[t] = beta V[t-1] + I[t] - S[t] thr``):
its output spikes are the ones here shifted one step later.

``beta`` (and ``alpha``, ``threshold``) may be a number, a per-neuron array
of shape ``(size,)``, or an ``nd.TrainVar`` (learned). ``learn_beta=True``
wraps a number or array in a TrainVar. Learned decays are clipped to
``[0, 1]`` in the forward pass, as in snnTorch.

The layers set ``reset_state_per_batch = True``: ``nd.Trainer`` resets the
state before every batch of a model that contains one.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from .._environ import float_dtype
from .._module import Module
from .._state import TrainVar, Variable
from .._surrogate import ArcTan
from ._layers import Linear
from ._neurons import NeuronGroup, _state_shape, reset_var

__all__ = ["Leaky", "Synaptic", "RLeaky", "RSynaptic", "LeakyIntegrator", "Delay"]

_RESETS = ("subtract", "zero", "none")
_DEFAULT = object()


def _coef(owner: str, name: str, value: Any, size: int, learn: bool,
          bounds: tuple[float, float] | None = None) -> Any:
    """A scalar or per-neuron coefficient: a TrainVar (learned) or a constant array."""
    if isinstance(value, Variable):
        if not isinstance(value, TrainVar):
            raise TypeError(f"{owner}: {name} given as a Variable must be an nd.TrainVar to be learned, "
                            f"got {type(value).__name__}")
        arr = value.value
        var: Any = value
    else:
        try:
            arr = jnp.asarray(value, float_dtype())
        except TypeError:
            raise TypeError(f"{owner}: {name} must be a number, an array or an nd.TrainVar, "
                            f"got {type(value).__name__}") from None
        var = TrainVar(arr) if learn else arr
    if jnp.ndim(arr) not in (0, 1) or (jnp.ndim(arr) == 1 and arr.shape[0] != size):
        raise ValueError(f"{owner}: {name} must be a scalar or have shape ({size},), got shape {tuple(jnp.shape(arr))}")
    if bounds is not None and not isinstance(arr, jax.core.Tracer):
        lo, hi = bounds
        a = np.asarray(arr)
        if np.any(a < lo) or np.any(a > hi):
            raise ValueError(f"{owner}: {name} must lie in [{lo}, {hi}], got {a.min() if a.size else a}"
                             f"{'' if a.ndim == 0 else f' .. {a.max()}'}")
    return var


def _read(coef: Any, clip: bool) -> Any:
    if isinstance(coef, Variable):
        v = coef.value
        return jnp.clip(v, 0.0, 1.0) if clip else v
    return coef


class Leaky(NeuronGroup):
    """Discrete-time leaky integrate-and-fire neurons: ``V <- beta V + I``, spike and reset.

    See the module docstring for the exact order of integration, spike and
    reset (snnTorch's ``Leaky``). The layer's output is the spike tensor
    (float 0/1 with the surrogate gradient of ``spike_fn``); ``V`` holds the
    membrane after the step, before the reset that the next step applies.

    Args:
        size: number of neurons.
        beta: decay per step, in ``[0, 1]``: a number, a ``(size,)`` array or a TrainVar.
        threshold: firing threshold: a number, ``(size,)`` array or TrainVar.
        reset: ``'subtract'`` (remove ``threshold``), ``'zero'`` or ``'none'``.
        spike_fn: surrogate spike function (default ``surrogate.ArcTan()``, as
            snnTorch); ``None`` gives boolean spikes for simulation.
        detach_reset: stop the gradient through the reset term.
        learn_beta, learn_threshold: wrap ``beta`` / ``threshold`` in a TrainVar.
        reset_delay: apply the reset at the next step (True, snnTorch's
            default) or right after the spike (False; ``V`` then holds the
            reset membrane).

    Example:
        >>> import neurodyn.nn as nn
        >>> import jax.numpy as jnp
        >>> from neurodyn import surrogate
        >>> lif = nn.Leaky(256, beta=0.9, spike_fn=surrogate.FastSigmoid(25.))
        >>> lif.reset_state(128)
        >>> lif(jnp.ones((128, 256))).shape
        (128, 256)
    """

    reset_state_per_batch = True

    def __init__(self, size: int, beta: Any, threshold: Any = 1.0, reset: str = "subtract",
                 spike_fn: Callable | None = _DEFAULT, detach_reset: bool = True,  # type: ignore[assignment]
                 learn_beta: bool = False, learn_threshold: bool = False, reset_delay: bool = True) -> None:
        if spike_fn is _DEFAULT:
            spike_fn = ArcTan()
        super().__init__(size, spike_fn, detach_reset)
        name = type(self).__name__
        if reset not in _RESETS:
            raise ValueError(f"{name}: reset must be one of {_RESETS}, got {reset!r}")
        self.reset = reset
        self.reset_delay = bool(reset_delay)
        self.beta = _coef(name, "beta", beta, self.size, learn_beta, (0.0, 1.0))
        self.threshold = _coef(name, "threshold", threshold, self.size, learn_threshold)
        self.V = Variable(jax.device_put(np.zeros((self.size,), float_dtype())))

    def reset_state(self, batch_size: int | None = None) -> None:
        """Zero ``V``, ``spike`` and ``input``; shape ``(size,)`` or ``(batch_size, size)``."""
        shape = self._reset_common(batch_size)
        reset_var(self.V, jnp.zeros(shape, float_dtype()))

    # -- pieces shared with the subclasses ---------------------------------------------
    def _reset(self, V: jax.Array, s: Any, thr: Any) -> jax.Array:
        if self.reset == "none":
            return V
        r = s.astype(V.dtype)
        if self.detach_reset:
            r = jax.lax.stop_gradient(r)
        if self.reset == "subtract":
            return V - r * thr
        return V * (1 - r)

    def _fire_and_reset(self, V: jax.Array, thr: Any) -> jax.Array:
        """Reset (by the previous spike, or by this one with reset_delay=False), spike, store V."""
        if self.reset_delay:
            V = self._reset(V, self.spike.value, thr)
            self.V.value = V
            return self._spike(V, thr)
        s = self._spike(V, thr)
        self.V.value = self._reset(V, s, thr)
        return s

    def _spike(self, V: jax.Array, thr: Any) -> jax.Array:
        if self.spike_fn is None:
            s = V >= thr
        else:
            s = self.spike_fn(V - thr)
        self.spike.value = s
        return s

    def _current(self, x: Any) -> jax.Array:
        return self.sum_inputs(self.V.value, x)

    def update(self, x: Any = 0.0) -> jax.Array:
        V = _read(self.beta, True) * self.V.value + self._current(x)
        return self._fire_and_reset(V, _read(self.threshold, False))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size}, reset={self.reset!r})"


class Synaptic(Leaky):
    """Two-state discrete leaky neurons: a synaptic current filters the input.

    Each step (snnTorch's ``Synaptic``)::

        I_syn[t] = alpha I_syn[t-1] + I[t]
        V[t]     = beta V[t-1] + I_syn[t] - S[t-1] thr     (reset='subtract')
        S[t]     = H(V[t] - thr)

    Args:
        size, beta, threshold, reset, spike_fn, detach_reset, learn_beta,
            learn_threshold, reset_delay: as :class:`Leaky`.
        alpha: synaptic decay per step in ``[0, 1]`` (number, array or TrainVar).
        learn_alpha: wrap ``alpha`` in a TrainVar.

    Example:
        >>> import neurodyn.nn as nn
        >>> syn = nn.Synaptic(100, alpha=0.8, beta=0.9)
        >>> import jax.numpy as jnp
        >>> syn.reset_state(32); spikes = syn(jnp.ones((32, 100)))
    """

    def __init__(self, size: int, alpha: Any, beta: Any, threshold: Any = 1.0, reset: str = "subtract",
                 spike_fn: Callable | None = _DEFAULT, detach_reset: bool = True,  # type: ignore[assignment]
                 learn_alpha: bool = False, learn_beta: bool = False, learn_threshold: bool = False,
                 reset_delay: bool = True) -> None:
        super().__init__(size, beta, threshold, reset, spike_fn, detach_reset, learn_beta, learn_threshold,
                         reset_delay)
        self.alpha = _coef(type(self).__name__, "alpha", alpha, self.size, learn_alpha, (0.0, 1.0))
        self.syn = Variable(jax.device_put(np.zeros((self.size,), float_dtype())))

    def reset_state(self, batch_size: int | None = None) -> None:
        """Zero ``syn``, ``V``, ``spike`` and ``input``."""
        super().reset_state(batch_size)
        reset_var(self.syn, jnp.zeros(_state_shape(self.size, batch_size), float_dtype()))

    def update(self, x: Any = 0.0) -> jax.Array:
        syn = _read(self.alpha, True) * self.syn.value + self._current(x)
        self.syn.value = syn
        V = _read(self.beta, True) * self.V.value + syn
        return self._fire_and_reset(V, _read(self.threshold, False))


class _Recurrent:
    """Mixin: add ``recurrent(S[t-1])`` (a ``Linear(size, size)``) to the input."""

    recurrent: Linear

    def _make_recurrent(self, recurrent_bias: bool, w_init: Any) -> None:
        kw = {} if w_init is None else {"w_init": w_init}
        self.recurrent = Linear(self.size, self.size, bias=recurrent_bias, **kw)  # type: ignore[attr-defined]

    def _current(self, x: Any) -> jax.Array:
        s_prev = self.spike.value.astype(float_dtype())  # type: ignore[attr-defined]
        return super()._current(x) + self.recurrent(s_prev)  # type: ignore[misc]


class RLeaky(_Recurrent, Leaky):
    """:class:`Leaky` neurons with explicit all-to-all recurrent weights.

    ``V[t] = beta V[t-1] + I[t] + S[t-1] @ W_rec (+ b_rec) - S[t-1] thr``;
    ``W_rec`` is ``self.recurrent.weight`` (shape ``(size, size)``, from
    presynaptic to postsynaptic, like every ``nn.Linear``). snnTorch's
    ``RLeaky`` uses a ``torch.nn.Linear`` with a bias (``recurrent_bias=True``);
    spyx's ``RLIF`` has none (the default here).

    Args:
        size, beta, threshold, reset, spike_fn, detach_reset, learn_beta,
            learn_threshold, reset_delay: as :class:`Leaky`.
        recurrent_bias: give the recurrent Linear a bias.
        w_init: initializer of the recurrent weights (default: ``nn.Linear``'s).

    Example:
        >>> import neurodyn.nn as nn
        >>> rlif = nn.RLeaky(128, beta=0.95)
        >>> import jax.numpy as jnp
        >>> rlif.reset_state(32); spikes = rlif(jnp.ones((32, 128)))
    """

    def __init__(self, size: int, beta: Any, threshold: Any = 1.0, reset: str = "subtract",
                 spike_fn: Callable | None = _DEFAULT, detach_reset: bool = True,  # type: ignore[assignment]
                 learn_beta: bool = False, learn_threshold: bool = False, reset_delay: bool = True,
                 recurrent_bias: bool = False, w_init: Any = None) -> None:
        Leaky.__init__(self, size, beta, threshold, reset, spike_fn, detach_reset, learn_beta, learn_threshold,
                       reset_delay)
        self._make_recurrent(recurrent_bias, w_init)


class RSynaptic(_Recurrent, Synaptic):
    """:class:`Synaptic` neurons with explicit recurrent weights (added to the synaptic input).

    ``I_syn[t] = alpha I_syn[t-1] + I[t] + S[t-1] @ W_rec (+ b_rec)``, then as
    :class:`Synaptic` (snnTorch's ``RSynaptic``).

    Example:
        >>> import neurodyn.nn as nn
        >>> rsyn = nn.RSynaptic(128, alpha=0.9, beta=0.8)
    """

    def __init__(self, size: int, alpha: Any, beta: Any, threshold: Any = 1.0, reset: str = "subtract",
                 spike_fn: Callable | None = _DEFAULT, detach_reset: bool = True,  # type: ignore[assignment]
                 learn_alpha: bool = False, learn_beta: bool = False, learn_threshold: bool = False,
                 reset_delay: bool = True, recurrent_bias: bool = False, w_init: Any = None) -> None:
        Synaptic.__init__(self, size, alpha, beta, threshold, reset, spike_fn, detach_reset,
                          learn_alpha, learn_beta, learn_threshold, reset_delay)
        self._make_recurrent(recurrent_bias, w_init)


class LeakyIntegrator(Module):
    """Non-spiking discrete leaky integrator ``V <- beta V + I`` (an output layer).

    The usual readout of snnTorch (``Leaky(reset_mechanism='none')``, output
    the membrane) and spyx (``LI``): put a ``Linear`` before it and use the
    membrane (its mean or maximum over time) as logits. Unlike
    :class:`LeakyReadout` the input is not scaled by ``1 - beta``.

    Args:
        size: number of units.
        beta: decay per step in ``[0, 1]`` (number, ``(size,)`` array or TrainVar).
        learn_beta: wrap ``beta`` in a TrainVar.

    Example:
        >>> import neurodyn.nn as nn
        >>> out = nn.LeakyIntegrator(10, beta=0.95)
        >>> out.reset_state(32)
        >>> import jax.numpy as jnp
        >>> out(jnp.ones((32, 10))).shape
        (32, 10)
    """

    reset_state_per_batch = True

    def __init__(self, size: int, beta: Any, learn_beta: bool = False) -> None:
        if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 1:
            raise ValueError(f"LeakyIntegrator: size must be a positive int, got {size!r}")
        self.size = int(size)
        self.beta = _coef("LeakyIntegrator", "beta", beta, self.size, learn_beta, (0.0, 1.0))
        self.V = Variable(jax.device_put(np.zeros((self.size,), float_dtype())))

    def reset_state(self, batch_size: int | None = None) -> None:
        """Zero ``V``; shape ``(size,)`` or ``(batch_size, size)``."""
        reset_var(self.V, jnp.zeros(_state_shape(self.size, batch_size), float_dtype()))

    def update(self, x: Any) -> jax.Array:
        x = jnp.asarray(x)
        if x.ndim == 0 or x.shape[-1] != self.size:
            raise ValueError(f"LeakyIntegrator({self.size}) expects inputs whose last axis has {self.size} "
                             f"features, got shape {tuple(x.shape)}")
        V = _read(self.beta, True) * self.V.value + x
        self.V.value = V
        return V

    def __repr__(self) -> str:
        return f"LeakyIntegrator(size={self.size})"


class Delay(Module):
    """Delay each channel by a whole number of steps: ``y[t] = x[t - d]`` (zero before that).

    A ring buffer of ``max(d) + 1`` steps held in a Variable; ``steps`` is one
    int for every channel or one per channel. NIR's ``Delay`` node maps to
    this layer (``d = delay / dt``).

    Args:
        size: number of channels.
        steps: delay in steps, an int >= 0 or a ``(size,)`` array of them.

    Example:
        >>> import neurodyn.nn as nn
        >>> delay = nn.Delay(3, steps=[0, 1, 2])
        >>> import jax.numpy as jnp
        >>> delay.reset_state(8); delay(jnp.ones((8, 3))).shape
        (8, 3)
    """

    reset_state_per_batch = True

    def __init__(self, size: int, steps: Any) -> None:
        if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 1:
            raise ValueError(f"Delay: size must be a positive int, got {size!r}")
        self.size = int(size)
        d = np.asarray(steps)
        if d.ndim not in (0, 1) or (d.ndim == 1 and d.shape[0] != self.size):
            raise ValueError(f"Delay: steps must be an int or have shape ({self.size},), got shape {d.shape}")
        if not np.issubdtype(d.dtype, np.integer) or np.any(d < 0):
            raise ValueError(f"Delay: steps must be ints >= 0, got {d.tolist()}")
        self.steps = np.broadcast_to(d, (self.size,)).astype(np.int32)
        self.buffer = Variable(jax.device_put(np.zeros((int(self.steps.max()) + 1, self.size), float_dtype())))
        self.pos = Variable(jax.device_put(np.zeros((), jnp.int32)))

    def reset_state(self, batch_size: int | None = None) -> None:
        """Empty the buffer; state shape ``(max_delay + 1, [batch_size,] size)``."""
        shape = (int(self.steps.max()) + 1, *_state_shape(self.size, batch_size))
        reset_var(self.buffer, jnp.zeros(shape, float_dtype()))
        reset_var(self.pos, jnp.zeros((), jnp.int32))

    def update(self, x: Any) -> jax.Array:
        x = jnp.asarray(x, float_dtype())
        if x.shape != self.buffer.shape[1:]:
            raise ValueError(f"Delay({self.size}) expects inputs of shape {tuple(self.buffer.shape[1:])}, got "
                             f"{tuple(x.shape)}; call reset_state(batch_size) first (outside compiled code)")
        n = self.buffer.shape[0]
        pos = self.pos.value
        buf = self.buffer.value.at[pos].set(x)
        read = (pos - jnp.asarray(self.steps)) % n                       # (size,)
        idx = jnp.broadcast_to(read, x.shape)[None]
        out = jnp.take_along_axis(buf, idx, axis=0)[0]
        self.buffer.value = buf
        self.pos.value = (pos + 1) % n
        return out

    def __repr__(self) -> str:
        return f"Delay(size={self.size}, max_steps={int(self.steps.max())})"
