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
from .._random import RandomState
from .. import nn
from ..nn._inputs import random_bits
from ..nn._delay_ring import build_ring_table, ring_advance, ring_chunk, ring_deliver, ring_state


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
            >>> import neurodyn as nd
            >>> from neurodyn.models import VogelsAbbott2005
            >>> net = VogelsAbbott2005(scale=0.05)
            >>> runner = nd.Runner(net, monitors=net.spike_monitor(), progress_bar=False)
            >>> _ = runner.run(10.)
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


def _ring_table(n: int, sources: Any, nnz: int, dt: float, name: str) -> dict[str, Any]:
    """The per-synapse delay table (``nn._delay_ring``) of ``sources`` over ``n`` neurons, built one
    source at a time: ``ptr``, ``targets``, ``weights`` (float32, in stored order) and ``R``."""
    from ..nn._projection import delay_steps
    nnz = int(nnz)
    if nnz >= 2**31:
        raise ValueError(f"{name}: {nnz} synapses exceed the int32 index range")
    targets = np.empty(nnz, np.int32)
    weights = np.empty(nnz, np.float32)
    counts, R, seg, next_pre = [], 1, 0, 0
    for pre_off, n_pre, parts in sources:
        if pre_off != next_pre:
            raise ValueError(f"{name}: sources must cover neurons 0..{n - 1} in order; got a source "
                             f"at {pre_off}, expected {next_pre}")
        m = sum(int(np.size(p[1])) for p in parts)
        if seg + m > nnz:
            raise ValueError(f"{name}: more synapses than the nnz={nnz} announced")
        steps = []
        for _, _, _, _, d in parts:
            d = np.asarray(d)
            D = d if np.issubdtype(d.dtype, np.integer) else delay_steps(d, dt)
            if D.size and D.min() < 1:
                raise ValueError(f"{name}: {int((D < 1).sum())} delay(s) below one step at dt = {dt:g} ms")
            steps.append(D)
        cat = (lambda xs, dt_: np.concatenate(xs) if xs else np.zeros(0, dt_))
        # parts in order, each in its own order: synapses of one (neuron, delay) keep that order
        t = build_ring_table(n_pre, n, cat([np.asarray(p[1]) for p in parts], np.int32),
                            cat([np.asarray(p[2]).astype(np.int64) + p[0] for p in parts], np.int64),
                            cat(steps, np.int64))
        targets[seg:seg + m] = t["targets"]
        weights[seg:seg + m] = cat([np.asarray(p[3], np.float32) for p in parts], np.float32)[t["order"]]
        counts.append(np.diff(t["ptr"])[:n_pre * t["R"]].reshape(n_pre, t["R"]))
        R = max(R, t["R"])
        seg += m
        next_pre = pre_off + n_pre
        del t, steps
    if next_pre != n or seg != nnz:
        raise ValueError(f"{name}: sources covered {next_pre} of {n} neurons and {seg} of {nnz} synapses")
    if (n + 1) * R >= 2**31:
        raise ValueError(f"{name}: {n} neurons x {R} delay steps exceed the int32 index range")
    # segment i * R + D - 1 for the largest delay of all sources; row n: the empty row
    ptr = np.zeros((n + 1) * R + 1, np.int64)
    full = np.zeros((n + 1, R), np.int64)
    row = 0
    for c in counts:
        full[row:row + c.shape[0], :c.shape[1]] = c
        row += c.shape[0]
    np.cumsum(full.reshape(-1), out=ptr[1:])
    return dict(ptr=ptr.astype(np.int32), targets=targets, weights=weights, R=R)


class DelayedCurrents(Module):
    """Event-driven input through one table for all projections of a network, with per-synapse delays.

    Built on the host, one source population at a time, over a global numbering of ``n``
    neurons: ``sources`` yields ``(pre_offset, n_pre, parts)`` in increasing, contiguous
    ``pre_offset`` order, each part ``(post_offset, pre, post, weight, delay)`` with ``pre``
    local indices and ``delay`` in ms (floats) or in steps (integers). Each step,
    ``update(spikes)`` takes the spikes of the previous step ``t - 1``: a spike of step
    ``t - 1`` arrives at step ``t - 1 + D`` (``D >= 1``, the delay in steps rounded half up
    as in ``nn.Projection``, whose per-synapse delays use the same presynaptic spike ring,
    ``nn._delay_ring``). It returns the input due at step ``t`` for every neuron, the
    weights of each target summed in the order the spikes were emitted.

    The cost per step is proportional to the synapses delivered: the ring keeps the
    indices of up to ``k`` spiking neurons for each of the last ``R`` steps (``R`` the
    largest delay in steps) and their spikes as bits (exact for any activity), and the
    synapses are stored grouped by (presynaptic neuron, delay). Memory: 8 bytes per synapse
    (target and float32 weight), 4 per neuron and delay step, and the ring (``R x k``
    indices and ``R / 32`` words per neuron).

    Example:
        >>> import jax.numpy as jnp
        >>> import numpy as np
        >>> from neurodyn.models._common import DelayedCurrents
        >>> part = (0, np.array([0, 1]), np.array([1, 0]), np.array([0.5, 2.0]), np.array([0.1, 0.3]))
        >>> dc = DelayedCurrents(2, [(0, 2, [part])], nnz=2)
        >>> dc.update(jnp.array([True, True])).tolist()      # 0 -> 1 after 1 step; 1 -> 0 after 3
        [0.0, 0.5]
    """

    def __init__(self, n: int, sources: Any, nnz: int, k: int | None = None, chunk: int | None = None,
                 name: str = "synapses") -> None:
        dt = get_dt()
        self.n = n = int(n)
        self._dt = dt
        table = _ring_table(n, sources, nnz, dt, name)
        self.R, self.nnz = table["R"], int(nnz)
        self.k = int(min(n, k if k is not None else max(64, n // 500)))
        self.chunk = int(chunk if chunk is not None else ring_chunk(self.nnz, n, self.k))
        self.ptr = Variable(jnp.asarray(table.pop("ptr")))
        self.targets = Variable(jnp.asarray(table.pop("targets")))
        self.weights = Variable(jnp.asarray(table.pop("weights")))
        state = ring_state(n, self.R, self.k)
        self.ring, self.fits, self.history = (Variable(state[v]) for v in ("ring", "fits", "history"))

    def _shard_specs(self, entry: Any, n_devices: int) -> dict[str, PartitionSpec]:
        # Under Runner(mesh=...): the spike bits (words x neurons) are split along their neuron
        # axis like the spikes they record; the table and the ring of neuron indices are
        # replicated: a spike's synapses are gathered at arbitrary positions of the table.
        history = PartitionSpec(None, entry) if self.n % n_devices == 0 else PartitionSpec()
        return dict({k: PartitionSpec() for k in ("ptr", "targets", "weights", "ring", "fits")}, history=history)

    def reset_state(self, batch_size: int | None = None) -> None:
        if batch_size is not None:
            raise ValueError("DelayedCurrents: batched state is not supported")
        state = ring_state(self.n, self.R, self.k)
        self.ring.value, self.fits.value, self.history.value = state["ring"], state["fits"], state["history"]

    def update(self, spikes: jax.Array) -> jax.Array:
        """Shift ``spikes`` (bool, shape ``(n,)``) into the ring and return the input due now."""
        if get_dt() != self._dt:
            raise RuntimeError(f"DelayedCurrents: built for dt={self._dt} ms, but dt is now {get_dt()} ms")
        ring, fits, history = ring_advance(spikes.astype(jnp.bool_), self.ring.value, self.fits.value,
                                           self.history.value)
        self.ring.value, self.fits.value, self.history.value = ring, fits, history
        w = self.weights.value
        return ring_deliver(ring, fits, history, self.ptr.value, self.targets.value, lambda src: w[src],
                            self.n, self.chunk)


class PoissonCounts(Module):
    """Per step and neuron, the number of spikes of ``k_ext`` Poisson inputs at ``rate`` Hz, times ``weight``.

    Counts follow ``Poisson(k_ext * rate * dt)`` (NEST's ``poisson_generator``), drawn by
    the sampler of ``nn.PoissonInput`` (``nn.draw_counts``: one 32-bit random integer per
    neuron and step from the RandomState ``key`` (``nn._inputs.random_bits``), compared with the CDF table, exact to
    ``2**-32``). The tables sit in Variables sized for ``max_rate``, so :meth:`set_rate`
    keeps compiled code.

    Example:
        >>> import numpy as np
        >>> from neurodyn.models._common import PoissonCounts
        >>> pc = PoissonCounts(np.full(1000, 100), 20.0, np.ones(1000), seed=0)
        >>> bool(abs(float(pc.update().mean()) - 0.2) < 0.05)
        True
    """

    def __init__(self, k_ext: np.ndarray, rate: float, weight: np.ndarray, seed: int,
                 max_rate: float | None = None) -> None:
        self.k_ext = np.asarray(k_ext, np.float64)
        self._levels, self._row = np.unique(self.k_ext, return_inverse=True)
        self.max_rate = float(rate if max_rate is None else max(rate, max_rate))
        self._width = max(nn.poisson_table(lam)[1].size + 1 for lam in self._lams(self.max_rate))
        k0, thresholds = self._tables(rate)
        self.k0 = Variable(jnp.asarray(k0))
        self.thresholds = Variable(jnp.asarray(thresholds))
        self.weight = Variable(jnp.asarray(weight, jnp.float32))
        self.key = RandomState(seed)

    def _lams(self, rate: float) -> np.ndarray:
        return self._levels * float(rate) * get_dt() * 1e-3

    def _tables(self, rate: float) -> tuple[np.ndarray, np.ndarray]:
        k0, tm1 = nn.stack_tables([nn.poisson_table(lam) for lam in self._lams(rate)], self._width)
        if len(self._levels) == 1:  # one table for all neurons
            return k0[0], tm1[0]
        return k0[self._row], tm1[self._row]

    def set_rate(self, rate: float) -> None:
        """Change the rate of every input (up to ``max_rate``), keeping compiled code."""
        if not 0 <= rate <= self.max_rate:
            raise ValueError(f"PoissonCounts.set_rate: rate must be in [0, {self.max_rate:g}] Hz, got {rate}")
        k0, thresholds = self._tables(rate)
        self.k0.value = jnp.asarray(k0)
        self.thresholds.value = jnp.asarray(thresholds)

    def _shard_specs(self, entry: Any, n_devices: int) -> dict[str, PartitionSpec]:
        # one PRNG state for all neurons (its words are no neuron axis); a shared table too
        specs = {"key": PartitionSpec()}
        if self.thresholds.ndim == 1:
            specs.update(k0=PartitionSpec(), thresholds=PartitionSpec())
        return specs

    def reset_state(self, batch_size: int | None = None) -> None:
        if batch_size is not None:
            raise ValueError("PoissonCounts: batched state is not supported")

    def update(self) -> jax.Array:
        bits = random_bits(self.key.split_key(), tuple(self.weight.shape))
        counts = nn.draw_counts(bits, self.k0.value, self.thresholds.value)
        return counts.astype(jnp.float32) * self.weight.value
