"""Per-synapse delays through a buffer of future postsynaptic inputs.

A projection with one delay per synapse keeps, for each postsynaptic neuron, the input
due at each of the next ``R`` steps (``R`` the largest delay in steps): a ring of ``R``
rows of ``n_post`` values, ``(R * n_post,)``, whose row ``slot`` is due this step. When a
presynaptic neuron spikes, each of its synapses adds its weight at once into the row of
the step it arrives at, so the work per step is the synapses of the neurons spiking now,
whatever their delays, and the input due is one row read. This is the design of NEST's
ring buffers (per postsynaptic neuron and receptor).

Each step (:func:`delayed_inputs`): clear the row read the step before, scatter the
synapses of this step's spikes, read this step's row. The row due is read after the
buffer's last write of the step, and the clearing comes before the scatter: with a read
followed by a write of the same buffer in one step, XLA:CPU copies the whole buffer every
step. Rows of a table store ``(D - 1) * n_post + post`` per synapse, so one addition of
``slot * n_post`` (wrapped at the end of the ring) places every synapse of a spike.

* :func:`build_delay_table`: the padded table of a projection, built on the host.
* :func:`delay_state`: a silent buffer.
* :func:`delayed_inputs`: one step of several projections from the same presynaptic spikes.
* :func:`undelayed_input`: the input of spikes through all synapses, without delay.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._environ import float_dtype
from ._kernels import _gather_rows, for_events, padded_positions

__all__ = ["build_delay_table", "delay_state", "DelayedPart", "delayed_inputs", "undelayed_input", "event_batch"]


def build_delay_table(indptr: np.ndarray, indices: np.ndarray, steps: np.ndarray, n_post: int,
                      R: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``(n_pre + 1, width)`` int32 table of synapses ``indptr``/``indices`` (CSR) with
    delays ``steps`` (whole steps, ``1 <= steps <= R``), and each entry's CSR position.

    Entry ``(i, j)`` of the table is ``(D - 1) * n_post + post`` for the ``j``-th synapse
    of neuron ``i``, in CSR order; padding (and the extra last row, the row of unused
    compaction slots) is ``2 * R * n_post``, beyond every wrapped position, so the scatter
    drops it. Positions: padding is ``nnz`` (the zero appended to the weights).

    Example:
        >>> import numpy as np
        >>> from neurodyn.nn._delay_buffer import build_delay_table
        >>> table, pos = build_delay_table(np.array([0, 2, 3]), np.array([1, 2, 0]), np.array([3, 1, 2]), 3, 3)
        >>> table.tolist(), pos.tolist()
        ([[7, 2], [3, 18], [18, 18]], [[0, 1], [2, 3], [3, 3]])
    """
    indptr = np.asarray(indptr, np.int64)
    nnz = int(indptr[-1])
    steps = np.asarray(steps, np.int64)
    if 2 * R * n_post >= 2**31:
        raise ValueError(f"{R} delay steps x {n_post} postsynaptic neurons exceed the int32 index range "
                         f"of the buffer of future inputs")
    if nnz and (steps.min() < 1 or steps.max() > R):
        raise ValueError(f"delays must be between 1 and {R} steps, got {int(steps.min())}..{int(steps.max())}")
    width = max(1, int(np.diff(indptr).max(initial=0)))
    pos = padded_positions(indptr, width, nnz)
    pos = np.vstack([pos, np.full((1, width), nnz, np.int32)])
    entry = np.append((steps - 1) * n_post + np.asarray(indices, np.int64), 2 * R * n_post)
    return entry[pos].astype(np.int32), pos


def delay_state(R: int, n_post: int) -> tuple[jax.Array, jax.Array]:
    """A silent buffer ``(R * n_post,)`` and its slot 0 (int32)."""
    return (jax.device_put(np.zeros(R * n_post, float_dtype())), jax.device_put(np.zeros((), np.int32)))


class DelayedPart(NamedTuple):
    """One projection's share of :func:`delayed_inputs`: its ``table`` (from
    :func:`build_delay_table`), ``weight_rows(idx)`` (the weights of table rows ``idx``,
    zero on padding; None: count spikes), ``buffer``, ``slot``, ``n_post`` and ``R``."""
    table: jax.Array
    weight_rows: Callable[[jax.Array], jax.Array] | None
    buffer: jax.Array
    slot: jax.Array
    n_post: int
    R: int


def event_batch(k: int) -> int:
    """Spiking rows scattered per batch for a projection with ``max_spikes = k``: a third
    of it (a multiple of 16, at least 16, at most ``k``), a step's spikes at a typical rate;
    a step with more takes further batches, each listing the spikes left (a pass over the
    presynaptic group)."""
    return int(min(k, max(16, -(-k // 3 // 16) * 16)))


def delayed_inputs(spikes: jax.Array, k: int, parts: list[DelayedPart]) -> list[tuple[jax.Array, jax.Array, jax.Array]]:
    """One step of projections reading the same presynaptic ``spikes`` (bool ``(n_pre,)``):
    for each part, ``(input due now, new buffer, next slot)``.

    The spiking neurons are listed ``k`` at a time (one compaction for all parts) and each
    batch's rows are added into every part's buffer. Each target's inputs are summed in
    the order the spikes were emitted (by step, then by presynaptic neuron, then in CSR
    order).

    Example:
        >>> import numpy as np, jax.numpy as jnp
        >>> from neurodyn.nn._delay_buffer import build_delay_table, delay_state, DelayedPart, delayed_inputs
        >>> table, _ = build_delay_table(np.array([0, 2, 3]), np.array([1, 2, 0]), np.array([1, 3, 2]), 3, 3)
        >>> buf, slot = delay_state(3, 3)
        >>> got = []
        >>> for s in ([True, False], [False, False], [False, False]):
        ...     [(x, buf, slot)] = delayed_inputs(jnp.array(s), 16, [DelayedPart(jnp.asarray(table), None, buf, slot, 3, 3)])
        ...     got.append(x.tolist())
        >>> got      # the synapse with D = 1 now, the one with D = 3 two steps later
        [[0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    """
    bufs = []
    for p in parts:
        # clear the row read last step (every synapse lands within the next R rows, so that
        # row is the one of delay R from now)
        prev = jnp.where(p.slot == 0, p.R - 1, p.slot - 1)
        bufs.append(jax.lax.dynamic_update_slice(p.buffer, jnp.zeros((p.n_post,), p.buffer.dtype),
                                                 (prev * p.n_post,)))

    def work(idx: jax.Array, bufs: tuple) -> tuple:
        out = []
        for p, buf in zip(parts, bufs):
            size = p.R * p.n_post
            flat = _gather_rows(p.table, idx) + p.slot * p.n_post
            flat = jnp.where(flat >= size, flat - size, flat)  # padding stays >= size: dropped
            w = 1.0 if p.weight_rows is None else p.weight_rows(idx).astype(buf.dtype)
            out.append(buf.at[flat].add(w, mode="drop"))
        return tuple(out)

    bufs = for_events(spikes, k, work, tuple(bufs))
    out = []
    for p, buf in zip(parts, bufs):
        x = jax.lax.dynamic_slice(buf, (p.slot * p.n_post,), (p.n_post,))
        out.append((x, buf, jnp.where(p.slot == p.R - 1, 0, p.slot + 1)))
    return out


def undelayed_input(spikes: jax.Array, table: jax.Array, weight_rows: Callable[[jax.Array | None], jax.Array] | None,
                    n_post: int, R: int) -> jax.Array:
    """The input of ``spikes`` (bool ``(n_pre,)``) through all synapses of ``table``, whatever
    their delay (``weight_rows(None)``: the weights of all rows)."""
    tg = table[:-1]
    tg = jnp.where(spikes[:, None] & (tg < R * n_post), tg % n_post, n_post)
    w = 1.0 if weight_rows is None else weight_rows(None)[:-1]
    return jnp.zeros((n_post,), float_dtype()).at[tg].add(w, mode="drop")
