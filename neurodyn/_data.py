"""Batches for the Trainer: their layout, array datasets cut into batches, and epochs run from
device-resident data.

When an array dataset fits on the device, the Trainer copies it there once
per ``fit`` and runs the epoch's full batches in one compiled call: the call
takes the data and a ``(batches, batch_size)`` table of sample indices and
gathers each batch on the device. The index table comes from the same
permutation as host batching (:func:`epoch_order`), so both see exactly the
same batches in the same order.
"""

from __future__ import annotations

import itertools
import math
import os
import warnings
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

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


def is_array(x: Any) -> bool:
    return hasattr(x, "shape") and hasattr(x, "dtype")


def is_array_dataset(data: Any) -> bool:
    """An array, a tuple of arrays or a dict of arrays (sliced into batches), not an iterable of batches."""
    if is_array(data):
        return True
    if isinstance(data, tuple) and data and all(is_array(x) for x in data):
        return True
    return isinstance(data, Mapping) and bool(data) and all(is_array(x) for x in data.values())


def stack(batches: list[Any]) -> Any:
    """Batches of one shape stacked on a new leading axis (host arrays, for one compiled call)."""
    return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *batches)


class BatchLayout:
    """Where the batch axis of each array of a batch is, and the shapes the first batch fixed.

    ``batch_axis``: an int for every array, or one per array (e.g. ``(1, 0)``
    for time-major inputs with batch-major labels).
    """

    def __init__(self, batch_axis: int | tuple[int, ...] = 0) -> None:
        self.batch_axis = batch_axis
        self.first: Any = None  # (treedef, signature, shapes) of the first batch checked

    def axes(self, n: int) -> tuple[int, ...]:
        ax = self.batch_axis
        if isinstance(ax, int):
            return (ax,) * n
        if len(ax) != n:
            raise ValueError(f"Trainer: batch_axis has {len(ax)} entries but a batch has {n} arrays")
        return tuple(ax)

    @property
    def input_axis(self) -> int:
        """The batch axis of model inputs (the first entry when there is one per array)."""
        return self.batch_axis if isinstance(self.batch_axis, int) else self.batch_axis[0]

    def size(self, batch: Any) -> int:
        leaves = jax.tree.leaves(batch)
        return int(np.shape(leaves[0])[self.axes(len(leaves))[0]])

    def signature(self, batch: Any) -> tuple:
        """Structure, and shape without the batch axis and dtype of every array."""
        leaves, treedef = jax.tree.flatten(batch)
        sig = []
        for x, ax in zip(leaves, self.axes(len(leaves))):
            # Arrays carry shape and dtype; only Python scalars/lists need NumPy (this runs every step).
            shape = x.shape if hasattr(x, "shape") else np.shape(x)
            dtype = x.dtype if hasattr(x, "dtype") else np.result_type(x)
            if len(shape) <= ax:
                raise ValueError(f"Trainer: every array in a batch needs a batch axis {ax}, got shape {tuple(shape)}")
            sig.append((tuple(shape[:ax]) + tuple(shape[ax + 1:]), dtype))
        return treedef, tuple(sig)

    def check(self, batch: Any, where: str) -> None:
        """A clear error when ``batch`` differs from the first batch in more than the batch size."""
        treedef, sig = self.signature(batch)
        if self.first is None:
            self.first = (treedef, tuple((s, np.dtype(d)) for s, d in sig),
                          [tuple(np.shape(x)) for x in jax.tree.leaves(batch)])
            return
        ref_def, ref_sig, ref_shapes = self.first
        if treedef != ref_def:
            raise ValueError(f"Trainer: {where} has structure {treedef}, but the first batch had {ref_def}")
        if sig == ref_sig:
            return
        for i, ((s, d), (rs, rd)) in enumerate(zip(sig, ref_sig)):
            if s != rs or np.dtype(d) != np.dtype(rd):
                got = tuple(np.shape(jax.tree.leaves(batch)[i]))
                raise ValueError(
                    f"Trainer: {where}, array {i} has shape {got} dtype {d}; the first batch had shape "
                    f"{ref_shapes[i]} dtype {rd} (only the batch axis {self.batch_axis} may change)")

    def split(self, x: Any, batch_size: int) -> Iterator[Any]:
        """Model inputs ``x`` cut into pieces of ``batch_size`` along the input batch axis."""
        ax = self.input_axis
        leaves, treedef = jax.tree.flatten(x)
        n = int(np.shape(leaves[0])[ax])
        for s in range(0, n, batch_size):
            idx = (slice(None),) * ax + (slice(s, s + batch_size),)
            yield jax.tree.unflatten(treedef, [a[idx] for a in leaves])


class ArrayDataset:
    """Arrays of equal length along axis 0 (a tuple or dict of them), cut into batches on the host."""

    def __init__(self, data: Any) -> None:
        leaves, self.treedef = jax.tree.flatten(data)
        self.leaves = [np.asarray(x) for x in leaves]
        self.n = self.leaves[0].shape[0]
        for i, x in enumerate(self.leaves):
            if x.shape[0] != self.n:
                raise ValueError(f"Trainer: the arrays of the dataset differ in length: array 0 has {self.n} "
                                 f"samples, array {i} has {x.shape[0]}")

    def batches(self, batch_size: int | None, shuffle: bool, seed: Any, epoch: int, drop_last: bool,
                skip: int = 0, device_data: Any = None) -> tuple[Iterator[Any], int]:
        """The epoch's batches from batch ``skip`` on, and how many the epoch has.

        With ``device_data`` (the same arrays on the device), the full batches
        come as one :class:`DeviceEpoch` and only a short last batch from the host.
        """
        n = self.n
        bs = n if batch_size is None else int(batch_size)
        if bs < 1:
            raise ValueError(f"Trainer: batch_size must be >= 1, got {batch_size}")
        order = epoch_order(n, shuffle, seed, epoch)
        count = n // bs if drop_last else math.ceil(n / bs)
        full = min(n // bs, count)

        def gen() -> Iterator[Any]:
            start = skip
            if device_data is not None and start < full:
                index = (np.arange(n) if order is None else order)[start * bs:full * bs].reshape(-1, bs)
                yield DeviceEpoch(device_data, index.astype(np.int32))
                start = full
            for k in range(start, count):
                sl = slice(k * bs, min((k + 1) * bs, n))
                idx = order[sl] if order is not None else sl
                yield jax.tree.unflatten(self.treedef, [x[idx] for x in self.leaves])

        return gen(), count

    def to_device(self, when_fits: bool) -> Any:
        """The arrays on the default device, or None when ``when_fits`` and they do not fit."""
        if when_fits and not fits_on_device(self.leaves):
            return None
        return jax.tree.unflatten(self.treedef, [jax.device_put(x) for x in self.leaves])


def iterate(data: Any, skip: int, warn_one_shot: bool) -> tuple[Iterator[Any], int | None]:
    """An iterable of batches (or a function returning one) from batch ``skip`` on, and its length if known."""
    if callable(data):
        data = data()
    try:
        total = len(data)
    except TypeError:
        total = None
    it = iter(data)
    if it is data and warn_one_shot:
        warnings.warn("Trainer: train_data is a one-shot iterator; pass a list, a re-iterable, or a "
                      "function returning a fresh iterator to train for several epochs", stacklevel=4)
    if skip and it is not data:
        # a fresh iterator of an interrupted epoch: pass over the batches already trained on
        it = itertools.islice(it, skip, None)
    return it, total
