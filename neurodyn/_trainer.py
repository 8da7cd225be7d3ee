"""Trainer: compiled training steps, batching, progress, history and checkpoints."""

from __future__ import annotations

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
from ._data import ArrayDataset, BatchLayout, DeviceEpoch, is_array_dataset, iterate, stack
from ._data import gather as _gather
from ._jit import jit as _jit
from ._module import Module
from ._random import RandomState
from ._sharding import DataParallel, as_mesh
from ._state import Frame, Variable, current_frame
from ._transforms import for_loop, value_and_grad
from .optim import all_finite

__all__ = ["Trainer"]

_SKIPPED = "_nd_skipped"  # per-step flag the compiled step returns to the host
_TICKS = 10  # progress updates per whole-epoch call (host callbacks inside the loop)

LossFn = Callable[[Module, Any], Any]


def _needs_reset(model: Module) -> bool:
    """Whether a model's state is reset before every batch by default (decided once, at construction)."""
    own = getattr(model, "reset_state_per_batch", None)
    if own is not None:
        return bool(own)
    return any(getattr(m, "reset_state_per_batch", False) for m in model.modules().values())


def _name(fn: Any) -> str:
    return getattr(fn, "__qualname__", None) or type(fn).__name__


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

    ``print(trainer)`` shows what a step runs: the model, optimizer, loss,
    batch layout, steps per call, reset and placement.

    Example:
        >>> import jax.numpy as jnp, numpy as np
        >>> import neurodyn as nd
        >>> from neurodyn import nn, optim
        >>> x = np.random.default_rng(0).normal(size=(128, 4)).astype(np.float32)
        >>> y = x @ np.ones((4, 1), np.float32)
        >>> trainer = nd.Trainer(nn.Linear(4, 1), lambda m, b: jnp.mean((m(b[0]) - b[1]) ** 2),
        ...                      optim.Adam(1e-2), progress_bar=False)
        >>> history = trainer.fit((x, y), epochs=5, batch_size=32, seed=0)
        >>> len(history["loss"]), trainer.global_step
        (5, 20)

        Data-parallel over 4 devices: ``nd.Trainer(model, loss_fn, optim.Adam(1e-3), mesh=4)``.
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
        self.stop_on_nan = stop_on_nan
        self.reset_state = reset_state
        self.before_step = before_step
        self.log_every = max(int(log_every), 1)
        self._layout = BatchLayout(batch_axis)
        self._auto_reset = _needs_reset(model)
        self._reset_bs: Any = object()  # the batch size the per-batch state was last shaped for
        # where training stands (kept by save/load)
        self.epoch = 0
        self.global_step = 0
        self.batch_in_epoch = 0
        self.history: dict[str, list[float]] = {}
        self._partial: dict[str, float] = {}  # running sums of an interrupted epoch
        self._halted = Variable(False)  # set on the device by a bad step under stop_on_nan
        self._first_epoch = 0
        self._bar: Any = None
        self._tick_base = 0  # batches of the epoch done before the current whole-epoch call
        self.mesh = as_mesh(mesh, "data", "Trainer: mesh")
        self._dp: DataParallel | None = None
        if self.mesh is not None:
            self._dp = DataParallel(self.mesh, model, optimizer, param_sharding)
            self._dp.placement.place()
        elif param_sharding is not None:
            raise ValueError("Trainer: param_sharding needs a mesh; pass mesh=... (a jax.sharding.Mesh with the "
                             "axes the PartitionSpecs name)")
        self._jit, self._donate = bool(jit), bool(donate)
        wrap = (lambda f, d: _jit(f, donate=d, child_objs=(model, optimizer))) if jit else (lambda f, d: f)
        self._step_fn = wrap(self._train_step, donate)
        self._multi_fn = wrap(self._train_steps, donate)
        self._gathered_fn = wrap(self._train_gathered, donate)
        self._eval_fn = wrap(self._eval_step, False)
        self._predict_fn = wrap(self._predict, False)

    @property
    def batch_axis(self) -> int | tuple[int, ...]:
        """The batch axis of the arrays of a batch (an int, or one per array)."""
        return self._layout.batch_axis

    @batch_axis.setter
    def batch_axis(self, value: int | tuple[int, ...]) -> None:
        self._layout = BatchLayout(value)

    @property
    def shardings(self) -> dict[str, Any]:
        """``path -> PartitionSpec`` of every Variable the Trainer placed (empty without a mesh).

        Example:
            >>> import jax.numpy as jnp
            >>> import neurodyn as nd
            >>> from neurodyn import nn, optim
            >>> model = nn.Linear(3, 2)
            >>> tr = nd.Trainer(model, lambda m, b: jnp.mean(m(b) ** 2), optim.SGD(0.1), mesh=1)
            >>> tr.shardings["weight"]
            P()
        """
        return {} if self._dp is None else self._dp.placement.specs()

    def __repr__(self) -> str:
        spc = self.steps_per_call
        calls = {None: "a whole epoch per call when the data fit on the device, else 1 step",
                 "epoch": "a whole epoch per call"}.get(spc, f"{spc} step{'s' if spc != 1 else ''}")
        reset = self._wants_reset()
        lines = [
            f"optimizer: {self.optimizer!r}, {len(self._params)} parameters "
            f"({sum(v.size for v in self._params.values()):,} values)",
            f"loss: {_name(self.loss_fn)}" + (f", metrics: {', '.join(self.metrics)}" if self.metrics else ""),
            f"batch axis: {self.batch_axis}" + (f", batch size {self._reset_bs}"
                                                if isinstance(self._reset_bs, int) else ""),
            f"steps per call: {calls}" + ("" if self._jit else " (not compiled)")
            + (", donated buffers" if self._donate else ""),
            f"state reset before every step: {'yes' if reset else 'no'}"
            + (f", before_step: {_name(self.before_step)}" if self.before_step is not None else ""),
            f"non-finite steps: {'stop' if self.stop_on_nan else 'skipped with a warning'}",
            "placement: " + ("default device" if self._dp is None else repr(self._dp)),
            f"at epoch {self.epoch}, batch {self.batch_in_epoch}, step {self.global_step}",
        ]
        model = "\n".join("    " + ln for ln in repr(self.model).splitlines())
        body = "\n".join("  " + ln for ln in lines)
        return f"Trainer(\n  model:\n{model}\n{body}\n)"

    # -- the compiled bodies ---------------------------------------------------------
    def _wants_reset(self) -> bool:
        r = self.reset_state
        return self._auto_reset if r is None else bool(r)

    def _prepare(self, batch: Any) -> None:
        if self._wants_reset():
            self.model.reset_state(self._layout.size(batch))
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
        self.optimizer.update(grads, apply_if=ok, donated=self._donate)
        if self.stop_on_nan:
            self._halted.value = ~ok
        if self._dp is not None:
            # Pin the written state to its placement, so the next step sees the same shardings
            # (and a sharded parameter's update stays sharded rather than whatever XLA picks).
            self._dp.placement.constrain()
        return {"loss": loss, **aux, _SKIPPED: ~ok}

    def _train_steps(self, batches: Any) -> dict[str, Any]:
        return for_loop(self._train_step, batches)

    def _train_gathered(self, data: Any, index: Any) -> dict[str, Any]:
        n = int(index.shape[0])
        every = max(1, math.ceil(n / _TICKS))

        def body(k: Any, idx: Any) -> dict[str, Any]:
            out = self._train_step(_gather(data, idx))
            if self.progress_bar:
                # a host callback every `every` steps, not every step
                done = k + 1
                jax.lax.cond((done % every == 0) | (done == n),
                             lambda: jax.debug.callback(self._tick, done), lambda: None)
            return out

        return for_loop(body, jnp.arange(n), index)

    def _tick(self, done: Any) -> None:
        bar = self._bar
        if bar is not None and bar.total is not None:
            bar.n = min(self._tick_base + int(done), bar.total)
            bar.refresh()

    def _eval_step(self, batch: Any) -> dict[str, Any]:
        self._prepare(batch)
        loss, aux = self._loss(batch)
        out = {"loss": loss, **aux}
        for name, fn in self.metrics.items():
            out[name] = fn(self.model, batch)
        return out

    def _predict(self, x: Any) -> Any:
        return self.model(x)

    # -- batches entering a call -------------------------------------------------------------
    def _enter(self, batch: Any, where: str, stacked: bool = False) -> Any:
        """Check a batch (``stacked``: batches on a new leading axis), place it, and reset per-batch state.

        Every compiled call goes through here, so a bad batch is refused before
        anything compiles or changes.
        """
        first = jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a)[1:], a.dtype), batch) if stacked else batch
        self._layout.check(first, where)
        if self._dp is not None:
            leaves = jax.tree.leaves(batch)
            axes = tuple(a + int(stacked) for a in self._layout.axes(len(leaves)))
            batch = self._dp.put(batch, axes, f"Trainer: {where}")
        self._reset_outside(first)
        if self._dp is not None:
            self._dp.placement.place()
        return batch

    def _reset_outside(self, batch: Any) -> None:
        # A new batch size changes state shapes: that needs reset_value, outside compiled code.
        if self._wants_reset():
            bs = self._layout.size(batch)
            if bs != self._reset_bs:
                self.model.reset_state(bs)
                self._reset_bs = bs

    # -- public stepping ---------------------------------------------------------------------
    def step(self, batch: Any) -> dict[str, jax.Array]:
        """One compiled training step; returns ``{'loss': ..., **aux}`` as device arrays.

        Example:
            >>> import jax.numpy as jnp
            >>> import neurodyn as nd
            >>> from neurodyn import nn, optim
            >>> model = nn.Linear(3, 1)
            >>> trainer = nd.Trainer(model, lambda m, b: jnp.mean((m(b[0]) - b[1]) ** 2), optim.SGD(0.1),
            ...                      progress_bar=False)
            >>> out = trainer.step((jnp.ones((8, 3)), jnp.zeros((8, 1)))); out["loss"].shape, trainer.global_step
            ((), 1)
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
        batch = self._enter(batch, f"batch of step {self.global_step}")
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
            >>> import jax.numpy as jnp
            >>> import neurodyn as nd
            >>> from neurodyn import nn, optim
            >>> trainer = nd.Trainer(nn.Linear(3, 1), lambda m, b: jnp.mean((m(b[0]) - b[1]) ** 2),
            ...                      optim.SGD(0.1), progress_bar=False)
            >>> out = trainer.steps((jnp.ones((10, 8, 3)), jnp.zeros((10, 8, 1))))   # 10 batches of 8
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
        batches = self._enter(batches, f"stacked batches of step {self.global_step}", stacked=True)
        out = self._multi_fn(batches)
        self.global_step += int(jnp.shape(jax.tree.leaves(batches)[0])[0])
        return out

    def _device_steps(self, chunk: DeviceEpoch) -> dict[str, jax.Array]:
        self._enter(chunk.first_batch_shapes(), f"batches of step {self.global_step}")
        out = self._gathered_fn(chunk.data, chunk.index)
        self.global_step += len(chunk)
        return out

    # -- data ------------------------------------------------------------------------------
    def _device_data(self, data: Any) -> Any:
        """``data`` on the device for whole-epoch calls, or None to batch on the host."""
        mode = self.steps_per_call
        if mode not in (None, "epoch") or not self._jit or self._dp is not None or not is_array_dataset(data):
            return None
        return ArrayDataset(data).to_device(when_fits=mode is None)

    def _batches(self, data: Any, batch_size: int | None, shuffle: bool, seed: Any,
                 epoch: int, drop_last: bool, skip: int = 0,
                 device_data: Any = None) -> tuple[Iterator[Any], int | None]:
        if is_array_dataset(data):
            return ArrayDataset(data).batches(batch_size, shuffle, seed, epoch, drop_last, skip, device_data)
        if batch_size is not None:
            raise ValueError("Trainer: batch_size applies to array datasets; an iterable already yields batches")
        return iterate(data, skip, warn_one_shot=epoch > self._first_epoch)

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
            >>> import jax.numpy as jnp, numpy as np
            >>> import neurodyn as nd
            >>> from neurodyn import nn, optim
            >>> x = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32)
            >>> y = x.sum(1, keepdims=True)
            >>> trainer = nd.Trainer(nn.Linear(3, 1), lambda m, b: jnp.mean((m(b[0]) - b[1]) ** 2),
            ...                      optim.SGD(0.1), progress_bar=False)
            >>> history = trainer.fit((x, y), epochs=3, batch_size=16, eval_data=(x, y), seed=0)
            >>> sorted(history), history["loss"][2] < history["loss"][0]
            (['eval_loss', 'loss'], True)
        """
        self._first_epoch = self.epoch
        device_data = self._device_data(train_data) if int(epochs) > 0 else None
        for _ in range(int(epochs)):
            it, total = self._batches(train_data, batch_size, shuffle, seed, self.epoch, drop_last,
                                      self.batch_in_epoch, device_data)
            record = self._run_epoch(it, total)
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
        log = _EpochLog(self, bar, dict(self._partial) if batch_index else {})
        K = self.steps_per_call if isinstance(self.steps_per_call, int) else 1
        group: list[Any] = []

        def run(batches: list[Any]) -> None:
            # one compiled call for `batches` (of one shape); its outputs stay on the device
            nonlocal batch_index
            first = batches[0]
            if isinstance(first, DeviceEpoch):
                self._tick_base = batch_index
                out, n = self._device_steps(first), len(first)
            elif len(batches) == 1:
                out, n = self._step(first), 1
            else:
                out, n = self._steps(stack(batches)), len(batches)
            log.add(self.global_step - n, batch_index, out, n)
            batch_index += n
            if isinstance(first, DeviceEpoch):
                bar.n = batch_index  # the device ticks the bar only every few steps
                bar.refresh()
                log.fetch()
            else:
                bar.update(n)
                if log.unfetched >= self.log_every:
                    log.fetch()

        def flush() -> None:
            while group:
                run([group.pop(0)])

        self._bar = bar
        try:
            for batch in it:
                if isinstance(batch, DeviceEpoch):
                    flush()
                    run([batch])
                    continue
                # Only batches of one shape can be stacked (a short last batch runs on its own).
                if K > 1 and group and self._layout.signature(batch) != self._layout.signature(group[0]):
                    flush()
                group.append(batch)
                if len(group) == K:
                    run(group)
                    group.clear()
            flush()
            log.fetch()
        except BaseException:
            # Interrupted (Ctrl-C, an error): every dispatched step has run on the device;
            # keep their statistics and the position so that the next fit goes on from there.
            try:
                log.fetch()
            except FloatingPointError:
                pass
            if log.stopped_at is None:
                self.batch_in_epoch = batch_index
            self._partial = log.partial()
            raise
        finally:
            self._bar = None
            bar.close()
        self._partial = {}
        return log.result()

    # -- evaluation -----------------------------------------------------------------------------
    def evaluate(self, data: Any, batch_size: int | None = None) -> dict[str, float]:
        """Mean loss, aux entries and ``metrics`` over ``data`` in eval mode (weighted by batch size).

        Example:
            >>> import jax, jax.numpy as jnp
            >>> import neurodyn as nd
            >>> from neurodyn import nn, optim
            >>> model = nn.Linear(3, 1, w_init=jax.nn.initializers.zeros)
            >>> trainer = nd.Trainer(model, lambda m, b: jnp.mean((m(b[0]) - b[1]) ** 2), optim.SGD(0.1),
            ...                      metrics={"mae": lambda m, b: jnp.mean(jnp.abs(m(b[0]) - b[1]))})
            >>> trainer.evaluate((jnp.ones((6, 3)), jnp.full((6, 1), 2.0)), batch_size=4)
            {'loss': 4.0, 'mae': 2.0}
        """
        if is_array_dataset(data):
            it, _ = ArrayDataset(data).batches(batch_size, False, None, 0, False)
        else:
            it = iter(data() if callable(data) else data)
        was_training = self.model.training
        self.model.eval()
        try:
            outs, sizes = [], []
            for batch in it:
                batch = self._enter(batch, "evaluation batch")
                outs.append(self._eval_fn(batch))
                sizes.append(self._layout.size(batch))
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

        ``x`` is split along the input batch axis (``batch_axis``, or its first
        entry when there is one per array: ``batch_axis=(1, 0)`` splits
        time-major inputs along axis 1). The outputs are joined along that axis
        when it holds the batch, else along axis 0 (a time-major model that
        returns batch-major logits).

        Example:
            >>> import jax.numpy as jnp
            >>> import neurodyn as nd
            >>> from neurodyn import nn, optim
            >>> trainer = nd.Trainer(nn.Linear(3, 2), lambda m, b: jnp.mean(m(b[0]) ** 2), optim.SGD(0.1))
            >>> trainer.predict(jnp.ones((10, 3)), batch_size=4).shape
            (10, 2)
        """
        was_training = self.model.training
        self.model.eval()
        ax = self._layout.input_axis
        try:
            parts = [x] if batch_size is None else list(self._layout.split(x, int(batch_size)))
            outs, sizes = [], []
            for xb in parts:
                sizes.append(int(np.shape(jax.tree.leaves(xb)[0])[ax]))
                if self._wants_reset():
                    self.model.reset_state(sizes[-1])
                if self._dp is not None:
                    xb = self._dp.put(xb, (ax,) * len(jax.tree.leaves(xb)), "Trainer.predict: input")
                    self._dp.placement.place()
                outs.append(self._predict_fn(xb))
        finally:
            self.model.train(was_training)
        if len(outs) == 1:
            return outs[0]

        def join(*ps: Any) -> Any:
            for a in dict.fromkeys((ax, 0)):
                if all(np.ndim(p) > a and np.shape(p)[a] == n for p, n in zip(ps, sizes)):
                    return jnp.concatenate(ps, axis=a)
            raise ValueError(f"Trainer.predict: cannot join outputs of shapes {[np.shape(p) for p in ps]} of "
                             f"batches of {sizes}: neither axis {ax} nor axis 0 holds the batch")

        return jax.tree.map(join, *outs)

    # -- checkpoints -------------------------------------------------------------------------------
    def _per_batch_state(self) -> set[str]:
        """Checkpoint names of the model Variables that ``reset_state`` rewrites for every batch.

        Found by running the reset once outside compiled code and putting every
        value back, so nothing changes (the random state included).
        """
        if not self._wants_reset():
            return set()
        model_vars = self.model.vars()
        before = {p: v.committed_value for p, v in model_vars.items()}
        rng_before = _nd_random.DEFAULT.committed_value
        bs = self._reset_bs if isinstance(self._reset_bs, int) else None
        try:
            self.model.reset_state(bs)
        finally:
            changed = {p for p, v in model_vars.items() if v.committed_value is not before[p]}
            for p, v in model_vars.items():
                v.committed_value = before[p]
            _nd_random.DEFAULT.committed_value = rng_before
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
            >>> import os, tempfile
            >>> import jax.numpy as jnp
            >>> import neurodyn as nd
            >>> from neurodyn import nn, optim
            >>> trainer = nd.Trainer(nn.Linear(3, 1), lambda m, b: jnp.mean(m(b) ** 2), optim.Adam(1e-2))
            >>> _ = trainer.step(jnp.ones((4, 3)))
            >>> path = os.path.join(tempfile.mkdtemp(), "ckpt.npz")
            >>> trainer.save(path)
            >>> again = nd.Trainer(nn.Linear(3, 1), lambda m, b: jnp.mean(m(b) ** 2), optim.Adam(1e-2))
            >>> again.load(path); again.global_step
            1
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

        Example: see :meth:`save`.
        """
        own, skip = self._checkpoint_vars()
        meta = _read_file(path, own, ignore=skip)
        if self._dp is not None:
            self._dp.placement.place()
        self.epoch = int(meta.get("epoch", 0))
        self.global_step = int(meta.get("global_step", 0))
        self.batch_in_epoch = int(meta.get("batch_in_epoch", 0))
        self._partial = dict(meta.get("partial_epoch", {}))
        self._halted.value = False
        self._reset_bs = object()  # the per-batch state is rebuilt for the next batch's size
        self.history = {k[len("history/"):]: [float(x) for x in v]
                        for k, v in meta.items() if k.startswith("history/")}


class _EpochLog:
    """The outputs of an epoch's steps: left on the device when dispatched, fetched in groups and summed.

    Fetching is where a skipped (non-finite) step is reported: a warning, or
    under ``stop_on_nan`` a ``FloatingPointError`` with the Trainer's position
    set to the bad step.
    """

    def __init__(self, trainer: Trainer, bar: Any, partial: dict[str, float]) -> None:
        self.trainer, self.bar = trainer, bar
        self.n_done = int(partial.pop("_n", 0))
        self.skipped = int(partial.pop("_skipped", 0))
        self.sums = partial  # losses of the steps whose update was applied
        self.pending: list[tuple[int, int, dict]] = []  # (first global step, batch index, outputs)
        self.unfetched = 0
        self.stopped_at: int | None = None

    def add(self, step: int, batch: int, out: dict, n: int) -> None:
        self.pending.append((step, batch, out))
        self.unfetched += n

    def fetch(self) -> None:
        if not self.pending:
            return
        tr = self.trainer
        host = jax.device_get([p[2] for p in self.pending])
        done = list(self.pending)
        self.pending.clear()
        self.unfetched = 0
        for (g0, b0, _), out in zip(done, host):
            skipped = np.atleast_1d(out.pop(_SKIPPED))
            keep = ~skipped
            for k in np.flatnonzero(skipped):
                k = int(k)
                msg = tr._bad_step_message(g0 + k, b0 + k, out, k)
                if tr.stop_on_nan:
                    # this step and every later one were skipped on the device
                    tr._halted.value = False
                    tr.global_step = g0 + k
                    tr.batch_in_epoch = self.stopped_at = b0 + k
                    raise FloatingPointError(msg + "; its update was not applied and training "
                                             "stopped (stop_on_nan=True)")
                warnings.warn(msg + "; its update was skipped", RuntimeWarning, stacklevel=5)
            for key, val in out.items():
                self.sums[key] = self.sums.get(key, 0.0) + float(np.sum(np.atleast_1d(val)[keep]))
            self.n_done += int(keep.sum())
            self.skipped += int(skipped.sum())
        self.bar.set_postfix({k: f"{v / max(self.n_done, 1):.4g}" for k, v in self.sums.items()}, refresh=False)

    def partial(self) -> dict[str, float]:
        return {**self.sums, "_n": self.n_done, "_skipped": self.skipped}

    def result(self) -> dict[str, float]:
        if self.n_done + self.skipped == 0:
            raise ValueError("Trainer.fit: the training data yielded no batches")
        out = {k: v / max(self.n_done, 1) for k, v in self.sums.items()}
        out["skipped"] = float(self.skipped)
        return out
