"""Projections (spikes -> synaptic currents) and the Network container.

A :class:`Projection` reads the presynaptic ``spike`` Variable (the spikes of
the previous step, because a :class:`Network` updates projections before
neuron groups), propagates them through the connectivity, feeds the result to
its synapse model and registers the synapse's output current with the
postsynaptic group once, at construction (``post.add_input``).

Delays: a spike emitted by ``pre`` at step ``t`` reaches the synapses at step
``t + D``, with ``D >= 1`` steps. ``delay=None`` is the minimal transmission,
one step (the projection reads the spikes of the previous step);
``delay=d`` ms gives ``D = floor(d / dt + 0.5)`` (rounded half up, as in
Brian2 and NEST), so a spike emitted at time ``t_s`` arrives at ``t_s + d``.
A delay that rounds to fewer than one step (below ``dt / 2``, including 0) is
an error. ``delay`` may also be one value per connection or a distribution
(per-synapse delays), see :class:`Projection`.

Propagation is event-driven (only spiking presynaptic neurons cost work) or a
dense matrix product; ``mode='auto'`` picks the dense product for small or
dense connectivity. Both give the same numbers for a homogeneous weight (spike
counts are summed exactly, then multiplied by the weight).
"""

from __future__ import annotations

import functools
import hashlib
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from .._environ import float_dtype, get_dt, half_up_steps
from .._module import Module
from .._state import CTX, TrainVar, Variable
from ._connectivity import Connector
from ._neurons import Group, NeuronGroup, init_value, reset_var
from ._plasticity import attach as _attach_plasticity, plastic_update as _plastic_update
from ._synapses import Synapse, SynOut

__all__ = ["Projection", "Network", "delay_steps"]

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


# Steps within this distance below a half are rounded up: decimal delays such as
# 0.25 ms at dt = 0.1 ms (2.4999999999999996 steps in binary) round like their decimal value.
_HALF_UP_TOL = 1e-4


def delay_steps(delay: Any, dt: float) -> np.ndarray:
    """Delays in ms -> whole steps, rounded half up: ``floor(delay / dt + 0.5)``.

    This is the rounding of Brian2 and NEST (0.25 ms at dt = 0.1 ms is 3 steps).

    Example:
        >>> delay_steps([0.05, 0.25, 1.5], 0.1)
        array([1, 3, 15])
    """
    return half_up_steps(delay, dt, _HALF_UP_TOL)


def _per_connection(value: Any, nnz: int, what: str, name: str) -> Any:
    """A scalar, one value per connection (shape ``(nnz,)``), a Variable of either shape, or an
    initializer (drawn once, for ``(nnz,)``)."""
    if callable(value) and not isinstance(value, Variable):
        value = init_value(value, (nnz,), float_dtype(), what=f"{what}: {name} initializer")
    shape = tuple(np.shape(value.value if isinstance(value, Variable) else value))
    if shape not in ((), (nnz,)):
        raise ValueError(f"{what}: {name} must be a scalar, have one value per connection "
                         f"(shape ({nnz},), CSR order) or be an initializer, got shape {shape}")
    return value


def _padded_positions(indptr: np.ndarray, width: int, fill: int) -> np.ndarray:
    """``(n_pre, width)`` int32: the CSR position of each entry of the padded target table."""
    n_pre = indptr.shape[0] - 1
    deg = np.diff(indptr)
    out = np.full((n_pre, width), fill, np.int32)
    nnz = int(indptr[-1])
    col = np.arange(nnz) - np.repeat(indptr[:-1], deg)
    out[np.repeat(np.arange(n_pre), deg), col] = np.arange(nnz, dtype=np.int32)
    return out



class Projection(Module):
    """Spikes of ``pre`` -> ``conn`` x ``weight`` -> ``syn`` -> ``out`` -> current into ``post``.

    Each step (``update()``): take the presynaptic spikes that arrive at the
    synapses this step (emitted ``delay`` earlier), compute the input of every
    postsynaptic neuron (for a scalar weight ``w``: ``w * count`` with
    ``count`` the number of presynaptic spikes onto it), then
    ``syn.update(input)``. The current ``out(syn.g, post.V)`` is registered
    with ``post.add_input`` and summed by ``post`` in its own update.

    Delays: a spike emitted at step ``t`` is delivered at step ``t + D``,
    ``D >= 1``. ``delay=None`` is one step (``D = 1``); ``delay=d`` ms is
    ``D = floor(d / dt + 0.5)`` steps (half up, as in Brian2 and NEST), and a
    delay giving ``D < 1`` (below half a step, or 0) is an error. A scalar
    delay keeps the last ``D - 1`` presynaptic spike vectors (boolean spikes:
    as bits, ``spike_history``, ``(pre.size, ceil(D / 32))`` uint32;
    float spikes: ``spike_buffer``, ``(pre.size, D - 1)``). Per-synapse delays (one
    value per connection, in CSR order like the weights, or a distribution
    such as ``nn.TruncatedNormal(1.5, 0.5, low=0.1)``, drawn once at
    construction) add each spike, at its emission, into a ring buffer of the
    postsynaptic inputs of the next ``max(D)`` steps (``delay_buffer``, shape
    ``(max(D), post.size)``), so every spike arrives exactly at its own rounded
    step; memory is ``nnz`` offsets plus ``max(D) x post.size``. Per-synapse
    delays need event mode and unbatched state.

    Args:
        pre: presynaptic group (anything with ``size`` and a ``spike`` Variable).
        post: postsynaptic :class:`NeuronGroup`.
        conn: a :class:`Connector` (e.g. ``nn.FixedProb(0.02)``).
        weight: a scalar (homogeneous), one value per connection in CSR order
            (shape ``(nnz,)``, may be a ``TrainVar``), or an initializer drawn
            once per connection (``nn.Normal``, ``nn.TruncatedNormal``, ...).
        syn: the synapse model, of size ``post.size`` (e.g. ``nn.Expon(post.size, 5.)``).
        out: the output, e.g. ``nn.COBA(E=0.)`` or ``nn.CUBA()``.
        delay: ``None`` (one step), a delay in ms, one delay per connection
            (shape ``(nnz,)``) or an initializer drawing them (in ms).
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
        >>> E2E = nn.Projection(E, E, nn.FixedProb(0.02), 0.6, nn.Expon(3200, tau=5.), nn.COBA(E=0.),
        ...                     delay=1.5)   # 15 steps at dt = 0.1 ms
    """

    def __init__(self, pre: Any, post: NeuronGroup, conn: Connector, weight: Any, syn: Synapse,
                 out: SynOut, delay: Any = None, mode: str = "auto",
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
        if name is None:
            i = len(post.current_inputs)
            while f"proj{i}" in post.current_inputs:
                i += 1
            name = f"proj{i}"
        self.name = name
        what = (f"Projection '{name}' ({type(pre).__name__}({int(pre.size)}) -> "
                f"{type(post).__name__}({int(post.size)}))")
        if plasticity is not None and mode == "dense":
            raise ValueError(f"{what}: a plastic projection propagates event-driven; got mode='dense'")
        self.pre, self.post, self.conn, self.syn, self.out = pre, post, conn, syn, out
        n_pre, n_post = int(pre.size), int(post.size)
        self.n_pre, self.n_post = n_pre, n_post
        indptr, indices = conn.csr(n_pre, n_post)
        nnz = int(indptr[-1])
        self.nnz = nnz

        weight = _per_connection(weight, nnz, what, "weight")
        w_shape = tuple(np.shape(weight.value if isinstance(weight, Variable) else weight))
        self.homogeneous = w_shape == ()
        if isinstance(weight, Variable):
            self.weight = weight
        else:
            self.weight = weight if self.homogeneous else jnp.asarray(weight, float_dtype())
        if not isinstance(weight, Variable) and not np.all(np.isfinite(np.asarray(self.weight))):
            raise ValueError(f"{what}: weight has non-finite values (nan or inf)")

        delay = _per_connection(delay, nnz, what, "delay") if delay is not None else None
        if delay is not None:
            d = np.asarray(delay, np.float64)
            if not np.all(np.isfinite(d)) or np.any(d < 0):
                bad = d[~(np.isfinite(d) & (d >= 0))]
                raise ValueError(f"{what}: delays must be finite and >= 0 ms, got {bad[:5].tolist()}")
            delay = float(d) if d.ndim == 0 else d
        self.delay = delay
        self.heterogeneous_delay = isinstance(delay, np.ndarray)
        if self.heterogeneous_delay and mode == "dense":
            raise ValueError(f"{what}: per-synapse delays need mode='event' (or 'auto'), got mode='dense'")

        if mode == "auto" and plasticity is not None:
            mode = "event"
        if mode == "auto":
            size = n_pre * n_post
            dense = size <= _DENSE_MAX_ELEMS or (size <= _DENSE_LIMIT and nnz >= _DENSE_MIN_DENSITY * size)
            mode = "event" if self.heterogeneous_delay or not dense else "dense"
        self.mode = mode
        pre_ids = np.repeat(np.arange(n_pre, dtype=np.int32), np.diff(indptr))
        # Held in Variables (not compile-time constants) so large index arrays are
        # passed to compiled code instead of being embedded in it.
        if mode == "dense":
            mat = np.zeros((n_pre, n_post), float_dtype())
            np.add.at(mat, (pre_ids, indices), 1.0)  # multapses count once each
            self.conn_matrix = Variable(jnp.asarray(mat))
            self._pos = None if self.homogeneous else (jnp.asarray(pre_ids), jnp.asarray(indices))
        else:
            targets = conn.padded(n_pre, n_post)
            self.targets = Variable(jnp.asarray(targets))
            self.k_max = int(targets.shape[1])
            if not self.homogeneous:
                # the CSR position of every table entry (padding: nnz, a zero weight)
                self.weight_index = Variable(jnp.asarray(_padded_positions(indptr, self.k_max, nnz)))
            if max_spikes is None:
                max_spikes = max(16, math.ceil(0.01 * n_pre))
            self.max_spikes = int(min(max(1, max_spikes), n_pre))
            if n_blocks is None:
                n_blocks = max(8, self.max_spikes // 2)
            self.n_blocks = int(n_blocks)
            self._pos = None

        self._what = what
        self._setup_delay(None)
        self.plasticity = plasticity
        if plasticity is not None:
            if self.heterogeneous_delay:
                raise ValueError(f"{what}: plasticity with per-synapse delays is not supported; use a scalar delay")
            _attach_plasticity(self, plasticity, requested_max_spikes)
        post.add_input(name, self._current)

    # -- state --------------------------------------------------------------------
    def _setup_delay(self, batch_size: int | None) -> None:
        dt = get_dt()
        self._dt = dt
        if self.delay is None:
            self.delay_steps = 1
        else:
            steps = delay_steps(self.delay, dt)
            if np.any(steps < 1):
                d = np.asarray(self.delay)
                low = d[steps < 1]
                raise ValueError(
                    f"{self._what}: {low.size} delay(s) below one step (smallest {float(low.min()):g} ms at "
                    f"dt = {dt:g} ms); delays are rounded half up to whole steps and must be at least one "
                    f"step (>= {dt / 2:g} ms); delay=None gives the minimal one-step transmission")
            self.delay_steps = int(steps.max())
        if self.heterogeneous_delay:
            if batch_size is not None:
                raise ValueError(f"{self._what}: per-synapse delays need unbatched state "
                                 f"(reset_state(None)), got batch_size={batch_size}")
            R = self.delay_steps
            indptr, _ = self.conn.csr(self.n_pre, self.n_post)
            offsets = np.zeros((self.n_pre, self.k_max), np.int32)
            pos = _padded_positions(indptr, self.k_max, -1)
            valid = pos >= 0
            offsets[valid] = (steps - 1)[pos[valid]]
            for attr, value in (("delay_offsets", jnp.asarray(offsets)),
                                ("delay_buffer", jnp.zeros((R, self.n_post), float_dtype())),
                                ("delay_pos", jnp.zeros((), jnp.int32))):
                var = self.__dict__.get(attr)
                if isinstance(var, Variable):
                    var.reset_value(value)
                else:
                    setattr(self, attr, Variable(value))
            return
        L = self.delay_steps - 1
        bits = self.pre.spike.dtype == jnp.bool_
        attr = "spike_history" if bits else "spike_buffer"
        if L > 0 or isinstance(self.__dict__.get(attr), Variable):
            # boolean spikes: the last L + 1 spike vectors as bits of uint32 words per
            # neuron (bit j: read j steps ago), shifted elementwise each step; other spikes: a
            # shift register of L values per neuron. Both are rewritten as a whole each
            # step: XLA:CPU copies a loop-carried buffer that is read and updated in place
            # at a dynamic slot, which would cost more.
            last = (-(-(L + 1) // 32),) if bits else (L,)
            shape = (self.n_pre,) + last if batch_size is None else (batch_size, self.n_pre) + last
            buf = jnp.zeros(shape, jnp.uint32 if bits else self.pre.spike.dtype)
            var = self.__dict__.get(attr)
            if isinstance(var, Variable):
                reset_var(var, buf)
            else:
                setattr(self, attr, Variable(buf))

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

    def _check_dt(self) -> None:
        if get_dt() != self._dt:
            raise RuntimeError(
                f"{self._what}: its delay buffer was built for dt={self._dt} ms but "
                f"dt is now {get_dt()} ms; call reset_state() after changing dt")

    def _delayed_spikes(self) -> jax.Array:
        """The presynaptic spikes that reach the synapses this step (emitted ``delay_steps`` ago);
        advances the spike history, so call it once per step."""
        if self.heterogeneous_delay:
            raise RuntimeError(f"{self._what}: with per-synapse delays, spikes reach different synapses "
                               f"at different steps; there is no single delayed spike vector")
        spikes = self.pre.spike.value
        L = self.delay_steps - 1
        if L == 0:
            return spikes
        self._check_dt()
        if spikes.dtype != jnp.bool_:
            buf = self.spike_buffer.value
            self.spike_buffer.value = jnp.concatenate(
                [spikes[..., None].astype(buf.dtype), buf[..., :-1]], axis=-1)
            return buf[..., -1]
        h = self.spike_history.value
        W = h.shape[-1]
        # shift in this step's spikes; bit L then holds those read L steps ago (emitted
        # D = L + 1 steps ago)
        carry_in = jnp.concatenate([spikes[..., None].astype(jnp.uint32), h[..., :-1] >> 31], axis=-1)
        new = (h << 1) | carry_in
        word, bit = divmod(L, 32)
        if (L + 1) % 32:
            keep = np.full((W,), 0xFFFFFFFF, np.uint32)
            keep[-1] = (1 << ((L + 1) % 32)) - 1
            new = new & jnp.asarray(keep)
        self.spike_history.value = new
        return ((new[..., word] >> bit) & 1).astype(jnp.bool_)

    def propagate(self, spikes: Any) -> jax.Array:
        """The synaptic input to every postsynaptic neuron for presynaptic ``spikes``
        (without delay)."""
        s = jnp.asarray(spikes)
        sf = s.astype(float_dtype())
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
        W = jnp.zeros((self.n_pre, self.n_post), float_dtype()).at[rows, cols].add(self._weight())
        return jnp.dot(sf, W, precision=hp)

    def _weight_rows(self) -> Callable[[jax.Array | None], jax.Array] | None:
        """``rows(idx)``: the per-connection weights of table rows ``idx`` (None: all rows),
        zero on padding; None for a scalar weight."""
        if self.homogeneous:
            return None
        w_ext = jnp.concatenate([jnp.asarray(self._weight(), float_dtype()).reshape(-1),
                                 jnp.zeros((1,), float_dtype())])
        widx = self.weight_index.value
        return lambda idx: w_ext[widx if idx is None else widx[idx]]

    def _scatter_fn(self) -> Callable[[jax.Array, Any], jax.Array]:
        """``scatter(vals, idx)``: the weighted input from rows ``idx`` (None: all rows)
        with spike values ``vals``. Reads the Variables now, outside any branch."""
        targets = self.targets.value
        n_post = self.n_post
        w = self._weight()
        w_rows = self._weight_rows()

        def scatter(vals: jax.Array, idx: jax.Array | None) -> jax.Array:
            tg = targets if idx is None else targets[idx]
            contrib = jnp.broadcast_to(vals[:, None], tg.shape)
            if w_rows is not None:
                contrib = contrib * w_rows(idx)
            # Padding slots hold n_post, out of range: mode='drop' discards them.
            out = jnp.zeros((n_post,), float_dtype()).at[tg].add(contrib, mode="drop")
            # A scalar weight multiplies exact spike counts: order independent.
            return out if w_rows is not None else w * out

        return scatter

    def _event(self, sf: jax.Array) -> jax.Array:
        return _event_many([self], sf)[0]

    def _heterogeneous_input(self) -> jax.Array:
        """Per-synapse delays: add this step's spikes into the ring buffer of future inputs at
        each synapse's own offset, then take (and clear) the slot due now."""
        self._check_dt()
        R = self.delay_steps
        n_post = self.n_post
        targets, offsets = self.targets.value, self.delay_offsets.value
        buf, pos = self.delay_buffer.value, self.delay_pos.value
        w_rows = self._weight_rows()
        sf = self.pre.spike.value.astype(float_dtype())

        def scatter(vals: jax.Array, idx: jax.Array | None) -> jax.Array:
            tg = targets if idx is None else targets[idx]
            slot = pos + (offsets if idx is None else offsets[idx])
            slot = jnp.where(slot >= R, slot - R, slot)
            # one row per future step; padding targets (n_post) give flat indices that fall
            # into the next row or past the end: masked out of range
            flat = jnp.where(tg < n_post, slot * n_post + tg, R * n_post)
            contrib = jnp.broadcast_to(vals[:, None], tg.shape)
            if w_rows is not None:
                contrib = contrib * w_rows(idx)
            return flat, contrib

        flat_all = buf.size
        if self.max_spikes >= sf.shape[0]:
            flat, contrib = scatter(sf, None)
            new = buf.reshape(-1).at[flat].add(contrib, mode="drop")
        else:
            vals, idx, fits = _compact(sf, self.max_spikes, self.n_blocks)
            flat, contrib = scatter(vals, idx)
            # the compacted spikes always; on overflow (rare) all rows instead, in a branch that
            # leaves the buffer alone when not taken
            new = buf.reshape(-1).at[jnp.where(fits, flat, flat_all)].add(contrib, mode="drop")

            def overflow(b: jax.Array) -> jax.Array:
                f, c = scatter(sf, None)
                return b.at[f].add(c, mode="drop")

            new = jax.lax.cond(fits, lambda b: b, overflow, new)
        new = new.reshape(R, n_post)
        x = jax.lax.dynamic_index_in_dim(new, pos, axis=0, keepdims=False)
        self.delay_buffer.value = jax.lax.dynamic_update_index_in_dim(
            new, jnp.zeros((n_post,), new.dtype), pos, axis=0)
        self.delay_pos.value = jnp.where(pos + 1 == R, 0, pos + 1).astype(jnp.int32)
        return x if w_rows is not None else self._weight() * x

    def update(self) -> jax.Array:
        """Propagate the presynaptic spikes arriving this step and update the synapse."""
        if self.plasticity is not None:
            return _plastic_update(self)
        if self.heterogeneous_delay:
            return self.syn.update(self._heterogeneous_input())
        return self.syn.update(self.propagate(self._delayed_spikes()))

    def __repr__(self) -> str:
        delay = "per-synapse" if self.heterogeneous_delay else self.delay
        return (f"Projection({type(self.pre).__name__}({self.n_pre}) -> {type(self.post).__name__}"
                f"({self.n_post}), {self.conn!r}, nnz={self.nnz}, mode={self.mode!r}, "
                f"syn={self.syn!r}, out={self.out!r}, delay={delay}, delay_steps={self.delay_steps})")


def _fusable(p: Projection) -> bool:
    """Whether ``p`` can join a Network's fused event-driven propagation."""
    cls = type(p)
    # Boolean spikes only: summing exact counts makes the result independent of
    # the scatter order, so fused and separate propagation agree bit for bit.
    return (p.mode == "event" and not p.heterogeneous_delay and p.plasticity is None
            and p.pre.spike.ndim == 1 and p.pre.spike.dtype == jnp.bool_
            and cls.update is Projection.update and cls.propagate is Projection.propagate
            and cls._event is Projection._event)


def _source(p: Projection) -> tuple[int, int]:
    # the spike vector a fused projection reads: its presynaptic group, delayed by its steps
    return (id(p.pre), p.delay_steps)


def _signature(projs: list[Projection]) -> tuple:
    # ``targets._value`` is the committed (concrete) array even during a trace:
    # a new connectivity array means the fused table is stale.
    return tuple((id(p), id(p.pre), id(p.targets._value), p.n_post, p.delay_steps, p.homogeneous)
                 for p in projs)


def _digest(projs: list[Projection]) -> bytes:
    """The fused projections' structure and connectivity contents (host side)."""
    h = hashlib.blake2b(digest_size=16)
    for p in projs:
        t = np.asarray(p.targets._value)
        h.update(repr((id(p), id(p.pre), p.n_post, p.delay_steps, p.homogeneous, t.shape,
                       str(t.dtype))).encode())
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

    def __init__(self, projs: list[Projection]) -> None:
        self.projs = projs
        self.signature = _signature(projs)
        self.digest = _digest(projs)
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
            cols[pos[_source(p)]].append((p, np.asarray(p.targets._value), s0, n_post, w0))
        deg = []
        for parts in cols:
            deg.append(sum((t < n_post).sum(axis=1) for _, t, _, n_post, _ in parts))
        width = max(1, max(int(d.max(initial=0)) for d in deg))
        table = np.full((n_in + 1, width), n_out, np.int32)
        widx = np.zeros((n_in + 1, width), np.int32) if self.weighted else None
        for key, parts in zip(self.sources, cols):
            r0 = src_off[key]
            used = np.zeros(int(sources[key].size), np.int64)
            for p, t, s0, n_post, w0 in parts:
                valid = t < n_post
                rows, c = np.nonzero(valid)
                table[r0 + rows, used[rows] + c] = t[rows, c] + s0
                if widx is not None and not p.homogeneous:
                    csr = _padded_positions(p.conn.csr(p.n_pre, p.n_post)[0], t.shape[1], 0)
                    widx[r0 + rows, used[rows] + c] = csr[rows, c] + w0
                used += valid.sum(axis=1)
        self.table = Variable(jnp.asarray(table), name="Network.fused_targets")
        self.weight_index = None if widx is None else Variable(jnp.asarray(widx),
                                                               name="Network.fused_weight_index")
        self.n_in = n_in
        # Tier 1 (k1) handles typical steps cheaply; k2 is as many spikes as the projections'
        # max_spikes allow. Buffers double from k1 up to 8 x k2, so a step costs at most
        # about twice its spikes' rows; beyond that, the exact full-table path.
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
        # a buffer of all rows is the full path itself
        self.tiers = [k for k in tiers if k < n_in] or [n_in]

    def counts(self, spikes: list[jax.Array]) -> jax.Array:
        """The number (or weighted sum) of presynaptic spikes onto every slot this step."""
        s = spikes[0] if len(spikes) == 1 else jnp.concatenate(spikes)
        sf = s.astype(float_dtype())
        table = self.table.value
        n_out = self.n_out
        zeros = jnp.zeros((n_out,), float_dtype())
        if self.weighted:
            w_cat = jnp.concatenate([jnp.ones((1,), float_dtype())] + [
                jnp.asarray(p._weight(), float_dtype()).reshape(-1) for p in self.projs if not p.homogeneous])
            widx = self.weight_index.value

        def scatter(idx: jax.Array) -> jax.Array:
            # unused slots gather the all-padding row: every entry is dropped
            rows = _gather_rows(table, idx)
            if self.weighted:
                return zeros.at[rows].add(w_cat[_gather_rows(widx, idx)], mode="drop")
            return zeros.at[rows].add(1.0, mode="drop")

        def full() -> jax.Array:
            # Rows of silent neurons are masked to the padding index: a dropped entry
            # costs a bounds check, an added 0.0 a read-modify-write.
            rows = jnp.where(s[:, None], table[:-1], n_out)
            if self.weighted:
                return zeros.at[rows].add(w_cat[widx[:-1]], mode="drop")
            return zeros.at[rows].add(1.0, mode="drop")

        if self.k1 >= self.n_in:
            return full()
        idx = _compact_to_rows(sf, self.k1)
        total = jnp.sum(s, dtype=jnp.int32)
        branches = [lambda: scatter(idx)]
        for k in self.tiers[1:]:
            branches.append(lambda k=k: scatter(_compact_to_rows(sf, k)))
        branches.append(full)
        which = jnp.sum(total > jnp.asarray(self.tiers, jnp.int32), dtype=jnp.int32)
        return jax.lax.switch(which, branches)

    def inputs(self) -> list[jax.Array]:
        """Each fused projection's synaptic input (as its ``propagate`` gives it). Advances
        the delayed projections' spike buffers (once per step)."""
        arriving: dict[tuple, jax.Array] = {}
        for p in self.projs:
            arriving.setdefault(_source(p), p._delayed_spikes())
        c = self.counts([arriving[k] for k in self.sources])
        return [c[s0:s0 + n] if not p.homogeneous else p._weight() * c[s0:s0 + n]
                for p, (s0, n) in zip(self.projs, self.slots)]


def _build_fusion_once(init: Callable) -> Callable:
    """Wrap a Network ``__init__``: projections assigned in it are fused once, at its end,
    not once per assignment (the table of a large network takes a while to build)."""

    @functools.wraps(init)
    def __init__(self: "Network", *args: Any, **kwargs: Any) -> None:
        depth = self.__dict__.get("_nd_constructing", 0)
        object.__setattr__(self, "_nd_constructing", depth + 1)
        try:
            init(self, *args, **kwargs)
        finally:
            object.__setattr__(self, "_nd_constructing", depth)
        if depth == 0:
            self._refuse()

    return __init__


class Network(Module):
    """A container of groups and projections with the standard update order.

    ``update()`` first updates every :class:`Projection` among the direct
    attributes (in attribute order), then every group (neuron groups, Poisson
    groups: instances of ``nn.Group``), in attribute order. Projections thus
    see the spikes of the previous step, and every group sees the synaptic
    input of this step. Other child modules are not updated automatically;
    override ``update()`` for any other order.

    Fusion: all event-mode projections with unbatched boolean spikes, a scalar
    (or no) delay and the stock ``Projection`` dynamics are propagated
    together, with one spike compaction over the concatenated spike vectors
    they read (each presynaptic group, delayed by each distinct delay: the
    output of the projections' spike histories), one row gather and one
    scatter-add into a single vector, from a combined target table the Network
    builds on the host when a projection is assigned (and again in
    ``reset_state()`` or an eager ``update()`` if the projections'
    connectivity arrays were replaced since). A projection with a scalar
    weight receives ``weight * count`` exactly as unfused, so results are
    bit-identical; per-connection weights are summed in the same order as
    unfused (identical on CPU). The spiking rows are compacted into the
    smallest of a ladder of buffers that fits this step's spikes: the first
    holds a third of the sources' summed ``max_spikes`` (at least 16), the
    next ones double up to 8 times that sum; more spikes take the exact
    full-table path. Other projections (dense,
    per-synapse delays, float or batched spikes, subclasses overriding the
    dynamics), and all of them when the table is stale inside compiled code,
    take the per-projection path, where those without delay that share a
    presynaptic group still share a compaction. The table sits in a hidden
    Variable: it is not part of ``vars()``, state dicts or checkpoints, and
    doubles the memory of the fused connectivity.

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

    __init__ = _build_fusion_once(__init__)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is not None:
            cls.__init__ = _build_fusion_once(init)

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
        if CTX.frames or self.__dict__.get("_nd_constructing", 0):
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
            if (id(p) not in inputs and p.mode == "event" and p.delay_steps == 1 and p.plasticity is None
                    and not p.heterogeneous_delay and p.pre.spike.ndim == 1 and type(p).update is Projection.update
                    and type(p).propagate is Projection.propagate):
                shared.setdefault(id(p.pre), []).append(p)
        for peers in shared.values():
            if len(peers) > 1:
                sf = peers[0].pre.spike.value.astype(float_dtype())
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
