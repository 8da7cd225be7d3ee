"""NumPy-style random numbers drawn from one default :class:`RandomState`.

Every function here draws from ``nd.random.DEFAULT``. Because that state is a
Variable, compiled functions that call these draw fresh numbers on each call,
and ``nd.random.seed(s)`` makes a whole program reproducible.

Example:
    >>> import neurodyn as nd
    >>> saved = nd.random.DEFAULT.value
    >>> nd.random.seed(42)
    >>> x = nd.random.normal(0., 1., size=(4,))
    >>> nd.random.DEFAULT.value = saved     # leave the global state as it was
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from ._environ import float_dtype
from ._random import RandomState, _shape

__all__ = [
    "DEFAULT", "seed", "split_key", "normal", "uniform", "random", "randint",
    "bernoulli", "choice", "permutation", "truncated_normal", "RandomState",
    "rand", "randn", "poisson", "binomial", "exponential", "gamma",
]

# Created on the host: importing neurodyn starts no JAX backend (see _host_key).
DEFAULT = RandomState._lazy(0, name="nd.random.DEFAULT")


def seed(seed: Any = None) -> None:
    """Seed the default random state (``None`` draws fresh entropy).

    Example:
        >>> import neurodyn as nd
        >>> saved = nd.random.DEFAULT.value
        >>> nd.random.seed(0); a = nd.random.random(3)
        >>> nd.random.seed(0); bool((a == nd.random.random(3)).all())
        True
        >>> nd.random.DEFAULT.value = saved     # leave the global state as it was
    """
    DEFAULT.seed(seed)


def split_key(num: int | None = None) -> jax.Array:
    """A fresh PRNG key (or ``num`` keys) from the default state.

    Example:
        >>> import neurodyn as nd
        >>> import jax
        >>> x = jax.random.normal(nd.random.split_key(), (3,))
    """
    return DEFAULT.split_key(num)


def normal(loc: Any = 0.0, scale: Any = 1.0, size: Any = None, dtype: Any = None) -> jax.Array:
    """Gaussian samples, like ``numpy.random.normal``.

    Example:
        >>> import neurodyn as nd
        >>> nd.random.normal(-55., 2., size=(4000,)).shape
        (4000,)
    """
    return DEFAULT.normal(loc, scale, size, dtype)


def uniform(low: Any = 0.0, high: Any = 1.0, size: Any = None, dtype: Any = None) -> jax.Array:
    """Uniform samples in ``[low, high)``, like ``numpy.random.uniform``.

    Example:
        >>> import neurodyn as nd
        >>> u = nd.random.uniform(-1., 1., size=(2, 3))
    """
    return DEFAULT.uniform(low, high, size, dtype)


def random(size: Any = None) -> jax.Array:
    """Uniform samples in ``[0, 1)``, like ``numpy.random.random``.

    Example:
        >>> import neurodyn as nd
        >>> w = nd.random.random((100, 10))
    """
    return DEFAULT.random(size)


def randint(low: int, high: int | None = None, size: Any = None, dtype: Any = None) -> jax.Array:
    """Random integers in ``[low, high)``, like ``numpy.random.randint``.

    Example:
        >>> import neurodyn as nd
        >>> labels = nd.random.randint(0, 10, size=(128,))
    """
    return DEFAULT.randint(low, high, size) if dtype is None else DEFAULT.randint(low, high, size, dtype)


def bernoulli(p: Any = 0.5, size: Any = None) -> jax.Array:
    """Booleans that are True with probability ``p``.

    Example:
        >>> import neurodyn as nd
        >>> spikes = nd.random.bernoulli(0.02, size=(1000,))   # 20 Hz at dt = 1 ms
    """
    return DEFAULT.bernoulli(p, size)


def choice(a: Any, size: Any = None, replace: bool = True, p: Any = None) -> jax.Array:
    """Random samples from ``a``, like ``numpy.random.choice``.

    Example:
        >>> import neurodyn as nd
        >>> idx = nd.random.choice(100, size=(10,), replace=False)
    """
    return DEFAULT.choice(a, size, replace, p)


def permutation(x: Any, axis: int = 0) -> jax.Array:
    """A random permutation, like ``numpy.random.permutation``.

    Example:
        >>> import neurodyn as nd
        >>> order = nd.random.permutation(60000)   # a shuffled epoch
    """
    return DEFAULT.permutation(x, axis)


def truncated_normal(lower: Any, upper: Any, size: Any = None, loc: Any = 0.0, scale: Any = 1.0) -> jax.Array:
    """Normal samples truncated to ``[lower, upper]`` (in standard units).

    Example:
        >>> import neurodyn as nd
        >>> w = nd.random.truncated_normal(-2., 2., size=(784, 256), scale=0.05)
    """
    return DEFAULT.truncated_normal(lower, upper, size, loc, scale)


def rand(*shape: int) -> jax.Array:
    """Uniform samples in ``[0, 1)`` of shape ``shape``, like ``numpy.random.rand``.

    Example:
        >>> import neurodyn as nd
        >>> nd.random.rand(2, 3).shape
        (2, 3)
    """
    return jax.random.uniform(DEFAULT.split_key(), tuple(int(d) for d in shape), float_dtype())


def randn(*shape: int) -> jax.Array:
    """Standard normal samples of shape ``shape``, like ``numpy.random.randn``.

    Example:
        >>> import neurodyn as nd
        >>> noise = nd.random.randn(100)
    """
    return jax.random.normal(DEFAULT.split_key(), tuple(int(d) for d in shape), float_dtype())


def poisson(lam: Any = 1.0, size: Any = None) -> jax.Array:
    """Poisson counts (int32) with mean ``lam``, like ``numpy.random.poisson``.

    Example:
        >>> import neurodyn as nd
        >>> counts = nd.random.poisson(0.8, size=(1000,))   # 800 inputs at 10 Hz, dt = 0.1 ms
    """
    return jax.random.poisson(DEFAULT.split_key(), lam, _shape(size, lam))


def binomial(n: Any, p: Any, size: Any = None) -> jax.Array:
    """Binomial counts (int32) of ``n`` trials with probability ``p``, like ``numpy.random.binomial``.

    Example:
        >>> import neurodyn as nd
        >>> k = nd.random.binomial(1000, 0.02, size=(10,))
    """
    shape = _shape(size, n, p)
    draws = jax.random.binomial(DEFAULT.split_key(), jnp.asarray(n, float_dtype()), p, shape, float_dtype())
    return draws.astype(jnp.int32)


def exponential(scale: Any = 1.0, size: Any = None) -> jax.Array:
    """Exponential samples with mean ``scale``, like ``numpy.random.exponential``.

    Example:
        >>> import neurodyn as nd
        >>> isi = nd.random.exponential(50., size=(100,))   # ms between spikes at 20 Hz
    """
    return scale * jax.random.exponential(DEFAULT.split_key(), _shape(size, scale), float_dtype())


def gamma(shape: Any, scale: Any = 1.0, size: Any = None) -> jax.Array:
    """Gamma samples with shape ``shape`` and scale ``scale`` (mean ``shape * scale``),
    like ``numpy.random.gamma``.

    Example:
        >>> import neurodyn as nd
        >>> w = nd.random.gamma(2.0, 0.5, size=(1000,))
    """
    out_shape = _shape(size, shape, scale)
    return scale * jax.random.gamma(DEFAULT.split_key(), jnp.asarray(shape, float_dtype()), out_shape,
                                    float_dtype())
