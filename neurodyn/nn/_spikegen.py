"""A group that emits given spikes at given times (Brian2's SpikeGeneratorGroup)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._environ import get_dt
from .._state import Variable
from ._neurons import Group, reset_var

__all__ = ["SpikeGeneratorGroup"]


class SpikeGeneratorGroup(Group):
    """``size`` neurons that spike at given times: neuron ``indices[j]`` at ``times[j]`` ms.

    A spike at time ``t`` is emitted in the step that contains it, the step
    ``k = floor(t / dt)`` labelled ``k dt`` (as Brian2: a spike at exactly
    ``k dt`` is in step k despite floating-point error). The group counts its
    own updates from 0 (``reset_state()`` restarts the count); inside a
    ``nd.Runner`` started from a reset that count is the Runner's step index.
    A neuron may spike at most once per step. Per step the cost is that of
    the largest number of spikes in one step, not of the whole list.

    Args:
        size: number of neurons.
        indices: neuron index of every spike (ints in ``[0, size)``).
        times: spike times in ms (>= 0), same length as ``indices``.

    Example:
        >>> import neurodyn as nd
        >>> import neurodyn.nn as nn
        >>> gen = nn.SpikeGeneratorGroup(3, indices=[0, 2, 0], times=[1.0, 1.0, 2.5])
        >>> runner = nd.Runner(gen, monitors=['spike'], progress_bar=False)
        >>> runner.run(3.)['spike'].nonzero()   # steps 10, 10, 25
        (array([10, 10, 25]), array([0, 2, 0]))
    """

    def __init__(self, size: int, indices: Any, times: Any) -> None:
        super().__init__(size)
        idx = np.asarray(indices)
        t = np.asarray(times, dtype=np.float64)
        if idx.ndim != 1 or t.ndim != 1 or idx.shape != t.shape:
            raise ValueError(f"SpikeGeneratorGroup: indices and times must be 1-D of the same length, "
                             f"got shapes {idx.shape} and {t.shape}")
        if idx.size and not np.issubdtype(idx.dtype, np.integer):
            raise TypeError(f"SpikeGeneratorGroup: indices must be integers, got dtype {idx.dtype}")
        if idx.size and (idx.min() < 0 or idx.max() >= self.size):
            raise ValueError(f"SpikeGeneratorGroup: indices must be in [0, {self.size}), "
                             f"got values from {idx.min()} to {idx.max()}")
        if t.size and not (np.all(np.isfinite(t)) and t.min() >= 0):
            raise ValueError(f"SpikeGeneratorGroup: times must be finite and >= 0 ms, got minimum {t.min()}")
        self.indices = idx.astype(np.int32)
        self.times = t
        self.step_count = Variable(jax.device_put(np.zeros((), jnp.int32)))
        self._build()

    def _build(self) -> None:
        dt = get_dt()
        steps = np.floor(self.times / dt + 1e-3).astype(np.int64)
        order = np.lexsort((self.indices, steps))
        steps, idx = steps[order], self.indices[order]
        dup = (np.diff(steps) == 0) & (np.diff(idx) == 0)
        if dup.any():
            j = int(np.flatnonzero(dup)[0])
            raise ValueError(f"SpikeGeneratorGroup: neuron {idx[j]} spikes more than once in step {steps[j]} "
                             f"(dt = {dt} ms)")
        if steps.size and steps.max() >= np.iinfo(np.int32).max:
            raise ValueError("SpikeGeneratorGroup: a spike time is beyond 2^31 steps")
        self.max_per_step = int(np.unique(steps, return_counts=True)[1].max()) if steps.size else 0
        # padded so that a window of max_per_step entries never runs past the end
        pad = max(self.max_per_step, 1)
        self._dt = dt
        self.spike_steps = Variable(jnp.asarray(np.concatenate(
            [steps, np.full(pad, np.iinfo(np.int32).max)]).astype(np.int32)))
        self.spike_indices = Variable(jnp.asarray(np.concatenate([idx, np.zeros(pad, np.int32)])))

    def reset_state(self, batch_size: int | None = None) -> None:
        """Clear the spikes and restart at step 0 (rebuilding the schedule for the current dt)."""
        super().reset_state(batch_size)
        reset_var(self.step_count, jnp.zeros((), jnp.int32))
        if get_dt() != self._dt:
            self._build()

    def update(self) -> jax.Array:
        if get_dt() != self._dt:
            raise RuntimeError(f"SpikeGeneratorGroup: its spike steps were computed for dt={self._dt} ms "
                               f"but dt is now {get_dt()} ms; call reset_state() after changing dt")
        k = self.step_count.value
        self.step_count.value = k + 1
        shape = tuple(self.spike.shape)
        if self.max_per_step == 0:
            self.spike.value = jnp.zeros(shape, bool)
            return self.spike.value
        steps, idx = self.spike_steps.value, self.spike_indices.value
        lo = jnp.searchsorted(steps, k)
        window = jax.lax.dynamic_slice(steps, (lo,), (self.max_per_step,))
        who = jax.lax.dynamic_slice(idx, (lo,), (self.max_per_step,))
        who = jnp.where(window == k, who, self.size)  # out of range: dropped
        spikes = jnp.zeros((self.size,), bool).at[who].set(True, mode="drop")
        self.spike.value = jnp.broadcast_to(spikes, shape)
        return self.spike.value

    def __repr__(self) -> str:
        return f"SpikeGeneratorGroup(size={self.size}, spikes={self.indices.size})"
