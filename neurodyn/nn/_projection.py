"""Projections: spikes -> connectivity x weight -> synapse -> current into a neuron group.

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

import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from .._environ import float_dtype, get_dt, half_up_steps
from .._module import Module
from .._state import CTX, TrainVar, Variable
from ._connectivity import Connector
from ._delay_buffer import DelayedPart, build_delay_table, delay_state, delayed_inputs, event_batch, undelayed_input
from ._kernels import event_inputs, padded_positions
from ._init import init_value
from ._neurons import Group, NeuronGroup, reset_var
from ._plasticity import attach as _attach_plasticity, plastic_update as _plastic_update
from ._synapses import Synapse, SynOut

__all__ = ["Projection", "delay_steps", "delay_fusable", "delay_inputs"]

# Connectivity this small (pre x post) is always propagated densely.
_DENSE_MAX_ELEMS = 1 << 16
# ...and denser than this (if the matrix is not huge) too.
_DENSE_MIN_DENSITY = 0.2
_DENSE_LIMIT = 1 << 26


# Steps within this distance below a half are rounded up: decimal delays such as
# 0.25 ms at dt = 0.1 ms (2.4999999999999996 steps in binary) round like their decimal value.
_HALF_UP_TOL = 1e-4


def delay_steps(delay: Any, dt: float) -> np.ndarray:
    """Delays in ms -> whole steps, rounded half up: ``floor(delay / dt + 0.5)``.

    This is the rounding of Brian2 and NEST (0.25 ms at dt = 0.1 ms is 3 steps).

    Example:
        >>> import neurodyn.nn as nn
        >>> nn.delay_steps([0.05, 0.25, 1.5], 0.1).tolist()
        [1, 3, 15]
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
    construction) keep the input due at each of the next ``max(D)`` steps for
    every postsynaptic neuron (``delay_buffer``, ``(max(D) * post.size,)``,
    and ``delay_slot``, the row due now), as NEST's ring buffers do: when a
    presynaptic neuron spikes, each of its synapses adds its weight into the
    row of the step it arrives at, so every spike arrives exactly at its own
    rounded step and the work per step is the synapses of the neurons
    spiking now. The synapses sit in a padded table (``delay_table``, one row
    per presynaptic neuron, and ``delay_weight_index`` for per-connection
    weights; 4 or 8 bytes per entry). Each target sums its inputs in the
    order the spikes were emitted (:mod:`neurodyn.nn._delay_buffer`). Per-synapse delays
    need event mode, boolean presynaptic spikes and unbatched state.

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
            more spikes take an exact but slower path. With per-synapse delays,
            spikes are added into the buffer of future inputs in batches of a
            third of it (at least 16, at most ``max_spikes``).
        name: the name of the registered input on ``post``.
        plasticity: a plasticity rule (e.g. ``nn.STDP()``; see ``nn.Plasticity``), or
            None. The projection then holds one weight per synapse in the Variable
            ``weight`` (a number is broadcast) and takes its own event-driven path
            (``mode`` 'auto' means 'event'; 'dense' is refused). Delays are axonal.

    Example:
        >>> import neurodyn.nn as nn
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
        if self.heterogeneous_delay and pre.spike.dtype != jnp.bool_:
            raise ValueError(f"{what}: per-synapse delays need boolean presynaptic spikes (a group without "
                             f"spike_fn), got spikes of dtype {pre.spike.dtype}")
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
            self.conn_matrix = Variable(jax.device_put(mat))
            self._pos = None if self.homogeneous else (jax.device_put(pre_ids), jax.device_put(indices))
        elif not self.heterogeneous_delay:
            targets = conn.padded(n_pre, n_post)
            self.targets = Variable(jax.device_put(targets))
            self.k_max = int(targets.shape[1])
            if not self.homogeneous:
                # the CSR position of every table entry (padding: nnz, a zero weight)
                self.weight_index = Variable(jax.device_put(padded_positions(indptr, self.k_max, nnz)))
        if mode == "event":
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
            if self.__dict__.get("_table_dt") != dt:
                indptr, indices = self.conn.csr(self.n_pre, self.n_post)
                try:
                    table, pos = build_delay_table(indptr, indices, steps, self.n_post, R)
                except ValueError as e:
                    raise ValueError(f"{self._what}: {e}") from None
                self._set_vars(delay_table=jax.device_put(table))
                if not self.homogeneous:
                    # each table entry's CSR position, where its weight is (padding: a zero)
                    self._set_vars(delay_weight_index=jax.device_put(pos))
                self._table_dt = dt
            buf, slot = delay_state(R, self.n_post)
            self._set_vars(delay_buffer=buf, delay_slot=slot)
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
            self._set_vars(**{attr: jnp.zeros(shape, jnp.uint32 if bits else self.pre.spike.dtype)})

    def _set_vars(self, **values: Any) -> None:
        """Reset the state Variables named by ``values``, creating those that do not exist yet."""
        for attr, value in values.items():
            var = self.__dict__.get(attr)
            if isinstance(var, Variable):
                reset_var(var, value)
            else:
                setattr(self, attr, Variable(value))

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
        if self.heterogeneous_delay:
            f = lambda x: undelayed_input(x.astype(jnp.bool_), self.delay_table.value,
                                          self._weight_rows(self.__dict__.get("delay_weight_index")),
                                          self.n_post, self.delay_steps)
            x = f(s) if s.ndim == 1 else jax.vmap(f)(s)
            return x if not self.homogeneous else self._weight() * x
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

    def _weight_rows(self, index: Variable | None = None) -> Callable[[jax.Array | None], jax.Array] | None:
        """``rows(idx)``: the per-connection weights of rows ``idx`` (None: all rows) of the
        table whose CSR positions are ``index`` (default: ``weight_index``), zero on
        padding; None for a scalar weight."""
        if self.homogeneous:
            return None
        w_ext = jnp.concatenate([jnp.asarray(self._weight(), float_dtype()).reshape(-1),
                                 jnp.zeros((1,), float_dtype())])
        widx = (self.weight_index if index is None else index).value
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
        return event_inputs([self], sf)[0]

    def _delay_part(self) -> DelayedPart:
        """This projection's share of a step of per-synapse delays (reads the Variables now)."""
        self._check_dt()
        return DelayedPart(self.delay_table.value, self._weight_rows(self.__dict__.get("delay_weight_index")),
                           self.delay_buffer.value, self.delay_slot.value, self.n_post, self.delay_steps)

    def _delay_done(self, x: jax.Array, buffer: jax.Array, slot: jax.Array) -> jax.Array:
        self.delay_buffer.value, self.delay_slot.value = buffer, slot
        return x if not self.homogeneous else self._weight() * x

    def _heterogeneous_input(self) -> jax.Array:
        """Per-synapse delays: add this step's spikes into the buffer of future inputs and
        read the input due now."""
        [res] = delayed_inputs(self.pre.spike.value, event_batch(self.max_spikes), [self._delay_part()])
        return self._delay_done(*res)

    def _shard_specs(self, entry: Any, n_devices: int) -> dict[str, Any]:
        # Under Runner(mesh=...): the buffer of future inputs and the table are replicated: a
        # spike's synapses are gathered and added at arbitrary positions.
        if not self.heterogeneous_delay:
            return {}
        from jax.sharding import PartitionSpec
        names = ["delay_table", "delay_buffer", "delay_slot"]
        return {k: PartitionSpec() for k in names + ([] if self.homogeneous else ["delay_weight_index"])}

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


def delay_fusable(p: Any) -> bool:
    """Whether ``p`` is a stock per-synapse-delay projection whose input :func:`delay_inputs`
    may compute together with others."""
    cls = type(p)
    return (isinstance(p, Projection) and p.heterogeneous_delay and p.plasticity is None
            and cls.update is Projection.update and cls._heterogeneous_input is Projection._heterogeneous_input)


def delay_inputs(projs: list[Projection]) -> list[jax.Array]:
    """The synaptic input of several per-synapse-delay projections, as each one's own update
    computes it: the projections from one presynaptic group share one listing of its
    spiking neurons, and each batch of them is added into all of their buffers.

    Example:
        >>> import neurodyn.nn as nn
        >>> from neurodyn.nn._projection import delay_inputs
        >>> E, I = nn.LIF(40), nn.LIF(10)
        >>> d = nn.TruncatedNormal(1.0, 0.3, low=0.1)
        >>> EI = nn.Projection(E, I, nn.FixedProb(0.2), 0.5, nn.Expon(10, 5.), nn.CUBA(), delay=d)
        >>> IE = nn.Projection(I, E, nn.FixedProb(0.2), -1.0, nn.Expon(40, 5.), nn.CUBA(), delay=d)
        >>> [x.shape for x in delay_inputs([EI, IE])]
        [(10,), (40,)]
    """
    by_source: dict[int, list[Projection]] = {}
    for p in projs:
        by_source.setdefault(id(p.pre), []).append(p)
    out: dict[int, jax.Array] = {}
    for group in by_source.values():
        k = max(event_batch(p.max_spikes) for p in group)
        res = delayed_inputs(group[0].pre.spike.value, k, [p._delay_part() for p in group])
        for p, r in zip(group, res):
            out[id(p)] = p._delay_done(*r)
    return [out[id(p)] for p in projs]
