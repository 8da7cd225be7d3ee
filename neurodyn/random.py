"""NumPy-style random numbers drawn from one default :class:`RandomState`.

Every function here draws from ``nd.random.DEFAULT``. Because that state is a
Variable, compiled functions that call these draw fresh numbers on each call,
and ``nd.random.seed(s)`` makes a whole program reproducible.

Example:
    >>> nd.random.seed(42)
    >>> x = nd.random.normal(0., 1., size=(4,))
"""

from __future__ import annotations

from typing import Any

import jax

from ._random import RandomState

__all__ = [
    "DEFAULT", "seed", "split_key", "normal", "uniform", "random", "randint",
    "bernoulli", "choice", "permutation", "truncated_normal", "RandomState",
]

# Created on the host: importing neurodyn starts no JAX backend (see _host_key).
DEFAULT = RandomState._lazy(0, name="nd.random.DEFAULT")


def seed(seed: Any = None) -> None:
    """Seed the default random state (``None`` draws fresh entropy)."""
    DEFAULT.seed(seed)


def split_key(num: int | None = None) -> jax.Array:
    """A fresh PRNG key (or ``num`` keys) from the default state."""
    return DEFAULT.split_key(num)


def normal(loc: Any = 0.0, scale: Any = 1.0, size: Any = None, dtype: Any = None) -> jax.Array:
    """Gaussian samples, like ``numpy.random.normal``."""
    return DEFAULT.normal(loc, scale, size, dtype)


def uniform(low: Any = 0.0, high: Any = 1.0, size: Any = None, dtype: Any = None) -> jax.Array:
    """Uniform samples in ``[low, high)``, like ``numpy.random.uniform``."""
    return DEFAULT.uniform(low, high, size, dtype)


def random(size: Any = None) -> jax.Array:
    """Uniform samples in ``[0, 1)``, like ``numpy.random.random``."""
    return DEFAULT.random(size)


def randint(low: int, high: int | None = None, size: Any = None, dtype: Any = None) -> jax.Array:
    """Random integers in ``[low, high)``, like ``numpy.random.randint``."""
    return DEFAULT.randint(low, high, size) if dtype is None else DEFAULT.randint(low, high, size, dtype)


def bernoulli(p: Any = 0.5, size: Any = None) -> jax.Array:
    """Booleans that are True with probability ``p``."""
    return DEFAULT.bernoulli(p, size)


def choice(a: Any, size: Any = None, replace: bool = True, p: Any = None) -> jax.Array:
    """Random samples from ``a``, like ``numpy.random.choice``."""
    return DEFAULT.choice(a, size, replace, p)


def permutation(x: Any, axis: int = 0) -> jax.Array:
    """A random permutation, like ``numpy.random.permutation``."""
    return DEFAULT.permutation(x, axis)


def truncated_normal(lower: Any, upper: Any, size: Any = None, loc: Any = 0.0, scale: Any = 1.0) -> jax.Array:
    """Normal samples truncated to ``[lower, upper]`` (in standard units)."""
    return DEFAULT.truncated_normal(lower, upper, size, loc, scale)
