"""Bounded distributions for per-connection weights and delays (and any initializer use)."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from .. import random as _nd_random
from .._environ import float_dtype

__all__ = ["TruncatedNormal"]


class TruncatedNormal:
    """Initializer drawing ``Normal(mean, std)`` values kept within ``[low, high]``.

    ``mode='redraw'`` (default) redraws values outside the bounds until they
    fall inside (NEST's ``redraw``), which is the normal law truncated to
    ``[low, high]``; ``mode='clip'`` sets them to the nearest bound (Brian2's
    ``clip(...)`` idiom), which puts the outside mass on the bounds. Draws use
    ``nd.random``, so ``nd.random.seed`` fixes them.

    Typical uses: excitatory weights that stay positive
    (``TruncatedNormal(0.1, 0.02, low=0.)``) and delays of at least one step
    (``TruncatedNormal(1.5, 0.75, low=0.1)`` at dt = 0.1 ms).

    Example:
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

    def __call__(self, shape: tuple[int, ...], dtype: Any = None) -> jax.Array:
        dtype = dtype or float_dtype()
        key = _nd_random.split_key()
        if self.mode == "clip" or self.std == 0:
            x = self.mean + self.std * jax.random.normal(key, shape, dtype)
        else:
            lo, hi = ((b - self.mean) / self.std for b in (self.low, self.high))
            x = self.mean + self.std * jax.random.truncated_normal(key, lo, hi, shape, dtype)
        # rounding of mean + std * z may step just outside a bound
        return jnp.clip(x, self.low, self.high).astype(dtype)

    def __repr__(self) -> str:
        return f"TruncatedNormal({self.mean}, {self.std}, low={self.low}, high={self.high}, mode={self.mode!r})"
