"""Pieces shared by the published models: spike recording, fused delayed currents, exact LIF factors."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._environ import get_dt
from .._module import Module
from .._state import Variable
from .. import analysis
from ..nn._projection import delay_steps

_BLOCK = 32


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

        A spike of the step that starts at ``t`` has the time ``t`` (ms), as in ``runner.mon.ts``.
        """
        bits = np.asarray(runner.mon[key])
        ts = np.asarray(runner.mon.ts)
        if bits.ndim != 2 or ts.size != bits.shape[0]:
            raise ValueError(f"{type(self).__name__}.spike_trains: runner.mon[{key!r}] has shape {bits.shape}; "
                             f"record with monitors=net.spike_monitor()")
        dense = np.unpackbits(bits, axis=1, count=self.n_neurons).astype(bool)
        dt = runner.dt
        return analysis.SpikeTrains.from_dense(dense, dt=dt, t_start=float(ts[0]) if ts.size else 0.0)


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
    n = s.shape[0]
    nb = -(-n // _BLOCK)
    sf = s.astype(jnp.float32)
    if nb * _BLOCK != n:
        sf = jnp.pad(sf, (0, nb * _BLOCK - n))
    blocks = sf.reshape(nb, _BLOCK)
    b = min(k, nb)
    _, bidx = jax.lax.top_k(jnp.any(blocks != 0, axis=1).astype(jnp.float32), b)
    key, j = jax.lax.top_k(blocks[bidx].reshape(-1), min(k, b * _BLOCK))
    idx = jnp.where(key > 0, bidx[j // _BLOCK] * _BLOCK + j % _BLOCK, n).astype(jnp.int32)
    return idx, jnp.sum(s, dtype=jnp.int32)


class DelayedCurrents(Module):
    """Event-driven input through one table for all projections of a network, with per-synapse delays.

    Built on the host from blocks ``(pre_offset, post_offset, pre_local, post_local, weight,
    delay_ms)`` over a global numbering of ``n`` neurons. Each step, ``update(spikes)``
    takes the spikes of the previous step ``t - 1`` and adds the weights of the spiking
    neurons' synapses into a ring buffer of future inputs: a spike of step ``t - 1``
    arrives at step ``t - 1 + D`` (``D >= 1``, the delay in steps rounded half up as in
    ``nn.Projection``). It returns the input due at step ``t`` for every neuron. Steps
    with more than ``k`` spikes are processed in chunks of ``k`` (exact, cost in
    proportion to the spikes).

    Memory: 8 bytes per synapse (a combined delay/target index and a float32
    weight) plus padding of rows to the largest out-degree, plus ``D_max x n`` floats.
    """

    def __init__(self, n: int, blocks: list[tuple], k: int | None = None, name: str = "synapses") -> None:
        dt = get_dt()
        self.n = int(n)
        self._dt = dt
        pre_all, comb_all, w_all = [], [], []
        d_max = 1
        for pre_off, post_off, pre, post, w, d in blocks:
            D = delay_steps(d, dt).astype(np.int64)
            if D.size and D.min() < 1:
                raise ValueError(f"{name}: {int((D < 1).sum())} delay(s) below one step at dt = {dt:g} ms")
            d_max = max(d_max, int(D.max(initial=1)))
            pre_all.append(np.asarray(pre, np.int64) + pre_off)
            comb_all.append((np.asarray(post, np.int64) + post_off, D))
            w_all.append(np.asarray(w, np.float32))
        R = d_max  # slots: due now (D = 1) up to D_max - 1 steps ahead
        self.R = R
        if R * n >= 2**30:
            raise ValueError(f"{name}: {n} neurons x {R} delay slots exceed the int32 index range")
        pre = np.concatenate(pre_all) if pre_all else np.zeros(0, np.int64)
        counts = np.bincount(pre, minlength=n)
        width = max(1, int(counts.max(initial=0)))
        order = np.argsort(pre, kind="stable")
        starts = np.zeros(n + 1, np.int64)
        np.cumsum(counts, out=starts[1:])
        col = np.empty(pre.size, np.int64)
        col[order] = np.arange(pre.size) - starts[pre[order]]
        # Padding: 2 R n stays out of range after the ring offset is added and wrapped once.
        table = np.full((n + 1, width), 2 * R * n, np.int32)
        weights = np.zeros((n + 1, width), np.float32)
        off = 0
        for (tg, D), w in zip(comb_all, w_all):
            m = tg.size
            rows, cols = pre[off:off + m], col[off:off + m]
            table[rows, cols] = ((D - 1) * n + tg).astype(np.int32)
            weights[rows, cols] = w
            off += m
        self.nnz = int(pre.size)
        self.width = width
        self.table = Variable(jnp.asarray(table))
        self.weights = Variable(jnp.asarray(weights))
        del table, weights
        self.buffer = Variable(jnp.zeros((R, n), jnp.float32))
        self.pos = Variable(jnp.zeros((), jnp.int32))
        self.k = int(min(n, k if k is not None else max(64, n // 200)))

    def reset_state(self, batch_size: int | None = None) -> None:
        if batch_size is not None:
            raise ValueError("DelayedCurrents: batched state is not supported")
        self.buffer.value = jnp.zeros_like(self.buffer.value)
        self.pos.value = jnp.zeros((), jnp.int32)

    def update(self, spikes: jax.Array) -> jax.Array:
        """Deliver ``spikes`` (bool, shape ``(n,)``) into the future and return the input due now."""
        if get_dt() != self._dt:
            raise RuntimeError(f"DelayedCurrents: built for dt={self._dt} ms, but dt is now {get_dt()} ms")
        n, R, k = self.n, self.R, self.k
        table, weights = self.table.value, self.weights.value
        pos = self.pos.value
        base = pos * n
        flat_buf = self.buffer.value.reshape(-1)

        def scatter(buf: jax.Array, idx: jax.Array) -> jax.Array:
            tg = table[idx] + base
            tg = jnp.where(tg >= R * n, tg - R * n, tg)
            return buf.at[tg].add(weights[idx], mode="drop")

        idx, count = _compact_rows(spikes, k)

        def many(buf: jax.Array) -> jax.Array:
            # more than k spikes: all spiking rows in index order, k at a time
            rows = jnp.nonzero(spikes, size=n, fill_value=n)[0].astype(jnp.int32)
            rows = jnp.concatenate([rows, jnp.full((k,), n, jnp.int32)])

            def body(c: Any) -> Any:
                j, b = c
                return j + 1, scatter(b, jax.lax.dynamic_slice_in_dim(rows, j * k, k))

            return jax.lax.while_loop(lambda c: c[0] * k < count, body, (jnp.int32(0), buf))[1]

        flat_buf = jax.lax.cond(count <= k, lambda b: scatter(b, idx), many, flat_buf)
        buf = flat_buf.reshape(R, n)
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

    def __init__(self, k_ext: np.ndarray, rate: float, weight: np.ndarray, seed: int) -> None:
        lam = np.asarray(k_ext, np.float64) * rate * get_dt() * 1e-3
        kmax = int(lam.max(initial=0) + 12 * math.sqrt(lam.max(initial=0)) + 12)
        k = np.arange(kmax)
        logpmf = k[None, :] * np.log(np.maximum(lam[:, None], 1e-300)) - lam[:, None] - np.cumsum(
            np.log(np.maximum(k, 1)))[None, :]
        cdf = np.cumsum(np.exp(logpmf), axis=1)
        self.lam = lam
        self.cdf = Variable(jnp.asarray(cdf, jnp.float32))
        self.weight = Variable(jnp.asarray(weight, jnp.float32))
        self.key = Variable(jax.random.key_data(jax.random.key(seed, impl="rbg")))

    def reset_state(self, batch_size: int | None = None) -> None:
        pass

    def update(self) -> jax.Array:
        key = jax.random.wrap_key_data(self.key.value, impl="rbg")
        key, sub = jax.random.split(key)
        self.key.value = jax.random.key_data(key)
        u = jax.random.uniform(sub, (self.cdf.shape[0],))
        counts = jnp.sum(u[:, None] >= self.cdf.value, axis=1, dtype=jnp.int32)
        return counts.astype(jnp.float32) * self.weight.value
