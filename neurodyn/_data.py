"""Array datasets for the Trainer: the batch order, and epochs run from device-resident data.

When an array dataset fits on the device, the Trainer copies it there once
per ``fit`` and runs the epoch's full batches in one compiled call: the call
takes the data and a ``(batches, batch_size)`` table of sample indices and
gathers each batch on the device. The index table comes from the same
permutation as host batching (:func:`epoch_order`), so both see exactly the
same batches in the same order.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np

#: fraction of the device's memory (host RAM for the CPU) a dataset may take to be moved there whole
DEVICE_FRACTION = 0.25


def epoch_order(n: int, shuffle: bool, seed: Any, epoch: int) -> np.ndarray | None:
    """The sample order of an epoch: a permutation seeded by ``(seed, epoch)``, or None (in order)."""
    if not shuffle:
        return None
    return np.random.default_rng(None if seed is None else [int(seed), epoch]).permutation(n)


def _device_bytes(device: Any) -> int | None:
    try:
        stats = device.memory_stats()
    except Exception:  # not every backend reports memory
        stats = None
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"])
    if device.platform == "cpu":
        try:
            return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
        except (ValueError, OSError, AttributeError):
            return None
    return None


def fits_on_device(leaves: list[np.ndarray], device: Any = None) -> bool:
    """Whether arrays of this total size may be kept on ``device`` for a whole epoch."""
    device = device or jax.devices()[0]
    limit = _device_bytes(device)
    if limit is None:
        return False
    return sum(int(x.nbytes) for x in leaves) <= DEVICE_FRACTION * limit


@dataclass
class DeviceEpoch:
    """Full batches of an epoch to run in one compiled call.

    ``data``: the dataset's arrays on the device (a pytree); ``index``:
    ``(batches, batch_size)`` sample indices, batch ``k`` of the call is
    ``x[index[k]]`` for every array ``x``.
    """

    data: Any
    index: np.ndarray

    def __len__(self) -> int:
        return int(self.index.shape[0])

    def first_batch_shapes(self) -> Any:
        bs = int(self.index.shape[1])
        return jax.tree.map(lambda x: jax.ShapeDtypeStruct((bs, *x.shape[1:]), x.dtype), self.data)


def gather(data: Any, idx: Any) -> Any:
    """The batch ``x[idx]`` of every array of ``data`` (on the device inside compiled code)."""
    return jax.tree.map(lambda x: x[idx], data)
