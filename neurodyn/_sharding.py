"""Placement of Variables and batches on a ``jax.sharding.Mesh``.

Everything here only *places* arrays (``jax.device_put`` with a
``NamedSharding``) and *pins* shardings inside traces
(``jax.lax.with_sharding_constraint``); the partitioning of the computation and
every collective it needs (the gradient all-reduce, the gathers of a sharded
spike vector) are inserted by XLA from those shardings.
"""

from __future__ import annotations

import fnmatch
from typing import Any, Callable, Mapping, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ._module import Module, notify_state_replaced
from ._random import RandomState
from ._state import Variable, current_frame

__all__ = ["as_mesh", "Placement", "ShardingRule", "DataParallel"]

SpecRule = Callable[[str, Variable], "PartitionSpec | None"]


def as_mesh(mesh: Any, axis: str = "data", where: str = "mesh") -> Mesh | None:
    """``None`` -> ``None``; a Mesh -> itself; an int n -> a 1-d mesh of the first n devices."""
    if mesh is None or isinstance(mesh, Mesh):
        return mesh
    if isinstance(mesh, (int, np.integer)) and not isinstance(mesh, bool):
        n = int(mesh)
        have = jax.device_count()
        if not 1 <= n <= have:
            raise ValueError(f"{where}: expected a device count between 1 and {have} (jax.device_count()), got {n}")
        # Auto axes: shardings propagate through reshapes etc. as in classic GSPMD;
        # Explicit axes (the make_mesh default in new JAX) would make users annotate them.
        return jax.make_mesh((n,), (axis,), axis_types=(jax.sharding.AxisType.Auto,),
                             devices=jax.devices()[:n])
    raise TypeError(f"{where}: expected a jax.sharding.Mesh, a device count (int) or None, "
                    f"got {type(mesh).__name__}")


def axis_size(mesh: Mesh, axes: str | tuple[str, ...] | None) -> int:
    if axes is None:
        return 1
    names = (axes,) if isinstance(axes, str) else tuple(axes)
    return int(np.prod([mesh.shape[a] for a in names]))


def check_spec(mesh: Mesh, spec: PartitionSpec, shape: tuple, what: str) -> None:
    """A clear error if ``spec`` does not fit ``shape`` on ``mesh``."""
    if len(spec) > len(shape):
        raise ValueError(f"{what}: PartitionSpec {spec} has {len(spec)} entries, but the array has shape "
                         f"{shape} ({len(shape)} axes)")
    for dim, axes in enumerate(spec):
        if axes is None:
            continue
        names = (axes,) if isinstance(axes, str) else tuple(axes)
        for a in names:
            if a not in mesh.axis_names:
                raise ValueError(f"{what}: PartitionSpec {spec} names mesh axis '{a}', but the mesh has axes "
                                 f"{mesh.axis_names}")
        n = axis_size(mesh, names)
        if shape[dim] % n:
            raise ValueError(f"{what}: axis {dim} of shape {shape} is split over {n} devices by {spec}; "
                             f"expected a size divisible by {n}, got {shape[dim]}")


class ShardingRule:
    """A ``param_sharding`` rule that needs the mesh to decide (e.g. the size of the axis it splits along).

    Subclasses define :meth:`spec`; the Trainer calls it with its mesh.
    :func:`nd.distributed.shard_largest_axis` returns one.

    Example:
        >>> import jax.numpy as jnp
        >>> import neurodyn as nd
        >>> from jax.sharding import PartitionSpec as P
        >>> class Rows(nd.distributed.ShardingRule):
        ...     def spec(self, path, var, mesh):
        ...         n = mesh.shape["data"]
        ...         return P("data") if var.ndim and var.shape[0] % n == 0 else None
        >>> Rows().spec("w", nd.Variable(jnp.zeros((4, 2))), nd.distributed.make_mesh((1,), ("data",)))
        P('data',)
    """

    def spec(self, path: str, var: Variable, mesh: Mesh) -> PartitionSpec | None:
        raise NotImplementedError

    def check(self, mesh: Mesh, where: str) -> None:
        """A clear error when ``mesh`` lacks what the rule needs (before any spec is asked for)."""


def spec_from(rule: Any, path: str, var: Variable, where: str, mesh: Mesh | None = None) -> PartitionSpec | None:
    """Look up a user rule: a mapping of glob patterns to specs, a :class:`ShardingRule`, or a callable."""
    if rule is None:
        return None
    if isinstance(rule, ShardingRule):
        spec = rule.spec(path, var, mesh)
    elif callable(rule):
        spec = rule(path, var)
    elif isinstance(rule, Mapping):
        spec = None
        for pattern, s in rule.items():
            if fnmatch.fnmatchcase(path, pattern):
                spec = s
                break
    else:
        raise TypeError(f"{where}: expected a dict {{'path.glob': PartitionSpec}} or a callable "
                        f"(path, Variable) -> PartitionSpec | None, got {type(rule).__name__}")
    if spec is not None and not isinstance(spec, PartitionSpec):
        if isinstance(spec, (tuple, list)):
            spec = PartitionSpec(*spec)
        else:
            raise TypeError(f"{where}: the rule gave {spec!r} for '{path}'; expected a "
                            "jax.sharding.PartitionSpec or None")
    return spec


class Placement:
    """Variables and the sharding each must have; re-places them when they drift.

    Values drift off their sharding when they are replaced outside compiled code
    (``reset_value`` in ``reset_state``, ``nd.load``); :meth:`place` fixes that
    before a compiled call, :meth:`constrain` pins the shardings inside a trace
    so the values a compiled call writes back keep them.
    """

    def __init__(self, mesh: Mesh, *roots: Module) -> None:
        self.mesh = mesh
        self.roots = roots  # told (Module._state_replaced) when place() moves values
        self.items: list[tuple[str, Variable, NamedSharding]] = []
        self.loose: list[tuple[str, Variable, NamedSharding]] = []
        self._ids: set[int] = set()

    def add(self, path: str, var: Variable, spec: PartitionSpec, strict: bool = True) -> None:
        """``strict``: keep exactly this sharding; else only move values that are not on the mesh yet
        (and let XLA choose, e.g. a recurrent state that follows the batch's sharding)."""
        if id(var) in self._ids:
            return
        self._ids.add(id(var))
        (self.items if strict else self.loose).append((path, var, NamedSharding(self.mesh, spec)))

    def place(self) -> None:
        moved = False
        for _, v, s in self.items:
            x = v.committed_value
            if getattr(x, "sharding", None) != s:
                v.committed_value = put_global(x, s)
                moved = True
        for _, v, s in self.loose:
            x = v.committed_value
            cur = getattr(x, "sharding", None)
            if not (isinstance(cur, NamedSharding) and cur.mesh == self.mesh):
                v.committed_value = put_global(x, s)
                moved = True
        if moved:
            # e.g. a Network's fused connectivity table is keyed by its projections' arrays
            notify_state_replaced(*self.roots)

    def constrain(self) -> None:
        """Pin the shardings of the Variables written so far in the current trace frame.

        Only written ones: constraining a read-only table (a projection's target
        indices) would make it a loop carry, which XLA then copies every step.
        """
        frame = current_frame()
        written = frame.writes if frame is not None else None
        for _, v, s in self.items:
            if written is None or id(v) in written:
                v.value = jax.lax.with_sharding_constraint(v.value, s)

    def specs(self) -> dict[str, PartitionSpec]:
        return {p: s.spec for p, _, s in self.items + self.loose}

    def key(self) -> tuple:
        return (id(self.mesh), self.mesh.axis_names, tuple(self.mesh.shape.values()),
                tuple((id(v), s.spec) for _, v, s in self.items))


def put_global(x: Any, sharding: NamedSharding) -> jax.Array:
    """Place ``x`` with ``sharding``; with several processes, ``x`` is the same on every process."""
    if jax.process_count() == 1 or sharding.is_fully_addressable:
        return jax.device_put(x, sharding)
    # Across processes: every process holds the full value (parameters are initialised
    # from the same seed), and each contributes the shards that live on its devices.
    host = np.asarray(x)
    return jax.make_array_from_callback(host.shape, sharding, lambda idx: host[idx])


def neuron_axis_rule(mesh: Mesh, axes: tuple[str, ...]) -> SpecRule:
    """Default simulation rule: split axis 0 when it divides evenly; random keys are replicated."""
    n = axis_size(mesh, axes)
    entry = axes[0] if len(axes) == 1 else axes

    def rule(path: str, var: Variable) -> PartitionSpec | None:
        if isinstance(var, RandomState) or var.ndim == 0:
            return PartitionSpec()
        if var.shape[0] % n == 0:
            return PartitionSpec(entry)
        return PartitionSpec()

    return rule


def module_specs(model: Module, mesh: Mesh, axes: tuple[str, ...]) -> dict[str, PartitionSpec]:
    """Specs that modules ask for their own Variables, by path.

    A module whose Variables have no leading neuron axis (a ring buffer of
    delayed input laid out ``(slots, neurons)``, a raw PRNG key) defines
    ``_shard_specs(entry, n) -> {attribute: PartitionSpec}``, ``entry`` being the
    mesh axes to split neurons over and ``n`` their device count; a user's rule
    still wins.
    """
    entry = axes[0] if len(axes) == 1 else axes
    n = axis_size(mesh, axes)
    out: dict[str, PartitionSpec] = {}
    for mpath, m in model.modules().items():
        hook = getattr(m, "_shard_specs", None)
        if callable(hook):
            for name, spec in hook(entry, n).items():
                out[f"{mpath}.{name}" if mpath else name] = spec
    return out


def module_placement(model: Module, mesh: Mesh, rule: Any = None, axes: Sequence[str] | str | None = None,
                     where: str = "shard") -> Placement:
    """The placement of every Variable of ``model``: ``rule`` first, then the neuron-axis default."""
    if axes is None:
        axes = tuple(mesh.axis_names)
    elif isinstance(axes, str):
        axes = (axes,)
    for a in axes:
        if a not in mesh.axis_names:
            raise ValueError(f"{where}: axis '{a}' is not an axis of the mesh; expected one of {mesh.axis_names}")
    default = neuron_axis_rule(mesh, tuple(axes))
    hinted = module_specs(model, mesh, tuple(axes))
    placement = Placement(mesh, model)
    for path, var in model.vars().items():
        spec = spec_from(rule, path, var, where, mesh)
        if spec is None:
            spec = hinted.get(path)
        if spec is None:
            spec = default(path, var)
        check_spec(mesh, spec, var.shape, f"{where}: Variable '{path}'")
        placement.add(path, var, spec)
    return placement


def batch_sharding(mesh: Mesh, axis: int, data_axis: str) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec(*([None] * axis), data_axis))


def put_batch(x: Any, mesh: Mesh, axis: int, data_axis: str, where: str, index: int) -> jax.Array:
    """Shard one batch array along ``axis``; with several processes ``x`` is this process's part."""
    sharding = batch_sharding(mesh, axis, data_axis)
    shape = x.shape if hasattr(x, "shape") else np.shape(x)
    if len(shape) <= axis:
        raise ValueError(f"{where}: array {index} of the batch needs a batch axis {axis}, got shape {tuple(shape)}")
    n = mesh.shape[data_axis]
    procs = jax.process_count()
    if procs == 1:
        if shape[axis] % n:
            raise ValueError(
                f"{where}: the batch is split over the {n} devices of mesh axis '{data_axis}', so its size must "
                f"be a multiple of {n}; array {index} has {shape[axis]} samples on axis {axis} (shape "
                f"{tuple(shape)}). Use a batch_size divisible by {n} (and drop_last=True in fit).")
        if getattr(x, "sharding", None) == sharding:
            return x
        return jax.device_put(x, sharding)
    if (shape[axis] * procs) % n:
        raise ValueError(
            f"{where}: each of the {procs} processes passes its own part of the batch; the global batch "
            f"({shape[axis]} x {procs} samples) must be a multiple of the {n} devices of mesh axis "
            f"'{data_axis}', got array {index} with {shape[axis]} local samples on axis {axis}")
    if axis == 0:
        return jax.make_array_from_process_local_data(sharding, np.asarray(x))
    global_shape = tuple(shape[:axis]) + (shape[axis] * procs,) + tuple(shape[axis + 1:])
    return jax.make_array_from_process_local_data(sharding, np.asarray(x), global_shape)


class DataParallel:
    """The Trainer's placement on a mesh: batches split along the data axis, Variables where a rule says.

    Parameters follow ``param_sharding`` (replicated by default), each
    parameter's optimizer state (optax moments) is split like it, other
    optimizer state is replicated, and model state that is not a parameter
    (recurrent state, BatchNorm statistics) may follow the batch's sharding.
    """

    def __init__(self, mesh: Mesh, model: Module, optimizer: Any, rule: Any = None, where: str = "Trainer") -> None:
        self.mesh = mesh
        names = mesh.axis_names
        self.data_axis = "data" if "data" in names else names[0]
        if isinstance(rule, ShardingRule):
            rule.check(mesh, f"{where}: param_sharding")
        placement = Placement(mesh, model, optimizer)
        specs: dict[str, PartitionSpec] = {}
        for path, var in optimizer.params.items():
            spec = spec_from(rule, path, var, f"{where}: param_sharding", mesh) or PartitionSpec()
            check_spec(mesh, spec, var.shape, f"{where}: param_sharding of parameter '{path}'")
            specs[path] = spec
            placement.add(path, var, spec)
        opt_paths = {id(v): f"optimizer.{p}" for p, v in optimizer.vars().items()}
        if rule is not None:
            for path, spec in specs.items():
                for var in optimizer.state_of(path):
                    placement.add(opt_paths[id(var)], var, spec)
        for path, var in optimizer.vars().items():
            placement.add(f"optimizer.{path}", var, PartitionSpec())
        for path, var in model.vars().items():
            placement.add(path, var, PartitionSpec(), strict=False)
        self.placement = placement

    def put(self, batch: Any, axes: tuple[int, ...], where: str) -> Any:
        """``batch`` split along each array's batch axis (``axes``, one per array) over the data axis."""
        leaves, treedef = jax.tree.flatten(batch)
        return jax.tree.unflatten(treedef, [put_batch(x, self.mesh, ax, self.data_axis, where, i)
                                            for i, (x, ax) in enumerate(zip(leaves, axes))])

    def __repr__(self) -> str:
        shape = ", ".join(f"{k}={v}" for k, v in self.mesh.shape.items())
        split = sum(1 for _, _, s in self.placement.items if any(a is not None for a in s.spec))
        return f"data-parallel over mesh ({shape}) along '{self.data_axis}'; {split} Variables split"
