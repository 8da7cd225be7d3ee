"""Trainer: compiled training steps, batching, progress, history and checkpoints."""

from __future__ import annotations

import itertools
import math
import os
import warnings
from typing import Any, Callable, Iterator, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from . import random as _nd_random
from ._checkpoint import read_file as _read_file
from ._checkpoint import write_file as _write_file
from ._checkpoint import variables as _ckpt_variables
from ._data import DeviceEpoch, epoch_order, fits_on_device
from ._data import gather as _gather
from ._jit import jit as _jit
from ._module import Module
from ._random import RandomState
from ._state import Frame, Variable, current_frame
from ._sharding import Placement, as_mesh, check_spec, put_batch, spec_from
from ._transforms import for_loop, value_and_grad
from .optim import all_finite

__all__ = ["Trainer"]

_SKIPPED = "_nd_skipped"  # per-step flag the compiled step returns to the host

LossFn = Callable[[Module, Any], Any]


def _is_array(x: Any) -> bool:
    return hasattr(x, "shape") and hasattr(x, "dtype")


def _is_array_dataset(data: Any) -> bool:
    if _is_array(data):
        return True
    if isinstance(data, tuple) and data and all(_is_array(x) for x in data):
        return True
    return isinstance(data, Mapping) and bool(data) and all(_is_array(x) for x in data.values())


def _needs_reset(model: Module) -> bool:
    """Whether a model's state is reset before every batch by default (decided once, at construction)."""
    own = getattr(model, "reset_state_per_batch", None)
    if own is not None:
        return bool(own)
    return any(getattr(m, "reset_state_per_batch", False) for m in model.modules().values())


class Trainer:
    """Train a Module with compiled steps that carry every piece of state automatically.

    ``trainer.step(batch)`` is one ``nd.jit``-compiled step: forward, gradients
    of ``loss_fn`` w.r.t. the optimizer's Variables, and the optimizer update.
    Everything the step touches (parameters, BatchNorm statistics, the random
    state, optimizer state) is found by tracing and updated in place.

    Args:
        model: the Module to train.
        loss_fn: ``loss_fn(model, batch) -> loss`` or ``(loss, {name: scalar})``;
            the dict's entries are tracked as training metrics.
        optimizer: an ``optim.Optimizer``; if nothing is registered yet it
            gets ``model.train_vars()``.
        metrics: ``{name: fn(model, batch) -> scalar}`` computed by
            :meth:`evaluate` (in eval mode) besides the loss and its aux dict.
        jit: compile the steps (False: run eagerly, for debugging).
        progress_bar: show a tqdm bar per epoch with loss and metrics.
        steps_per_call: batches per compiled call. ``None`` (default): for an
            array dataset that fits in a quarter of the device's memory (of
            the host's RAM on CPU), :meth:`fit` copies it to the device once
            and runs each epoch's full batches in one call, gathering every
            batch on the device (same batches, same order as host batching);
            otherwise one batch per call. ``'epoch'``: always whole epochs
            from device-resident data. An int: that many host batches stacked
            per call with ``nd.for_loop``. Needs ``jit=True`` and no ``mesh``
            (otherwise one batch per call).
        donate: donate the written Variables' buffers to the step (saves
            memory and copies; arrays you kept from ``var.value`` before a step
            become invalid).
        stop_on_nan: what happens when a step's loss or a gradient is not
            finite. That step's update is always skipped on the device
            (parameters, optimizer state and other model state stay as they
            were; the random state moves on). ``False``: training goes on, one
            warning names the step, epoch and batch, and ``history['skipped']``
            counts the skipped steps per epoch. ``True``: every later step is
            skipped on the device as well and :meth:`fit` raises
            ``FloatingPointError`` when the losses are next fetched, with the
            parameters as they were before the bad step (:meth:`step` checks at
            once).
        reset_state: call ``model.reset_state(batch_size)`` at the start of
            every step, inside the compiled step (e.g. recurrent or spiking
            models trained with BPTT). ``None`` follows the model's
            ``reset_state_per_batch`` attribute if it has one, and otherwise
            resets when any submodule sets it (the discrete spiking layers
            ``nn.Leaky``, ``nn.RLeaky``, ``nn.LeakyIntegrator``, ... do). When the batch
            size changes, the reset also runs once outside compiled code, so
            ``reset_state`` may use ``Variable.reset_value`` for new shapes and
            must assign in place (``v.value = ...``) otherwise.
        before_step: ``before_step(model, batch)``, called inside the compiled
            step before the loss (after the reset); may write Variables.
        log_every: fetch losses from the device (and refresh the bar, check for
            NaN) every this many steps; the step itself never waits for the host.
        batch_axis: the batch axis of the batch's arrays (an int, or one per
            array, e.g. ``(1, 0)`` for time-major inputs with batch-major labels);
            the batch size passed to ``reset_state`` is read from the first array.
        mesh: data-parallel training over devices: a ``jax.sharding.Mesh`` or a
            device count (a 1-d mesh with axis ``'data'``). Every batch is split
            along its batch axis over the mesh axis ``'data'`` (or the mesh's
            first axis), so its size must divide by that axis's size;
            parameters, optimizer state and other model state are replicated
            (unless ``param_sharding`` says otherwise) and XLA reduces the
            gradients through the shardings. With several processes
            (:func:`nd.distributed.initialize`) every process passes only its
            own part of each batch (``batch_size`` in :meth:`fit` is per process).
            ``None``: the default device, as before; the same script runs unchanged.
        param_sharding: split large parameters instead of replicating them:
            ``{'path.glob': PartitionSpec}`` over the optimizer's parameter names
            (``model.train_vars()`` paths, e.g. ``{'fc1.weight': P(None, 'model')}``;
            first match wins), or ``fn(path, var) -> PartitionSpec | None``
            (e.g. :func:`nd.distributed.shard_largest_axis`). The optimizer state
            of a parameter (optax moments mirror its shape) gets the same sharding.

    An interrupted :meth:`fit` (Ctrl-C, an exception) resumes at the batch it
    reached when called again with the same data and seed (``trainer.epoch`` and
    ``trainer.batch_in_epoch`` tell where); set ``batch_in_epoch = 0`` to start
    the epoch over. :meth:`save` keeps that position. State that is reset for
    every batch (``reset_state``) is not saved: it is rebuilt by the next step.

    Example:
        >>> trainer = nd.Trainer(model, lambda m, b: jnp.mean((m(b[0]) - b[1]) ** 2),
        ...                      optim.Adam(1e-3))
        >>> history = trainer.fit((x, y), epochs=5, batch_size=64, seed=0)
        >>> trainer.save("ckpt.npz")
        >>> dp = nd.Trainer(model, loss_fn, optim.Adam(1e-3), mesh=4)   # data-parallel over 4 devices
    """

    def __init__(self, model: Module, loss_fn: LossFn, optimizer: Any,
                 metrics: Mapping[str, Callable[[Module, Any], Any]] | None = None,
                 jit: bool = True, progress_bar: bool = True, steps_per_call: int | str | None = None,
                 donate: bool = False, stop_on_nan: bool = False, reset_state: bool | None = None,
                 before_step: Callable[[Module, Any], None] | None = None, log_every: int = 20,
                 batch_axis: int | tuple[int, ...] = 0, mesh: Any = None,
                 param_sharding: Any = None) -> None:
        if not isinstance(model, Module):
            raise TypeError(f"Trainer: model must be an nd.Module, got {type(model).__name__}")
        if not callable(loss_fn):
            raise TypeError(f"Trainer: loss_fn must be callable (model, batch) -> loss, got {type(loss_fn).__name__}")
        if not (hasattr(optimizer, "update") and hasattr(optimizer, "register")):
            raise TypeError(f"Trainer: optimizer must be an optim.Optimizer, got {type(optimizer).__name__}")
        if not (steps_per_call is None or steps_per_call == "epoch"
                or (isinstance(steps_per_call, (int, np.integer)) and not isinstance(steps_per_call, bool)
                    and steps_per_call >= 1)):
            raise ValueError(f"Trainer: steps_per_call must be None, 'epoch' or an int >= 1, got {steps_per_call!r}")
        self.model = model
        self.loss_fn = loss_fn
        self.optimizer = optimizer
        if not optimizer.params:
            optimizer.register(model.train_vars())
        self._params = optimizer.params
        # Make each module's `training` flag an own attribute now: Module.train()/eval()
        # add it on first use, which the compiled step would see as a change and re-trace.
        for m in model.modules().values():
            if "training" not in m.__dict__:
                m.training = m.training
        self.metrics = dict(metrics or {})
        self.progress_bar = progress_bar
        self.steps_per_call = steps_per_call if steps_per_call in (None, "epoch") else int(steps_per_call)
        self._jit = bool(jit)
        self._bar: Any = None
        self.stop_on_nan = stop_on_nan
        self.reset_state = reset_state
        self._auto_reset = _needs_reset(model)
        self.before_step = before_step
        self.log_every = max(int(log_every), 1)
        self.batch_axis = batch_axis
        self.epoch = 0
        self.global_step = 0
        self.batch_in_epoch = 0
        self.history: dict[str, list[float]] = {}
        self._partial: dict[str, float] = {}  # running sums of an interrupted epoch
        self._halted = Variable(False)  # set on the device by a bad step under stop_on_nan
        self._spec: Any = None
        self._reset_bs: Any = object()
        self._first_epoch = 0
        self.mesh = as_mesh(mesh, "data", "Trainer: mesh")
        self._placement: Placement | None = None
        if self.mesh is not None:
            names = self.mesh.axis_names
            self._data_axis = "data" if "data" in names else names[0]
            self._placement = self._make_placement(param_sharding)
            self._placement.place()
        elif param_sharding is not None:
            raise ValueError("Trainer: param_sharding needs a mesh; pass mesh=... (a jax.sharding.Mesh with the "
                             "axes the PartitionSpecs name)")
        objs = (model, optimizer)
        if jit:
            self._step_fn = _jit(self._train_step, donate=donate, child_objs=objs)
            self._multi_fn = _jit(self._train_steps, donate=donate, child_objs=objs)
            self._gathered_fn = _jit(self._train_gathered, donate=donate, child_objs=objs)
            self._eval_fn = _jit(self._eval_step, child_objs=objs)
            self._predict_fn = _jit(self._predict, child_objs=objs)
        else:
            self._step_fn, self._multi_fn = self._train_step, self._train_steps
            self._gathered_fn = self._train_gathered
            self._eval_fn, self._predict_fn = self._eval_step, self._predict

    # -- sharding -----------------------------------------------------------------------
    def _make_placement(self, rule: Any) -> Placement:
        """Where every parameter, optimizer state array and model state array lives."""
        from jax.sharding import PartitionSpec as P
        mesh = self.mesh
        axis = getattr(rule, "_nd_mesh_axis", None)
        if axis is not None:
            if axis not in mesh.axis_names:
                raise ValueError(f"Trainer: param_sharding splits along mesh axis '{axis}', but the mesh has axes "
                                 f"{mesh.axis_names}")
            base, n = rule, mesh.shape[axis]
            rule = lambda path, var: base(path, var, n)  # noqa: E731
        placement = Placement(mesh, self.model, self.optimizer)
        specs: dict[str, Any] = {}
        for path, var in self._params.items():
            spec = spec_from(rule, path, var, "Trainer: param_sharding") or P()
            check_spec(mesh, spec, var.shape, f"Trainer: param_sharding of parameter '{path}'")
            specs[path] = spec
            placement.add(path, var, spec)
        opt_paths = {id(v): f"optimizer.{p}" for p, v in self.optimizer.vars().items()}
        if rule is not None:
            # a parameter's optimizer state (optax moments) is split like it; counters stay replicated
            for path, spec in specs.items():
                for var in self.optimizer.state_of(path):
                    placement.add(opt_paths[id(var)], var, spec)
        for path, var in self.optimizer.vars().items():
            placement.add(f"optimizer.{path}", var, P())
        for path, var in self.model.vars().items():
            # non-parameter state (recurrent state, BatchNorm statistics) may follow the batch's sharding
            placement.add(path, var, P(), strict=False)
        return placement

    @property
    def shardings(self) -> dict[str, Any]:
        """``path -> PartitionSpec`` of every Variable the Trainer placed (empty without a mesh).

        Example:
            >>> nd.Trainer(model, loss_fn, opt, mesh=2).shardings["fc.weight"]
            PartitionSpec()
        """
        return {} if self._placement is None else self._placement.specs()

    def _put(self, batch: Any, stacked: bool, where: str) -> Any:
        leaves, treedef = jax.tree.flatten(batch)
        axes = self._axes(len(leaves))
        out = [put_batch(x, self.mesh, ax + int(stacked), self._data_axis, where, i)
               for i, (x, ax) in enumerate(zip(leaves, axes))]
        return jax.tree.unflatten(treedef, out)

    # -- the compiled bodies ---------------------------------------------------------
    def _wants_reset(self) -> bool:
        r = self.reset_state
        return self._auto_reset if r is None else bool(r)

    def _axes(self, n: int) -> tuple[int, ...]:
        ax = self.batch_axis
        if isinstance(ax, int):
            return (ax,) * n
        if len(ax) != n:
            raise ValueError(f"Trainer: batch_axis has {len(ax)} entries but a batch has {n} arrays")
        return tuple(ax)

    def _batch_size(self, batch: Any) -> int:
        leaves = jax.tree.leaves(batch)
        return int(jnp.shape(leaves[0])[self._axes(len(leaves))[0]])

    def _prepare(self, batch: Any) -> None:
        if self._wants_reset():
            self.model.reset_state(self._batch_size(batch))
        if self.before_step is not None:
            self.before_step(self.model, batch)

    def _loss(self, batch: Any) -> tuple[Any, dict]:
        out = self.loss_fn(self.model, batch)
        if isinstance(out, tuple):
            if len(out) != 2 or not isinstance(out[1], Mapping):
                raise TypeError("Trainer: loss_fn must return a scalar loss or (loss, {name: scalar})")
            loss, aux = out
        else:
            loss, aux = out, {}
        if jnp.ndim(loss) != 0:
            raise TypeError(f"Trainer: loss_fn must return a scalar loss, got shape {jnp.shape(loss)}")
        return loss, dict(aux)

    def _train_step(self, batch: Any) -> dict[str, Any]:
        # The forward pass writes into a frame of its own, whose writes reach the model only
        # when the loss and every gradient are finite (selects on the device, so this holds
        # for any number of steps inside one compiled call); the optimizer gates its own update.
        frame = Frame(current_frame())
        with frame:
            self._prepare(batch)
            (loss, aux), grads = value_and_grad(self._loss, grad_vars=self._params, has_aux=True)(batch)
        ok = all_finite(loss, grads)
        if self.stop_on_nan:
            ok = ok & ~self._halted.value
        gated = [i for i, var in frame.writes.items() if i not in frame.born and not isinstance(var, RandomState)]
        if gated:
            new = [frame.values[i] for i in gated]
            old = [frame.writes[i].value for i in gated]  # the values before this step
            for i, x in zip(gated, optax.tree.where(ok, new, old)):
                frame.values[i] = x
        frame.commit()
        self.optimizer.update(grads, apply_if=ok)
        if self.stop_on_nan:
            self._halted.value = ~ok
        if self._placement is not None:
            # Pin the written state to its placement, so the next step sees the same shardings
            # (and a sharded parameter's update stays sharded rather than whatever XLA picks).
            self._placement.constrain()
        return {"loss": loss, **aux, _SKIPPED: ~ok}

    def _train_steps(self, batches: Any) -> dict[str, Any]:
        return for_loop(self._train_step, batches)

    def _train_gathered(self, data: Any, index: Any) -> dict[str, Any]:
        def body(idx: Any) -> dict[str, Any]:
            out = self._train_step(_gather(data, idx))
            if self.progress_bar:
                jax.debug.callback(self._tick)
            return out

        return for_loop(body, index)

    def _tick(self) -> None:
        # advances the bar from inside a whole-epoch call (a host callback per step)
        bar = self._bar
        if bar is not None and bar.total is not None and bar.n < bar.total:
            bar.update(1)

    def _eval_step(self, batch: Any) -> dict[str, Any]:
        self._prepare(batch)
        loss, aux = self._loss(batch)
        out = {"loss": loss, **aux}
        for name, fn in self.metrics.items():
            out[name] = fn(self.model, batch)
        return out

    def _predict(self, x: Any) -> Any:
        return self.model(x)

    def _put_x(self, x: Any) -> Any:
        if self._placement is None:
            return x
        ax = self.batch_axis if isinstance(self.batch_axis, int) else self.batch_axis[0]
        leaves, treedef = jax.tree.flatten(x)
        x = jax.tree.unflatten(treedef, [put_batch(a, self.mesh, ax, self._data_axis, "Trainer.predict: input", i)
                                         for i, a in enumerate(leaves)])
        self._placement.place()
        return x

    # -- input checks ------------------------------------------------------------------
    def _signature(self, batch: Any) -> tuple:
        leaves, treedef = jax.tree.flatten(batch)
        sig = []
        for x, ax in zip(leaves, self._axes(len(leaves))):
            # Arrays carry shape and dtype; only Python scalars/lists need NumPy (this runs every step).
            shape = x.shape if hasattr(x, "shape") else np.shape(x)
            dtype = x.dtype if hasattr(x, "dtype") else np.result_type(x)
            if len(shape) <= ax:
                raise ValueError(f"Trainer: every array in a batch needs a batch axis {ax}, got shape {tuple(shape)}")
            sig.append((tuple(shape[:ax]) + tuple(shape[ax + 1:]), dtype))
        return treedef, tuple(sig)

    def _check_batch(self, batch: Any, where: str) -> None:
        treedef, sig = self._signature(batch)
        if self._spec is None:
            self._spec = (treedef, tuple((s, np.dtype(d)) for s, d in sig), [tuple(jnp.shape(x)) for x in jax.tree.leaves(batch)])
            return
        ref_def, ref_sig, ref_shapes = self._spec
        if treedef != ref_def:
            raise ValueError(f"Trainer: {where} has structure {treedef}, but the first batch had {ref_def}")
        if sig == ref_sig:
            return
        for i, ((s, d), (rs, rd)) in enumerate(zip(sig, ref_sig)):
            if s != rs or np.dtype(d) != np.dtype(rd):
                got = tuple(jnp.shape(jax.tree.leaves(batch)[i]))
                raise ValueError(
                    f"Trainer: {where}, array {i} has shape {got} dtype {d}; the first batch had shape "
                    f"{ref_shapes[i]} dtype {rd} (only the batch axis {self.batch_axis} may change)")

    def _reset_outside(self, batch: Any) -> None:
        # A new batch size changes state shapes: that needs reset_value, outside compiled code.
        if self._wants_reset():
            bs = self._batch_size(batch)
            if bs != self._reset_bs:
                self.model.reset_state(bs)
                self._reset_bs = bs

    # -- public stepping ---------------------------------------------------------------------
    def step(self, batch: Any) -> dict[str, jax.Array]:
        """One compiled training step; returns ``{'loss': ..., **aux}`` as device arrays.

        Example:
            >>> out = trainer.step((x_batch, y_batch)); float(out["loss"])
        """
        out = self._step(batch)
        skipped = out.pop(_SKIPPED)
        if self.stop_on_nan and bool(skipped):
            self._halted.value = False
            self.global_step -= 1
            raise FloatingPointError(self._bad_step_message(self.global_step, None, out) +
                                     "; the update was not applied (stop_on_nan=True)")
        return out

    def _step(self, batch: Any) -> dict[str, jax.Array]:
        self._check_batch(batch, f"batch of step {self.global_step}")
        if self._placement is not None:
            batch = self._put(batch, False, f"Trainer: batch of step {self.global_step}")
        self._reset_outside(batch)
        if self._placement is not None:
            self._placement.place()
        try:
            out = self._step_fn(batch)
        except Exception as e:
            e.add_note(f"Trainer: step {self.global_step} got a batch with arrays of shapes "
                       f"{[tuple(jnp.shape(x)) for x in jax.tree.leaves(batch)]}")
            raise
        self.global_step += 1
        return out

    def _bad_step_message(self, step: int, batch: int | None, out: Mapping[str, Any], k: int = 0) -> str:
        loss = float(np.atleast_1d(np.asarray(out["loss"]))[k])
        what = f"non-finite loss {loss}" if not math.isfinite(loss) else "non-finite gradient"
        where = f"epoch {self.epoch}" + ("" if batch is None else f", batch {batch}")
        return f"Trainer: {what} at training step {step} ({where})"

    def steps(self, batches: Any) -> dict[str, jax.Array]:
        """Several steps in one compiled call; ``batches`` are stacked on a new leading axis.

        A step whose loss or gradient is not finite is skipped on the device
        (``stop_on_nan`` as in :meth:`step`, checked after the call).

        Example:
            >>> out = trainer.steps((xs[:10].reshape(10, 32, -1), ys[:10].reshape(10, 32)))
            >>> out["loss"].shape
            (10,)
        """
        g0 = self.global_step
        out = self._steps(batches)
        skipped = np.asarray(out.pop(_SKIPPED))
        if self.stop_on_nan and skipped.any():
            k = int(np.flatnonzero(skipped)[0])
            self._halted.value = False
            self.global_step = g0 + k
            raise FloatingPointError(self._bad_step_message(g0 + k, None, out, k) +
                                     "; it and every later step of the call were not applied (stop_on_nan=True)")
        return out

    def _steps(self, batches: Any) -> dict[str, jax.Array]:
        first = jax.tree.map(lambda a: a[0], batches)
        self._check_batch(first, f"stacked batches of step {self.global_step}")
        if self._placement is not None:
            batches = self._put(batches, True, f"Trainer: stacked batches of step {self.global_step}")
            # shapes only: indexing a global array would need every process's shards
            first = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape[1:], a.dtype), batches)
        self._reset_outside(first)
        if self._placement is not None:
            self._placement.place()
        out = self._multi_fn(batches)
        self.global_step += int(jnp.shape(jax.tree.leaves(batches)[0])[0])
        return out

    def _device_steps(self, chunk: DeviceEpoch) -> dict[str, jax.Array]:
        first = chunk.first_batch_shapes()
        self._check_batch(first, f"batches of step {self.global_step}")
        self._reset_outside(first)
        out = self._gathered_fn(chunk.data, chunk.index)
        self.global_step += len(chunk)
        return out

    # -- data ------------------------------------------------------------------------------
    def _device_data(self, data: Any) -> Any:
        """``data`` on the device for whole-epoch calls, or None to batch on the host."""
        mode = self.steps_per_call
        if mode not in (None, "epoch") or not self._jit or self.mesh is not None or not _is_array_dataset(data):
            return None
        leaves, treedef = jax.tree.flatten(data)
        leaves = [x if isinstance(x, jax.Array) else np.asarray(x) for x in leaves]
        if mode is None and not fits_on_device(leaves):
            return None
        return jax.tree.unflatten(treedef, [jax.device_put(x) for x in leaves])

    def _batches(self, data: Any, batch_size: int | None, shuffle: bool, seed: Any,
                 epoch: int, drop_last: bool, skip: int = 0,
                 device_data: Any = None) -> tuple[Iterator[Any], int | None]:
        if _is_array_dataset(data):
            leaves, treedef = jax.tree.flatten(data)
            leaves = [np.asarray(x) for x in leaves]
            n = leaves[0].shape[0]
            for i, x in enumerate(leaves):
                if x.shape[0] != n:
                    raise ValueError(f"Trainer: the arrays of the dataset differ in length: array 0 has {n} "
                                     f"samples, array {i} has {x.shape[0]}")
            bs = n if batch_size is None else int(batch_size)
            if bs < 1:
                raise ValueError(f"Trainer: batch_size must be >= 1, got {batch_size}")
            order = epoch_order(n, shuffle, seed, epoch)
            count = n // bs if drop_last else math.ceil(n / bs)
            full = min(n // bs, count)

            def gen() -> Iterator[Any]:
                start = skip
                if device_data is not None and start < full:
                    # the full batches in one call, gathered on the device; a short last one after it
                    index = (np.arange(n) if order is None else order)[start * bs:full * bs].reshape(-1, bs)
                    yield DeviceEpoch(device_data, index.astype(np.int32))
                    start = full
                for k in range(start, count):
                    sl = slice(k * bs, min((k + 1) * bs, n))
                    idx = order[sl] if order is not None else sl
                    yield jax.tree.unflatten(treedef, [x[idx] for x in leaves])

            return gen(), count
        if callable(data):
            data = data()
        if batch_size is not None:
            raise ValueError("Trainer: batch_size applies to array datasets; an iterable already yields batches")
        try:
            total = len(data)
        except TypeError:
            total = None
        it = iter(data)
        if it is data and epoch > self._first_epoch:
            warnings.warn("Trainer: train_data is a one-shot iterator; pass a list, a re-iterable, or a "
                          "function returning a fresh iterator to train for several epochs", stacklevel=3)
        if skip and it is not data:
            # a fresh iterator of an interrupted epoch: pass over the batches already trained on
            it = itertools.islice(it, skip, None)
        return it, total

    # -- fitting ------------------------------------------------------------------------------
    def fit(self, train_data: Any, epochs: int = 1, eval_data: Any = None, batch_size: int | None = None,
            shuffle: bool = True, seed: int | None = None, drop_last: bool = False) -> dict[str, list[float]]:
        """Train for ``epochs`` more epochs; returns (and keeps) ``trainer.history``.

        ``train_data`` is a tuple (or dict) of arrays sliced into batches of
        ``batch_size`` on the host (shuffled with ``seed`` and the epoch
        number, so a resumed run sees the same order), or an iterable of
        batches (a list, a re-iterable, or a function returning an iterator).
        ``history`` holds per-epoch means: ``loss``, the aux entries, and
        ``eval_*`` for ``eval_data``; ``skipped`` (steps whose update was
        skipped for a non-finite loss or gradient) appears once one was.

        If a previous ``fit`` was interrupted mid-epoch, the first epoch here
        finishes that one, starting at ``trainer.batch_in_epoch``.

        Example:
            >>> trainer.fit((x, y), epochs=3, batch_size=32, eval_data=(x_val, y_val), seed=0)
        """
        self._first_epoch = self.epoch
        device_data = self._device_data(train_data) if int(epochs) > 0 else None
        for _ in range(int(epochs)):
            it, total = self._batches(train_data, batch_size, shuffle, seed, self.epoch, drop_last,
                                      self.batch_in_epoch, device_data)
            stats = self._run_epoch(it, total)
            record = dict(stats)
            if eval_data is not None:
                ev = self.evaluate(eval_data, batch_size=batch_size)
                record.update({f"eval_{k}": v for k, v in ev.items()})
            if record.get("skipped") or "skipped" in self.history:
                self.history.setdefault("skipped", [0.0] * len(self.history.get("loss", [])))
            else:
                record.pop("skipped", None)
            for k, v in record.items():
                self.history.setdefault(k, []).append(v)
            self.epoch += 1
            self.batch_in_epoch = 0
        return self.history

    def _run_epoch(self, it: Iterator[Any], total: int | None) -> dict[str, float]:
        batch_index = self.batch_in_epoch
        bar = tqdm(total=total, initial=batch_index, desc=f"epoch {self.epoch + 1}",
                   disable=not self.progress_bar, leave=True, dynamic_ncols=True)
        pending: list[tuple[int, int, dict]] = []  # (first global step, batch index, outputs)
        # an interrupted epoch's sums carry on (losses of steps whose update was applied)
        sums: dict[str, float] = dict(self._partial) if batch_index else {}
        n_done = int(sums.pop("_n", 0))
        skipped_total = int(sums.pop("_skipped", 0))
        unfetched = 0
        group: list[Any] = []
        stopped_at: int | None = None

        def fetch() -> None:
            nonlocal n_done, unfetched, skipped_total, stopped_at
            if not pending:
                return
            host = jax.device_get([p[2] for p in pending])
            done = list(pending)
            pending.clear()
            unfetched = 0
            for (g0, b0, _), out in zip(done, host):
                skipped = np.atleast_1d(out.pop(_SKIPPED))
                keep = ~skipped
                for k in np.flatnonzero(skipped):
                    k = int(k)
                    msg = self._bad_step_message(g0 + k, b0 + k, out, k)
                    if self.stop_on_nan:
                        # this step and every later one were skipped on the device
                        self._halted.value = False
                        self.global_step = g0 + k
                        self.batch_in_epoch = stopped_at = b0 + k
                        raise FloatingPointError(msg + "; its update was not applied and training "
                                                 "stopped (stop_on_nan=True)")
                    warnings.warn(msg + "; its update was skipped", RuntimeWarning, stacklevel=5)
                for key, val in out.items():
                    sums[key] = sums.get(key, 0.0) + float(np.sum(np.atleast_1d(val)[keep]))
                n_done += int(keep.sum())
                skipped_total += int(skipped.sum())
            bar.set_postfix({k: f"{v / max(n_done, 1):.4g}" for k, v in sums.items()}, refresh=False)

        def run_group() -> None:
            nonlocal batch_index, unfetched
            if len(group) == 1:
                pending.append((self.global_step, batch_index, self._step(group[0])))
            else:
                stacked = jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *group)
                pending.append((self.global_step, batch_index, self._steps(stacked)))
            batch_index += len(group)
            unfetched += len(group)
            bar.update(len(group))
            group.clear()
            if unfetched >= self.log_every:
                fetch()

        def run_singly() -> None:
            rest = list(group)
            group.clear()
            for b in rest:
                group.append(b)
                run_group()

        K = self.steps_per_call if isinstance(self.steps_per_call, int) else 1
        self._bar = bar
        try:
            for batch in it:
                if isinstance(batch, DeviceEpoch):
                    run_singly()
                    pending.append((self.global_step, batch_index, self._device_steps(batch)))
                    batch_index += len(batch)
                    unfetched += len(batch)
                    fetch()
                    bar.n = batch_index  # the per-step callbacks may not all have shown
                    bar.refresh()
                    continue
                # Only batches of one shape can be stacked (a short last batch runs on its own).
                if K > 1 and group and self._signature(batch) != self._signature(group[0]):
                    run_singly()
                group.append(batch)
                if len(group) == K:
                    run_group()
            run_singly()
            fetch()
        except BaseException:
            # Interrupted (Ctrl-C, an error): every dispatched step has run on the device;
            # keep their statistics and the position so that the next fit goes on from there.
            if pending:
                try:
                    fetch()
                except FloatingPointError:
                    pass
            if stopped_at is None:
                self.batch_in_epoch = batch_index
            self._partial = {**sums, "_n": n_done, "_skipped": skipped_total}
            raise
        finally:
            self._bar = None
            bar.close()
        self._partial = {}
        if n_done + skipped_total == 0:
            raise ValueError("Trainer.fit: the training data yielded no batches")
        out = {k: v / max(n_done, 1) for k, v in sums.items()}
        out["skipped"] = float(skipped_total)
        return out

    # -- evaluation -----------------------------------------------------------------------------
    def evaluate(self, data: Any, batch_size: int | None = None) -> dict[str, float]:
        """Mean loss, aux entries and ``metrics`` over ``data`` in eval mode (weighted by batch size).

        Example:
            >>> trainer.evaluate((x_test, y_test), batch_size=256)
            {'loss': 0.12, 'acc': 0.97}
        """
        if _is_array_dataset(data):
            self._first_epoch = self.epoch
            it, _ = self._batches(data, batch_size, False, None, 0, False)
        else:
            it = iter(data() if callable(data) else data)
        was_training = self.model.training
        self.model.eval()
        try:
            outs, sizes = [], []
            for batch in it:
                self._check_batch(batch, "evaluation batch")
                if self._placement is not None:
                    batch = self._put(batch, False, "Trainer.evaluate: batch")
                self._reset_outside(batch)
                if self._placement is not None:
                    self._placement.place()
                outs.append(self._eval_fn(batch))
                sizes.append(self._batch_size(batch))
            if not outs:
                raise ValueError("Trainer.evaluate: the data yielded no batches")
            host = jax.device_get(outs)
        finally:
            self.model.train(was_training)
        w = np.asarray(sizes, dtype=np.float64)
        return {k: float(np.sum(w * np.asarray([h[k] for h in host], dtype=np.float64)) / w.sum())
                for k in host[0]}

    def predict(self, x: Any, batch_size: int | None = None) -> Any:
        """The model's output for ``x`` in eval mode (compiled; batched with ``batch_size``).

        Example:
            >>> logits = trainer.predict(x_test, batch_size=512)
        """
        was_training = self.model.training
        self.model.eval()
        try:
            if batch_size is None:
                if self._wants_reset():
                    self.model.reset_state(self._batch_size(x))
                return self._predict_fn(self._put_x(x))
            n = int(jnp.shape(x)[0])
            parts = []
            for s in range(0, n, int(batch_size)):
                xb = x[s:s + int(batch_size)]
                if self._wants_reset():
                    self.model.reset_state(self._batch_size(xb))
                parts.append(self._predict_fn(self._put_x(xb)))
            return jax.tree.map(lambda *p: jnp.concatenate(p), *parts)
        finally:
            self.model.train(was_training)

    # -- checkpoints -------------------------------------------------------------------------------
    def _per_batch_state(self) -> set[str]:
        """Checkpoint names of the model Variables that ``reset_state`` rewrites for every batch.

        Found by running the reset once outside compiled code and putting every
        value back, so nothing changes (the random state included).
        """
        if not self._wants_reset():
            return set()
        model_vars = self.model.vars()
        before = {p: v._value for p, v in model_vars.items()}
        rng_before = _nd_random.DEFAULT._value
        bs = self._reset_bs if isinstance(self._reset_bs, int) else None
        try:
            self.model.reset_state(bs)
        finally:
            changed = {p for p, v in model_vars.items() if v._value is not before[p]}
            for p, v in model_vars.items():
                v._value = before[p]
            _nd_random.DEFAULT._value = rng_before
        params = {id(v) for v in self._params.values()}
        return {f"model/{p}" for p in changed if id(model_vars[p]) not in params}

    def _checkpoint_vars(self) -> tuple[dict[str, Variable], set[str]]:
        own = _ckpt_variables({"model": self.model, "optimizer": self.optimizer}, True)
        skip = self._per_batch_state()
        return {k: v for k, v in own.items() if k not in skip}, skip

    def save(self, path: str | os.PathLike) -> None:
        """Atomically save model, optimizer, random state, epoch, position, step and history.

        State that ``reset_state`` rebuilds for every batch (neuron state of a
        model trained with per-batch reset) is left out: it depends on the batch
        size, and the next step resets it anyway.

        Example:
            >>> trainer.save("run/ckpt.npz")
        """
        meta: dict[str, Any] = {"epoch": self.epoch, "global_step": self.global_step,
                                "batch_in_epoch": self.batch_in_epoch}
        for k, v in self.history.items():
            meta[f"history/{k}"] = np.asarray(v, dtype=np.float64)
        if self.batch_in_epoch:
            meta["partial_epoch"] = {k: float(v) for k, v in self._partial.items()}
        own, _ = self._checkpoint_vars()
        _write_file(path, own, meta)

    def load(self, path: str | os.PathLike) -> None:
        """Restore a checkpoint written by :meth:`save` (names and shapes are checked first).

        Example:
            >>> trainer.load("run/ckpt.npz"); trainer.fit(data, epochs=1)   # continues
        """
        own, skip = self._checkpoint_vars()
        meta = _read_file(path, own, ignore=skip)
        if self._placement is not None:
            self._placement.place()
        self.epoch = int(meta.get("epoch", 0))
        self.global_step = int(meta.get("global_step", 0))
        self.batch_in_epoch = int(meta.get("batch_in_epoch", 0))
        self._partial = dict(meta.get("partial_epoch", {}))
        self._halted.value = False
        self._reset_bs = object()  # the per-batch state is rebuilt for the next batch's size
        self.history = {k[len("history/"):]: [float(x) for x in v]
                        for k, v in meta.items() if k.startswith("history/")}
