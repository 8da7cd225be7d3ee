"""Surrogate-gradient spike functions: Heaviside forward, smooth backward."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from ._environ import float_dtype

__all__ = ["Surrogate", "Sigmoid", "ArcTan", "FastSigmoid", "PiecewiseQuadratic", "Gaussian"]


class Surrogate:
    """Base class: ``fn(x)`` is ``x >= 0`` as a float, with gradient ``fn.grad(x)``.

    ``x`` is the distance to threshold (``V - V_th``). Subclasses define
    :meth:`grad`, the surrogate derivative; the forward pass is the exact
    Heaviside step, so simulations with and without a surrogate spike at the
    same times. The derivative is attached with ``jax.custom_jvp`` and so works
    with ``jax.grad``, ``nd.grad`` and forward-mode differentiation.

    Example:
        >>> import jax.numpy as jnp
        >>> from neurodyn import surrogate
        >>> class Triangle(surrogate.Surrogate):
        ...     def grad(self, x):
        ...         return jnp.maximum(0., 1. - jnp.abs(x))
        >>> Triangle()(jnp.array([-0.5, 0.5]))
        Array([0., 1.], dtype=float32)
    """

    def __init__(self) -> None:
        @jax.custom_jvp
        def spike(x: jax.Array) -> jax.Array:
            return (x >= 0).astype(x.dtype)

        @spike.defjvp
        def spike_jvp(primals: tuple, tangents: tuple) -> tuple:
            (x,), (dx,) = primals, tangents
            return spike(x), self.grad(x).astype(x.dtype) * dx

        self._spike = spike

    def __call__(self, x: Any) -> jax.Array:
        x = jnp.asarray(x)
        if not jnp.issubdtype(x.dtype, jnp.floating):
            x = x.astype(float_dtype())
        return self._spike(x)

    def grad(self, x: jax.Array) -> jax.Array:
        """The surrogate derivative d spike / d x."""
        raise NotImplementedError(f"{type(self).__name__} must define grad(x)")

    def _params(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self._params().items())
        return f"{type(self).__name__}({params})"


def _positive(cls: str, name: str, value: float) -> float:
    value = float(value)
    if not value > 0:
        raise ValueError(f"{cls}: {name} must be positive, got {value}")
    return value


class Sigmoid(Surrogate):
    """Gradient of ``sigmoid(alpha x)``: ``alpha s (1 - s)`` with ``s = sigmoid(alpha x)``.

    Example:
        >>> import jax
        >>> from neurodyn import surrogate
        >>> spike_fn = surrogate.Sigmoid(alpha=4.)
        >>> float(spike_fn(0.5)), float(jax.grad(spike_fn)(0.))   # a step forward; alpha / 4 backward
        (1.0, 1.0)
    """

    def __init__(self, alpha: float = 4.0) -> None:
        self.alpha = _positive("Sigmoid", "alpha", alpha)
        super().__init__()

    def grad(self, x: jax.Array) -> jax.Array:
        s = jax.nn.sigmoid(self.alpha * x)
        return self.alpha * s * (1 - s)


class ArcTan(Surrogate):
    """Gradient of ``arctan(pi/2 alpha x) / pi + 1/2``: ``alpha / 2 / (1 + (pi/2 alpha x)^2)``.

    Example:
        >>> import jax
        >>> from neurodyn import surrogate
        >>> spike_fn = surrogate.ArcTan(alpha=2.)
        >>> float(spike_fn(-0.1)), float(jax.grad(spike_fn)(0.))  # alpha / 2 at 0
        (0.0, 1.0)
    """

    def __init__(self, alpha: float = 2.0) -> None:
        self.alpha = _positive("ArcTan", "alpha", alpha)
        super().__init__()

    def grad(self, x: jax.Array) -> jax.Array:
        return (self.alpha / 2) / (1 + (math.pi / 2 * self.alpha * x) ** 2)


class FastSigmoid(Surrogate):
    """SuperSpike (Zenke & Ganguli 2018): gradient ``1 / (1 + alpha |x|)^2``.

    Example:
        >>> import jax
        >>> from neurodyn import surrogate
        >>> spike_fn = surrogate.FastSigmoid(alpha=10.)
        >>> float(jax.grad(spike_fn)(0.1))          # 1 / (1 + 10 * 0.1)^2
        0.25
    """

    def __init__(self, alpha: float = 10.0) -> None:
        self.alpha = _positive("FastSigmoid", "alpha", alpha)
        super().__init__()

    def grad(self, x: jax.Array) -> jax.Array:
        return 1 / (1 + self.alpha * jnp.abs(x)) ** 2


class PiecewiseQuadratic(Surrogate):
    """Gradient ``alpha - alpha^2 |x|`` for ``|x| < 1/alpha``, else 0 (Esser et al. 2016).

    Example:
        >>> import jax
        >>> from neurodyn import surrogate
        >>> spike_fn = surrogate.PiecewiseQuadratic(alpha=1.)
        >>> float(jax.grad(spike_fn)(0.5)), float(jax.grad(spike_fn)(2.))
        (0.5, 0.0)
    """

    def __init__(self, alpha: float = 1.0) -> None:
        self.alpha = _positive("PiecewiseQuadratic", "alpha", alpha)
        super().__init__()

    def grad(self, x: jax.Array) -> jax.Array:
        ax = jnp.abs(x)
        return jnp.where(ax < 1 / self.alpha, self.alpha - self.alpha**2 * ax, 0.0)


class Gaussian(Surrogate):
    """Gradient ``alpha * N(x; 0, sigma)`` (a Gaussian bump of area ``alpha``).

    Example:
        >>> import jax
        >>> from neurodyn import surrogate
        >>> spike_fn = surrogate.Gaussian(sigma=0.5, alpha=1.)
        >>> round(float(jax.grad(spike_fn)(0.)), 4)   # 1 / (sigma sqrt(2 pi))
        0.7979
    """

    def __init__(self, sigma: float = 0.5, alpha: float = 1.0) -> None:
        self.sigma = _positive("Gaussian", "sigma", sigma)
        self.alpha = _positive("Gaussian", "alpha", alpha)
        super().__init__()

    def grad(self, x: jax.Array) -> jax.Array:
        s = self.sigma
        return self.alpha * jnp.exp(-(x**2) / (2 * s * s)) / (math.sqrt(2 * math.pi) * s)
