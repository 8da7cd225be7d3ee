"""Per-synapse delays through a ring of presynaptic spikes.

A projection with one delay per synapse keeps, for its last ``R`` steps (``R``
the largest delay in steps), the indices of the presynaptic neurons that spiked
(compacted, up to ``K`` per step) and their spikes as bits. Its synapses are
stored grouped by (presynaptic neuron, delay): segment ``i * R + D - 1`` holds
the targets of neuron ``i``'s synapses of delay ``D``. At each step, the spikes
read ``j`` steps ago deliver segment ``D = j + 1`` of their rows: the work is
the number of synapses delivered (plus a listing of the ring's live entries), and no
buffer of future inputs is carried from step to step.

It serves the published models' tables of whole networks
(:class:`neurodyn.models._common.DelayedCurrents`), where the memory of a padded table
would grow with the largest out-degree: here it is 8 bytes per synapse. A
:class:`~neurodyn.nn.Projection` with per-synapse delays adds its spikes into a buffer of
future inputs instead (:mod:`neurodyn.nn._delay_buffer`).

* :func:`build_ring_table`: the segment table, built on the host.
* :func:`ring_advance`: shift this step's spikes into the ring and the bit history.
* :func:`ring_deliver`: the input due this step.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from .._environ import float_dtype
from ._kernels import compact

__all__ = ["build_ring_table", "ring_state", "ring_advance", "ring_deliver", "ring_chunk", "ring_events"]


def build_ring_table(n_pre: int, n_post: int, pre: np.ndarray, post: np.ndarray, steps: np.ndarray,
                     R: int | None = None) -> dict[str, Any]:
    """The segment table of synapses ``pre -> post`` with delays ``steps`` (whole steps >= 1).

    Returns ``ptr`` (int32, ``(n_pre + 1) * R + 1``: segment ``i * R + D - 1`` is
    ``targets[ptr[s]:ptr[s + 1]]``; row ``n_pre`` is empty, the row of unused ring
    slots), ``targets`` (int32 post index per synapse), ``order`` (int32: the
    position of each stored synapse in the given order, to gather its weight)
    and ``R``. Synapses of one segment keep their given order. Memory: 8 bytes
    per synapse and 4 per neuron and delay step.

    Example:
        >>> import numpy as np
        >>> from neurodyn.nn._delay_ring import build_ring_table
        >>> t = build_ring_table(2, 3, np.array([0, 0, 1]), np.array([1, 2, 0]), np.array([3, 1, 2]))
        >>> t["R"], t["ptr"].tolist(), t["targets"].tolist(), t["order"].tolist()
        (3, [0, 1, 1, 2, 2, 3, 3, 3, 3, 3], [2, 1, 0], [1, 0, 2])
    """
    pre = np.asarray(pre, np.int64)
    steps = np.asarray(steps, np.int64)
    nnz = pre.size
    if nnz >= 2**31:
        raise ValueError(f"{nnz} synapses exceed the int32 index range")
    if nnz and steps.min() < 1:
        raise ValueError(f"delays must be at least one step, got {int(steps.min())}")
    R = int(max(R or 1, steps.max(initial=1)))
    if (n_pre + 1) * R >= 2**31:
        raise ValueError(f"{n_pre} neurons x {R} delay steps exceed the int32 index range")
    seg = pre * R + (steps - 1)
    order = np.argsort(seg, kind="stable")
    counts = np.bincount(seg, minlength=(n_pre + 1) * R)
    ptr = np.zeros((n_pre + 1) * R + 1, np.int64)
    np.cumsum(counts, out=ptr[1:])
    return dict(ptr=ptr.astype(np.int32), targets=np.asarray(post, np.int32)[order], order=order.astype(np.int32),
                R=R)


def ring_chunk(nnz: int, n_pre: int, k: int) -> int:
    """Synapses delivered per pass: ``k / 4`` mean rows (64 to 2**16, a multiple of 64), the
    synapses of a step when the rate is that of :func:`ring_events`. A step delivers up to this
    many in one pass; more loop, a pass at a time. Each slot costs a binary search over the
    step's segments whether it is used or not, so the chunk covers a typical step, not the largest."""
    return _round_chunk(max(1.0, k / 4) * nnz / max(n_pre, 1))


def _round_chunk(width: float) -> int:
    return int(min(1 << 16, max(64, -(-int(width) // 64) * 64)))


def ring_state(n_pre: int, R: int, k: int) -> dict[str, jax.Array]:
    """The initial (silent) state: ``ring`` ``(R, k)`` int32 (unused slots hold ``n_pre``),
    ``fits`` ``(R,)`` bool, ``history`` ``(ceil(R / 32), n_pre)`` uint32 bits (word-major: each
    word is one contiguous vector)."""
    return dict(ring=jnp.full((R, k), n_pre, jnp.int32), fits=jnp.ones((R,), jnp.bool_),
                history=jnp.zeros((-(-R // 32), n_pre), jnp.uint32))


def ring_advance(spikes: jax.Array, ring: jax.Array, fits: jax.Array, history: jax.Array,
                 n_blocks: int | None = None) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Shift the spikes read this step (``spikes``, bool ``(n_pre,)``) into row 0 of the ring
    (compacted indices) and bit 0 of the history; row / bit ``j`` then holds the spikes read
    ``j`` steps ago. The whole (small) state is rewritten: no buffer is updated in place at a
    moving position, which XLA:CPU would copy every step."""
    R, k = ring.shape
    idx, _, fit = compact(spikes.astype(jnp.float32), k, n_blocks)
    ring = jnp.concatenate([idx[None], ring[:-1]])
    fits = jnp.concatenate([fit[None], fits[:-1]])
    carry = jnp.concatenate([spikes[None].astype(jnp.uint32), history[:-1] >> 31])
    history = (history << 1) | carry
    if R % 32:
        keep = np.full((history.shape[0], 1), 0xFFFFFFFF, np.uint32)
        keep[-1] = (1 << (R % 32)) - 1
        history = history & jnp.asarray(keep)
    return ring, fits, history


def _count_le(sorted_: jax.Array, p: jax.Array) -> jax.Array:
    """The number of entries of the nondecreasing ``sorted_`` that are ``<= p``, for each ``p``.

    A branchless binary search written out step by step: XLA fuses it into one pass over
    ``p`` (``jnp.searchsorted`` runs its steps as a loop, one pass over ``p`` per step)."""
    n = sorted_.shape[0]
    step = 1 << (n.bit_length() - 1)
    ext = jnp.concatenate([sorted_, jnp.full((step,), jnp.iinfo(jnp.int32).max, jnp.int32)])
    lo = jnp.zeros(p.shape, jnp.int32)
    while step:
        lo = jnp.where(ext[lo + (step - 1)] <= p, lo + step, lo)
        step //= 2
    return lo


def _add_slots(o: jax.Array, p: jax.Array, starts: jax.Array, lens: jax.Array, ends: jax.Array,
               targets: jax.Array, weight_of: Callable[[jax.Array], jax.Array] | None) -> jax.Array:
    """Add synapse slots ``p`` (positions in the concatenation of the segments, whose
    cumulative lengths are ``ends``; beyond the last: nothing) into ``o``."""
    n_out = o.shape[0]
    r = jnp.minimum(_count_le(ends, p), starts.shape[0] - 1)
    ok = p < ends[-1]
    src = jnp.where(ok, starts[r] + p - (ends[r] - lens[r]), 0)
    tg = jnp.where(ok, targets[src], n_out)
    if weight_of is None:
        return o.at[tg].add(1.0, mode="drop")
    return o.at[tg].add(jnp.where(ok, weight_of(src), 0.0).astype(o.dtype), mode="drop")


def _deliver_segments(out: jax.Array, starts: jax.Array, lens: jax.Array, targets: jax.Array,
                      weight_of: Callable[[jax.Array], jax.Array] | None, S: int,
                      ends: jax.Array | None = None) -> jax.Array:
    """Add the synapses of the given segments into ``out`` (drop index ``len(out)``), ``S`` at a time,
    in segment order."""
    ends = jnp.cumsum(lens) if ends is None else ends
    slots = jnp.arange(S, dtype=jnp.int32)

    def body(c: Any) -> Any:
        j, o = c
        return j + 1, _add_slots(o, j * S + slots, starts, lens, ends, targets, weight_of)

    return jax.lax.while_loop(lambda c: c[0] * S < ends[-1], body, (jnp.int32(0), out))[1]


def ring_events(R: int, k: int) -> int:
    """Ring entries listed per step by :func:`ring_deliver` before it falls back to reading the
    whole ring: a quarter of the ``R x k`` slots (a sustained rate of a quarter of ``k`` spikes per
    step), a multiple of 32."""
    return int(min(R * k, max(32, -(-(R * k) // 4 // 32) * 32)))


def _listed_segments(ring: jax.Array, fits: jax.Array, n_pre: int, C: int) -> tuple[jax.Array, jax.Array]:
    """The segments of the ring's live entries (oldest step first), compacted into ``C`` slots
    (unused: an empty segment), and whether they all fit. Compaction leaves each ring row's
    neurons first, in increasing order, so a row's live entries are a prefix of it."""
    R, k = ring.shape
    # oldest step first: the order in which the inputs due now were emitted
    rev = ring[::-1]
    live = jnp.sum(rev < n_pre, axis=1, dtype=jnp.int32) * fits[::-1].astype(jnp.int32)
    row_j = jnp.arange(R - 1, -1, -1, dtype=jnp.int32)
    ends = jnp.cumsum(live)
    q = jnp.arange(C, dtype=jnp.int32)
    r = jnp.minimum(_count_le(ends, q), R - 1)
    ok = q < ends[-1]
    col = jnp.where(ok, q - (ends[r] - live[r]), 0)
    neuron = rev.reshape(-1)[r * k + col]
    return jnp.where(ok, neuron * R + row_j[r], n_pre * R), ends[-1] <= C  # n_pre * R: the empty row


def _all_segments(ring: jax.Array, fits: jax.Array, n_pre: int) -> jax.Array:
    R = ring.shape[0]
    rows = jnp.where(fits[:, None], ring, n_pre)[::-1]  # overflowed steps: from the bits
    return (rows * R + jnp.arange(R - 1, -1, -1, dtype=jnp.int32)[:, None]).reshape(-1)


def ring_deliver(ring: jax.Array, fits: jax.Array, history: jax.Array, ptr: jax.Array, targets: jax.Array,
                 weight_of: Callable[[jax.Array], jax.Array] | None, n_out: int, S: int,
                 n_events: int | None = None) -> jax.Array:
    """The input due this step after :func:`ring_advance`: ring row ``j`` delivers segment
    ``D = j + 1`` of each of its neurons, summed per target (``weight_of(positions)`` gives
    stored synapses' weights; None: counts). When some step of the last ``R`` had more
    spikes than the ring holds, that step's rows are taken from the bit history instead (a
    pass over all presynaptic neurons for each such step and delay): exact for any activity.

    The ring's live entries are first listed in ``n_events`` slots (default
    :func:`ring_events`); a step with more live entries reads every ring slot instead.
    Inputs are summed in the order they were emitted (oldest step first, then by neuron),
    the order of a buffer of future inputs filled step by step.

    Example:
        >>> import numpy as np, jax.numpy as jnp
        >>> from neurodyn.nn._delay_ring import build_ring_table, ring_state, ring_advance, ring_deliver
        >>> t = build_ring_table(2, 3, np.array([0, 0, 1]), np.array([1, 2, 0]), np.array([1, 3, 2]))
        >>> st = ring_state(2, t["R"], k=2)
        >>> ptr, tg = jnp.asarray(t["ptr"]), jnp.asarray(t["targets"])
        >>> got = []
        >>> for s in ([True, False], [False, False], [False, False]):
        ...     st = dict(zip(("ring", "fits", "history"), ring_advance(jnp.array(s), **st)))
        ...     got.append(ring_deliver(**st, ptr=ptr, targets=tg, weight_of=None, n_out=3, S=8).tolist())
        >>> got      # the synapse with D = 1 now, the one with D = 3 two steps later
        [[0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    """
    R, n_pre = ring.shape[0], history.shape[1]

    def from_bits(j: jax.Array, o: jax.Array) -> jax.Array:
        # every neuron's segment of delay j + 1, empty unless its bit j is set
        bit = (jnp.take(history, j // 32, axis=0) >> (j % 32)) & 1
        seg = jnp.arange(n_pre, dtype=jnp.int32) * R + j
        starts = ptr[seg]
        return _deliver_segments(o, starts, jnp.where(bit > 0, ptr[seg + 1] - starts, 0), targets, weight_of, S)

    def overflowed(o: jax.Array) -> jax.Array:
        return jax.lax.fori_loop(0, R, lambda j, o: jax.lax.cond(fits[j], lambda o: o,
                                                                 lambda o: from_bits(j, o), o), o)

    C = ring_events(*ring.shape) if n_events is None else int(n_events)
    seg, listed_fit = _listed_segments(ring, fits, n_pre, min(C, ring.size))
    starts = ptr[seg]
    lens = ptr[seg + 1] - starts
    ends = jnp.cumsum(lens)
    all_fit = jnp.all(fits)

    def general(o: jax.Array) -> jax.Array:
        def full(o: jax.Array) -> jax.Array:
            seg = _all_segments(ring, fits, n_pre)
            st = ptr[seg]
            return _deliver_segments(o, st, ptr[seg + 1] - st, targets, weight_of, S)

        o = jax.lax.cond(listed_fit, lambda o: _deliver_segments(o, starts, lens, targets, weight_of, S, ends),
                         full, o)
        return jax.lax.cond(all_fit, lambda o: o, overflowed, o)

    # the common step: every live entry listed, no overflowed step, one pass of S synapse slots
    common = listed_fit & all_fit & (ends[-1] <= S)
    slots = jnp.arange(S, dtype=jnp.int32)
    return jax.lax.cond(common, lambda o: _add_slots(o, slots, starts, lens, ends, targets, weight_of), general,
                        jnp.zeros((n_out,), float_dtype()))
