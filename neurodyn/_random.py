"""RandomState: a Variable holding a PRNG key, with NumPy-style draws."""

from __future__ import annotations

import threading
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from . import _cpu
from ._environ import float_dtype
from ._state import CTX, Variable

__all__ = ["RandomState"]

# Held while a key is read and its successor written outside compiled code (an eager draw,
# or a compiled call that advances a RandomState), so no two threads get the same key.
KEY_LOCK = threading.RLock()

Size = "int | Sequence[int] | None"


def _shape(size: Any, *params: Any) -> tuple[int, ...]:
    if size is None:
        return tuple(jnp.broadcast_shapes(*(jnp.shape(p) for p in params))) if params else ()
    if isinstance(size, (int, np.integer)):
        return (int(size),)
    return tuple(int(s) for s in size)


def _key_from_seed(seed: Any) -> jax.Array:
    if _cpu.pending is not None:  # seeding is often a script's first call: size XLA:CPU's pool first
        _cpu.apply_pending()
    if seed is None:
        seed = np.random.SeedSequence().entropy % (2**32)
    if hasattr(seed, "shape") and getattr(seed, "shape", ()) == (2,):
        return jnp.asarray(seed, dtype=jnp.uint32)
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        key = _host_key(int(seed))
        if key is not None:  # no program compiled for it (eager PRNGKey compiles one per process)
            return jax.device_put(key)
    return jax.random.PRNGKey(seed)


_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))


def _threefry2x32(k1: int, k2: int, x1: np.ndarray, x2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The threefry2x32 block cipher (20 rounds, as ``jax.random``'s) on uint32 NumPy arrays."""
    ks = (np.uint32(k1), np.uint32(k2), np.uint32(k1 ^ k2 ^ 0x1BD11BDA))
    x = [x1.astype(np.uint32) + ks[0], x2.astype(np.uint32) + ks[1]]
    with np.errstate(over="ignore"):
        for i in range(5):
            for r in _ROTATIONS[i % 2]:
                x[0] = x[0] + x[1]
                x[1] = (x[1] << np.uint32(r)) | (x[1] >> np.uint32(32 - r))
                x[1] = x[0] ^ x[1]
            x[0] = x[0] + ks[(i + 1) % 3]
            x[1] = x[1] + ks[(i + 2) % 3] + np.uint32(i + 1)
    return x[0], x[1]


def _host_split(key: Any, n: int) -> np.ndarray | None:
    """``jax.random.split(key, n)`` computed with NumPy, or None where that is not exact.

    Exact for a concrete raw threefry key with the (default) partitionable setting:
    key ``j`` is then ``threefry2x32(key, (0, j))``. An eager split computed by JAX
    compiles a program per process and waits for the device; this does neither.
    """
    if (jax.config.jax_default_prng_impl != "threefry2x32" or not jax.config.jax_threefry_partitionable
            or isinstance(key, jax.core.Tracer) or getattr(key, "dtype", None) != np.uint32
            or getattr(key, "shape", None) != (2,)):
        return None
    k = np.asarray(key)
    b1, b2 = _threefry2x32(int(k[0]), int(k[1]), np.zeros(n, np.uint32), np.arange(n, dtype=np.uint32))
    return np.stack([b1, b2], axis=1)


def _host_key(seed: int) -> np.ndarray | None:
    """``jax.random.PRNGKey(seed)`` computed with NumPy, or None where that is not exact.

    The default threefry2x32 key of a seed in [0, 2**31) is ``[0, seed]``.
    Creating it on the host starts no JAX backend, so ``import neurodyn``
    leaves ``jax.distributed.initialize`` free to run.
    """
    if jax.config.jax_default_prng_impl != "threefry2x32" or not 0 <= seed < 2**31:
        return None
    return np.array([0, seed], np.uint32)


class RandomState(Variable):
    """A Variable holding a PRNG key; every draw advances the key in place.

    Because the key is a Variable, compiled code that draws from it gets fresh
    numbers on every call and stays reproducible after :meth:`seed`.

    Example:
        >>> import neurodyn as nd
        >>> rng = nd.RandomState(0)
        >>> x = rng.normal(0., 1., size=(3,))
        >>> y = rng.normal(0., 1., size=(3,))   # differs from x
    """

    __slots__ = ()

    def __init__(self, seed: Any = None, *, name: str | None = None) -> None:
        super().__init__(_key_from_seed(seed), name=name)

    @classmethod
    def _lazy(cls, seed: int, name: str) -> "RandomState":
        """A state whose key is a NumPy array until its first draw or seeding."""
        key = _host_key(seed)
        if key is None:
            return cls(seed, name=name)
        return cls.from_raw(key, name=name)

    def seed(self, seed: Any = None) -> None:
        """Reset the key from an integer seed (or a raw key of shape (2,))."""
        self.value = _key_from_seed(seed)

    def split_key(self, num: int | None = None) -> jax.Array:
        """Return a fresh subkey (or ``num`` of them) and advance the state (thread-safe)."""
        if CTX.frames:  # inside a trace: the frame is private to this thread
            return self._split(num)
        with KEY_LOCK:
            return self._split(num)

    def _split(self, num: int | None) -> jax.Array:
        if _cpu.pending is not None:
            _cpu.apply_pending()
        keys = None if CTX.frames else _host_split(self.value, 2 if num is None else num + 1)
        if keys is not None:
            self.value = jax.device_put(keys[0])
            return jax.device_put(keys[1] if num is None else keys[1:])
        if num is None:
            key, sub = jax.random.split(self.value)
        else:
            keys = jax.random.split(self.value, num + 1)
            key, sub = keys[0], keys[1:]
        self.value = key
        return sub

    # NumPy-style draws --------------------------------------------------------
    def normal(self, loc: Any = 0.0, scale: Any = 1.0, size: Any = None, dtype: Any = None) -> jax.Array:
        """Gaussian samples ``loc + scale * N(0, 1)`` of shape ``size``."""
        shape = _shape(size, loc, scale)
        return loc + scale * jax.random.normal(self.split_key(), shape, dtype or float_dtype())

    def uniform(self, low: Any = 0.0, high: Any = 1.0, size: Any = None, dtype: Any = None) -> jax.Array:
        """Uniform samples in ``[low, high)``."""
        shape = _shape(size, low, high)
        u = jax.random.uniform(self.split_key(), shape, dtype or float_dtype())
        return low + (high - low) * u

    def random(self, size: Any = None) -> jax.Array:
        """Uniform samples in ``[0, 1)`` (``numpy.random.random``)."""
        return jax.random.uniform(self.split_key(), _shape(size), float_dtype())

    def randint(self, low: int, high: int | None = None, size: Any = None, dtype: Any = jnp.int32) -> jax.Array:
        """Integers in ``[low, high)`` (``[0, low)`` when ``high`` is None)."""
        if high is None:
            low, high = 0, low
        shape = _shape(size, low, high)
        return jax.random.randint(self.split_key(), shape, low, high, dtype)

    def bernoulli(self, p: Any = 0.5, size: Any = None) -> jax.Array:
        """Booleans that are True with probability ``p``."""
        return jax.random.bernoulli(self.split_key(), p, _shape(size, p))

    def choice(self, a: Any, size: Any = None, replace: bool = True, p: Any = None) -> jax.Array:
        """Samples from ``a`` (an array, or ``range(a)`` for an int)."""
        a = a.value if isinstance(a, Variable) else a
        return jax.random.choice(self.split_key(), a, _shape(size), replace=replace, p=p)

    def permutation(self, x: Any, axis: int = 0) -> jax.Array:
        """A random permutation of ``x`` (or of ``range(x)`` for an int)."""
        x = x.value if isinstance(x, Variable) else x
        return jax.random.permutation(self.split_key(), x, axis=axis)

    def truncated_normal(self, lower: Any, upper: Any, size: Any = None, loc: Any = 0.0, scale: Any = 1.0) -> jax.Array:
        """Normal samples truncated to ``[lower, upper]`` (bounds in standard units)."""
        shape = _shape(size, lower, upper)
        return loc + scale * jax.random.truncated_normal(self.split_key(), lower, upper, shape)
