"""Scaling past one device with JAX's own machinery (``jax.sharding``, ``jax.distributed``).

Nothing here communicates by itself: arrays are *placed* with
``NamedSharding``s on a ``jax.sharding.Mesh`` and XLA partitions the compiled
computations and inserts the collectives (gradient all-reduce, gathers of a
sharded spike vector). Three entry points:

* training: ``nd.Trainer(..., mesh=4)`` (data-parallel: batches split along
  their batch axis, parameters and optimizer state replicated, or sharded
  with ``param_sharding``);
* simulation: ``nd.Runner(..., mesh=4)`` or :func:`shard` (neuron groups and
  synapse state split along the neuron axis; same spikes as on one device);
* many processes: :func:`initialize` (a thin layer over
  ``jax.distributed.initialize``) before anything else touches JAX, then the
  same scripts, with each process feeding its own part of every batch.

Example (in every process, ``rank`` being its number)::

    import neurodyn as nd
    nd.distributed.initialize("127.0.0.1:12345", num_processes=2, process_id=rank)
    mesh = nd.distributed.make_mesh()          # every device of every process
    trainer = nd.Trainer(model, loss_fn, nd.optim.Adam(1e-3), mesh=mesh)
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ._module import Module
from ._sharding import ShardingRule, as_mesh, module_placement, put_batch
from ._state import Variable

__all__ = ["initialize", "shutdown", "is_initialized", "process_index", "process_count",
           "make_mesh", "shard", "shard_batch", "shard_largest_axis", "ShardingRule", "Mesh", "NamedSharding",
           "PartitionSpec"]

_STATE = {"initialized": False}


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, *, local_device_ids: int | Sequence[int] | None = None,
               cpu_collectives: str | None = "gloo", initialization_timeout: int = 300,
               **kwargs: Any) -> None:
    """Join a multi-process JAX job; call it first, before anything else uses JAX.

    A thin layer over ``jax.distributed.initialize`` (same arguments, passed
    through; ``**kwargs`` too). It adds one thing: on CPU, cross-process
    collectives need an implementation, so ``cpu_collectives`` (``'gloo'`` by
    default, ``'mpi'``, or ``None`` to leave JAX's setting alone) is set with
    ``jax.config.update('jax_cpu_collectives_implementation', ...)``; it has no
    effect on GPU or TPU devices.

    After it returns, ``jax.devices()`` lists the devices of every process and
    ``jax.local_devices()`` this process's own. Build the mesh over all devices
    (:func:`make_mesh`); each process then passes only its own part of each
    batch to ``Trainer.step``/``fit``, and parameters must be initialised
    identically everywhere (same seed).

    Args:
        coordinator_address: ``'host:port'`` of process 0 (loopback works on one machine).
        num_processes: how many processes take part.
        process_id: this process's rank, ``0 .. num_processes - 1``.
        local_device_ids: restrict this process to some of its local devices.
        cpu_collectives: the CPU collectives implementation, or ``None``.
        initialization_timeout: seconds to wait for every process to join.

    Example (process 0 of 2; process 1 passes ``process_id=1``)::

        nd.distributed.initialize("127.0.0.1:12355", num_processes=2, process_id=0)
        jax.process_count()   # 2
    """
    if _STATE["initialized"]:
        raise RuntimeError("nd.distributed.initialize: already initialized in this process; call "
                           "nd.distributed.shutdown() first to join another job")
    if num_processes is not None and int(num_processes) < 1:
        raise ValueError(f"nd.distributed.initialize: num_processes must be >= 1, got {num_processes}")
    if process_id is not None and num_processes is not None and not 0 <= int(process_id) < int(num_processes):
        raise ValueError(f"nd.distributed.initialize: process_id must be in [0, {int(num_processes)}), "
                         f"got {process_id}")
    if cpu_collectives is not None:
        if cpu_collectives not in ("gloo", "mpi", "none"):
            raise ValueError(f"nd.distributed.initialize: cpu_collectives must be 'gloo', 'mpi', 'none' or None, "
                             f"got {cpu_collectives!r}")
        jax.config.update("jax_cpu_collectives_implementation", cpu_collectives)
    try:
        jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes,
                                   process_id=process_id, local_device_ids=local_device_ids,
                                   initialization_timeout=int(initialization_timeout), **kwargs)
    except RuntimeError as e:
        if "before any JAX" not in str(e):
            raise
        # importing neurodyn starts no backend (nd.random.DEFAULT's key is built on the host)
        raise RuntimeError(
            "nd.distributed.initialize: JAX has already computed or placed arrays in this process; "
            "call initialize first, right after the imports, before any model is built or seeded "
            f"(jax: {e})") from None
    _STATE["initialized"] = True


def shutdown() -> None:
    """Leave the multi-process job (``jax.distributed.shutdown``); a no-op if not initialized.

    Example:
        >>> import neurodyn as nd
        >>> nd.distributed.shutdown()   # nothing to leave when not initialized
    """
    if _STATE["initialized"]:
        jax.distributed.shutdown()
        _STATE["initialized"] = False


def is_initialized() -> bool:
    """True between :func:`initialize` and :func:`shutdown`.

    Example:
        >>> import neurodyn as nd
        >>> nd.distributed.is_initialized()
        False
    """
    return _STATE["initialized"]


def process_index() -> int:
    """This process's rank (0 without :func:`initialize`).

    Example:
        >>> import neurodyn as nd
        >>> if nd.distributed.process_index() == 0: print("I log")
        I log
    """
    return jax.process_index()


def process_count() -> int:
    """The number of processes (1 without :func:`initialize`).

    Example:
        >>> import neurodyn as nd
        >>> nd.distributed.process_count()
        1
    """
    return jax.process_count()


def make_mesh(shape: int | Sequence[int] | None = None, axes: str | Sequence[str] = "data") -> Mesh:
    """A mesh over the first devices of all processes, with ``Auto`` axes.

    ``shape`` is a device count (1-d mesh) or one size per axis; ``None`` uses
    every device. Axes are ``AxisType.Auto``: shardings propagate through the
    computation without annotations (JAX's newer ``make_mesh`` default,
    ``Explicit``, would ask for them on reshapes).

    Example:
        >>> import neurodyn as nd
        >>> mesh = nd.distributed.make_mesh()                       # ('data',) over all devices
        >>> mesh.axis_names
        ('data',)

        With 4 devices, ``nd.distributed.make_mesh((2, 2), ("data", "model"))``.
    """
    if shape is None:
        shape = (jax.device_count(),)
    elif isinstance(shape, int):
        shape = (shape,)
    shape = tuple(int(s) for s in shape)
    axes = (axes,) if isinstance(axes, str) else tuple(axes)
    if len(axes) != len(shape):
        raise ValueError(f"nd.distributed.make_mesh: {len(shape)} axis sizes {shape} but {len(axes)} names {axes}")
    total = 1
    for s in shape:
        total *= s
    if not 1 <= total <= jax.device_count():
        raise ValueError(f"nd.distributed.make_mesh: shape {shape} needs {total} devices; expected at most "
                         f"{jax.device_count()} (jax.device_count()), got {total}")
    return jax.make_mesh(shape, axes, axis_types=(jax.sharding.AxisType.Auto,) * len(axes),
                         devices=jax.devices()[:total])


def shard(model: Module, mesh: Mesh | int, rule: dict[str, PartitionSpec] | Callable[[str, Variable], Any] | None = None,
          axes: str | Sequence[str] | None = None) -> dict[str, PartitionSpec]:
    """Place every Variable of ``model`` on ``mesh``, split along the neuron axis; returns path -> spec.

    The default rule splits axis 0 (the neuron axis of neuron groups and
    synapse state; the presynaptic axis of projection tables) over all mesh
    axes (or ``axes``) when its size divides evenly, and replicates everything
    else: scalars, random keys, and arrays whose leading axis does not divide
    (pad a population to a multiple of the device count to split it).
    ``rule`` overrides it per Variable: ``{'path.glob': PartitionSpec}`` or
    ``fn(path, var) -> PartitionSpec | None`` (``None``: use the default).

    This only places the current values; :class:`nd.Runner` given the same
    ``mesh`` also keeps the shardings through its compiled loop and re-places
    values that ``reset_state`` replaced. Results do not depend on the placement.

    Example:
        >>> import neurodyn as nd
        >>> from neurodyn import nn
        >>> specs = nd.distributed.shard(nn.LIF(8), 1)   # 1 device here; neurons split over all of them
        >>> specs["V"]
        P('data',)
    """
    m = as_mesh(mesh, "data", "nd.distributed.shard: mesh")
    if not isinstance(model, Module):
        raise TypeError(f"nd.distributed.shard: model must be an nd.Module, got {type(model).__name__}")
    placement = module_placement(model, m, rule, axes, "nd.distributed.shard")
    placement.place()
    return placement.specs()


def shard_batch(batch: Any, mesh: Mesh | int, batch_axis: int = 0, data_axis: str | None = None) -> Any:
    """Split every array of ``batch`` along ``batch_axis`` over the mesh's data axis.

    With several processes each passes its own part and gets back global arrays
    (``jax.make_array_from_process_local_data``). ``data_axis`` defaults to
    ``'data'`` if the mesh has it, else its first axis.

    Example:
        >>> import numpy as np
        >>> import neurodyn as nd
        >>> xb, yb = nd.distributed.shard_batch((np.ones((8, 3)), np.ones(8)), 1)
        >>> xb.sharding.spec
        P('data',)
    """
    m = as_mesh(mesh, "data", "nd.distributed.shard_batch: mesh")
    data_axis = data_axis or ("data" if "data" in m.axis_names else m.axis_names[0])
    leaves, treedef = jax.tree.flatten(batch)
    return jax.tree.unflatten(treedef, [put_batch(x, m, batch_axis, data_axis, "nd.distributed.shard_batch", i)
                                        for i, x in enumerate(leaves)])


class LargestAxis(ShardingRule):
    """The rule :func:`shard_largest_axis` returns (fields as its arguments)."""

    def __init__(self, axis: str = "model", min_size: int = 2 ** 16, devices: int | None = None) -> None:
        self.axis, self.min_size, self.devices = axis, int(min_size), devices

    def check(self, mesh: Mesh, where: str) -> None:
        if self.devices is None and self.axis not in mesh.axis_names:
            raise ValueError(f"{where} splits along mesh axis '{self.axis}', but the mesh has axes "
                             f"{mesh.axis_names}")

    def spec(self, path: str, var: Variable, mesh: Mesh | None = None) -> PartitionSpec | None:
        n = self.devices if self.devices is not None else (mesh.shape[self.axis] if mesh is not None else None)
        if var.size < self.min_size or not var.ndim or not n:
            return None
        for d in sorted(range(var.ndim), key=lambda d: -var.shape[d]):
            if var.shape[d] % n == 0:
                return PartitionSpec(*([None] * d), self.axis)
        return None

    def __repr__(self) -> str:
        return f"shard_largest_axis({self.axis!r}, min_size={self.min_size}, devices={self.devices})"


def shard_largest_axis(axis: str = "model", min_size: int = 2 ** 16, devices: int | None = None) -> LargestAxis:
    """A ``param_sharding`` rule: split the largest dividing axis of big parameters along mesh ``axis``.

    Parameters with at least ``min_size`` elements are split along their
    largest axis that ``devices`` (the size of the mesh axis; read from the
    mesh by the Trainer when ``None``) divides; smaller ones stay replicated.

    Example:
        >>> import jax.numpy as jnp
        >>> import neurodyn as nd
        >>> rule = nd.distributed.shard_largest_axis("model", min_size=4, devices=2)
        >>> rule.spec("w", nd.Variable(jnp.zeros((3, 8))))
        P(None, 'model')
        >>> rule.spec("b", nd.Variable(jnp.zeros(3))) is None     # too small
        True

        In a Trainer: ``nd.Trainer(model, loss_fn, opt, mesh=nd.distributed.make_mesh((2, 2),
        ("data", "model")), param_sharding=nd.distributed.shard_largest_axis("model", 1 << 20))``.
    """
    return LargestAxis(axis, min_size, devices)
