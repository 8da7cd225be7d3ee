"""Synaptic plasticity on the event-driven path of a :class:`Projection`.

A plasticity rule is given to a projection (``nn.Projection(...,
plasticity=nn.STDP(...))``); the projection then holds one weight per synapse
(``proj.weight``, shape ``(nnz,)`` in CSR order) and the rule holds its
per-neuron traces. Each step costs work only for the synapses of the
presynaptic neurons that spiked (rows of the connectivity) and of the
postsynaptic neurons that spiked (columns, through a column index built once
on the host); a step with more spikes than the buffers hold takes an exact
path over all rows or columns.

Order of one step (the projection reads the spikes of the previous step):

1. every trace decays by one step (exactly: ``x *= exp(-dt / tau)``);
2. presynaptic spikes arriving at the synapses: transmission with the current
   weights, then ``on_pre`` (reads postsynaptic traces that do not yet hold
   this step's postsynaptic spikes);
3. presynaptic traces take this step's presynaptic spikes;
4. postsynaptic spikes: ``on_post`` (reads presynaptic traces that already
   hold this step's presynaptic spikes, so a pre and a post spike in the same
   step count as pre-before-post, as in Brian2's STDP example);
5. postsynaptic traces take this step's postsynaptic spikes.

Delays are axonal. The projection reads postsynaptic spikes one step after
they are emitted (as every projection reads its presynaptic spikes), and
presynaptic spikes when they are delivered, ``D`` steps after emission
(``delay=None``: ``D = 1``). So the rule's interval for a pair is
``t_post - t_pre - (D - 1) dt``: the part of the delay beyond the one-step
transmission of every projection counts as axonal, and with ``delay=None``
spikes emitted in the same step are simultaneous for the rule (as in Brian2 with
a zero delay, where ``on_pre`` runs in the step of the spike). NEST's
``stdp_synapse`` treats the delay as dendritic instead, which shifts the STDP
window by the delay. Per-synapse delays are refused with plasticity.

Cost: spikes are taken in batches of ``proj.max_spikes`` (presynaptic) and
``proj.max_post_spikes`` (postsynaptic; both default to max(8, 0.25% of the
group); set the attributes to change them): the first batch runs in every
step, and a ``lax.while_loop`` that updates the weights in place takes the
spikes it left out (a burst; the compaction flags them, so the common step pays
for no count of its spikes). In an ``nn.Network``, a projection whose presynaptic (or
postsynaptic) group is the first spike source of the Network's fused table
takes its first batch from the fused compaction of those spikes instead of
compacting them again (same indices; batches of up to 15 spikes). When the weights or a rule parameter are
``TrainVar`` s, a conditional replaces the loop so that ``nd.grad`` can pass;
it copies the weights once per step (slower, same numbers).

Small all-to-all projections (every pair connected once, at most 16384
synapses, e.g. many inputs onto a few neurons) take a dense path instead: the
weights are the ``(n_pre, n_post)`` matrix, the hooks see all of it at once
(``pre`` of shape ``(n_pre, 1)``, ``post`` ``(1, n_post)``) and their results are
kept for the rows and columns of the neurons that spiked. At this size a few
whole passes cost less than the event machinery; the numbers are those of the
event path (same order, same arithmetic; transmission sums in another order).
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from .._environ import float_dtype, get_dt
from .._module import Module
from .._state import CTX, TrainVar, Variable
from ._kernels import compact_fit, for_events

__all__ = ["Plasticity", "Trace", "STDP", "TripletSTDP", "RewardSTDP", "VogelsSTDP",
           "TsodyksMarkram", "weight_mean", "weight_histogram"]

# All-to-all connectivity up to this many synapses is updated as a dense matrix: whole passes
# over a few thousand weights cost less than the event machinery (compaction, index tables,
# gathers and scatters) of a sparse step.
_DENSE_MAX_SYNAPSES = 1 << 14


def _val(x: Any) -> Any:
    return x.value if isinstance(x, Variable) else x


def _concrete(x: Any) -> Any:
    x = x.committed_value if isinstance(x, Variable) else x
    return None if isinstance(x, jax.core.Tracer) else np.asarray(x, np.float64)


def _check(cls: str, name: str, x: Any, ok: Callable[[np.ndarray], bool], what: str) -> Any:
    # a Variable may hold one value per element of an nd.vmap parameter sweep
    c = _concrete(x)
    if c is not None and ((c.shape != () and not isinstance(x, Variable))
                          or not np.all(np.isfinite(c)) or not np.all(ok(c))):
        raise ValueError(f"{cls}: {name} must be a finite scalar {what}, got {x!r}")
    return x if isinstance(x, Variable) else float(x)


def _positive(cls: str, name: str, x: Any) -> Any:
    return _check(cls, name, x, lambda c: c > 0, "> 0")


def _nonneg(cls: str, name: str, x: Any) -> Any:
    return _check(cls, name, x, lambda c: c >= 0, ">= 0")


def _for_events(spikes: jax.Array, k: int, work: Callable[[jax.Array, Any], Any], carry: Any,
                differentiable: bool, first: tuple[jax.Array, jax.Array] | None = None) -> Any:
    """``carry = work(idx, carry)`` over the indices of the spiking entries, ``k`` at a time
    (unused slots hold ``len(spikes)``, the tables' all-padding row).

    By default this is :func:`nn._kernels.for_events <neurodyn.nn._kernels.for_events>`:
    the first batch unconditionally, then a ``while_loop`` for the spikes left out, which
    updates the large carried arrays in place. ``first``, where given, is the first batch
    and its flag as ``compact_fit(spikes, k)`` gives them, computed elsewhere (a Network's
    fused compaction of the same spikes). Reverse-mode differentiation cannot pass a
    ``while_loop``, so the ``differentiable`` path is a switch between no spikes, one
    batch and all entries at once; carrying the weights through a conditional costs a
    copy of them per step (measured: ~20x slower at 200k synapses).
    """
    n = spikes.shape[0]
    if differentiable:
        count = jnp.sum(spikes != 0, dtype=jnp.int32)

        def full() -> Any:
            return work(jnp.where(spikes != 0, jnp.arange(n, dtype=jnp.int32), n), carry)

        if k >= n:
            return jax.lax.cond(count > 0, full, lambda: carry)
        which = jnp.where(count == 0, 0, jnp.where(count <= k, 1, 2))
        return jax.lax.switch(which, [lambda: carry, lambda: work(compact_fit(spikes, k)[0], carry), full])

    return for_events(spikes, k, work, carry, first)


class Trace(Variable):
    """A per-neuron exponential trace of the pre- or postsynaptic spikes of a rule (a Variable).

    Between spikes ``dx/dt = -x / tau``; on a spike ``x += amount`` (all-to-all
    pairing) or ``x = amount`` (nearest-neighbour pairing, ``nearest=True``).
    A rule declares traces as attributes; the projection sizes them, decays
    them every step and adds the spikes (see :class:`Plasticity`). Index it
    with neuron indices: ``self.x_pre[pre]``.

    Example:
        >>> from neurodyn import nn
        >>> x = nn.Trace('pre', tau=20.)      # sized by the projection the rule is given to
        >>> x.side, x.tau
        ('pre', 20.0)
    """

    def __init__(self, side: str, tau: Any, amount: float = 1.0, nearest: bool = False) -> None:
        if side not in ("pre", "post"):
            raise ValueError(f"Trace: side must be 'pre' or 'post', got {side!r}")
        super().__init__(jnp.zeros((0,), float_dtype()))
        self.side = side
        self.tau = _positive("Trace", "tau", tau)
        self.amount = float(amount)
        self.nearest = bool(nearest)

    def decay(self) -> None:
        """One step of exponential decay (exact)."""
        self.value = self.value * jnp.exp(-get_dt() / _val(self.tau))

    def add(self, spikes: jax.Array) -> None:
        """Take this step's spikes (``spikes`` of shape ``(size,)``)."""
        s = spikes.astype(float_dtype())
        if self.nearest:
            self.value = self.value * (1 - s) + self.amount * s
        else:
            self.value = self.value + self.amount * s


def _zero(v: Variable, value: Any = 0.0) -> None:
    new = jnp.full(v.shape, value, v.dtype)
    if CTX.frames:
        v.value = new
    else:
        v.reset_value(new)


class Plasticity(Module):
    """Base class of plasticity rules: subclass it to write a rule in a few lines.

    A rule declares its per-neuron :class:`Trace` s as attributes and overrides
    some of the hooks below; the projection calls them with the synapses that
    take part in this step's events (see the module docstring for the order):

    * ``on_pre(w, pre, post) -> w``: for the synapses of the presynaptic
      neurons that spiked. ``w`` has shape ``(K, k)`` (one row per spiking
      neuron, ``k`` its padded out-degree), ``pre`` ``(K, 1)`` and ``post``
      ``(K, k)`` the neuron indices (padding slots hold valid indices; their
      results are discarded).
    * ``on_post(w, pre, post) -> w``: the same for the synapses onto the
      postsynaptic neurons that spiked (``w`` and ``pre`` ``(K, k_in)``,
      ``post`` ``(K, 1)``).
    * ``release(pre) -> factor`` (optional): a factor of the transmitted weight
      per presynaptic spike (short-term plasticity).
    * ``step(pre_spikes, post_spikes)`` (optional): per-neuron work each step.

    Weights stay in ``[w_min, w_max]``: :meth:`potentiate` and :meth:`depress`
    apply a change with hard bounds (``w + dw`` clipped) or soft bounds
    (``dw`` scaled by ``w_max - w`` or ``w - w_min``: multiplicative,
    weight-dependent). Rule parameters may be Variables (``TrainVar`` for
    ``nd.grad``; mapped Variables for ``nd.vmap`` parameter sweeps).

    Example:
        >>> import jax.numpy as jnp
        >>> import neurodyn as nd
        >>> from neurodyn import nn
        >>> class Hebb(nn.Plasticity):        # potentiate by the presynaptic trace
        ...     def __init__(self, eta=0.01):
        ...         super().__init__(w_min=0., w_max=1.)
        ...         self.eta = eta
        ...         self.x = nn.Trace('pre', tau=20.)
        ...     def on_post(self, w, pre, post):
        ...         return self.potentiate(w, self.eta * self.x[pre])
        >>> pre, post = nn.LIF(3), nn.LIF(2)
        >>> proj = nn.Projection(pre, post, nn.AllToAll(), 0.5, nn.Expon(2, 5.), nn.CUBA(), plasticity=Hebb())
        >>> step = nd.jit(proj.update)
        >>> pre.spike.value = jnp.ones(3, bool)      # the spikes the projection reads this step
        >>> _ = step()
        >>> pre.spike.value, post.spike.value = jnp.zeros(3, bool), jnp.ones(2, bool)
        >>> _ = step()                                # 0.5 + 0.01 * exp(-0.1 / 20)
        >>> proj.weight.value.round(5)
        Array([0.50995, 0.50995, 0.50995, 0.50995, 0.50995, 0.50995], dtype=float32)
    """

    def __init__(self, w_min: Any = -math.inf, w_max: Any = math.inf, bounds: str = "hard") -> None:
        cls = type(self).__name__
        if bounds not in ("hard", "soft"):
            raise ValueError(f"{cls}: bounds must be 'hard' or 'soft', got {bounds!r}")
        lo, hi = _concrete(w_min), _concrete(w_max)
        if lo is not None and hi is not None and not lo < hi:
            raise ValueError(f"{cls}: w_min must be < w_max, got w_min={w_min!r}, w_max={w_max!r}")
        if bounds == "soft" and ((lo is not None and not np.isfinite(lo)) or (hi is not None and not np.isfinite(hi))):
            raise ValueError(f"{cls}: soft bounds need finite w_min and w_max, got {w_min!r}, {w_max!r}")
        self.w_min = w_min if isinstance(w_min, Variable) else float(w_min)
        self.w_max = w_max if isinstance(w_max, Variable) else float(w_max)
        self.bounds = bounds
        self._owner: Any = None

    # -- helpers for rules ----------------------------------------------------------
    def clip(self, w: jax.Array) -> jax.Array:
        """``w`` clipped to ``[w_min, w_max]``."""
        return jnp.clip(w, _val(self.w_min), _val(self.w_max))

    def potentiate(self, w: jax.Array, dw: Any) -> jax.Array:
        """``w`` increased by ``dw`` (hard bounds) or ``dw * (w_max - w)`` (soft bounds)."""
        if self.bounds == "soft":
            dw = dw * (_val(self.w_max) - w)
        return self.clip(w + dw)

    def depress(self, w: jax.Array, dw: Any) -> jax.Array:
        """``w`` decreased by ``dw`` (hard bounds) or ``dw * (w - w_min)`` (soft bounds)."""
        if self.bounds == "soft":
            dw = dw * (w - _val(self.w_min))
        return self.clip(w - dw)

    # -- hooks ----------------------------------------------------------------------
    def on_pre(self, w: jax.Array, pre: jax.Array, post: jax.Array) -> jax.Array:
        return w

    def on_post(self, w: jax.Array, pre: jax.Array, post: jax.Array) -> jax.Array:
        return w

    release: Callable[[jax.Array], jax.Array] | None = None

    # Names of per-synapse state Variables (shape ``(nnz,)``) of built-in rules; with any,
    # the hooks take and return a dict of their values as well (private protocol).
    synapse_state: tuple[str, ...] = ()

    def step(self, pre_spikes: jax.Array, post_spikes: jax.Array) -> None:
        """Per-neuron work after the traces took this step's spikes (default: none)."""

    # -- machinery --------------------------------------------------------------------
    def traces(self) -> dict[str, Trace]:
        """The rule's traces by attribute name."""
        return {k: v for k, v in self.__dict__.items() if isinstance(v, Trace)}

    def _bind(self, proj: Any) -> None:
        if self._owner is not None:
            raise ValueError(f"{type(self).__name__}: this rule already belongs to another projection; "
                             "give every projection its own rule instance")
        self._owner = True
        n_pre, n_post = proj.n_pre, proj.n_post
        for t in self.traces().values():
            t.reset_value(jnp.zeros((n_pre if t.side == "pre" else n_post,), float_dtype()))
        self._resize(n_pre, n_post, proj.nnz)

    def _resize(self, n_pre: int, n_post: int, nnz: int) -> None:
        """Size the rule's own (non-Trace) state; called once when bound to a projection."""

    def reset_state(self, batch_size: int | None = None) -> None:
        if batch_size is not None:
            raise ValueError(f"{type(self).__name__}: plasticity needs unbatched state (one network); "
                             f"got batch_size={batch_size}. Use nd.vmap for independent networks.")
        for t in self.traces().values():
            _zero(t)

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items()
                           if not k.startswith("_") and isinstance(v, (int, float, str, Variable)))
        return f"{type(self).__name__}({params})"


def _uses(rule: Plasticity, hook: str) -> bool:
    return getattr(type(rule), hook) is not getattr(Plasticity, hook)


# -- the event-driven engine ---------------------------------------------------------------------
class _Tables(Module):
    """Row and column index of a projection's connectivity (host-built, held in Variables
    so that compiled code receives them as arguments)."""

    def __init__(self, indptr: np.ndarray, indices: np.ndarray, n_pre: int, n_post: int) -> None:
        nnz = int(indptr[-1])
        deg = np.diff(indptr)
        k = max(1, int(deg.max(initial=0)))
        # Row i is the window of k CSR positions from min(indptr[i], nnz - k) (it stays inside the
        # weights): the positions of neuron i's synapses, and padding (nnz; post: n_post) where
        # the window holds another row's synapses. A read of the window then serves the row as
        # it is. The extra last row is all padding.
        pre_ids = np.repeat(np.arange(n_pre), deg)
        pos = np.minimum(np.asarray(indptr[:-1], np.int64), max(nnz - k, 0))[:, None] + np.arange(k)
        own = (pos >= indptr[:-1, None]) & (pos < indptr[1:, None])
        rows = np.full((n_pre + 1, k), nnz, np.int32)
        rows[:-1] = np.where(own, pos, nnz)
        post = np.full((n_pre + 1, k), n_post, np.int32)
        post[:-1] = np.where(own, np.asarray(indices)[np.minimum(pos, max(nnz - 1, 0))] if nnz else 0, n_post)
        # column j: the CSR positions and presynaptic neurons of the synapses onto j
        order = np.argsort(indices, kind="stable")
        in_deg = np.bincount(indices, minlength=n_post)
        kin = max(1, int(in_deg.max(initial=0)))
        cols = np.full((n_post + 1, kin), nnz, np.int32)
        cpre = np.full((n_post + 1, kin), n_pre, np.int32)
        starts = np.concatenate([[0], np.cumsum(in_deg)[:-1]])
        cslot = np.arange(nnz) - np.repeat(starts, in_deg)
        cols[indices[order], cslot] = order
        cpre[indices[order], cslot] = pre_ids[order]
        # One table per side, (neuron, slot, [synapse, other neuron]): one read of a row serves
        # both, and XLA keeps it in memory instead of recomputing it inside each reader.
        self.row_windows = Variable(jnp.asarray(np.stack([rows, post], axis=-1)))
        self.cols = Variable(jnp.asarray(np.stack([cols, cpre], axis=-1)))
        self.nnz, self.n_pre, self.n_post = nnz, n_pre, n_post
        # every pair exactly once, in row-major CSR order: the weights are the (n_pre, n_post) matrix
        full = nnz == n_pre * n_post and np.array_equal(indices, np.tile(np.arange(n_post), n_pre))
        self.dense = bool(full and nnz <= _DENSE_MAX_SYNAPSES)

    def reset_state(self, batch_size: int | None = None) -> None:
        pass


def attach(proj: Any, rule: Any, max_spikes: int | None = None, max_post_spikes: int | None = None) -> None:
    """Set up ``proj`` (a Projection in construction) for plasticity ``rule``."""
    if not isinstance(rule, Plasticity):
        raise TypeError(f"Projection: plasticity must be an nn.Plasticity rule (e.g. nn.STDP()), "
                        f"got {type(rule).__name__}")
    indptr, indices = proj.conn.csr(proj.n_pre, proj.n_post)
    indptr, indices = np.asarray(indptr), np.asarray(indices)
    proj.plastic_index = _Tables(indptr, indices, proj.n_pre, proj.n_post)
    w = proj.weight
    wv = np.asarray(w.committed_value if isinstance(w, Variable) else w, float_dtype())
    if wv.shape == ():
        if isinstance(w, Variable):
            raise ValueError("Projection: a plastic projection needs one weight per synapse; got a scalar "
                             f"Variable. Pass a number (broadcast to all {proj.nnz} synapses) or a "
                             f"Variable of shape ({proj.nnz},)")
        proj.weight = Variable(jax.device_put(np.full((proj.nnz,), wv, float_dtype())))
    elif not isinstance(w, Variable):
        proj.weight = Variable(jax.device_put(wv))
    lo, hi = _concrete(rule.w_min), _concrete(rule.w_max)
    if wv.size and ((lo is not None and wv.min() < lo) or (hi is not None and wv.max() > hi)):
        raise ValueError(f"Projection: initial weights span [{wv.min()}, {wv.max()}], outside the bounds "
                         f"[{rule.w_min}, {rule.w_max}] of {type(rule).__name__}")
    proj.homogeneous = False
    # Spikes are handled in batches of max_spikes (a burst takes several): small batches
    # cost little in the common sparse step. The user's max_spikes is kept.
    if max_spikes is None:
        proj.max_spikes = int(min(max(8, math.ceil(0.0025 * proj.n_pre)), proj.n_pre))
    if max_post_spikes is None:
        max_post_spikes = max(8, math.ceil(0.0025 * proj.n_post))
    proj.max_post_spikes = int(min(max(1, max_post_spikes), proj.n_post))
    # room for the weights of one batch of rows and of columns, and one slot more (see plastic_update)
    tables = proj.plastic_index
    for name, k, table in (("scratch_rows", proj.max_spikes, tables.row_windows), ("scratch_cols", proj.max_post_spikes, tables.cols)):
        setattr(tables, name, Variable(jax.device_put(np.zeros((k * table.shape[1] + 1,), float_dtype()))))
    rule._bind(proj)


_FEW = 64


@functools.lru_cache(maxsize=None)
def _gathers_split() -> bool:
    """Whether XLA splits a gather from a large vector over threads (XLA:CPU with a pool of
    several threads); read once from the compiled code of a small probe."""
    if jax.default_backend() != "cpu":
        return False
    probe = jax.jit(lambda a, i: a[i]).lower(jax.ShapeDtypeStruct((1 << 18,), jnp.float32),
                                            jax.ShapeDtypeStruct((768,), jnp.int32))
    return "outer_dimension_partitions" in probe.compile().as_text()


def _take(table: jax.Array, idx: jax.Array) -> jax.Array:
    """``table[idx]``; for a few rows as concatenated dynamic slices: XLA:CPU splits a gather
    from a large table across its threads (a loss at this size), not a dynamic slice."""
    if idx.shape[0] <= _FEW:
        return jnp.concatenate([jax.lax.dynamic_slice_in_dim(table, idx[j], 1, 0) for j in range(idx.shape[0])])
    return table[idx]


# XLA's canonical form (one window of size 1 per index): updates of shape (N, 1) pass to the
# scatter as they are; from the form with no window, XLA adds the window itself, and a copy.
_SCATTER_DIMS = jax.lax.ScatterDimensionNumbers(update_window_dims=(1,), inserted_window_dims=(),
                                                scatter_dims_to_operand_dims=(0,))


def _scatter(target: jax.Array, idx: jax.Array, values: jax.Array, add: bool = False) -> jax.Array:
    """``target.at[idx].set(values)`` (or ``.add``) for indices in ``[0, len(target)]``, the last
    one dropped (padding). Unlike ``.at[]`` it does not wrap negative indices: the index
    table is then passed to the scatter as it is read, without a kernel to rewrite it."""
    fn = jax.lax.scatter_add if add else jax.lax.scatter
    return fn(target, idx.reshape(-1, 1), values.reshape(-1, 1).astype(target.dtype), _SCATTER_DIMS,
              mode=jax.lax.GatherScatterMode.FILL_OR_DROP)


def _differentiable(proj: Any) -> bool:
    """Whether gradients may be taken: the weights or a rule parameter are TrainVars."""
    rule = proj.plasticity
    return isinstance(proj.weight, TrainVar) or any(isinstance(v, TrainVar) for v in rule.__dict__.values())


def plastic_update(proj: Any, first_spikes: Callable[[Any, int, int], Any] | None = None) -> jax.Array:
    """One step of a plastic projection: transmission, weight and trace updates; returns ``syn.update``.

    ``first_spikes(group, delay_steps, k)``, where given, returns the first ``k`` spike
    indices of ``group`` (delayed by ``delay_steps``) this step and whether they are all
    of them, as ``compact_fit`` gives them, or None (a Network's fused compaction, see
    ``Fusion.first_spikes``); the projection then does not compact those spikes itself."""
    rule: Plasticity = proj.plasticity
    tables: _Tables = proj.plastic_index
    pre_s = proj._delayed_spikes()
    post_s = proj.post.spike.value
    if pre_s.ndim != 1 or post_s.ndim != 1:
        raise ValueError(f"Projection '{proj.name}': plasticity needs unbatched spikes (shape (size,)), got "
                         f"pre {pre_s.shape} and post {post_s.shape}; use nd.vmap for independent networks")
    n_pre, n_post = tables.n_pre, tables.n_post
    traces = rule.traces()
    for t in traces.values():
        t.decay()
    if tables.dense:
        return _dense_update(proj, rule, pre_s, post_s)
    if tables.nnz == 0:  # no synapse: nothing to transmit or learn, only the traces move
        for t in traces.values():
            t.add(pre_s if t.side == "pre" else post_s)
        rule.step(pre_s, post_s)
        return proj.syn.update(jnp.zeros((n_post,), float_dtype()))
    names = tuple(rule.synapse_state)
    state = {k: getattr(rule, k).value for k in names}
    w = proj.weight.value
    sv = jnp.concatenate([pre_s.astype(float_dtype()), jnp.zeros((1,), float_dtype())])
    row_tab = tables.row_windows.value
    on_pre, on_post = _uses(rule, "on_pre"), _uses(rule, "on_post")
    release = rule.release

    nnz = tables.nnz

    def read(arrays: tuple, syn: jax.Array) -> tuple:
        # padding slots (syn == nnz) read the last synapse; what they compute is dropped on write
        return tuple(jnp.take(a, syn, mode="clip") for a in arrays)

    def read_rows(arrays: tuple, syn: jax.Array) -> tuple:
        # A row's synapses are contiguous in CSR order: K windows of k values cost less than
        # a gather of single synapses. One gather of the windows is the cheapest read, unless
        # XLA:CPU splits it over its threads (a loss at this size): then K dynamic slices.
        # The table's rows are windows (see _Tables): the first slot is the window's start, or
        # padding where that is another row's synapse (then the window ends at nnz).
        K, k = syn.shape
        start = jnp.minimum(syn[:, 0], nnz - k)
        if K <= _FEW and _gathers_split():
            return tuple(jnp.stack([jax.lax.dynamic_slice_in_dim(a, start[j], k) for j in range(K)]) for a in arrays)
        return tuple(jax.vmap(lambda i, a=a: jax.lax.dynamic_slice_in_dim(a, i, k))(start) for a in arrays)

    def call(fn: Callable, ws: jax.Array, ss: dict, pre: jax.Array, post: jax.Array) -> tuple[jax.Array, dict]:
        return fn(ws, pre, post, ss) if names else (fn(ws, pre, post), ss)

    def write(w_: jax.Array, state_: dict, syn: jax.Array, ws: jax.Array, ss: dict) -> tuple[jax.Array, dict]:
        return (_scatter(w_, syn, ws), {n: _scatter(v, syn, ss[n]) for n, v in state_.items()})

    diff = _differentiable(proj)

    def scratch(name: str, size: int) -> jax.Array | None:
        # only where XLA:CPU splits kernels over a pool of threads (see staged); with one
        # thread, the reads are as fast without
        v = getattr(tables, name)
        return v.value if v.shape == (size + 1,) and not diff and _gathers_split() else None

    def staged(buf: jax.Array | None, values: jax.Array) -> tuple[jax.Array | None, jax.Array]:
        # The values are written into a scratch buffer (one slot longer, never read) that the
        # kernels after read instead of recomputing them: a kernel that ends in an in-place
        # update of a buffer is neither duplicated into its readers (which would read the
        # weights again and make XLA copy them before their scatter) nor split over XLA:CPU's
        # threads (a gather from the 820 KB weight vector of COBA's E -> E is). Same values.
        # The rows' windows are read by dynamic slices there (read_rows), which XLA duplicates.
        # The buffer's Variable keeps its value (shared by nd.vmap's elements): XLA copies the
        # small buffer once per step.
        if buf is None:
            return None, values
        buf = jax.lax.dynamic_update_slice_in_dim(buf, values.reshape(-1).astype(buf.dtype), 0, 0)
        return buf, buf[:values.size].reshape(values.shape)

    def padded(idx: jax.Array, fill: int) -> jax.Array:
        return jnp.concatenate([idx.reshape(-1), jnp.full((1,), fill, idx.dtype)])

    def rows(idx: jax.Array, carry: tuple) -> tuple:
        x, w_, state_, buf = carry
        tab = _take(row_tab, idx)
        syn, post = tab[..., 0], tab[..., 1]                 # (K, k); padding: nnz, n_post (dropped)
        pre, post_c = idx[:, None], jnp.minimum(post, n_post - 1)
        ws, *svals = read_rows((w_, *state_.values()), syn)
        buf, ws = staged(buf, ws)
        ss = dict(zip(state_, svals))
        if names:
            ws, ss = call(rule._catch_up, ws, ss, pre, post_c)
        if pre_s.dtype == jnp.bool_ and release is None:
            # a spike transmits its weights once; padding rows target n_post (dropped)
            x = _scatter(x, post, ws, add=True) if buf is None or names else \
                _scatter(x, padded(post, n_post), buf, add=True)
        else:
            factor = sv[idx] if release is None else sv[idx] * release(idx)
            x = _scatter(x, post, ws * factor[:, None], add=True)
        if on_pre:
            ws, ss = call(rule.on_pre, ws, ss, pre, post_c)
        if on_pre or names or on_post:
            # Without on_pre the weights are written back unchanged: a row pass that only
            # read them would let XLA run the column pass (which writes them in place) first
            # and copy the whole weight vector, twice per step.
            w_, state_ = write(w_, state_, syn, ws, ss)
        return x, w_, state_, buf

    def first(group: Any, delay_steps: int, k: int) -> Any:
        return None if first_spikes is None or diff or k >= group.size else first_spikes(group, delay_steps, k)

    K = proj.max_spikes
    x, w, state, _ = _for_events(pre_s, K, rows, (jnp.zeros((n_post,), float_dtype()), w, state,
                                                    scratch("scratch_rows", K * row_tab.shape[1])),
                                   diff, first(proj.pre, proj.delay_steps, K))
    for t in traces.values():
        if t.side == "pre":
            t.add(pre_s)

    if on_post:
        col_tab = tables.cols.value
        Kc = proj.max_post_spikes

        def cols(idx: jax.Array, carry: tuple) -> tuple:
            w_, state_, buf = carry
            tab = _take(col_tab, idx)
            syn, pre, post = tab[..., 0], jnp.minimum(tab[..., 1], n_pre - 1), idx[:, None]
            ws, *svals = read((w_, *state_.values()), syn)
            ss = dict(zip(state_, svals))
            if names:
                ws, ss = call(rule._catch_up, ws, ss, pre, post)
            ws, ss = call(rule.on_post, ws, ss, pre, post)
            buf, _ = staged(buf, ws)
            if buf is None:
                return (*write(w_, state_, syn, ws, ss), buf)
            # the scatter reads the whole buffer (its extra slot goes to the dropped index nnz)
            return (_scatter(w_, padded(syn, nnz), buf), {n: _scatter(v, syn, ss[n]) for n, v in state_.items()}, buf)

        w, state, _ = _for_events(post_s, Kc, cols, (w, state, scratch("scratch_cols", Kc * col_tab.shape[1])),
                                    diff, first(proj.post, 1, Kc))
    for t in traces.values():
        if t.side == "post":
            t.add(post_s)
    rule.step(pre_s, post_s)
    return _store(proj, rule, w, state, on_pre or on_post, x)


def _store(proj: Any, rule: Plasticity, w: jax.Array, state: dict, weights_changed: bool,
           x: jax.Array) -> jax.Array:
    """Write back the step's weights and per-synapse state; returns the synaptic output for ``x``."""
    if state:
        w, state = rule._synapse_step(w, state)
        for k, v in state.items():
            getattr(rule, k).value = v
    if weights_changed or state:
        proj.weight.value = w
    return proj.syn.update(x)


def _dense_update(proj: Any, rule: Plasticity, pre_s: jax.Array, post_s: jax.Array) -> jax.Array:
    """One step of a small all-to-all plastic projection on the weight matrix as a whole.

    The same order and arithmetic as the event-driven path: the hooks see every synapse at once
    (``pre`` ``(n_pre, 1)``, ``post`` ``(1, n_post)``) and their results are kept for the rows
    (columns) of the neurons that spiked. Traces have already decayed."""
    n_pre, n_post = proj.n_pre, proj.n_post
    names = tuple(rule.synapse_state)
    on_pre, on_post = _uses(rule, "on_pre"), _uses(rule, "on_post")
    shape = (n_pre, n_post)
    w = proj.weight.value.reshape(shape)
    state = {k: getattr(rule, k).value.reshape(shape) for k in names}
    pre = jnp.arange(n_pre, dtype=jnp.int32)[:, None]
    post = jnp.arange(n_post, dtype=jnp.int32)[None, :]

    def apply(fn: Callable, mask: jax.Array, w_: jax.Array, s_: dict) -> tuple[jax.Array, dict]:
        new_w, new_s = fn(w_, pre, post, s_) if names else (fn(w_, pre, post), s_)
        return (jnp.where(mask, new_w, w_),
                {k: jnp.where(mask, new_s[k], s_[k]) for k in s_})

    spre = (pre_s != 0)[:, None]
    if names:
        w, state = apply(rule._catch_up, spre, w, state)
    factor = pre_s.astype(float_dtype())
    if rule.release is not None:
        factor = factor * rule.release(pre[:, 0])
    x = jnp.dot(factor, w, precision=jax.lax.Precision.HIGHEST)
    if on_pre:
        w, state = apply(rule.on_pre, spre, w, state)
    for t in rule.traces().values():
        if t.side == "pre":
            t.add(pre_s)
    if on_post:
        spost = (post_s != 0)[None, :]
        if names:
            w, state = apply(rule._catch_up, spost, w, state)
        w, state = apply(rule.on_post, spost, w, state)
    for t in rule.traces().values():
        if t.side == "post":
            t.add(post_s)
    rule.step(pre_s, post_s)
    flat_state = {k: v.reshape(-1) for k, v in state.items()}
    return _store(proj, rule, w.reshape(-1), flat_state, on_pre or on_post, x)


# -- rules ---------------------------------------------------------------------------------------
class STDP(Plasticity):
    """Pair-based STDP: ``Delta w = A_plus exp(-dt/tau_pre)`` for pre before post
    (``dt = t_post - t_pre >= 0``), ``-A_minus exp(dt/tau_post)`` for post before pre.

    Traces: ``x_pre`` (tau_pre) and ``x_post`` (tau_post). On a presynaptic
    spike ``w`` is depressed by ``A_minus * x_post``; on a postsynaptic spike
    potentiated by ``A_plus * x_pre``. ``pairing='all'`` sums over all pairs
    (traces add 1 per spike); ``'nearest'`` pairs each spike with the nearest
    preceding spike of the other side only (traces reset to 1). ``bounds='hard'``
    gives additive STDP (clipped to ``[w_min, w_max]``); ``'soft'`` gives
    multiplicative STDP (``A_plus (w_max - w)``, ``A_minus (w - w_min)``).

    Args:
        tau_pre, tau_post: trace time constants (ms).
        A_plus, A_minus: amplitudes (>= 0; ``A_minus`` is the size of the depression).
        w_min, w_max: weight bounds.
        bounds: ``'hard'`` (additive) or ``'soft'`` (multiplicative).
        pairing: ``'all'`` or ``'nearest'``.

    Example:
        >>> from neurodyn import nn
        >>> inp, out = nn.LIF(100), nn.LIF(1)
        >>> stdp = nn.STDP(tau_pre=20., tau_post=20., A_plus=0.01, A_minus=0.0105, w_max=1.)
        >>> proj = nn.Projection(inp, out, nn.AllToAll(), 0.5, nn.Expon(1, 5.), nn.COBA(0.), plasticity=stdp)
        >>> proj.weight.shape, stdp.x_pre.shape, stdp.x_post.shape
        ((100,), (100,), (1,))
    """

    def __init__(self, tau_pre: Any = 20.0, tau_post: Any = 20.0, A_plus: Any = 0.01, A_minus: Any = 0.0105,
                 w_min: Any = 0.0, w_max: Any = 1.0, bounds: str = "hard", pairing: str = "all") -> None:
        super().__init__(w_min, w_max, bounds)
        if pairing not in ("all", "nearest"):
            raise ValueError(f"STDP: pairing must be 'all' or 'nearest', got {pairing!r}")
        self.pairing = pairing
        self.A_plus = _nonneg("STDP", "A_plus", A_plus)
        self.A_minus = _nonneg("STDP", "A_minus", A_minus)
        near = pairing == "nearest"
        self.x_pre = Trace("pre", tau_pre, nearest=near)
        self.x_post = Trace("post", tau_post, nearest=near)

    def on_pre(self, w: jax.Array, pre: jax.Array, post: jax.Array) -> jax.Array:
        return self.depress(w, _val(self.A_minus) * self.x_post[post])

    def on_post(self, w: jax.Array, pre: jax.Array, post: jax.Array) -> jax.Array:
        return self.potentiate(w, _val(self.A_plus) * self.x_pre[pre])


class TripletSTDP(Plasticity):
    """Triplet STDP (Pfister & Gerstner 2006).

    Presynaptic traces ``r1`` (tau_plus), ``r2`` (tau_x); postsynaptic ``o1``
    (tau_minus), ``o2`` (tau_y). On a presynaptic spike
    ``w -= o1 * (A2_minus + A3_minus * r2)``; on a postsynaptic spike
    ``w += r1 * (A2_plus + A3_plus * o2)``, where ``r2`` and ``o2`` are read
    before they take the current spike. ``interaction='all'`` (all-to-all,
    traces add 1) or ``'nearest'`` (nearest spike, traces reset to 1). The
    "minimal" models of the paper are ``A3_minus = 0`` (and ``A2_plus = 0``).

    Example:
        >>> from neurodyn import nn
        >>> # visual cortex, all-to-all, minimal model (Pfister & Gerstner 2006, Table 4)
        >>> rule = nn.TripletSTDP(tau_plus=16.8, tau_minus=33.7, tau_x=101., tau_y=125.,
        ...                       A2_plus=0., A3_plus=6.5e-3, A2_minus=7.1e-3, A3_minus=0.)
        >>> sorted(rule.traces())
        ['o1', 'o2', 'r1', 'r2']
    """

    def __init__(self, tau_plus: Any = 16.8, tau_minus: Any = 33.7, tau_x: Any = 101.0, tau_y: Any = 125.0,
                 A2_plus: Any = 5e-10, A3_plus: Any = 6.2e-3, A2_minus: Any = 7e-3, A3_minus: Any = 2.3e-4,
                 w_min: Any = 0.0, w_max: Any = 1.0, bounds: str = "hard", interaction: str = "all") -> None:
        super().__init__(w_min, w_max, bounds)
        if interaction not in ("all", "nearest"):
            raise ValueError(f"TripletSTDP: interaction must be 'all' or 'nearest', got {interaction!r}")
        self.interaction = interaction
        for k, v in dict(A2_plus=A2_plus, A3_plus=A3_plus, A2_minus=A2_minus, A3_minus=A3_minus).items():
            setattr(self, k, _nonneg("TripletSTDP", k, v))
        near = interaction == "nearest"
        self.r1 = Trace("pre", tau_plus, nearest=near)
        self.r2 = Trace("pre", tau_x, nearest=near)
        self.o1 = Trace("post", tau_minus, nearest=near)
        self.o2 = Trace("post", tau_y, nearest=near)

    def on_pre(self, w: jax.Array, pre: jax.Array, post: jax.Array) -> jax.Array:
        return self.depress(w, self.o1[post] * (_val(self.A2_minus) + _val(self.A3_minus) * self.r2[pre]))

    def on_post(self, w: jax.Array, pre: jax.Array, post: jax.Array) -> jax.Array:
        return self.potentiate(w, self.r1[pre] * (_val(self.A2_plus) + _val(self.A3_plus) * self.o2[post]))


class VogelsSTDP(Plasticity):
    """Inhibitory plasticity of Vogels et al. (2011): a symmetric window with a target rate.

    Traces ``x_pre`` and ``x_post`` (both ``tau``). On a presynaptic spike
    ``w += eta * (x_post - alpha)``; on a postsynaptic spike ``w += eta * x_pre``,
    with ``alpha = 2 * rho0 * tau`` (``rho0`` the target postsynaptic rate in
    Hz, ``tau`` in ms). Weights are magnitudes of inhibition, clipped to
    ``[w_min, w_max]``.

    Example:
        >>> from neurodyn import nn
        >>> rule = nn.VogelsSTDP(tau=20., eta=1e-3, rho0=5., w_max=10.)
        >>> round(rule.alpha, 6)              # 2 * 5 Hz * 20 ms
        0.2
    """

    def __init__(self, tau: Any = 20.0, eta: Any = 1e-3, rho0: Any = 5.0, w_min: Any = 0.0,
                 w_max: Any = 1.0) -> None:
        super().__init__(w_min, w_max, "hard")
        self.eta = _nonneg("VogelsSTDP", "eta", eta)
        self.rho0 = _nonneg("VogelsSTDP", "rho0", rho0)
        self.x_pre = Trace("pre", tau)
        self.x_post = Trace("post", tau)

    @property
    def alpha(self) -> Any:
        return 2.0 * _val(self.rho0) * _val(self.x_pre.tau) / 1000.0

    def on_pre(self, w: jax.Array, pre: jax.Array, post: jax.Array) -> jax.Array:
        return self.clip(w + _val(self.eta) * (self.x_post[post] - self.alpha))

    def on_post(self, w: jax.Array, pre: jax.Array, post: jax.Array) -> jax.Array:
        return self.clip(w + _val(self.eta) * self.x_pre[pre])


class TsodyksMarkram(Plasticity):
    """Tsodyks-Markram short-term depression and facilitation, per presynaptic neuron.

    Between spikes the utilisation ``u`` decays to 0 (``tau_f``) and the
    resources ``x`` recover to 1 (``tau_d``), solved exactly. On a spike
    ``u += U (1 - u)``, the transmitted weight is ``w * u * x`` (``u`` after,
    ``x`` before the spike's update), then ``x -= u x``. This is the recursion
    of Markram et al. (1998) and NEST's ``tsodyks2_synapse``: with a spike
    interval ``T``, ``u_{n+1} = U + u_n (1 - U) exp(-T / tau_f)`` and
    ``x_{n+1} = 1 - (1 - x_n + u_n x_n) exp(-T / tau_d)``. ``tau_f`` near 0
    gives pure depression (``u = U`` at every spike). The stored weights do
    not change.

    Example:
        >>> import jax.numpy as jnp
        >>> import neurodyn as nd
        >>> from neurodyn import nn
        >>> depressing = nn.TsodyksMarkram(U=0.5, tau_d=800., tau_f=1e-3)
        >>> facilitating = nn.TsodyksMarkram(U=0.15, tau_d=50., tau_f=750.)
        >>> pre, post = nn.LIF(1), nn.LIF(1)
        >>> proj = nn.Projection(pre, post, nn.OneToOne(), 1., nn.Expon(1, 5.), nn.CUBA(),
        ...                      plasticity=depressing)
        >>> pre.spike.value = jnp.ones(1, bool)
        >>> step = nd.jit(proj.update)
        >>> # g of the synapse: a spike every step releases w u x = 0.5, 0.25, 0.125 (plus decay of g)
        >>> [round(float(step()[0]), 3) for _ in range(3)]
        [0.5, 0.74, 0.851]
    """

    def __init__(self, U: Any = 0.5, tau_d: Any = 200.0, tau_f: Any = 1e-3) -> None:
        super().__init__()
        self.U = _check("TsodyksMarkram", "U", U, lambda c: 0 < c <= 1, "in (0, 1]")
        self.tau_d = _positive("TsodyksMarkram", "tau_d", tau_d)
        self.tau_f = _positive("TsodyksMarkram", "tau_f", tau_f)
        self.u = Variable(jax.device_put(np.zeros((0,), float_dtype())))
        self.x = Variable(jax.device_put(np.zeros((0,), float_dtype())))

    def _resize(self, n_pre: int, n_post: int, nnz: int) -> None:
        self.u.reset_value(jnp.zeros((n_pre,), float_dtype()))
        self.x.reset_value(jnp.ones((n_pre,), float_dtype()))

    def reset_state(self, batch_size: int | None = None) -> None:
        super().reset_state(batch_size)
        _zero(self.u, 0.0)
        _zero(self.x, 1.0)

    def _at_spike(self) -> tuple[jax.Array, jax.Array, jax.Array]:
        """This step's relaxed ``x``, ``u`` after a spike's jump, and the release ``u x``."""
        dt = get_dt()
        u = self.u.value * jnp.exp(-dt / _val(self.tau_f))
        x = 1.0 - (1.0 - self.x.value) * jnp.exp(-dt / _val(self.tau_d))
        u_plus = u + _val(self.U) * (1.0 - u)
        return x, u, u_plus

    def release(self, pre: jax.Array) -> jax.Array:
        x, _, u_plus = self._at_spike()
        r = jnp.concatenate([u_plus * x, jnp.zeros((1,), float_dtype())])  # pre == n_pre: padding
        return r[pre]

    def step(self, pre_spikes: jax.Array, post_spikes: jax.Array) -> None:
        x, u, u_plus = self._at_spike()
        s = pre_spikes != 0
        self.u.value = jnp.where(s, u_plus, u)
        self.x.value = jnp.where(s, x - u_plus * x, x)


class RewardSTDP(Plasticity):
    """Reward-modulated STDP (Izhikevich 2007): STDP feeds an eligibility trace, a neuromodulator gates it.

    Each synapse holds an eligibility ``c`` (``dc/dt = -c / tau_c``) to which
    pair STDP adds (``+A_plus * x_pre`` on a postsynaptic spike, ``-A_minus *
    x_post`` on a presynaptic one). The neuromodulator (dopamine) ``d`` is one
    number per network, ``dd/dt = -d / tau_d``, raised by :meth:`reward`; the
    weights follow ``dw/dt = c d``.

    Event-driven, like NEST's ``stdp_dopamine_synapse``: a synapse's weight
    is brought up to date (exactly: the integral of ``c d`` since its last
    event) when its pre- or postsynaptic neuron spikes, and clipped to
    ``[w_min, w_max]`` then. Call :meth:`sync` to bring every weight up to date
    (e.g. before reading ``proj.weight``). Every ``tau_c`` of simulated time the
    reference time of the scaled eligibilities moves (one pass over all
    synapses), which keeps the numbers in range.

    Example:
        >>> from neurodyn import nn
        >>> rule = nn.RewardSTDP(tau_c=1000., tau_d=200., A_plus=1., A_minus=1.5, w_max=4.)
        >>> rule.reward(0.5)      # in the step where the reward arrives
        >>> float(rule.d.value)
        0.5
    """

    synapse_state = ("c", "D_last")

    def __init__(self, tau_pre: Any = 20.0, tau_post: Any = 20.0, A_plus: Any = 1.0, A_minus: Any = 1.5,
                 tau_c: float = 1000.0, tau_d: float = 200.0, w_min: Any = 0.0, w_max: Any = 4.0) -> None:
        super().__init__(w_min, w_max, "hard")
        self.A_plus = _nonneg("RewardSTDP", "A_plus", A_plus)
        self.A_minus = _nonneg("RewardSTDP", "A_minus", A_minus)
        if isinstance(tau_c, Variable) or isinstance(tau_d, Variable):
            raise TypeError("RewardSTDP: tau_c and tau_d must be numbers (they fix the reference-time schedule)")
        self.tau_c = float(_positive("RewardSTDP", "tau_c", tau_c))
        self.tau_d = float(_positive("RewardSTDP", "tau_d", tau_d))
        self.x_pre = Trace("pre", tau_pre)
        self.x_post = Trace("post", tau_post)
        # per synapse: eligibility scaled by exp(t_ref_offset / tau_c), and D at its last event
        self.c = Variable(jax.device_put(np.zeros((0,), float_dtype())))
        self.D_last = Variable(jax.device_put(np.zeros((0,), float_dtype())))
        # the neuromodulator, D(t) = int_0^t exp(-s / tau_c) d(s) ds since the reference time,
        # and the steps since the reference time
        self.d = Variable(jax.device_put(np.zeros((), float_dtype())))
        self.D = Variable(jax.device_put(np.zeros((), float_dtype())))
        self.k = Variable(jax.device_put(np.zeros((), jnp.int32)))

    def _resize(self, n_pre: int, n_post: int, nnz: int) -> None:
        self.c.reset_value(jnp.zeros((nnz,), float_dtype()))
        self.D_last.reset_value(jnp.zeros((nnz,), float_dtype()))

    def reset_state(self, batch_size: int | None = None) -> None:
        """Clear traces, eligibilities and the neuromodulator (bring weights up to date first: :meth:`sync`)."""
        Plasticity.reset_state(self, batch_size)
        for v in (self.c, self.D_last, self.d, self.D, self.k):
            _zero(v)

    def reward(self, amount: Any) -> None:
        """Release neuromodulator: ``d += amount`` (inside the step, or between runs).

        Example:
            >>> from neurodyn import nn
            >>> rule = nn.RewardSTDP()
            >>> rule.reward(0.5); rule.reward(0.25)
            >>> float(rule.d.value)
            0.75
        """
        self.d.value = self.d.value + amount

    def _scale(self) -> jax.Array:
        return jnp.exp(self.k.value.astype(float_dtype()) * (get_dt() / self.tau_c))

    def _catch_up(self, w: jax.Array, pre: jax.Array, post: jax.Array, s: dict) -> tuple[jax.Array, dict]:
        D = self.D.value
        w = self.clip(w + s["c"] * (D - s["D_last"]))
        return w, {"c": s["c"], "D_last": jnp.broadcast_to(D, w.shape)}

    def on_pre(self, w: jax.Array, pre: jax.Array, post: jax.Array, s: dict) -> tuple[jax.Array, dict]:
        return w, dict(s, c=s["c"] - _val(self.A_minus) * self.x_post[post] * self._scale())

    def on_post(self, w: jax.Array, pre: jax.Array, post: jax.Array, s: dict) -> tuple[jax.Array, dict]:
        return w, dict(s, c=s["c"] + _val(self.A_plus) * self.x_pre[pre] * self._scale())

    def _synapse_step(self, w: jax.Array, s: dict) -> tuple[jax.Array, dict]:
        dt = get_dt()
        lam = 1.0 / self.tau_c + 1.0 / self.tau_d
        d = self.d.value
        # exact integral over this step of exp(-t / tau_c) d(t), d decaying with tau_d
        D = self.D.value + d * jnp.exp(-self.k.value.astype(float_dtype()) * (dt / self.tau_c)) \
            * (-math.expm1(-lam * dt) / lam)
        self.d.value = d * math.exp(-dt / self.tau_d)
        k = self.k.value + 1
        R = max(1, int(round(self.tau_c / dt)))

        def rebase() -> tuple:
            w2 = self.clip(w + s["c"] * (D - s["D_last"]))
            c2 = s["c"] * jnp.exp(-k.astype(float_dtype()) * (dt / self.tau_c))
            return w2, c2, jnp.zeros_like(s["D_last"]), jnp.zeros_like(D), jnp.zeros_like(k)

        w, c, D_last, D, k = jax.lax.cond(k >= R, rebase, lambda: (w, s["c"], s["D_last"], D, k))
        self.D.value, self.k.value = D, k
        return w, {"c": c, "D_last": D_last}

    def sync(self, proj: Any) -> None:
        """Bring every weight of ``proj`` up to date (its rule must be this one).

        Example:
            >>> from neurodyn import nn
            >>> rule = nn.RewardSTDP()
            >>> pre, post = nn.LIF(4), nn.LIF(2)
            >>> proj = nn.Projection(pre, post, nn.AllToAll(), 1., nn.Expon(2, 5.), nn.CUBA(), plasticity=rule)
            >>> rule.sync(proj)       # before reading proj.weight
            >>> proj.weight.value.shape
            (8,)
        """
        if getattr(proj, "plasticity", None) is not self:
            raise ValueError("RewardSTDP.sync: the projection given does not use this rule")
        D = self.D.value
        proj.weight.value = self.clip(proj.weight.value + self.c.value * (D - self.D_last.value))
        self.D_last.value = jnp.full(self.D_last.shape, D, float_dtype())


# -- weight monitors -------------------------------------------------------------------------------
def weight_mean(proj: Any) -> Callable[[Any], jax.Array]:
    """A Runner monitor: the mean weight of ``proj``, reduced on the device (one number per record).

    Example:
        >>> from neurodyn import nn
        >>> proj = nn.Projection(nn.LIF(50), nn.LIF(1), nn.AllToAll(), 0.5, nn.Expon(1, 5.), nn.COBA(0.),
        ...                      plasticity=nn.STDP())
        >>> monitor = nn.weight_mean(proj)   # nd.Runner(net, monitors={'w_mean': monitor})
        >>> monitor(None)
        Array(0.5, dtype=float32)
    """
    _check_plastic(proj, "weight_mean")
    return lambda model: jnp.mean(proj.weight.value)


def weight_histogram(proj: Any, bins: int = 20, range: tuple[float, float] | None = None
                     ) -> Callable[[Any], jax.Array]:
    """A Runner monitor: counts of ``proj``'s weights in ``bins`` equal bins over ``range``
    (default: the rule's ``[w_min, w_max]``), computed on the device.

    For snapshots of all weights every N steps instead, monitor ``'<proj>.weight'``
    with ``Runner(..., monitor_every=N)``.

    Example:
        >>> from neurodyn import nn
        >>> proj = nn.Projection(nn.LIF(50), nn.LIF(1), nn.AllToAll(), 0.5, nn.Expon(1, 5.), nn.COBA(0.),
        ...                      plasticity=nn.STDP())
        >>> monitor = nn.weight_histogram(proj, 10)   # nd.Runner(net, monitors={'w_hist': monitor})
        >>> monitor(None)                             # the 50 weights in 10 bins over [0, 1]
        Array([ 0,  0,  0,  0,  0, 50,  0,  0,  0,  0], dtype=int32)
    """
    _check_plastic(proj, "weight_histogram")
    if not isinstance(bins, int) or bins < 1:
        raise ValueError(f"weight_histogram: bins must be a positive int, got {bins!r}")
    if range is None:
        lo, hi = _concrete(proj.plasticity.w_min), _concrete(proj.plasticity.w_max)
        if lo is None or hi is None or not (np.isfinite(lo) and np.isfinite(hi)):
            raise ValueError("weight_histogram: the rule has no finite bounds; give range=(low, high)")
        range = (float(lo), float(hi))
    lo, hi = float(range[0]), float(range[1])
    if not hi > lo:
        raise ValueError(f"weight_histogram: range must have high > low, got {range}")

    def hist(model: Any) -> jax.Array:
        w = proj.weight.value
        i = jnp.clip(jnp.floor((w - lo) / (hi - lo) * bins), 0, bins - 1).astype(jnp.int32)
        return jnp.zeros((bins,), jnp.int32).at[i].add(1)

    return hist


def _check_plastic(proj: Any, where: str) -> None:
    if getattr(proj, "plasticity", None) is None:
        raise ValueError(f"{where}: expected a Projection with plasticity (per-synapse weights), "
                         f"got {type(proj).__name__}")
