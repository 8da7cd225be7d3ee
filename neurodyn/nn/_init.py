"""Initializers: one convention for parameters, neuron states, weights and delays.

An initializer is what ``jax.nn.initializers`` functions are: ``init(key, shape,
dtype) -> array``. Everything that takes an initializer (``nn.Linear``'s
``w_init``, a neuron's ``V_initializer``, a projection's ``weight`` and
``delay``) evaluates it with :func:`init_value`, which passes a key from
``nd.random`` (so ``nd.random.seed(s)`` makes every draw reproducible). A number
or an array is accepted where a state or per-connection value is expected
(broadcast to the shape), and so is a one-argument callable ``init(shape)``.
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from .. import random as _nd_random
from .._environ import float_dtype
from .._state import TrainVar
from . import _draw

__all__ = ["Initializer", "Constant", "Normal", "Uniform", "TruncatedNormal", "init_value", "init_param"]

#: a number, an array, ``init(key, shape, dtype)`` (``jax.nn.initializers`` style) or ``init(shape)``
Initializer = Any


class Constant:
    """Initializer filling every element with ``value``.

    Example:
        >>> import neurodyn.nn as nn
        >>> nn.init_value(nn.Constant(-65.), (3,)).tolist()
        [-65.0, -65.0, -65.0]
    """

    def __init__(self, value: float) -> None:
        self.value = float(value)

    def __call__(self, key: Any, shape: tuple[int, ...], dtype: Any = None) -> jax.Array:
        dtype = dtype or float_dtype()
        if _eager():
            return jax.device_put(np.full(shape, self.value, jax.dtypes.canonicalize_dtype(dtype)))
        return jnp.full(shape, self.value, dtype)

    def __repr__(self) -> str:
        return f"Constant({self.value})"


class Normal:
    """Initializer drawing ``Normal(mean, std)`` values.

    Example:
        >>> import neurodyn.nn as nn
        >>> lif = nn.LIF(10, V_initializer=nn.Normal(-55., 2.))
    """

    def __init__(self, mean: float = 0.0, std: float = 1.0) -> None:
        if std < 0:
            raise ValueError(f"Normal: std must be >= 0, got {std}")
        self.mean, self.std = float(mean), float(std)

    def __call__(self, key: Any, shape: tuple[int, ...], dtype: Any = None) -> jax.Array:
        dtype = dtype or float_dtype()
        z = _draw.standard("normal", key, shape, dtype)
        if z is not None:
            t = z.dtype.type
            return jax.device_put(t(self.mean) + t(self.std) * z)
        return self.mean + self.std * jax.random.normal(key, shape, dtype)

    def __repr__(self) -> str:
        return f"Normal({self.mean}, {self.std})"


class Uniform:
    """Initializer drawing ``Uniform(low, high)`` values.

    Example:
        >>> import neurodyn.nn as nn
        >>> lif = nn.LIF(10, V_initializer=nn.Uniform(-70., -50.))
    """

    def __init__(self, low: float = 0.0, high: float = 1.0) -> None:
        if high < low:
            raise ValueError(f"Uniform: high ({high}) must be >= low ({low})")
        self.low, self.high = float(low), float(high)

    def __call__(self, key: Any, shape: tuple[int, ...], dtype: Any = None) -> jax.Array:
        dtype = dtype or float_dtype()
        u = _draw.standard("uniform", key, shape, dtype)
        if u is not None:
            t = u.dtype.type
            return jax.device_put(t(self.low) + t(self.high - self.low) * u)
        u = jax.random.uniform(key, shape, dtype)
        return self.low + (self.high - self.low) * u

    def __repr__(self) -> str:
        return f"Uniform({self.low}, {self.high})"


class TruncatedNormal:
    """Initializer drawing ``Normal(mean, std)`` values kept within ``[low, high]``.

    ``mode='redraw'`` (default) redraws values outside the bounds until they
    fall inside (NEST's ``redraw``), which is the normal law truncated to
    ``[low, high]``; ``mode='clip'`` sets them to the nearest bound (Brian2's
    ``clip(...)`` idiom), which puts the outside mass on the bounds.

    Typical uses: excitatory weights that stay positive
    (``TruncatedNormal(0.1, 0.02, low=0.)``) and delays of at least one step
    (``TruncatedNormal(1.5, 0.75, low=0.1)`` at dt = 0.1 ms).

    Example:
        >>> import neurodyn.nn as nn
        >>> E, I = nn.LIF(100), nn.LIF(25)
        >>> w = nn.TruncatedNormal(0.5, 0.25, low=0.)
        >>> proj = nn.Projection(E, I, nn.FixedProb(0.1), w, nn.Expon(I.size, 5.), nn.CUBA(),
        ...                      delay=nn.TruncatedNormal(1.5, 0.5, low=0.1))
    """

    def __init__(self, mean: float = 0.0, std: float = 1.0, low: float = -math.inf,
                 high: float = math.inf, mode: str = "redraw") -> None:
        mean, std, low, high = float(mean), float(std), float(low), float(high)
        if not (math.isfinite(mean) and math.isfinite(std)) or std < 0:
            raise ValueError(f"TruncatedNormal: mean must be finite and std >= 0, got mean={mean}, std={std}")
        if not low < high:
            raise ValueError(f"TruncatedNormal: low ({low}) must be < high ({high})")
        if mode not in ("redraw", "clip"):
            raise ValueError(f"TruncatedNormal: mode must be 'redraw' or 'clip', got {mode!r}")
        if mode == "redraw" and std == 0 and not low <= mean <= high:
            raise ValueError(f"TruncatedNormal: with std=0 the mean {mean} must lie in [{low}, {high}]")
        if mode == "redraw" and std > 0:
            # the probability of the interval: redrawing from a sliver of the law is a mistake
            cdf = lambda x: 0.5 * math.erfc(-(x - mean) / (std * math.sqrt(2.0)))
            if cdf(high) - cdf(low) < 1e-6:
                raise ValueError(f"TruncatedNormal: [{low}, {high}] holds less than 1e-6 of "
                                 f"Normal({mean}, {std}); redrawing would never end in NEST")
        self.mean, self.std, self.low, self.high, self.mode = mean, std, low, high, mode

    def __call__(self, key: Any, shape: tuple[int, ...], dtype: Any = None) -> jax.Array:
        dtype = dtype or float_dtype()
        if self.mode == "clip" or self.std == 0:
            kind, lo, hi = "normal", -math.inf, math.inf
        else:
            kind = "truncated_normal"
            lo, hi = ((b - self.mean) / self.std for b in (self.low, self.high))
        z = _draw.standard(kind, key, shape, dtype, lo, hi)
        if z is not None:
            t = z.dtype.type
            x = t(self.mean) + t(self.std) * z
            # rounding of mean + std * z may step just outside a bound
            return jax.device_put(np.clip(x, t(self.low), t(self.high)))
        if kind == "normal":
            x = self.mean + self.std * jax.random.normal(key, shape, dtype)
        else:
            x = self.mean + self.std * jax.random.truncated_normal(key, lo, hi, shape, dtype)
        return jnp.clip(x, self.low, self.high).astype(dtype)

    def __repr__(self) -> str:
        return f"TruncatedNormal({self.mean}, {self.std}, low={self.low}, high={self.high}, mode={self.mode!r})"


def _eager() -> bool:
    """True outside any JAX trace (values made there may be built on the host and copied once)."""
    try:
        from jax._src import core
        return bool(core.trace_ctx.is_top_level())
    except (ImportError, AttributeError):  # a JAX without this internal: build them with jnp
        return False


def _on_host(value: Any) -> bool:
    return isinstance(value, (bool, int, float, np.ndarray, np.generic)) or (
        isinstance(value, (list, tuple)) and all(isinstance(v, (bool, int, float, np.generic)) for v in value))


def _required_positional(fn: Callable) -> int:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return 2
    return sum(1 for p in sig.parameters.values()
               if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty)


def _evaluate(init: Initializer, shape: tuple[int, ...], dtype: Any) -> Any:
    if not callable(init):
        return init
    if _required_positional(init) < 2:
        return init(shape)
    return init(_nd_random.split_key(), shape, dtype)


def init_value(init: Initializer, shape: tuple[int, ...], dtype: Any = None,
               what: str = "initializer") -> jax.Array:
    """Evaluate an initializer for ``shape`` (``dtype`` defaults to ``nd.float_dtype()``).

    ``init`` may be a number or an array (broadcast to ``shape``), an
    ``init(key, shape, dtype)`` function (``jax.nn.initializers``,
    :class:`Normal`, ...), which gets a key from ``nd.random``, or an
    ``init(shape)`` function.

    Example:
        >>> import jax
        >>> import neurodyn.nn as nn
        >>> nn.init_value(jax.nn.initializers.normal(1.), (3,)).shape
        (3,)
        >>> nn.init_value(2., (2,)).tolist()
        [2.0, 2.0]
    """
    dtype = float_dtype() if dtype is None else dtype
    value = _evaluate(init, tuple(shape), dtype)
    if _on_host(value) and _eager():
        # built with NumPy and copied once: eager jnp ops would compile a program per shape
        out = np.asarray(value, dtype=jax.dtypes.canonicalize_dtype(dtype))
        try:
            return jax.device_put(np.broadcast_to(out, shape).copy())
        except ValueError:
            raise ValueError(f"{what} produced shape {out.shape}, which does not broadcast to {shape}") from None
    out = jnp.asarray(value, dtype=dtype)
    try:
        return jnp.broadcast_to(out, shape)
    except ValueError:
        raise ValueError(f"{what} produced shape {out.shape}, which does not broadcast to {shape}") from None


def init_param(init: Initializer, shape: tuple[int, ...], dtype: Any = None,
               name: str = "parameter") -> TrainVar:
    """A ``TrainVar`` of exactly ``shape`` drawn with an initializer (see :func:`init_value`).

    Example:
        >>> import jax
        >>> import neurodyn.nn as nn
        >>> w = nn.init_param(jax.nn.initializers.glorot_uniform(), (3, 4))
        >>> w.shape
        (3, 4)
    """
    if not callable(init):
        raise TypeError(f"{name}: the initializer must be a jax.nn.initializers function "
                        f"(key, shape, dtype) -> array, got {type(init).__name__}")
    value = jnp.asarray(_evaluate(init, tuple(shape), float_dtype() if dtype is None else dtype))
    if tuple(value.shape) != tuple(shape):
        raise ValueError(f"{name}: the initializer returned shape {tuple(value.shape)}, expected {tuple(shape)}")
    return TrainVar(value)
