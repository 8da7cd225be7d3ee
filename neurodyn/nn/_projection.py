"""Projections (spikes -> synaptic currents) and the Network container.

A :class:`Projection` reads the presynaptic ``spike`` Variable (the spikes of
the previous step, because a :class:`Network` updates projections before
neuron groups), propagates them through the connectivity, feeds the result to
its synapse model and registers the synapse's output current with the
postsynaptic group once, at construction (``post.add_input``).

Propagation is event-driven (only spiking presynaptic neurons cost work) or a
dense matrix product; ``mode='auto'`` picks the dense product for small or
dense connectivity. Both give the same numbers for a homogeneous weight (spike
counts are summed exactly, then multiplied by the weight).
"""

from __future__ import annotations

import hashlib
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from .._environ import get_dt
from .._module import Module
from .._state import CTX, TrainVar, Variable
from ._connectivity import Connector
from ._neurons import Group, NeuronGroup
from ._plasticity import attach as _attach_plasticity, plastic_update as _plastic_update
from ._synapses import Synapse, SynOut

__all__ = ["Projection", "Network"]

# Connectivity this small (pre x post) is always propagated densely.
_DENSE_MAX_ELEMS = 1 << 16
# ...and denser than this (if the matrix is not huge) too.
_DENSE_MIN_DENSITY = 0.2
_DENSE_LIMIT = 1 << 26


_BLOCK = 32


def _compact(sf: jax.Array, k: int, n_blocks: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Up to ``k`` nonzero entries of ``sf``: ``(values, indices, all_fit)``.

    Two-stage ``lax.top_k`` (much cheaper than one top_k over all of ``sf``
    or ``jnp.nonzero(size=k)`` on XLA:CPU): first pick the ``n_blocks``
    blocks of 32 neurons that contain a spike, then the spikes within them.
    Unused slots have the value 0 (they contribute nothing). ``all_fit`` is
    False when some spike did not fit; callers then take an exact path.
    """
    n = sf.shape[0]
    nb = -(-n // _BLOCK)
    if nb * _BLOCK != n:
        sf = jnp.pad(sf, (0, nb * _BLOCK - n))
    blocks = sf.reshape(nb, _BLOCK)
    nonzero = blocks != 0
    per_block = jnp.sum(nonzero, axis=1, dtype=jnp.int32)
    b = min(n_blocks, nb)
    bvals, bidx = jax.lax.top_k((per_block > 0).astype(jnp.float32), b)
    sub = blocks[bidx]  # (b, 32); blocks without spikes are all zero anyway
    kk = min(k, b * _BLOCK)
    vals, j = jax.lax.top_k(jnp.abs(sub).reshape(-1), kk)
    idx = bidx[j // _BLOCK] * _BLOCK + j % _BLOCK
    vals = sub.reshape(-1)[j]
    idx = jnp.minimum(idx, n - 1)  # padding rows (value 0) map to a real row
    fits = (jnp.sum(per_block) <= kk) & (jnp.sum(per_block > 0) <= b)
    return vals, idx.astype(jnp.int32), fits


def _event_many(projs: list["Projection"], sf: jax.Array) -> list[jax.Array]:
    """Event-driven input of several projections from the same presynaptic spikes
    ``sf`` (1-D): one compaction and one branch for all of them."""
    scatters = [p._scatter_fn() for p in projs]
    K = max(p.max_spikes for p in projs)
    if K >= sf.shape[0]:
        return [f(sf, None) for f in scatters]
    vals, idx, fits = _compact(sf, K, max(p.n_blocks for p in projs))
    return list(jax.lax.cond(fits, lambda: tuple(f(vals, idx) for f in scatters),
                             lambda: tuple(f(sf, None) for f in scatters)))


class Projection(Module):
    """Spikes of ``pre`` -> ``conn`` x ``weight`` -> ``syn`` -> ``out`` -> current into ``post``.

    Each step (``update()``): take ``pre.spike`` (optionally delayed), compute
    the input of every postsynaptic neuron (for a scalar weight ``w``:
    ``w * count`` with ``count`` the number of presynaptic spikes onto it),
    then ``syn.update(input)``. The current ``out(syn.g, post.V)`` is
    registered with ``post.add_input`` and summed by ``post`` in its own update.

    Args:
        pre: presynaptic group (anything with ``size`` and a ``spike`` Variable).
        post: postsynaptic :class:`NeuronGroup`.
        conn: a :class:`Connector` (e.g. ``nn.FixedProb(0.02)``).
        weight: a scalar (homogeneous), or one value per connection in CSR order
            (shape ``(nnz,)``); may be a ``TrainVar``.
        syn: the synapse model, of size ``post.size`` (e.g. ``nn.Expon(post.size, 5.)``).
        out: the output, e.g. ``nn.COBA(E=0.)`` or ``nn.CUBA()``.
        delay: a transmission delay in ms (rounded to steps of ``nd.get_dt()``), or None.
        mode: ``'event'``, ``'dense'`` or ``'auto'``.
        max_spikes: size of the buffer of spiking presynaptic neurons per step in
            event mode (default: 1% of ``pre.size``, at least 16); steps with
            more spikes take an exact but slower path.
        name: the name of the registered input on ``post``.
        plasticity: a plasticity rule (e.g. ``nn.STDP()``; see ``nn.Plasticity``), or
            None. The projection then holds one weight per synapse in the Variable
            ``weight`` (a number is broadcast) and takes its own event-driven path
            (``mode`` 'auto' means 'event'; 'dense' is refused). Delays are axonal.

    Example:
        >>> E = nn.LIF(3200, V_rest=-60., V_reset=-60., V_th=-50., tau=20., tau_ref=5.)
        >>> E2E = nn.Projection(E, E, nn.FixedProb(0.02), 0.6, nn.Expon(3200, tau=5.), nn.COBA(E=0.))
    """

    def __init__(self, pre: Any, post: NeuronGroup, conn: Connector, weight: Any, syn: Synapse,
                 out: SynOut, delay: float | None = None, mode: str = "auto",
                 max_spikes: int | None = None, n_blocks: int | None = None,
                 name: str | None = None, plasticity: Any = None) -> None:
        if not (hasattr(pre, "size") and isinstance(getattr(pre, "spike", None), Variable)):
            raise TypeError(f"Projection: pre must be a group with `size` and a `spike` Variable, "
                            f"got {type(pre).__name__}")
        if not isinstance(post, NeuronGroup):
            raise TypeError(f"Projection: post must be a NeuronGroup (with add_input), got {type(post).__name__}")
        if not isinstance(conn, Connector):
            raise TypeError(f"Projection: conn must be a Connector (e.g. nn.FixedProb(0.1)), got {type(conn).__name__}")
        if not isinstance(syn, Synapse):
            raise TypeError(f"Projection: syn must be a Synapse (e.g. nn.Expon(post.size, 5.)), got {type(syn).__name__}")
        if syn.size != post.size:
            raise ValueError(f"Projection: syn has size {syn.size} but post has size {post.size}")
        if not callable(out):
            raise TypeError(f"Projection: out must be a synaptic output (nn.CUBA(), nn.COBA(E)), got {type(out).__name__}")
        if mode not in ("auto", "event", "dense"):
            raise ValueError(f"Projection: mode must be 'auto', 'event' or 'dense', got {mode!r}")
        requested_max_spikes = max_spikes
        if plasticity is not None and mode == "dense":
            raise ValueError("Projection: a plastic projection propagates event-driven; got mode='dense'")
        self.pre, self.post, self.conn, self.syn, self.out = pre, post, conn, syn, out
        n_pre, n_post = int(pre.size), int(post.size)
        self.n_pre, self.n_post = n_pre, n_post
        indptr, indices = conn.csr(n_pre, n_post)
        nnz = int(indptr[-1])
        self.nnz = nnz

        w_shape = tuple(np.shape(weight.value if isinstance(weight, Variable) else weight))
        if w_shape not in ((), (nnz,)):
            raise ValueError(f"Projection: weight must be a scalar or have one value per connection "
                             f"(shape ({nnz},)), got shape {w_shape}")
        self.homogeneous = w_shape == ()
        if isinstance(weight, Variable):
            self.weight = weight
        else:
            self.weight = weight if self.homogeneous else jnp.asarray(weight, jnp.float32)

        if mode == "auto" and plasticity is not None:
            mode = "event"
        if mode == "auto":
            size = n_pre * n_post
            dense = size <= _DENSE_MAX_ELEMS or (size <= _DENSE_LIMIT and nnz >= _DENSE_MIN_DENSITY * size)
            mode = "dense" if dense else "event"
        self.mode = mode
        pre_ids = np.repeat(np.arange(n_pre, dtype=np.int32), np.diff(indptr))
        # Held in Variables (not compile-time constants) so large index arrays are
        # passed to compiled code instead of being embedded in it.
        if mode == "dense":
            mat = np.zeros((n_pre, n_post), np.float32)
            mat[pre_ids, indices] = 1.0
            self.conn_matrix = Variable(jnp.asarray(mat))
            self._pos = None if self.homogeneous else (jnp.asarray(pre_ids), jnp.asarray(indices))
        else:
            targets = conn.padded(n_pre, n_post)
            self.targets = Variable(jnp.asarray(targets))
            deg = np.diff(indptr)
            cols = np.arange(nnz) - np.repeat(indptr[:-1], deg)
            self._pos = None if self.homogeneous else (jnp.asarray(pre_ids), jnp.asarray(cols.astype(np.int32)))
            self.k_max = int(targets.shape[1])
            if max_spikes is None:
                max_spikes = max(16, math.ceil(0.01 * n_pre))
            self.max_spikes = int(min(max(1, max_spikes), n_pre))
            if n_blocks is None:
                n_blocks = max(8, self.max_spikes // 2)
            self.n_blocks = int(n_blocks)

        self.delay = None if delay is None else float(delay)
        self._setup_delay(None)
        self.plasticity = plasticity
        if plasticity is not None:
            _attach_plasticity(self, plasticity, requested_max_spikes)

        if name is None:
            i = len(post.current_inputs)
            while f"proj{i}" in post.current_inputs:
                i += 1
            name = f"proj{i}"
        self.name = name
        post.add_input(name, self._current)

    # -- state --------------------------------------------------------------------
    def _setup_delay(self, batch_size: int | None) -> None:
        dt = get_dt()
        self._dt = dt
        steps = 0 if self.delay is None else int(round(self.delay / dt))
        if self.delay is not None and self.delay < 0:
            raise ValueError(f"Projection: delay must be >= 0 ms, got {self.delay}")
        self.delay_steps = steps
        if steps > 0:
            shape = (steps + 1, self.n_pre) if batch_size is None else (steps + 1, batch_size, self.n_pre)
            dtype = self.pre.spike.dtype
            buf = jnp.zeros(shape, dtype)
            if isinstance(self.__dict__.get("spike_buffer"), Variable):
                self.spike_buffer.reset_value(buf)
                self.buffer_pos.reset_value(jnp.zeros((), jnp.int32))
            else:
                self.spike_buffer = Variable(buf)
                self.buffer_pos = Variable(jnp.zeros((), jnp.int32))

    def reset_state(self, batch_size: int | None = None) -> None:
        """Reset the synapse and the delay buffer (not ``pre`` / ``post``)."""
        if self.plasticity is not None:
            self.plasticity.reset_state(batch_size)  # first: it refuses a batch
        self.syn.reset_state(batch_size)
        self._setup_delay(batch_size)

    # -- dynamics -------------------------------------------------------------------
    def _current(self, V: Any) -> jax.Array:
        return self.out(self.syn.g.value, V)

    def _weight(self) -> Any:
        w = self.weight
        return w.value if isinstance(w, Variable) else w

    def _delayed_spikes(self) -> jax.Array:
        spikes = self.pre.spike.value
        if self.delay_steps == 0:
            return spikes
        if get_dt() != self._dt:
            raise RuntimeError(
                f"Projection '{self.name}': its delay buffer was built for dt={self._dt} ms but "
                f"dt is now {get_dt()} ms; call reset_state() after changing dt")
        pos = self.buffer_pos.value
        L = self.delay_steps + 1
        buf = self.spike_buffer.value.at[pos].set(spikes.astype(self.spike_buffer.dtype))
        self.spike_buffer.value = buf
        self.buffer_pos.value = (pos + 1) % L
        return buf[(pos + 1) % L]

    def propagate(self, spikes: Any) -> jax.Array:
        """The synaptic input to every postsynaptic neuron for presynaptic ``spikes``."""
        s = jnp.asarray(spikes)
        sf = s.astype(jnp.float32)
        if self.mode == "dense":
            return self._dense(sf)
        if sf.ndim == 1:
            return self._event(sf)
        return jax.vmap(self._event)(sf)

    def _dense(self, sf: jax.Array) -> jax.Array:
        hp = jax.lax.Precision.HIGHEST
        if self.homogeneous:
            return self._weight() * jnp.dot(sf, self.conn_matrix.value, precision=hp)
        rows, cols = self._pos
        W = jnp.zeros((self.n_pre, self.n_post), jnp.float32).at[rows, cols].set(self._weight())
        return jnp.dot(sf, W, precision=hp)

    def _scatter_fn(self) -> Callable[[jax.Array, Any], jax.Array]:
        """``scatter(vals, idx)``: the weighted input from rows ``idx`` (None: all rows)
        with spike values ``vals``. Reads the Variables now, outside any branch."""
        targets = self.targets.value
        n_post = self.n_post
        w = self._weight()
        if self.homogeneous:
            w_pad = None
        else:
            rows, cols = self._pos
            w_pad = jnp.zeros(targets.shape, jnp.float32).at[rows, cols].set(w)

        def scatter(vals: jax.Array, idx: jax.Array | None) -> jax.Array:
            tg = targets if idx is None else targets[idx]
            contrib = jnp.broadcast_to(vals[:, None], tg.shape)
            if w_pad is not None:
                contrib = contrib * (w_pad if idx is None else w_pad[idx])
            # Padding slots hold n_post, out of range: mode='drop' discards them.
            out = jnp.zeros((n_post,), jnp.float32).at[tg].add(contrib, mode="drop")
            # A scalar weight multiplies exact spike counts: order independent.
            return out if w_pad is not None else w * out

        return scatter

    def _event(self, sf: jax.Array) -> jax.Array:
        return _event_many([self], sf)[0]

    def update(self) -> jax.Array:
        """Propagate this step's (delayed) presynaptic spikes and update the synapse."""
        if self.plasticity is not None:
            return _plastic_update(self)
        return self.syn.update(self.propagate(self._delayed_spikes()))

    def __repr__(self) -> str:
        return (f"Projection({type(self.pre).__name__}({self.n_pre}) -> {type(self.post).__name__}"
                f"({self.n_post}), {self.conn!r}, nnz={self.nnz}, mode={self.mode!r}, "
                f"syn={self.syn!r}, out={self.out!r}, delay_steps={self.delay_steps})")


def _fusable(p: Projection) -> bool:
    """Whether ``p`` can join a Network's fused event-driven propagation."""
    cls = type(p)
    # Boolean spikes only: summing exact counts makes the result independent of
    # the scatter order, so fused and separate propagation agree bit for bit.
    return (p.mode == "event" and p.delay_steps == 0 and p.homogeneous and p.plasticity is None
            and p.pre.spike.ndim == 1 and p.pre.spike.dtype == jnp.bool_
            and cls.update is Projection.update and cls.propagate is Projection.propagate
            and cls._event is Projection._event)


def _signature(projs: list[Projection]) -> tuple:
    # ``targets._value`` is the committed (concrete) array even during a trace:
    # a new connectivity array means the fused table is stale.
    return tuple((id(p), id(p.pre), id(p.targets._value), p.n_post) for p in projs)


def _digest(projs: list[Projection]) -> bytes:
    """The fused projections' structure and connectivity contents (host side)."""
    h = hashlib.blake2b(digest_size=16)
    for p in projs:
        t = np.asarray(p.targets._value)
        h.update(repr((id(p), id(p.pre), p.n_post, t.shape, str(t.dtype))).encode())
        h.update(np.ascontiguousarray(t).tobytes())
    return h.digest()


def _gather_rows(table: jax.Array, idx: jax.Array) -> jax.Array:
    # For a few rows, concatenated dynamic slices beat XLA:CPU's gather (which it
    # also splits across threads, a loss at this size).
    if idx.shape[0] <= 64:
        return jnp.concatenate([jax.lax.dynamic_slice_in_dim(table, idx[j], 1, 0)
                                for j in range(idx.shape[0])])
    return table[idx]


def _compact_to_rows(sf: jax.Array, k: int) -> jax.Array:
    """The indices of up to ``k`` nonzero entries of ``sf``; unused slots point at
    row ``len(sf)`` (the table's empty row). Two-stage top_k as in
    :func:`_compact`; complete whenever at most ``k`` entries are nonzero
    (k spikes occupy at most k blocks), which the caller checks."""
    n = sf.shape[0]
    nb = -(-n // _BLOCK)
    if nb * _BLOCK != n:
        sf = jnp.pad(sf, (0, nb * _BLOCK - n))
    blocks = sf.reshape(nb, _BLOCK)
    b = min(k, nb)
    _, bidx = jax.lax.top_k(jnp.any(blocks != 0, axis=1).astype(jnp.float32), b)
    key, j = jax.lax.top_k(blocks[bidx].reshape(-1), min(k, b * _BLOCK))
    return jnp.where(key > 0, bidx[j // _BLOCK] * _BLOCK + j % _BLOCK, n).astype(jnp.int32)


class _Fusion:
    """One table for several event-driven projections (built on the host).

    The spikes of all their presynaptic groups are concatenated (group order of
    first appearance); row ``i`` of ``table`` lists, for presynaptic neuron
    ``i`` of that concatenation, its targets in every fused projection, each
    shifted to that projection's slot range in one count vector of length
    ``n_out`` (the sum of the projections' post sizes). Padding is ``n_out``
    (dropped by the scatter); the extra last row is all padding, the target of
    unused compaction slots.
    """

    def __init__(self, projs: list[Projection]) -> None:
        self.projs = projs
        self.signature = _signature(projs)
        self.digest = _digest(projs)
        pres: dict[int, Any] = {}
        for p in projs:
            pres.setdefault(id(p.pre), p.pre)
        self.pres = list(pres.values())
        pre_off, off = {}, 0
        for g in self.pres:
            pre_off[id(g)] = off
            off += int(g.size)
        n_in = off
        self.slots, off = [], 0
        for p in projs:
            self.slots.append((off, p.n_post))
            off += p.n_post
        n_out = self.n_out = off
        # Per pre group, its projections' (left-packed, ascending) rows side by side,
        # packed left again; slot ranges grow in projection order, so rows stay sorted.
        pos = {i: j for j, i in enumerate(pres)}
        cols: list[list] = [[] for _ in self.pres]
        for p, (s0, n_post) in zip(projs, self.slots):
            cols[pos[id(p.pre)]].append((np.asarray(p.targets._value), s0, n_post))
        deg = []
        for parts in cols:
            deg.append(sum((t < n_post).sum(axis=1) for t, _, n_post in parts))
        width = max(1, max(int(d.max(initial=0)) for d in deg))
        table = np.full((n_in + 1, width), n_out, np.int32)
        for g, parts, d in zip(self.pres, cols, deg):
            r0 = pre_off[id(g)]
            used = np.zeros(int(g.size), np.int64)
            for t, s0, n_post in parts:
                valid = t < n_post
                rows, c = np.nonzero(valid)
                table[r0 + rows, used[rows] + c] = t[rows, c] + s0
                used += valid.sum(axis=1)
        self.table = Variable(jnp.asarray(table), name="Network.fused_targets")
        self.n_in = n_in
        # Tier 1 handles typical steps cheaply; tier 2 holds as many spikes as the
        # projections' max_spikes allow; beyond that, the exact full-table path.
        k2 = 0
        for g in self.pres:
            k2 += max(p.max_spikes for p in projs if p.pre is g)
        self.k2 = min(k2, n_in)
        self.k1 = min(self.k2, max(16, -(-self.k2 // 3)))

    def counts(self) -> jax.Array:
        """The number of presynaptic spikes onto every slot this step (float32)."""
        spikes = [g.spike.value for g in self.pres]
        s = spikes[0] if len(spikes) == 1 else jnp.concatenate(spikes)
        sf = s.astype(jnp.float32)
        table = self.table.value
        n_out = self.n_out
        zeros = jnp.zeros((n_out,), jnp.float32)

        def scatter(idx: jax.Array) -> jax.Array:
            # unused slots gather the all-padding row: every entry is dropped
            return zeros.at[_gather_rows(table, idx)].add(1.0, mode="drop")

        def full() -> jax.Array:
            # Rows of silent neurons are masked to the padding index: a dropped entry
            # costs a bounds check, an added 0.0 a read-modify-write.
            rows = jnp.where(s[:, None], table[:-1], n_out)
            return zeros.at[rows].add(1.0, mode="drop")

        if self.k1 >= self.n_in:
            return full()
        idx = _compact_to_rows(sf, self.k1)
        total = jnp.sum(s, dtype=jnp.int32)
        branches = [lambda: scatter(idx)]
        if self.k2 > self.k1:
            branches.append(lambda: scatter(_compact_to_rows(sf, self.k2)))
        branches.append(full)
        which = (total > self.k1).astype(jnp.int32)
        if len(branches) == 3:
            which = which + (total > self.k2).astype(jnp.int32)
        return jax.lax.switch(which, branches)

    def inputs(self) -> list[jax.Array]:
        """Each fused projection's synaptic input ``w * count`` (as ``propagate`` gives it)."""
        c = self.counts()
        return [p._weight() * c[s0:s0 + n] for p, (s0, n) in zip(self.projs, self.slots)]


class Network(Module):
    """A container of groups and projections with the standard update order.

    ``update()`` first updates every :class:`Projection` among the direct
    attributes (in attribute order), then every group (neuron groups, Poisson
    groups: instances of ``nn.Group``), in attribute order. Projections thus
    see the spikes of the previous step, and every group sees the synaptic
    input of this step. Other child modules are not updated automatically;
    override ``update()`` for any other order.

    Fusion: all event-mode projections with a scalar weight, no delay, unbatched
    boolean spikes and the stock ``Projection`` dynamics are propagated together, with
    one spike compaction over their concatenated presynaptic groups, one row
    gather and one scatter-add into a single count vector, from a combined
    target table the Network builds on the host when a projection is assigned
    (and again in ``reset_state()`` or an eager ``update()`` if the projections'
    connectivity arrays were replaced since). Each projection then receives
    ``weight * count`` exactly as unfused, so results are bit-identical. Steps
    with more than a third of the projections' summed ``max_spikes`` (at least
    16) take a second, larger buffer; more than the sum takes the exact
    full-table path. Other projections (dense, delayed, per-synapse weights,
    float or batched spikes, subclasses overriding the dynamics), and all of them when the table
    is stale inside compiled code, take the per-projection path, where those
    without delay that share a presynaptic group still share a compaction. The
    table sits in a hidden Variable: it is not part of ``vars()``, state dicts
    or checkpoints, and doubles the memory of the fused connectivity.

    Modules may be given as keyword arguments or set as attributes in a
    subclass's ``__init__``.

    Example:
        >>> E = nn.LIF(100); I = nn.LIF(25)
        >>> net = nn.Network(E=E, I=I, E2I=nn.Projection(E, I, nn.FixedProb(0.1), 1.,
        ...                                              nn.Expon(25, 5.), nn.CUBA()))
        >>> step = nd.jit(net)
    """

    #: set False (on the class or an instance) to propagate every projection separately
    fuse: bool = True

    def __init__(self, **modules: Any) -> None:
        for name, m in modules.items():
            setattr(self, name, m)

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if isinstance(value, Projection) or name == "fuse":
            self._refuse()

    def __delattr__(self, name: str) -> None:
        was = isinstance(self.__dict__.get(name), Projection)
        super().__delattr__(name)
        if was:
            self._refuse()

    def _fusable(self) -> list[Projection]:
        if not self.fuse:
            return []
        return [p for p in self.projections().values() if _fusable(p)]

    def _refuse(self) -> None:
        """(Re)build the fused table for the current projections (outside compiled code)."""
        if CTX.frames:
            return
        projs = self._fusable()
        if any(isinstance(p.targets._value, jax.core.Tracer) for p in projs):
            return  # a module rebuilt inside a raw JAX transformation (nd.graph.merge)
        old = self.__dict__.get("_fusion")
        signature = _signature(projs)
        if old is not None and old.signature == signature:
            return
        if old is not None and old.digest == _digest(projs):
            # the same connectivity on new arrays (placed on a mesh, reloaded): keep the table,
            # and the compiled code that uses it
            old.signature = signature
            return
        # A plain attribute (not hidden): replacing it makes compiled code re-trace.
        super().__setattr__("_fusion", _Fusion(projs) if projs else None)

    def _current_fusion(self, projs: list[Projection]) -> "_Fusion | None":
        fusion = self.__dict__.get("_fusion")
        if fusion is None or fusion.signature != _signature(projs):
            self._refuse()  # no-op inside compiled code: the unfused path is exact too
            fusion = self.__dict__.get("_fusion")
        return fusion if fusion is not None and fusion.signature == _signature(projs) else None

    def reset_state(self, batch_size: int | None = None) -> None:
        super().reset_state(batch_size)
        self._refuse()

    def _state_replaced(self) -> None:
        # new connectivity arrays (a loaded checkpoint, placement on a mesh): keep the table if
        # their contents are the same, rebuild it otherwise
        self._refuse()

    def projections(self) -> dict[str, Projection]:
        """The direct child projections, in update order."""
        return {k: v for k, v in self.children().items() if isinstance(v, Projection)}

    def groups(self) -> dict[str, Group]:
        """The direct child groups, in update order."""
        return {k: v for k, v in self.children().items() if isinstance(v, Group)}

    def update(self) -> None:
        """One step: all projections, then all groups."""
        children = self.children()
        projs = [m for m in children.values() if isinstance(m, Projection)]
        inputs: dict[int, jax.Array] = {}
        fusion = self._current_fusion(self._fusable())
        if fusion is not None:
            for p, x in zip(fusion.projs, fusion.inputs()):
                inputs[id(p)] = x
        # Remaining event-driven projections without delay that share a presynaptic
        # group share one spike compaction and one branch (same numbers, fewer operations).
        shared: dict[int, list[Projection]] = {}
        for p in projs:
            if (id(p) not in inputs and p.mode == "event" and p.delay_steps == 0 and p.plasticity is None
                    and p.pre.spike.ndim == 1 and type(p).update is Projection.update
                    and type(p).propagate is Projection.propagate):
                shared.setdefault(id(p.pre), []).append(p)
        for peers in shared.values():
            if len(peers) > 1:
                sf = peers[0].pre.spike.value.astype(jnp.float32)
                for q, x in zip(peers, _event_many(peers, sf)):
                    inputs[id(q)] = x
        # Synapses update in attribute order (two projections may share one).
        for p in projs:
            if id(p) in inputs:
                p.syn.update(inputs[id(p)])
            else:
                p.update()
        for m in children.values():
            if isinstance(m, Group):
                m.update()
