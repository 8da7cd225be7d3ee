"""Independent Bernoulli spikes at a low, shared probability, drawn with a few random numbers per step.

``n`` units that each spike with probability ``p`` in a step are, jointly, a
count ``K ~ Binomial(n, p)`` and a uniformly random ``K``-subset of the units
(given ``K``, every subset of that size is equally likely). When ``n p`` is
small, drawing ``K`` (one 32-bit integer, inverting the exact CDF table of
:func:`binomial_table`) and the subset costs a few dozen random integers
instead of ``n``:

* the subset: ``M`` unit indices drawn independently and uniformly (one
  32-bit integer each, by rejection: exactly uniform); their distinct values in
  order of first appearance are a uniformly random sequence without repetition
  (the law of the draws is the same under any relabelling of the units), and
  the first ``K`` of them a uniform ``K``-subset;
* when the draws hold fewer than ``K`` distinct values (``K > M``, or repeats;
  ``M`` is sized so that this is rare), the subset is taken again from a random
  ordering of all ``n`` units (an argsort of ``n`` random integers; ties, of
  probability about ``n**2 / 2**33``, resolve by index) inside a
  ``lax.while_loop``, which runs no iteration in the usual step, also under
  ``vmap``.

The law is that of independent Bernoulli(``p``) units up to the ``2**-32``
rounding of the count's CDF (the same resolution as comparing one 32-bit
integer per unit with ``p 2**32``).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

# P(K > M - slack) below this sizes the number of index draws M.
_TAIL = 2.0 ** -20
# Extra index draws beyond that K, so that repeats rarely leave fewer than K distinct values.
_SLACK = 4
# The subset path is used while its draws (M integers, M**2 compares) stay well below n.
_MAX_DRAWS = 64


def plan(n: int, p: float) -> tuple[int, np.ndarray, int] | None:
    """``(k0, thresholds, M)`` for :func:`draw`, or ``None`` where one integer per unit is cheaper."""
    from ._inputs import binomial_table, stack_tables  # _inputs imports this module
    if not 0.0 < p < 1.0:
        return None
    k0, T = binomial_table(n, p)
    # P(K <= k0 + j) = T[j] / 2**32: the smallest m with P(K > m) <= _TAIL
    tail_ok = np.nonzero(T >= (1.0 - _TAIL) * 2.0 ** 32)[0]
    m = k0 + (int(tail_ok[0]) if tail_ok.size else T.size)
    M = max(1, m + _SLACK)
    if M > _MAX_DRAWS or 8 * M > n:
        return None
    k0s, tm1 = stack_tables([(k0, T)])
    return int(k0s[0]), tm1[0], M


def draw(key: jax.Array, n: int, k0: int, thresholds: np.ndarray, M: int) -> jax.Array:
    """``(n,)`` booleans, independent Bernoulli(``p``) for the table ``(k0, thresholds)`` of
    ``Binomial(n, p)`` (see :func:`plan`), from one PRNG ``key``."""
    from ._inputs import draw_counts
    # One call for all the integers: separate draws (split keys, randint) cost more than the rest.
    bits = jax.random.bits(key, (1 + M,), jnp.uint32)
    K = draw_counts(bits[0], k0, jnp.asarray(thresholds))
    # A unit index per integer by rejection: integers at or above the largest multiple of n are
    # dropped (probability below n / 2**32), which leaves the kept ones exactly uniform.
    limit = (2 ** 32 // n) * n
    kept = bits[1:] < jnp.uint32(limit) if limit < 2 ** 32 else jnp.ones((M,), bool)
    idx = (bits[1:] % jnp.uint32(n)).astype(jnp.int32)
    # first occurrences among the kept draws, and their rank
    earlier = jnp.tril((idx[:, None] == idx[None, :]) & kept[None, :], -1)
    first = kept & ~jnp.any(earlier, axis=1)
    rank = jnp.cumsum(first, dtype=jnp.int32) - 1
    take = first & (rank < K)
    spikes = jnp.zeros((n,), bool).at[jnp.where(take, idx, n)].set(True, mode="drop")

    def redraw(c: tuple) -> tuple:
        order = jnp.argsort(jax.random.bits(jax.random.fold_in(key, 1), (n,), jnp.uint32))
        return False, jnp.zeros((n,), bool).at[order].set(jnp.arange(n) < K)

    short = jnp.sum(first, dtype=jnp.int32) < K
    return jax.lax.while_loop(lambda c: c[0], redraw, (short, spikes))[1]


def draw_batch(key: jax.Array, shape: tuple[int, ...], k0: int, thresholds: np.ndarray, M: int) -> jax.Array:
    """:func:`draw` for ``shape`` (units on the last axis; leading axes independent)."""
    n = shape[-1]
    if len(shape) == 1:
        return draw(key, n, k0, thresholds, M)
    rows = math.prod(shape[:-1])
    keys = jax.random.split(key, rows)
    out = jax.vmap(lambda k: draw(k, n, k0, thresholds, M))(keys)
    return out.reshape(shape)
