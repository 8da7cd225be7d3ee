"""Initial values drawn by one compiled program per distribution, whatever their shape.

``jax.random.normal(key, shape)`` run eagerly compiles a new XLA program for
every new ``shape``: a network whose groups and projections have a dozen
different sizes spends seconds compiling before its first step. With the
(default) partitionable threefry generator, element ``i`` of a draw depends only
on the key and on ``i``: its random bits are ``threefry2x32(key, (i >> 32, i & 0xffffffff))``.
So a draw of any size is the concatenation of fixed-size blocks, block ``j``
taking the counters ``j B ... j B + B - 1``. :func:`standard` computes those
blocks with one compiled program per (distribution, dtype), through a PRNG
implementation whose key carries the counter offset; the transform from bits
to values is JAX's own (``jax.random.normal`` and friends are called on that
key), so the values are the ones ``jax.random`` gives for the whole shape, bit
for bit (``tests/test_init_draw.py`` checks this against ``jax.random``).

Where this does not hold (a traced key, another PRNG implementation, the
non-partitionable threefry setting, a dtype other than float32/float64),
:func:`standard` returns None and the caller draws with ``jax.random`` as before.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

# Values per compiled block, and per block for large draws (fewer dispatches, one more compile).
BLOCK = 1 << 16
BIG_BLOCK = 1 << 20
_BIG = 1 << 23

_KINDS = ("normal", "uniform", "truncated_normal")


def _unsupported(*_: Any) -> Any:
    raise NotImplementedError("neurodyn's block-draw keys only produce random bits")


def _offset_bits(key_data: jax.Array, bit_width: int, shape: tuple[int, ...]) -> jax.Array:
    """Partitionable threefry2x32 bits for the flat counters ``offset + arange(prod(shape))``.

    ``key_data`` is ``[k1, k2, offset_hi, offset_lo]``; with offset 0 these are the
    bits ``jax.random`` draws for a threefry key ``[k1, k2]`` of that shape.
    """
    from jax.extend.random import threefry2x32_p

    n = math.prod(shape)
    lo = key_data[3] + lax.iota(np.uint32, n)
    hi = key_data[2] + (lo < key_data[3]).astype(np.uint32)  # carry into the high word
    bits1, bits2 = threefry2x32_p.bind(key_data[0], key_data[1], hi, lo)
    if bit_width == 64:
        out = lax.shift_left(bits1.astype(np.uint64), np.uint64(32)) | bits2.astype(np.uint64)
    elif bit_width == 32:
        out = bits1 ^ bits2
    else:
        out = (bits1 ^ bits2).astype({8: np.uint8, 16: np.uint16}[bit_width])
    return out.reshape(shape)


@functools.cache
def _impl() -> Any:
    from jax.extend.random import define_prng_impl

    return define_prng_impl(key_shape=(4,), seed=_unsupported, split=_unsupported, random_bits=_offset_bits,
                            fold_in=_unsupported, name="neurodyn_threefry_offset", tag="ndo")


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _block(kind: str, dtype: Any, size: int, key_data: jax.Array, lower: jax.Array, upper: jax.Array) -> jax.Array:
    key = jax.random.wrap_key_data(key_data, impl=_impl())
    if kind == "normal":
        return jax.random.normal(key, (size,), dtype)
    if kind == "uniform":
        return jax.random.uniform(key, (size,), dtype)
    return jax.random.truncated_normal(key, lower, upper, (size,), dtype)


def _threefry_key(key: Any) -> np.ndarray | None:
    """The two key words of a concrete threefry key (raw ``uint32[2]`` or typed), else None."""
    if isinstance(key, jax.core.Tracer):
        return None
    try:
        if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
            if key.shape != () or str(jax.random.key_impl(key)) != "threefry2x32":
                return None
            key = jax.random.key_data(key)
        elif jax.config.jax_default_prng_impl != "threefry2x32":
            return None
        data = np.asarray(key)
    except (AttributeError, TypeError):
        return None
    if data.shape != (2,) or data.dtype != np.uint32:
        return None
    return data


def standard(kind: str, key: Any, shape: tuple[int, ...], dtype: Any,
             lower: float = -math.inf, upper: float = math.inf) -> np.ndarray | None:
    """``jax.random.<kind>(key, shape, dtype)`` as a NumPy array, or None where that cannot be exact.

    ``kind`` is ``'normal'``, ``'uniform'`` (in [0, 1)) or ``'truncated_normal'``
    (standard normal within ``[lower, upper]``, as ``jax.random.truncated_normal``).
    """
    if kind not in _KINDS:
        raise ValueError(f"unknown distribution {kind!r}")
    if not jax.config.jax_threefry_partitionable:
        return None
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)) or dtype != jax.dtypes.canonicalize_dtype(dtype):
        return None
    words = _threefry_key(key)
    if words is None:
        return None
    shape = tuple(int(s) for s in shape)
    n = math.prod(shape)
    out = np.empty((n,), dtype)
    if n == 0:
        return out.reshape(shape)
    size = BIG_BLOCK if n >= _BIG else BLOCK
    lo, hi = np.asarray(lower, dtype), np.asarray(upper, dtype)
    k1, k2 = int(words[0]), int(words[1])
    blocks = []
    for start in range(0, n, size):
        kd = np.array([k1, k2, start >> 32, start & 0xFFFFFFFF], np.uint32)
        blocks.append((start, _block(kind, dtype, size, kd, lo, hi)))  # dispatched before any is read
    for start, values in blocks:
        m = min(size, n - start)
        out[start:start + m] = np.asarray(values)[:m]
    return out.reshape(shape)
