"""Pieces shared by the published models: spike recording, fused delayed currents, exact LIF factors."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec

from .._environ import get_dt
from .._module import Module
from .._state import Variable
from .. import analysis
from ..nn._projection import _compact_to_rows, delay_steps


def packed_spikes(groups: list) -> jax.Array:
    """The spikes of ``groups`` (concatenated) as bits, 8 neurons per byte."""
    s = jnp.concatenate([g.spike.value for g in groups]) if len(groups) > 1 else groups[0].spike.value
    return jnp.packbits(s.astype(jnp.bool_))


class PopulationsMixin:
    """Spike recording and population bookkeeping of a model made of named groups.

    ``population_names`` lists the group attributes in order; neurons are
    numbered across populations in that order.
    """

    population_names: tuple[str, ...] = ()

    def population_sizes(self) -> dict[str, int]:
        """Population name -> number of neurons."""
        return {n: int(getattr(self, n).size) for n in self.population_names}

    def population_slices(self) -> dict[str, slice]:
        """Population name -> its range of global neuron indices (for ``neurodyn.analysis``)."""
        out, start = {}, 0
        for name, n in self.population_sizes().items():
            out[name] = slice(start, start + n)
            start += n
        return out

    @property
    def n_neurons(self) -> int:
        """The number of neurons of all populations."""
        return sum(self.population_sizes().values())

    def spike_monitor(self) -> dict[str, Any]:
        """A Runner monitor recording every neuron's spikes as packed bits (1 bit per neuron and step).

        Example:
            >>> runner = nd.Runner(net, monitors=net.spike_monitor())
            >>> runner.run(1000.)
            >>> record = net.spike_trains(runner)
        """
        groups = [getattr(self, n) for n in self.population_names]
        return {"spikes": lambda model: packed_spikes(groups)}

    def spike_trains(self, runner: Any, key: str = "spikes") -> analysis.SpikeTrains:
        """The spikes recorded by :meth:`spike_monitor` in ``runner``'s last run, as an event record.

        A spike has the time of its row in ``runner.mon.ts`` (the end of its step, as
        ``nd.SpikeRecord``); the window is ``(mon.ts[0] - dt, mon.ts[-1]]``.
        """
        bits = np.asarray(runner.mon[key])
        ts = np.asarray(runner.mon.ts)
        if bits.ndim != 2 or ts.size != bits.shape[0]:
            raise ValueError(f"{type(self).__name__}.spike_trains: runner.mon[{key!r}] has shape {bits.shape}; "
                             f"record with monitors=net.spike_monitor()")
        dense = np.unpackbits(bits, axis=1, count=self.n_neurons).astype(bool)
        dt = runner.dt
        # rows are labelled with the end of their step (mon.ts[k] = (k + 1) dt after the start)
        return analysis.SpikeTrains.from_dense(dense, dt=dt, t_start=float(ts[0]) - dt if ts.size else 0.0)


def lif_jump_factor(tau_m: float, R: float, dt: float) -> float:
    """The constant current that moves an exactly integrated LIF by 1 mV over one step.

    ``nn.LIF`` integrates ``tau dV/dt = -(V - V_rest) + R I`` with ``I`` held for
    the step: ``I`` adds ``R I (1 - exp(-dt / tau))`` to V. A voltage jump ``J``
    (delta synapse) is thus ``J * factor`` of current during one step.
    """
    return 1.0 / (R * (1.0 - math.exp(-dt / tau_m)))


def psc_exp_factor(tau_m: float, tau_syn: float, C_m: float, dt: float) -> float:
    """Current factor for an exponentially decaying synaptic current, integrated exactly.

    Over one step a current ``I0 exp(-t / tau_syn)`` moves ``V`` of an LIF
    (``C_m dV/dt = -(V - E_L) C_m / tau_m + I``) by
    ``P21 I0`` with ``P21 = tau_m tau_syn / (C_m (tau_m - tau_syn)) (exp(-dt/tau_m) - exp(-dt/tau_syn))``
    (the propagator of NEST's ``iaf_psc_exp``). ``nn.LIF`` adds ``R I (1 - exp(-dt/tau_m))``
    for a held current, so holding ``I0 * factor`` with this factor is exact.
    """
    R = tau_m / C_m
    p21 = tau_m * tau_syn / (C_m * (tau_m - tau_syn)) * (math.exp(-dt / tau_m) - math.exp(-dt / tau_syn))
    return p21 / (R * (1.0 - math.exp(-dt / tau_m)))


def _compact_rows(s: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
    """Indices of up to ``k`` spiking neurons of boolean ``s`` (unused slots: ``len(s)``), and the count."""
    return _compact_to_rows(s.astype(jnp.float32), k), jnp.sum(s, dtype=jnp.int32)


class DelayedCurrents(Module):
    """Event-driven input through one CSR table for all projections of a network, with per-synapse delays.

    Built on the host, one source population at a time, over a global numbering of ``n``
    neurons: ``sources`` yields ``(pre_offset, n_pre, parts)`` in increasing, contiguous
    ``pre_offset`` order, each part ``(post_offset, pre, post, weight, delay)`` with ``pre``
    sorted (local indices) and ``delay`` in ms (floats) or in steps (integers). Each step, ``update(spikes)`` takes the spikes of the
    previous step ``t - 1`` and adds the weights of the spiking neurons' synapses into a
    ring buffer of future inputs: a spike of step ``t - 1`` arrives at step ``t - 1 + D``
    (``D >= 1``, the delay in steps rounded half up as in ``nn.Projection``). It returns
    the input due at step ``t`` for every neuron.

    The cost per step is proportional to the synapses of the spiking neurons: up to
    ``k`` spiking rows are compacted, and their synapses are gathered ``chunk``
    at a time (more rows or synapses loop, exactly). Memory: 8 bytes per synapse (a
    combined delay/target index and a float32 weight), ``4 (n + 2)`` bytes of row
    pointers and ``D_max x n`` floats of ring buffer.
    """

    def __init__(self, n: int, sources: Any, nnz: int, k: int | None = None, chunk: int | None = None,
                 name: str = "synapses") -> None:
        dt = get_dt()
        self.n = n = int(n)
        self._dt = dt
        nnz = int(nnz)
        if nnz >= 2**31:
            raise ValueError(f"{name}: {nnz} synapses exceed the int32 index range")
        comb = np.empty(nnz, np.int32)
        weights = np.empty(nnz, np.float32)
        indptr = np.zeros(n + 2, np.int64)
        seg, next_pre, d_max = 0, 0, 1
        for pre_off, n_pre, parts in sources:
            if pre_off != next_pre:
                raise ValueError(f"{name}: sources must cover neurons 0..{n - 1} in order; got a source "
                                 f"at {pre_off}, expected {next_pre}")
            counts = [np.bincount(pre, minlength=n_pre) for _, pre, _, _, _ in parts]
            row_len = np.sum(counts, axis=0) if counts else np.zeros(n_pre, np.int64)
            row_start = np.zeros(n_pre + 1, np.int64)
            np.cumsum(row_len, out=row_start[1:])
            if seg + row_start[-1] > nnz:
                raise ValueError(f"{name}: more synapses than the nnz={nnz} announced")
            indptr[pre_off + 1:pre_off + n_pre + 1] = seg + row_start[1:]
            prior = np.zeros(n_pre, np.int64)
            for (post_off, pre, post, w, d), c in zip(parts, counts):
                pre = np.asarray(pre)
                if pre.size and np.any(pre[1:] < pre[:-1]):
                    raise ValueError(f"{name}: presynaptic indices of each part must be sorted")
                d = np.asarray(d)
                D = d if np.issubdtype(d.dtype, np.integer) else delay_steps(d, dt)
                if D.size and D.min() < 1:
                    raise ValueError(f"{name}: {int((D < 1).sum())} delay(s) below one step at dt = {dt:g} ms")
                d_max = max(d_max, int(D.max(initial=1)))
                idt = np.int32 if d_max * n < 2**31 else np.int64
                # pre is sorted: a synapse's slot is its neuron's offset plus its rank in the part
                part_start = np.zeros(n_pre + 1, np.int64)
                np.cumsum(c, out=part_start[1:])
                offset = seg + row_start[:-1] + prior - part_start[:-1]
                pos = offset[pre]
                pos += np.arange(pre.size)
                target = (D.astype(idt) - 1) * n
                target += np.asarray(post).astype(idt, copy=False)
                target += post_off
                comb[pos] = target
                weights[pos] = w
                prior += c
                del D, pos, target
            seg += int(row_start[-1])
            next_pre = pre_off + n_pre
        if next_pre != n or seg != nnz:
            raise ValueError(f"{name}: sources covered {next_pre} of {n} neurons and {seg} of {nnz} synapses")
        indptr[n + 1] = nnz  # row n: the empty row that unused compaction slots point at
        R = d_max  # ring slots: due now (D = 1) up to D_max - 1 steps ahead
        if 2 * R * n >= 2**31:
            raise ValueError(f"{name}: {n} neurons x {R} delay slots exceed the int32 index range")
        self.R, self.nnz = R, nnz
        row_lengths = np.diff(indptr[:n + 1])
        self.max_row = int(row_lengths.max(initial=0))
        mean_row = float(row_lengths.mean()) if n else 0.0
        self.k = int(min(n, k if k is not None else max(64, n // 500)))
        self.chunk = int(chunk if chunk is not None else min(1 << 17, max(4096, int(16 * mean_row))))
        self.indptr = Variable(jnp.asarray(indptr.astype(np.int32)))
        self.comb = Variable(jnp.asarray(comb))
        del comb
        self.weights = Variable(jnp.asarray(weights))
        del weights
        self.buffer = Variable(jnp.zeros((R, n), jnp.float32))
        self.pos = Variable(jnp.zeros((), jnp.int32))

    def _shard_specs(self, entry: Any, n_devices: int) -> dict[str, PartitionSpec]:
        # Under Runner(mesh=...): the ring buffer is split along its neuron axis (axis 1), so
        # reading the slot due now stays local; the table is replicated, because a spike's
        # synapses are gathered at arbitrary positions of it.
        buffer = PartitionSpec(None, entry) if self.n % n_devices == 0 else PartitionSpec()
        return {"buffer": buffer, "indptr": PartitionSpec(), "comb": PartitionSpec(),
                "weights": PartitionSpec(), "pos": PartitionSpec()}

    def reset_state(self, batch_size: int | None = None) -> None:
        if batch_size is not None:
            raise ValueError("DelayedCurrents: batched state is not supported")
        self.buffer.value = jnp.zeros_like(self.buffer.value)
        self.pos.value = jnp.zeros((), jnp.int32)

    def update(self, spikes: jax.Array) -> jax.Array:
        """Deliver ``spikes`` (bool, shape ``(n,)``) into the future and return the input due now."""
        if get_dt() != self._dt:
            raise RuntimeError(f"DelayedCurrents: built for dt={self._dt} ms, but dt is now {get_dt()} ms")
        n, R, k, S = self.n, self.R, self.k, self.chunk
        indptr, comb, weights = self.indptr.value, self.comb.value, self.weights.value
        pos = self.pos.value
        base = pos * n
        drop = 2 * R * n
        slots = jnp.arange(S, dtype=jnp.int32)

        def deliver_rows(buf: jax.Array, rows: jax.Array) -> jax.Array:
            # All synapses of ``rows`` (n: none), S at a time, as one flat list.
            starts = indptr[rows]
            lens = indptr[rows + 1] - starts
            ends = jnp.cumsum(lens)
            total = ends[-1]

            def body(c: Any) -> Any:
                j, b = c
                p = j * S + slots
                r = jnp.minimum(jnp.searchsorted(ends, p, side="right"), rows.shape[0] - 1)
                src = starts[r] + p - (ends[r] - lens[r])
                ok = p < total
                src = jnp.where(ok, src, 0)
                tg = jnp.where(ok, comb[src] + base, drop)
                tg = jnp.where(tg >= R * n, tg - R * n, tg)
                return j + 1, b.at[tg].add(jnp.where(ok, weights[src], 0.0), mode="drop")

            return jax.lax.while_loop(lambda c: c[0] * S < total, body, (jnp.int32(0), buf))[1]

        idx, count = _compact_rows(spikes, k)

        def many(buf: jax.Array) -> jax.Array:
            # more than k spikes: all spiking rows in index order, k at a time
            rows = jnp.nonzero(spikes, size=n, fill_value=n)[0].astype(jnp.int32)
            rows = jnp.concatenate([rows, jnp.full((k,), n, jnp.int32)])

            def body(c: Any) -> Any:
                j, b = c
                return j + 1, deliver_rows(b, jax.lax.dynamic_slice_in_dim(rows, j * k, k))

            return jax.lax.while_loop(lambda c: c[0] * k < count, body, (jnp.int32(0), buf))[1]

        flat = self.buffer.value.reshape(-1)
        flat = jax.lax.cond(count <= k, lambda b: deliver_rows(b, idx), many, flat)
        buf = flat.reshape(R, n)
        x = jax.lax.dynamic_index_in_dim(buf, pos, axis=0, keepdims=False)
        self.buffer.value = jax.lax.dynamic_update_index_in_dim(buf, jnp.zeros((n,), jnp.float32), pos, axis=0)
        self.pos.value = jnp.where(pos + 1 == R, 0, pos + 1).astype(jnp.int32)
        return x


class PoissonCounts(Module):
    """Per step and neuron, the number of spikes of ``k_ext`` Poisson inputs at ``rate`` Hz, times ``weight``.

    Counts are drawn exactly by inverting the Poisson distribution function
    with one uniform number per neuron and step (the table is cut where the
    remaining probability is below 1e-12, far below the uniforms' resolution).
    """

    def __init__(self, k_ext: np.ndarray, rate: float, weight: np.ndarray, seed: int,
                 max_rate: float | None = None) -> None:
        self.k_ext = np.asarray(k_ext, np.float64)
        self.max_rate = float(rate if max_rate is None else max(rate, max_rate))
        lam_max = float(self.k_ext.max(initial=0)) * self.max_rate * get_dt() * 1e-3
        self.kmax = int(lam_max + 12 * math.sqrt(lam_max) + 12)
        self.cdf = Variable(jnp.asarray(self._cdf(rate), jnp.float32))
        self.weight = Variable(jnp.asarray(weight, jnp.float32))
        self.key = Variable(jax.random.key_data(jax.random.key(seed, impl="rbg")))

    def _cdf(self, rate: float) -> np.ndarray:
        lam = self.k_ext * float(rate) * get_dt() * 1e-3
        k = np.arange(self.kmax)
        logpmf = k[None, :] * np.log(np.maximum(lam[:, None], 1e-300)) - lam[:, None] - np.cumsum(
            np.log(np.maximum(k, 1)))[None, :]
        return np.cumsum(np.exp(logpmf), axis=1)

    def set_rate(self, rate: float) -> None:
        """Change the rate of every input (up to ``max_rate``), keeping compiled code."""
        if not 0 <= rate <= self.max_rate:
            raise ValueError(f"PoissonCounts.set_rate: rate must be in [0, {self.max_rate:g}] Hz, got {rate}")
        self.cdf.value = jnp.asarray(self._cdf(rate), jnp.float32)

    def _shard_specs(self, entry: Any, n_devices: int) -> dict[str, PartitionSpec]:
        # the key is one PRNG state for all neurons (its 4 words are no neuron axis)
        return {"key": PartitionSpec()}

    def reset_state(self, batch_size: int | None = None) -> None:
        pass

    def update(self) -> jax.Array:
        key = jax.random.wrap_key_data(self.key.value, impl="rbg")
        key, sub = jax.random.split(key)
        self.key.value = jax.random.key_data(key)
        u = jax.random.uniform(sub, (self.cdf.shape[0],))
        counts = jnp.sum(u[:, None] >= self.cdf.value, axis=1, dtype=jnp.int32)
        return counts.astype(jnp.float32) * self.weight.value
