"""Propagation kernels: spike compaction, event-driven scatters and the fused table.

Everything here is a function of arrays (or a host-side table builder); the
modules that own the state (:class:`~neurodyn.nn.Projection`,
:class:`~neurodyn.nn.Network`, the published models) call them.

* :func:`compact`: the indices of up to ``k`` spiking neurons (two-stage ``lax.top_k``).
* :func:`event_inputs`: event-driven input of projections sharing one presynaptic spike vector.
* :class:`Fusion`: one target table for many projections (and their scalar delays).

Per-synapse delays are in :mod:`neurodyn.nn._delay_ring`.
"""

from __future__ import annotations

import hashlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._environ import float_dtype

__all__ = ["compact", "compact_fit", "for_events", "event_inputs", "fusable", "shares_compaction", "Fusion", "fusion_signature",
           "fusion_digest", "padded_positions"]

# Neurons per block of the first compaction stage.
_BLOCK = 32
# Spiking rows scattered per iteration of the fused propagation loop.
_SLAB = 16


def compact(sf: jax.Array, k: int, n_blocks: int | None = None) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Up to ``k`` nonzero entries of the 1-D ``sf``: ``(indices, values, all_fit)``.

    Two-stage ``lax.top_k`` (much cheaper than one top_k over all of ``sf``
    or ``jnp.nonzero(size=k)`` on XLA:CPU): first the ``n_blocks`` (default
    ``k``) blocks of 32 entries that hold a nonzero, then the nonzeros within
    them, in increasing index order. Unused slots have the index ``len(sf)``
    and the value 0. ``all_fit`` is False when some nonzero did not fit
    (callers then take an exact path); with ``n_blocks >= k`` it is
    ``count_nonzero(sf) <= k``.

    Example:
        >>> import jax.numpy as jnp
        >>> from neurodyn.nn._kernels import compact
        >>> idx, vals, ok = compact(jnp.array([0., 1., 0., 2.]), 3)
        >>> idx.tolist(), vals.tolist(), bool(ok)
        ([1, 3, 4], [1.0, 2.0, 0.0], True)
    """
    n = sf.shape[0]
    nb = -(-n // _BLOCK)
    if nb * _BLOCK != n:
        sf = jnp.pad(sf, (0, nb * _BLOCK - n))
    blocks = sf.reshape(nb, _BLOCK)
    per_block = jnp.sum(blocks != 0, axis=1, dtype=jnp.int32)
    b = min(k if n_blocks is None else n_blocks, nb)
    # top_k is stable: the blocks (then the entries) holding a nonzero come first, in index order
    _, bidx = jax.lax.top_k((per_block > 0).astype(jnp.float32), b)
    sub = blocks[bidx]  # (b, 32); blocks without a nonzero are all zero
    kk = min(k, b * _BLOCK)
    key, j = jax.lax.top_k((sub != 0).reshape(-1).astype(jnp.float32), kk)
    used = key > 0
    idx = jnp.where(used, bidx[j // _BLOCK] * _BLOCK + j % _BLOCK, n).astype(jnp.int32)
    vals = jnp.where(used, sub.reshape(-1)[j], 0)
    fits = (jnp.sum(per_block) <= kk) & (jnp.sum(per_block > 0) <= b)
    return idx, vals, fits


# Below this many entries every index is exact as a float32 top_k key.
_EXACT_F32 = 1 << 24


def compact_fit(s: jax.Array, k: int, width: int = _BLOCK) -> tuple[jax.Array, jax.Array]:
    """The indices of the first ``k`` nonzeros of the 1-D ``s``, increasing (unused slots
    ``len(s)``), and whether they are all of them, through blocks of ``width`` entries.

    The first stage keeps one block more than ``k``: those blocks hold more than
    ``k`` nonzeros exactly when some nonzero is left out, so no separate count of
    them is needed.

    Example:
        >>> import jax.numpy as jnp
        >>> from neurodyn.nn._kernels import compact_fit
        >>> idx, fits = compact_fit(jnp.array([0, 1, 0, 1, 1]), 2)
        >>> idx.tolist(), bool(fits)
        ([1, 3], False)
    """
    n = s.shape[0]
    s = s != 0
    nb = -(-n // width)
    if nb * width != n:
        s = jnp.pad(s, (0, nb * width - n))
    blocks = s.reshape(nb, width)
    b = min(k + 1, nb)
    # top_k's outputs are used whole (not sliced): XLA:CPU turns a sliced top_k into a full sort.
    _, bidx = jax.lax.top_k(jnp.any(blocks, axis=1).astype(jnp.float32), b)
    sub = blocks[bidx]  # blocks without a nonzero are all zero
    ids = bidx[:, None] * width + jnp.arange(width, dtype=jnp.int32)
    kk = min(k, b * width)
    if n < _EXACT_F32:
        # The keys are the indices themselves (n - i > 0 for a nonzero, 0 for none), so the
        # result is one subtraction from top_k's output: the index arithmetic is not
        # repeated inside every fusion that reads the result.
        vals, _ = jax.lax.top_k(jnp.where(sub, (n - ids).astype(jnp.float32), 0.0).reshape(-1), kk)
        idx = n - vals.astype(jnp.int32)
    else:
        key, j = jax.lax.top_k(sub.reshape(-1).astype(jnp.float32), kk)
        idx = jnp.where(key > 0, ids.reshape(-1)[j], n).astype(jnp.int32)
    if kk < k:  # fewer candidates than slots
        idx = jnp.concatenate([idx, jnp.full((k - kk,), n, jnp.int32)])
    return idx, jnp.sum(sub, dtype=jnp.int32) <= k


def for_events(spikes: jax.Array, k: int, work: Any, carry: Any,
               first: tuple[jax.Array, jax.Array] | None = None) -> Any:
    """``carry = work(idx, carry)`` over the indices of the nonzero entries of the 1-D
    ``spikes``, ``k`` at a time, in increasing order (unused slots hold ``len(spikes)``).

    The first batch runs unconditionally; a ``while_loop`` takes the spikes left out (none
    in the common step). Large arrays in ``carry`` are updated in place: passed through a
    ``lax.cond`` instead, XLA:CPU copies them every step. ``first``, where given, is the
    first batch and its flag as ``compact_fit(spikes, k)`` gives them, computed elsewhere.
    Not reverse-differentiable (a ``while_loop``).

    Example:
        >>> import jax.numpy as jnp
        >>> from neurodyn.nn._kernels import for_events
        >>> s = jnp.array([0, 1, 1, 0, 1, 1, 1])
        >>> for_events(s, 2, lambda idx, c: c.at[idx].add(1, mode="drop"), jnp.zeros(7, int)).tolist()
        [0, 1, 1, 0, 1, 1, 1]
    """
    n = spikes.shape[0]
    idx, fits = compact_fit(spikes, k) if first is None else first
    carry = work(idx, carry)

    def body(c: tuple) -> tuple:
        # A batch holds the lowest indices left (in increasing order): after a full batch,
        # the spikes left are those above its last index. No mask is carried.
        last, _, inner = c
        idx, fits = compact_fit(jnp.where(jnp.arange(n) > last, spikes, jnp.zeros((), spikes.dtype)), k)
        return jnp.max(idx), ~fits, work(idx, inner)

    # The loop carries whether spikes are left (not whether all fit): its test is then the
    # carried flag itself, not one more kernel per test.
    return jax.lax.while_loop(lambda c: c[1], body, (jnp.max(idx), ~fits, carry))[2]


def padded_positions(indptr: np.ndarray, width: int, fill: int) -> np.ndarray:
    """``(n_pre, width)`` int32: the CSR position of each entry of the padded target table."""
    n_pre = indptr.shape[0] - 1
    deg = np.diff(indptr)
    out = np.full((n_pre, width), fill, np.int32)
    nnz = int(indptr[-1])
    col = np.arange(nnz) - np.repeat(indptr[:-1], deg)
    out[np.repeat(np.arange(n_pre), deg), col] = np.arange(nnz, dtype=np.int32)
    return out


# -- event-driven propagation of projections ---------------------------------------------------
def _stock_event(p: Any) -> bool:
    from ._projection import Projection
    cls = type(p)
    return (p.mode == "event" and not p.heterogeneous_delay and p.plasticity is None
            and p.pre.spike.ndim == 1 and cls.update is Projection.update
            and cls.propagate is Projection.propagate and cls._event is Projection._event)


def fusable(p: Any) -> bool:
    """Whether projection ``p`` can join a Network's fused table: stock event-driven dynamics,
    a scalar delay and unbatched boolean spikes (summing exact counts makes fused and separate
    propagation agree bit for bit)."""
    return _stock_event(p) and p.pre.spike.dtype == jnp.bool_


def shares_compaction(p: Any) -> bool:
    """Whether ``p`` (not fused) may share one spike compaction with the other projections
    from its presynaptic group: stock event-driven dynamics without delay."""
    return _stock_event(p) and p.delay_steps == 1


def event_inputs(projs: list, sf: jax.Array) -> list[jax.Array]:
    """Event-driven input of several projections from the same presynaptic spikes ``sf`` (1-D):
    one compaction and one branch for all of them."""
    scatters = [p._scatter_fn() for p in projs]
    K = max(p.max_spikes for p in projs)
    if K >= sf.shape[0]:
        return [f(sf, None) for f in scatters]
    idx, vals, fits = compact(sf, K, max(p.n_blocks for p in projs))
    idx = jnp.minimum(idx, sf.shape[0] - 1)  # unused slots (value 0) read a real row
    return list(jax.lax.cond(fits, lambda: tuple(f(vals, idx) for f in scatters),
                             lambda: tuple(f(sf, None) for f in scatters)))


def _source(p: Any) -> tuple[int, int]:
    # the spike vector a fused projection reads: its presynaptic group, delayed by its steps
    return (id(p.pre), p.delay_steps)


def fusion_signature(projs: list) -> tuple:
    """What makes a fused table stale: the projections, their groups and connectivity arrays."""
    # ``targets.committed_value`` is the committed (concrete) array even during a trace:
    # a new connectivity array means the fused table is stale.
    return tuple((id(p), id(p.pre), id(p.targets.committed_value), p.n_post, p.delay_steps, p.homogeneous)
                 for p in projs)


def fusion_digest(projs: list) -> bytes:
    """The fused projections' structure and connectivity contents (host side)."""
    h = hashlib.blake2b(digest_size=16)
    for p in projs:
        t = np.asarray(p.targets.committed_value)
        h.update(repr((id(p), id(p.pre), p.n_post, p.delay_steps, p.homogeneous, t.shape,
                       str(t.dtype))).encode())
        h.update(np.ascontiguousarray(t).tobytes())
    return h.digest()


def _gather_rows(table: jax.Array, idx: jax.Array) -> jax.Array:
    # For a few rows, concatenated dynamic slices beat XLA:CPU's gather (which it
    # also splits across threads, a loss at this size).
    if idx.shape[0] <= _SLAB:
        return jnp.concatenate([jax.lax.dynamic_slice_in_dim(table, idx[j], 1, 0)
                                for j in range(idx.shape[0])])
    return table[idx]


class Fusion:
    """One table for several event-driven projections (built on the host).

    The spike vectors the projections read (a presynaptic group, delayed by a
    projection's steps: one *source* per distinct pair, in order of first
    appearance) are concatenated; row ``i`` of ``table`` lists, for neuron
    ``i`` of that concatenation, its targets in every fused projection, each
    shifted to that projection's slot range in one vector of length ``n_out``
    (the sum of the projections' post sizes). Padding is ``n_out`` (dropped by
    the scatter); the extra last row is all padding, the target of unused
    compaction slots. When some projection has per-connection weights, a
    second table of the same shape holds, for every entry, its position in
    the concatenated weights (scalar-weight projections point at a 1.0, so
    their slots still sum exact counts).
    """

    def __init__(self, projs: list) -> None:
        from .._state import Variable
        self.projs = projs
        self.signature = fusion_signature(projs)
        self.digest = fusion_digest(projs)
        sources: dict[tuple, Any] = {}
        for p in projs:
            sources.setdefault(_source(p), p.pre)
        self.sources = list(sources)
        src_off, off = {}, 0
        for key, g in sources.items():
            src_off[key] = off
            off += int(g.size)
        n_in = off
        self.slots, off = [], 0
        for p in projs:
            self.slots.append((off, p.n_post))
            off += p.n_post
        n_out = self.n_out = off
        self.weighted = any(not p.homogeneous for p in projs)
        # Weight positions: 0 is a 1.0 (scalar weights: counts), then each weighted
        # projection's connections in CSR order.
        w_off, off = [], 1
        for p in projs:
            w_off.append(off)
            off += 0 if p.homogeneous else p.nnz
        # Per source, its projections' (left-packed, ascending) rows side by side,
        # packed left again; slot ranges grow in projection order, so rows stay sorted.
        pos = {k: j for j, k in enumerate(self.sources)}
        cols: list[list] = [[] for _ in self.sources]
        for p, (s0, n_post), w0 in zip(projs, self.slots, w_off):
            cols[pos[_source(p)]].append((p, np.asarray(p.targets.committed_value), s0, n_post, w0))
        deg = []
        for parts in cols:
            deg.append(sum((t < n_post).sum(axis=1) for _, t, _, n_post, _ in parts))
        width = max(1, max(int(d.max(initial=0)) for d in deg))
        table = np.full((n_in + 1, width), n_out, np.int32)
        widx = np.zeros((n_in + 1, width), np.int32) if self.weighted else None
        flat_table = table.reshape(-1)
        for key, parts in zip(self.sources, cols):
            r0 = src_off[key]
            used = np.zeros(int(sources[key].size), np.int64)
            for p, t, s0, n_post, w0 in parts:
                valid = t < n_post
                # flat positions in the table: row-major, as the boolean mask orders entries
                at = np.arange(r0, r0 + t.shape[0], dtype=np.int64) * width + used
                at = at[:, None] + np.arange(t.shape[1], dtype=np.int64)
                at = at[valid]
                flat_table[at] = t[valid] + s0
                if widx is not None and not p.homogeneous:
                    csr = padded_positions(p.conn.csr(p.n_pre, p.n_post)[0], t.shape[1], 0)
                    widx.reshape(-1)[at] = csr[valid] + w0
                used += valid.sum(axis=1)
        self.table = Variable(jax.device_put(table), name="Network.fused_targets")
        self.weight_index = None if widx is None else Variable(jax.device_put(widx),
                                                               name="Network.fused_weight_index")
        self.n_in = n_in
        # Compaction buffers: k1 holds typical steps; k2 is as many spikes as the projections'
        # max_spikes allow. Buffers double from k1 up to 8 x k2; beyond that, all spiking rows
        # are listed. The rows are scattered in slabs, so the buffer size costs little.
        k2 = 0
        for key in self.sources:
            k2 += max(p.max_spikes for p in projs if _source(p) == key)
        self.k2 = min(k2, n_in)
        self.k1 = min(self.k2, max(16, -(-self.k2 // 3)))
        tiers = [self.k1]
        while tiers[-1] < min(n_in, 8 * self.k2):
            nxt = 2 * tiers[-1]
            if tiers[-1] < self.k2 < nxt:
                nxt = self.k2
            tiers.append(min(nxt, n_in))
        # a buffer of all rows is the path of bursts itself
        self.tiers = [k for k in tiers if k < n_in] or [n_in]

    def counts(self, spikes: list[jax.Array]) -> jax.Array:
        """The number (or weighted sum) of presynaptic spikes onto every slot this step."""
        s = spikes[0] if len(spikes) == 1 else jnp.concatenate(spikes)
        table = self.table.value
        n_out, n_in = self.n_out, self.n_in
        zeros = jnp.zeros((n_out,), float_dtype())
        if self.weighted:
            w_cat = jnp.concatenate([jnp.ones((1,), float_dtype())] + [
                jnp.asarray(p._weight(), float_dtype()).reshape(-1) for p in self.projs if not p.homogeneous])
            widx = self.weight_index.value

        def scatter(out: jax.Array, idx: jax.Array) -> jax.Array:
            # unused slots gather the all-padding row: every entry is dropped
            rows = _gather_rows(table, idx)
            if self.weighted:
                return out.at[rows].add(w_cat[_gather_rows(widx, idx)], mode="drop")
            return out.at[rows].add(1.0, mode="drop")

        def full() -> jax.Array:
            # Rows of silent neurons are masked to the padding index: a dropped entry
            # costs a bounds check, an added 0.0 a read-modify-write.
            rows = jnp.where(s[:, None], table[:-1], n_out)
            if self.weighted:
                return zeros.at[rows].add(w_cat[widx[:-1]], mode="drop")
            return zeros.at[rows].add(1.0, mode="drop")

        if self.k1 >= n_in:
            return full()
        S = _SLAB
        sf = lambda: s.astype(float_dtype())  # converted inside the branches that use it

        def slabs(idx: jax.Array, total: jax.Array) -> jax.Array:
            # The spiking rows ``idx`` (increasing, padded with the all-padding row n_in and
            # S more) S at a time: a step costs its spikes' rows rounded up to S, not a
            # tier's. Same order of additions as one scatter over all rows.
            idx = jnp.concatenate([idx, jnp.full((S,), n_in, jnp.int32)])

            def body(c: tuple) -> tuple:
                j, out = c
                return j + 1, scatter(out, jax.lax.dynamic_slice_in_dim(idx, j * S, S))

            return jax.lax.while_loop(lambda c: c[0] * S < total, body, (jnp.int32(0), zeros))[1]

        # More than S spikes: compaction into the smallest tier that holds every spike (padded
        # to the largest), then the loop over its rows; a burst beyond the largest tier takes
        # all spiking rows.
        K = self.tiers[-1]
        pad = lambda idx: jnp.concatenate([idx, jnp.full((K - idx.shape[0],), n_in, jnp.int32)])
        tiers = [lambda k=k: pad(compact(sf(), k)[0]) for k in self.tiers]

        def tiered(total: jax.Array) -> jax.Array:
            which = jnp.sum(total > jnp.asarray(self.tiers[:-1], jnp.int32), dtype=jnp.int32)
            return slabs(jax.lax.switch(which, tiers), total)

        def every(total: jax.Array) -> jax.Array:
            return slabs(jnp.nonzero(s, size=n_in, fill_value=n_in)[0].astype(jnp.int32), total)

        if self.k1 <= S:
            # Typical steps have up to S spikes (by the projections' max_spikes): one scatter,
            # and the compaction itself tells whether all spikes fit, so the common step
            # needs no count of them.
            idx, fits = compact_fit(s, S)

            def more() -> jax.Array:
                total = jnp.sum(s, dtype=jnp.int32)
                return jax.lax.cond(total > K, every, tiered, total)

            return jax.lax.cond(fits, lambda: scatter(zeros, idx), more)
        # Typical steps have more: count first, then up to S spikes in one scatter, or the tiers.
        total = jnp.sum(s, dtype=jnp.int32)
        branches = [lambda: scatter(zeros, compact(sf(), S)[0]), lambda: tiered(total), lambda: every(total)]
        return jax.lax.switch((total > S).astype(jnp.int32) + (total > K).astype(jnp.int32), branches)

    def inputs(self) -> list[jax.Array]:
        """Each fused projection's synaptic input (as its ``propagate`` gives it). Advances
        the delayed projections' spike histories (once per step)."""
        arriving: dict[tuple, jax.Array] = {}
        for p in self.projs:
            arriving.setdefault(_source(p), p._delayed_spikes())
        self._arrived = [arriving[k] for k in self.sources]
        c = self.counts(self._arrived)
        return [c[s0:s0 + n] if not p.homogeneous else p._weight() * c[s0:s0 + n]
                for p, (s0, n) in zip(self.projs, self.slots)]

    def first_spikes(self, group: Any, delay_steps: int, k: int) -> tuple[jax.Array, jax.Array] | None:
        """For another reader of the spikes of ``group`` delayed by ``delay_steps`` (a plastic
        projection), in the step of the last ``inputs()``: ``compact_fit(those spikes, k)``, taken
        from the compaction that ``counts()`` starts with (XLA merges the identical operations,
        so the spikes are compacted once). None where ``counts()`` does not start with one, or
        where that source is not the first (its spikes are then not the compaction's first).

        The first ``k`` of the first ``_SLAB`` spikes of the concatenation that are below
        ``group.size`` are those of the group, and they are all of them exactly when entry ``k``
        is not: so the indices and the flag are those of ``compact_fit(spikes, k)``."""
        arrived = getattr(self, "_arrived", None)
        if (arrived is None or not 0 < k < _SLAB or self.k1 > _SLAB or self.k1 >= self.n_in
                or self.sources[0] != (id(group), delay_steps)):
            return None
        s = arrived[0] if len(arrived) == 1 else jnp.concatenate(arrived)
        idx, _ = compact_fit(s, _SLAB)
        n = int(group.size)
        return jnp.minimum(idx[:k], n), idx[k] >= n

    def forget(self) -> None:
        """Drop the spikes kept by ``inputs()`` for :meth:`first_spikes` (at the end of the step)."""
        self._arrived = None
