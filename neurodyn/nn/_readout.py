"""Readouts and regularizers for spiking networks trained through time.

A spiking network stepped with ``nd.for_loop`` returns its outputs stacked on
a leading time axis, ``(time, batch, features)``. The functions here turn such
a sequence into logits (spike counts, mean or max over time) or into a
penalty on firing rates; :class:`LeakyReadout` is a non-spiking output layer
whose membrane potential is the usual readout for classification.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from .._environ import float_dtype, get_dt
from .._module import Module
from .._state import Variable
from ._dense import dense
from ._init import init_param, init_value
from ._neurons import _state_shape, reset_var

__all__ = ["LeakyReadout", "spike_count", "mean_over_time", "max_over_time", "rate_regularizer"]

Initializer = Callable[..., jax.Array]


class LeakyReadout(Module):
    """Non-spiking leaky integrator of a linear projection (an output layer for SNNs).

    Each step: ``I = x @ weight + bias`` and ``tau dV/dt = -V + I``,
    integrated exactly for ``I`` constant over the step::

        V <- a V + (1 - a) I,   a = exp(-dt / tau)

    so ``V`` is ``I`` low-pass filtered with unit gain (its scale does not
    depend on ``tau``). ``V`` is a Variable shaped ``(out_features,)`` or
    ``(batch_size, out_features)`` after ``reset_state(batch_size)``. The
    membrane averaged over time (:func:`mean_over_time`) or its maximum are
    common logits.

    Args:
        in_features, out_features: input and output sizes.
        tau: membrane time constant (ms); ``dt`` is read from ``nd.get_dt()``
            every step.
        bias: add a trainable bias.
        w_init, b_init: ``jax.nn.initializers`` functions (keys from ``nd.random``).
        V_initializer: initial membrane (number, array, or initializer).

    Example:
        >>> import neurodyn.nn as nn
        >>> out = nn.LeakyReadout(100, 10, tau=20.)
        >>> out.reset_state(32)
        >>> import jax.numpy as jnp
        >>> spikes_t = jnp.zeros((32, 100))
        >>> out(spikes_t).shape
        (32, 10)
    """

    def __init__(self, in_features: int, out_features: int, tau: float = 20.0, bias: bool = True,
                 w_init: Initializer = jax.nn.initializers.lecun_normal(),
                 b_init: Initializer = jax.nn.initializers.zeros, V_initializer: Any = 0.0) -> None:
        for name, n in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
                raise ValueError(f"LeakyReadout: {name} must be a positive int, got {n!r}")
        if not tau > 0:
            raise ValueError(f"LeakyReadout: tau must be > 0 ms, got {tau}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.tau = float(tau)
        self.weight = init_param(w_init, (self.in_features, self.out_features), name="LeakyReadout.weight")
        self.bias = init_param(b_init, (self.out_features,), name="LeakyReadout.bias") if bias else None
        self.V_initializer = V_initializer
        self.V = Variable(init_value(V_initializer, (self.out_features,), what="LeakyReadout V_initializer"))

    def reset_state(self, batch_size: int | None = None) -> None:
        """Set ``V`` to its initial value, shaped ``(out,)`` or ``(batch_size, out)``."""
        shape = _state_shape(self.out_features, batch_size)
        reset_var(self.V, init_value(self.V_initializer, shape, what="LeakyReadout V_initializer"))

    def update(self, x: Any) -> jax.Array:
        x = jnp.asarray(x)
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"LeakyReadout({self.in_features}, {self.out_features}) expects inputs whose "
                             f"last axis has {self.in_features} features, got shape {tuple(x.shape)}")
        if tuple(x.shape[:-1]) != tuple(self.V.shape[:-1]):
            raise ValueError(f"LeakyReadout({self.in_features}, {self.out_features}): input shape "
                             f"{tuple(x.shape)} does not match the state V of shape {tuple(self.V.shape)}; "
                             f"call reset_state({x.shape[0] if x.ndim > 1 else None}) first "
                             "(outside compiled code)")
        current = dense(x.astype(self.weight.dtype), self.weight.value)
        if self.bias is not None:
            current = current + self.bias.value
        a = math.exp(-get_dt() / self.tau)
        V = a * self.V.value + (1.0 - a) * current
        self.V.value = V
        return V

    def __repr__(self) -> str:
        return f"LeakyReadout({self.in_features}, {self.out_features}, tau={self.tau})"


def _time_axis(fn: str, x: Any, axis: int) -> jax.Array:
    x = jnp.asarray(x)
    if x.ndim == 0 or not -x.ndim <= axis < x.ndim:
        raise ValueError(f"{fn}: expected an array with a time axis {axis}, got shape {tuple(x.shape)}")
    return x


def spike_count(spikes: Any, axis: int = 0) -> jax.Array:
    """Spikes summed over the time axis (float; usable as logits, differentiable).

    Example:
        >>> import neurodyn as nd
        >>> import neurodyn.nn as nn
        >>> import jax.numpy as jnp
        >>> spikes = jnp.zeros((50, 8, 10))          # (time, batch, n_out)
        >>> nn.spike_count(spikes).shape             # (batch, n_out)
        (8, 10)
    """
    s = _time_axis("spike_count", spikes, axis)
    return jnp.sum(s.astype(jnp.result_type(s.dtype, float_dtype())), axis=axis)


def mean_over_time(x: Any, axis: int = 0) -> jax.Array:
    """The mean over the time axis, e.g. of a :class:`LeakyReadout` membrane.

    Example:
        >>> import neurodyn as nd
        >>> import neurodyn.nn as nn
        >>> import jax.numpy as jnp
        >>> V = jnp.ones((50, 8, 10))                # (time, batch, n_out)
        >>> nn.mean_over_time(V).shape               # (batch, n_out)
        (8, 10)
    """
    return jnp.mean(_time_axis("mean_over_time", x, axis), axis=axis)


def max_over_time(x: Any, axis: int = 0) -> jax.Array:
    """The maximum over the time axis (the gradient flows to the time of the maximum).

    Example:
        >>> import neurodyn.nn as nn
        >>> import jax.numpy as jnp
        >>> nn.max_over_time(jnp.array([[0., 2.], [1., 1.]])).tolist()
        [1.0, 2.0]
    """
    return jnp.max(_time_axis("max_over_time", x, axis), axis=axis)


def rate_regularizer(spikes: Any, target: float = 0.0, strength: float = 1.0,
                     per_neuron: bool = True) -> jax.Array:
    """A penalty pulling firing rates towards ``target`` spikes per time step.

    ``spikes`` is shaped ``(time, ..., neurons)``. With ``r_i`` the rate of
    neuron ``i``, the mean of its spikes over every axis but the last (time
    and batch)::

        per_neuron=True:   strength * mean_i (r_i - target)^2
        per_neuron=False:  strength * (mean_i r_i - target)^2   (population rate)

    ``target=0`` is an L2 penalty on rates (sparse activity); a target in Hz
    is ``target_hz * dt / 1000``. ``spikes`` holds surrogate spikes, so the
    gradient reaches the weights through the surrogate derivative.

    Example:
        >>> import neurodyn as nd
        >>> import neurodyn.nn as nn
        >>> import jax.numpy as jnp
        >>> spikes = jnp.zeros((50, 8, 100))          # (time, batch, n_hidden)
        >>> round(float(nn.rate_regularizer(spikes, target=0.02, strength=1.)), 6)   # (0 - 0.02)^2
        0.0004
    """
    s = jnp.asarray(spikes)
    if s.ndim < 2:
        raise ValueError(f"rate_regularizer: expected spikes shaped (time, ..., neurons), got shape {tuple(s.shape)}")
    if not 0.0 <= float(target) <= 1.0:
        raise ValueError(f"rate_regularizer: target is in spikes per time step and must be in [0, 1], got {target}")
    s = s.astype(jnp.result_type(s.dtype, float_dtype()))
    reduce = tuple(range(s.ndim - 1))
    rates = jnp.mean(s, axis=reduce)
    if per_neuron:
        return strength * jnp.mean((rates - target) ** 2)
    return strength * (jnp.mean(rates) - target) ** 2
