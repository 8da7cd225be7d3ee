"""Runner: simulate a model for a duration of biological time.

The loop over time steps is compiled (``nd.while_loop`` inside ``nd.jit``, the
step count an argument) and cut into chunks of at most a fixed number of steps.
Between chunks the progress bar advances and the monitored values of the
previous chunk are copied to the host while the device already computes the
next one, so device memory stays bounded and the bar tells the truth. Compiled chunks are cached per model and monitor /
input layout, so new Runners over the same model, new initial conditions and
repeated runs never re-trace.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import threading
import time
import warnings
import weakref
from typing import Any, Callable, Iterable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from ._environ import context, get_dt
from ._jit import jit, unwrap_variables
from ._module import Module
from ._monitors import SpikeMonitor, SpikeRecord
from ._sharding import Placement, as_mesh, module_placement
from ._state import Frame, Variable
from ._transforms import _discover, for_loop, while_loop

__all__ = ["Runner", "Monitors", "SpikeMonitor", "SpikeRecord"]

_INPUT_KINDS = ("fix", "iter", "func")
_INPUT_OPS = {"=": None, "+": jnp.add, "-": jnp.subtract, "*": jnp.multiply, "/": jnp.divide}

# model -> {layout key -> compiled chunk function}; weak, so models can be freed.
_COMPILED: "weakref.WeakKeyDictionary[Module, dict]" = weakref.WeakKeyDictionary()


class Monitors(dict):
    """Recorded values of the last run: ``mon['E.spike']`` and ``mon.ts`` (ms), NumPy arrays.

    Arrays have time as their first axis, one row per recorded step; the row
    labelled ``mon.ts[r] = k dt`` holds the state after step ``k`` (see
    :class:`Runner`). An ``nd.SpikeMonitor`` gives an ``nd.SpikeRecord`` instead.

    Example:
        >>> import neurodyn as nd
        >>> from neurodyn import nn
        >>> lif = nn.LIF(4)      # V_th 20, driven by a constant input of 30: regular spiking
        >>> mon = nd.Runner(lif, monitors=["spike"], inputs=[("input", 30.)], progress_bar=False).run(100.)
        >>> mon["spike"].shape, mon.ts[:2]
        ((1000, 4), array([0.1, 0.2]))
    """

    ts: np.ndarray

    def __init__(self, data: Mapping[str, np.ndarray], ts: np.ndarray) -> None:
        super().__init__(data)
        self.ts = ts

    def __repr__(self) -> str:
        items = ", ".join(f"{k!r}: {v!r}" if isinstance(v, SpikeRecord) else f"{k!r}: {v.dtype}{list(v.shape)}"
                          for k, v in self.items())
        return f"Monitors(ts: [{len(self.ts)}], {items})"


def _fn_name(fn: Any) -> str:
    return getattr(fn, "__qualname__", None) or type(fn).__name__


def _label_of(target: Any) -> str:
    return target if isinstance(target, str) else target.label


class _Monitor:
    __slots__ = ("name", "path", "var", "fn", "index", "shape", "dtype", "count")

    def __init__(self, name: str, target: Any, index: Any, model: Module) -> None:
        self.name = name
        self.index = None if index is None else np.asarray(index)
        self.path = None
        self.var = None
        self.fn = None
        self.shape: tuple = ()
        self.dtype: Any = None
        self.count = False  # a boolean record summed over each monitor_every interval
        if isinstance(target, Variable):
            self.var = target
        elif callable(target):
            self.fn = target
        elif isinstance(target, str):
            self.path = target
            obj = model.get(target)
            if not isinstance(obj, Variable):
                raise TypeError(
                    f"Runner: monitor '{name}' points to '{target}', a {type(obj).__name__}; "
                    "a monitor must name a Variable or be a callable model -> array."
                )
            self.var = obj
        else:
            raise TypeError(f"Runner: monitor '{name}' must be a dotted path, a Variable, a callable or an "
                            f"nd.SpikeMonitor, got {target!r}")
        if self.var is not None and self.index is not None:
            _check_index(f"monitor '{name}'", self.index, self.var, _label_of(target))

    def key(self) -> Any:
        idx = None if self.index is None else (self.index.shape, self.index.tobytes())
        return (self.name, self.path, id(self.var) if self.path is None and self.var is not None else None,
                id(self.fn) if self.fn else None, idx, self.count)

    def describe(self) -> str:
        what = self.path or (_fn_name(self.fn) + "(model)" if self.fn is not None else _label_of(self.var))
        idx = "" if self.index is None else f"[{self.index.size} indices]"
        summed = ", summed per interval" if self.count else ""
        return f"{self.name}: {what}{idx} -> {self.shape} {self.dtype}{summed}"

    def read(self, model: Module) -> Any:
        value = self.var.value if self.var is not None else self.fn(model)
        if isinstance(value, Variable):
            value = value.value
        if self.index is not None:
            value = value[..., self.index]
        return value


def _check_index(what: str, index: np.ndarray, var: Variable, label: str) -> None:
    size = var.shape[-1] if var.ndim else 0
    if index.size and (index.max() >= size or index.min() < -size):
        raise IndexError(f"Runner: {what} selects indices up to {int(index.max())} of '{label}', which has "
                         f"shape {var.shape}")


class _Events:
    """An event spike monitor: the monitored spikes packed 32 to a word on the device each step,
    turned into events on the host chunk by chunk."""

    __slots__ = ("name", "var", "index", "size", "words", "label")

    def __init__(self, name: str, spec: SpikeMonitor, model: Module) -> None:
        target = spec.target
        var = model.get(target) if isinstance(target, str) else target
        label = _label_of(target)
        if not isinstance(var, Variable):
            raise TypeError(f"Runner: SpikeMonitor '{name}' points to '{label}', a {type(var).__name__}, "
                            "not a spike Variable")
        if var.ndim != 1 or var.dtype != jnp.bool_:
            raise TypeError(f"Runner: SpikeMonitor '{name}' records a 1-d boolean spike Variable; '{label}' "
                            f"has shape {var.shape} dtype {var.dtype}")
        if spec.index is not None:
            _check_index(f"SpikeMonitor '{name}'", spec.index, var, label)
        self.name, self.var, self.index, self.label = name, var, spec.index, label
        self.size = var.shape[0] if spec.index is None else int(spec.index.size)
        self.words = -(-self.size // 32)

    def key(self) -> Any:
        idx = None if self.index is None else (self.index.shape, self.index.tobytes())
        return ("events", self.name, id(self.var), idx)

    def describe(self) -> str:
        idx = "" if self.index is None else f"[{self.size} indices]"
        return f"{self.name}: spike events of {self.label}{idx}"

    def read(self) -> Any:
        s = self.var.value
        return s if self.index is None else s[self.index]

    def packed(self) -> jax.Array:
        """This step's spikes, bit ``j % 32`` of word ``j // 32`` for neuron ``j`` (uint32)."""
        return _pack_bits(self.read())


def _pack_bits(spikes: jax.Array) -> jax.Array:
    """A 1-d bool array as uint32 words, 32 entries to a word (lowest bit first).

    One fused operation a step, whatever the number of spikes: a record of every
    neuron and step costs a bit each on the device, and the host finds the events.
    """
    n = spikes.shape[0]
    w = -(-n // 32)
    bits = jnp.pad(spikes, (0, w * 32 - n)).reshape(w, 32).astype(jnp.uint32)
    return jnp.sum(bits << jnp.arange(32, dtype=jnp.uint32), axis=1, dtype=jnp.uint32)


def _unpack_events(words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, neuron) of every set bit of ``words`` (rows x words, uint32), by row then neuron;
    only the nonzero words are expanded, so the work follows the number of spikes. (The bits
    past the last neuron are zero: :func:`_pack_bits` pads with no spike.)"""
    rows, cols = np.nonzero(words)
    vals = words[rows, cols]
    hit, bit = np.nonzero((vals[:, None] >> np.arange(32, dtype=np.uint32)) & 1)
    return rows[hit].astype(np.int64), cols[hit].astype(np.int64) * 32 + bit


class _Input:
    __slots__ = ("path", "var", "kind", "op", "value", "fn", "dt")

    def __init__(self, spec: Sequence[Any], model: Module, runner_dt: float) -> None:
        if not isinstance(spec, (tuple, list)) or not 2 <= len(spec) <= 5:
            raise ValueError(
                f"Runner: an input is (target, value[, kind[, op[, dt]]]), e.g. ('E.input', 20.); got {spec!r}"
            )
        target_spec, value = spec[0], spec[1]
        kind = spec[2] if len(spec) > 2 else ("func" if callable(value) else "fix")
        op = spec[3] if len(spec) > 3 else "="
        in_dt = spec[4] if len(spec) > 4 else None
        if isinstance(target_spec, Variable):
            target, path = target_spec, target_spec.label
        elif isinstance(target_spec, str):
            target, path = model.get(target_spec), target_spec
        else:
            raise TypeError(f"Runner: an input target is a dotted path or a Variable, got {target_spec!r}")
        if kind not in _INPUT_KINDS:
            raise ValueError(f"Runner: input '{path}' kind must be one of {_INPUT_KINDS}, got {kind!r}")
        if op not in _INPUT_OPS:
            raise ValueError(f"Runner: input '{path}' op must be one of {list(_INPUT_OPS)}, got {op!r}")
        if not isinstance(target, Variable):
            raise TypeError(f"Runner: input target '{path}' is a {type(target).__name__}, not a Variable")
        self.path, self.var, self.kind, self.op = path, target, kind, op
        self.fn = None
        self.dt = None
        if in_dt is not None:
            if kind != "iter":
                raise ValueError(f"Runner: input '{path}': a row spacing dt applies to 'iter' inputs only")
            in_dt = float(in_dt)
            if not in_dt > 0 or not math.isfinite(in_dt):
                raise ValueError(f"Runner: input '{path}': dt must be a positive number of ms, got {spec[4]!r}")
            self.dt = in_dt
        elif kind == "iter" and not math.isclose(runner_dt, get_dt(), rel_tol=1e-9):
            raise ValueError(
                f"Runner: input '{path}' is an 'iter' array with one row per step, but the Runner steps "
                f"dt = {runner_dt} ms while nd.get_dt() = {get_dt()} ms, with which input arrays are usually "
                f"built. State the rows' spacing: ('{path}', values, 'iter', '{op}', <dt of the rows>) "
                f"(rows are then held for their duration), or build the array at dt = {runner_dt}.")
        if kind == "func":
            if not callable(value):
                raise TypeError(f"Runner: input '{path}' of kind 'func' needs a callable of time t")
            self.fn = value
            self.value = None
            out = jax.eval_shape(value, jax.ShapeDtypeStruct((), jnp.float32))
            self._check_shape(out.shape, "the function's output")
        else:
            arr = jnp.asarray(value, dtype=target.dtype if jnp.issubdtype(target.dtype, jnp.floating) else None)
            if kind == "iter":
                if arr.ndim == 0:
                    raise ValueError(f"Runner: input '{path}' of kind 'iter' needs an array with time first")
                self._check_shape(arr.shape[1:], "each step's value")
            else:
                self._check_shape(arr.shape, "the value")
            self.value = arr

    def _check_shape(self, shape: tuple, what: str) -> None:
        try:
            out = np.broadcast_shapes(tuple(shape), self.var.shape)
        except ValueError:
            out = None
        if out != self.var.shape:
            raise ValueError(
                f"Runner: input '{self.path}': {what} has shape {tuple(shape)}, which does not "
                f"broadcast to the target's shape {self.var.shape}"
            )

    def key(self) -> Any:
        shape = None if self.value is None else (self.value.shape, str(self.value.dtype))
        return (self.path, id(self.var), self.kind, self.op, id(self.fn) if self.fn else None, shape, self.dt)

    def describe(self) -> str:
        if self.kind == "func":
            value = f"{_fn_name(self.fn)}(t)"
        elif self.kind == "iter":
            spacing = "" if self.dt is None else f", rows {self.dt:g} ms apart"
            value = f"rows of an array {tuple(self.value.shape)} {self.value.dtype}{spacing}"
        elif self.value.ndim == 0:
            value = f"{self.value.item():g}"
        else:
            value = f"an array {tuple(self.value.shape)} {self.value.dtype}"
        op = "=" if self.op == "=" else f"{self.op}="
        return f"{self.path} {op} {value}"

    def row(self, i: Any, dt: float) -> Any:
        """The row of an 'iter' input for step ``i`` (held for its duration when rows are ``self.dt`` apart)."""
        if self.dt is None:
            return i
        return jnp.floor((i * dt) / self.dt + 1e-6).astype(jnp.int32)

    def rows_needed(self, steps: int, dt: float) -> int:
        if self.dt is None:
            return steps
        return int(math.floor(((steps - 1) * dt) / self.dt + 1e-6)) + 1

    def apply(self, value: Any) -> None:
        op = _INPUT_OPS[self.op]
        current = self.var.value
        new = jnp.broadcast_to(value, current.shape).astype(current.dtype)
        self.var.value = new if op is None else op(current, new).astype(current.dtype)


class Runner:
    """Simulate a model for a duration of biological time with monitors and inputs.

    ``run(duration)`` advances ``model.update()`` by ``duration`` ms in one
    compiled loop; successive calls continue where the last one stopped.
    During each step ``nd.share.t`` (ms) and ``nd.share.i`` (step index) are set.

    **Time convention.** Step ``k`` (``k = 1, 2, ...``) advances the model from
    ``t = (k-1) dt`` to ``t = k dt``; during it ``nd.share.i == k - 1`` and
    ``nd.share.t == (k-1) dt`` (inputs are applied with these values, before
    ``update``). A monitor row labelled ``t = k dt`` (``mon.ts``) holds every
    recorded Variable as it is after step ``k``, all read at the same moment,
    after ``update`` returned; a spike emitted in step ``k`` has time ``k dt``
    (NEST's convention: the end of the step in which the threshold was
    crossed; Brian2 labels it ``(k-1) dt``). A model's own ordering decides
    what its Variables hold after a step (e.g. a synapse that integrates before
    its neurons holds the conductance that drove the step just taken).
    ``record_initial=True`` adds a row at ``t = 0`` with the state before the
    first step (again after :meth:`reset`).

    Args:
        model: the network (an ``nd.Module`` whose ``update()`` takes one step).
        monitors: what to record after each step: a list of dotted paths
            (``['E.spike', 'E.V']``), or a dict name -> path, Variable,
            ``(path, indices)``, a callable ``model -> array`` evaluated on the
            device (for reductions such as a population rate), or an
            :class:`nd.SpikeMonitor` (spikes as events; ``mon[name]`` is then an
            :class:`nd.SpikeRecord`). Callables are checked before anything runs.
        inputs: ``(target, value[, kind[, op[, dt]]])`` tuples, ``target`` a
            dotted path or a Variable: kind ``'fix'`` (a constant, the
            default), ``'iter'`` (an array with one row per step, indexed by the
            global step; it must cover the whole run) or ``'func'`` (a callable
            of time ``t`` in ms); op ``'='`` (default), ``'+'``, ``'-'``, ``'*'``,
            ``'/'``. Applied before every step. For ``'iter'`` the rows are one
            Runner step apart; if the Runner's ``dt`` differs from
            ``nd.get_dt()`` (which input builders use), give the rows' spacing
            ``dt`` in ms, and each row is held for that long.
        dt: the step in ms (default: ``nd.get_dt()``).
        jit: compile the loop (``False`` runs it eagerly, for debugging).
        progress_bar: show a tqdm bar that advances per chunk.
        monitor_every: record every N-th step only (rows at ``t = N dt, 2N dt, ...``).
            A boolean record (spikes) then holds, per row, the number of steps
            of the interval in which it was True (int32), so no spike is lost;
            an ``nd.SpikeMonitor`` records every spike regardless.
        record_initial: also record the state before the first step (a row at
            ``t = 0``; events of the initial spike state at step 0).
        chunk_size: steps per compiled chunk (host copies and progress happen
            between chunks). One compiled program runs every chunk, a shorter
            last one included (the step count is an argument of the loop, not
            a shape). A run shorter than one chunk uses a program already
            compiled for longer chunks, or else one sized for the next power of
            two of its steps.
        unroll: steps per compiled loop iteration (faster runs, slower compiles;
            a loop unrolled this way has a fixed length, so each distinct chunk
            length compiles its own program).
        record_to: a directory: dense records are streamed there chunk by chunk
            as ``<name>.npy`` files (written per run, read back as read-only
            memory maps in ``mon``), for records larger than memory.
        mesh: simulate across devices: a ``jax.sharding.Mesh`` or a device count.
            Every Variable of the model is placed with
            :func:`nd.distributed.shard` (neuron groups and synapse state split
            along their leading, neuron axis where it divides by the device
            count; the rest replicated) and the compiled loop keeps those
            shardings on its carried state; XLA partitions the projections'
            gathers and scatters. Spikes are the same as on one device; monitors
            are gathered to the host per chunk as before. Single process only.
        shard_rule: per-Variable overrides for ``mesh``:
            ``{'path.glob': PartitionSpec}`` or ``fn(path, var) -> PartitionSpec | None``.

    Before a run the size of the records is estimated: a run whose records
    cannot fit in the memory available is refused (``MemoryError`` naming the
    monitor), a large one warns. Ctrl-C during a run stops it after the chunks
    already on the device: their records are copied, so ``mon`` covers exactly
    the steps the model advanced (``runner.t``) and the next ``run`` continues
    seamlessly (a second Ctrl-C stops at once). ``runner.i`` (steps taken) may
    be set to continue a simulation saved with ``nd.save``.

    Example:
        >>> import neurodyn as nd
        >>> from neurodyn import nn
        >>> lif = nn.LIF(4)      # V_th 20, driven by a constant input of 30: regular spiking
        >>> runner = nd.Runner(lif, monitors=["spike", "V"], inputs=[("input", 30.)], progress_bar=False)
        >>> mon = runner.run(100.)
        >>> mon["spike"].shape, float(mon.ts[0]), int(mon["spike"].sum()), runner.t
        ((1000, 4), 0.1, 32, 100.0)
        >>> events = nd.Runner(lif, monitors={"E": nd.SpikeMonitor("spike")}, inputs=[("input", 30.)],
        ...                    progress_bar=False).run(100.)["E"]
        >>> len(events.times)
        32

        Across 4 devices: ``nd.Runner(net, monitors=['E.spike'], inputs=[('E.input', 20.)], mesh=4)``.
    """

    def __init__(
        self,
        model: Module,
        monitors: Iterable[str] | Mapping[str, Any] | None = None,
        inputs: Iterable[Sequence[Any]] = (),
        dt: float | None = None,
        jit: bool = True,
        progress_bar: bool = True,
        monitor_every: int = 1,
        chunk_size: int = 1000,
        unroll: int = 1,
        mesh: Any = None,
        shard_rule: Any = None,
        record_initial: bool = False,
        record_to: str | os.PathLike | None = None,
    ) -> None:
        if not isinstance(model, Module):
            raise TypeError(f"Runner needs an nd.Module, got {type(model).__name__}")
        if type(model).update is Module.update and type(model).forward is Module.forward:
            raise TypeError(f"Runner: {type(model).__name__} defines no update(); the Runner calls "
                            "model.update() once per step")
        self.model = model
        self.dt = float(dt) if dt is not None else get_dt()
        if not (self.dt > 0 and math.isfinite(self.dt)):
            raise ValueError(f"Runner: dt must be a positive number of ms, got {dt}")
        self.jit = jit
        self.progress_bar = progress_bar
        if int(monitor_every) < 1:
            raise ValueError(f"Runner: monitor_every must be >= 1, got {monitor_every}")
        self.monitor_every = int(monitor_every)
        if int(chunk_size) < 1:
            raise ValueError(f"Runner: chunk_size must be >= 1, got {chunk_size}")
        # Chunks hold whole recording periods.
        self.chunk_size = max(1, int(chunk_size) // self.monitor_every) * self.monitor_every
        self.unroll = int(unroll)
        self.record_initial = bool(record_initial)
        self.record_to = None if record_to is None else os.fspath(record_to)
        self._monitors, self._events = self._parse_monitors(monitors)
        self._inputs = [_Input(spec, model, self.dt) for spec in inputs]
        with context(dt=self.dt):
            self._probe_monitors()
        self.i = 0  # steps taken so far
        self.mon = Monitors({m.name: np.zeros((0,)) for m in self._monitors}, np.zeros((0,)))
        self.stats: dict[str, float] = {}
        self.mesh = as_mesh(mesh, "neurons", "Runner: mesh")
        self._placement: Placement | None = None
        if self.mesh is not None:
            self._placement = module_placement(model, self.mesh, shard_rule, None, "Runner: shard_rule")
            self._placement.place()
        elif shard_rule is not None:
            raise ValueError("Runner: shard_rule needs a mesh; pass mesh=... as well")
        self._fn = self._compiled_chunk()

    @property
    def t(self) -> float:
        """Biological time reached so far, in ms."""
        return self.i * self.dt

    def __repr__(self) -> str:
        every = "every step" if self.monitor_every == 1 else f"every {self.monitor_every} steps"
        lines = [f"dt: {self.dt:g} ms, {'compiled' if self.jit else 'eager (not compiled)'} chunks of "
                 f"{self.chunk_size} steps" + (f", unroll {self.unroll}" if self.unroll != 1 else "")]
        mons = [m.describe() for m in self._monitors] + [e.describe() for e in self._events]
        head = f"monitors, recorded {every}" + (", and at t = 0" if self.record_initial else "")
        if self.record_to is not None:
            head += f", streamed to {self.record_to!r}"
        lines += [head + ":"] + ["  " + d for d in mons] if mons else ["monitors: none"]
        ins = [i.describe() for i in self._inputs]
        lines += ["inputs, before every step:"] + ["  " + d for d in ins] if ins else ["inputs: none"]
        if self.mesh is None:
            lines.append("placement: default device")
        else:
            shape = ", ".join(f"{k}={v}" for k, v in self.mesh.shape.items())
            split = sum(1 for _, _, s in self._placement.items if any(a is not None for a in s.spec))
            lines.append(f"placement: mesh ({shape}); {split} Variables split")
        lines.append(f"at t = {self.t:g} ms (step {self.i})")
        model = "\n".join("    " + ln for ln in repr(self.model).splitlines())
        body = "\n".join("  " + ln for ln in lines)
        return f"Runner(\n  model:\n{model}\n{body}\n)"

    def _parse_monitors(self, monitors: Any) -> tuple[list[_Monitor], list[_Events]]:
        if monitors is None:
            return [], []
        if isinstance(monitors, str):
            monitors = [monitors]
        out: list[_Monitor] = []
        events: list[_Events] = []
        names: list[str] = []
        if isinstance(monitors, Mapping):
            for name, target in monitors.items():
                names.append(str(name))
                if isinstance(target, SpikeMonitor):
                    events.append(_Events(str(name), target, self.model))
                    continue
                index = None
                if isinstance(target, tuple):
                    target, index = target
                out.append(_Monitor(str(name), target, index, self.model))
        else:
            for target in monitors:
                index = None
                if isinstance(target, tuple):
                    target, index = target
                if not isinstance(target, str):
                    raise TypeError(f"Runner: list monitors are dotted paths; use a dict for callables, "
                                    f"Variables and SpikeMonitors, got {target!r}")
                names.append(target)
                out.append(_Monitor(target, target, index, self.model))
        if len(set(names)) != len(names):
            raise ValueError(f"Runner: duplicate monitor names in {names}")
        return out, events

    def _probe_monitors(self) -> None:
        """Shape and dtype of every dense monitor's row, found without running (errors name the monitor)."""
        for m in self._monitors:
            frame = Frame(None)

            def probe(m: _Monitor = m, frame: Frame = frame) -> Any:
                with frame:
                    return unwrap_variables(m.read(self.model))

            try:
                out = jax.eval_shape(probe)
            except Exception as e:
                e.add_note(f"Runner: while checking monitor '{m.name}' before the run")
                raise
            if not isinstance(out, jax.ShapeDtypeStruct):
                raise TypeError(f"Runner: monitor '{m.name}' must give one array per step, but its function "
                                f"returned {out!r}")
            m.shape, m.dtype = tuple(out.shape), np.dtype(out.dtype)
            m.count = self.monitor_every > 1 and m.dtype == np.bool_

    def _compiled_chunk(self) -> "_Chunk":
        """The compiled chunk for this model and layout (shared by Runners with the same layout)."""
        layout = self._layout()
        key = (layout, self.monitor_every, self.unroll,
               None if self._placement is None else self._placement.key())
        cache = _COMPILED.setdefault(self.model, {})
        if key not in cache:
            cache[key] = _Chunk(self.model, self.monitor_every, self.unroll, self._placement)
        return cache[key]

    def _layout(self) -> "_Layout":
        return _Layout(tuple(self._monitors), tuple(self._inputs), tuple(self._events))

    # -- running -----------------------------------------------------------------
    def _steps(self, duration: Any) -> int:
        try:
            duration = float(duration)
        except (TypeError, ValueError):
            raise TypeError(f"Runner.run: duration must be a number of ms, got {duration!r}") from None
        if not (duration > 0 and math.isfinite(duration)):
            raise ValueError(f"Runner.run: duration must be a positive, finite number of ms, got {duration}")
        n = int(round(duration / self.dt))
        if n < 1:
            raise ValueError(f"Runner.run: duration {duration} ms is shorter than one step (dt = {self.dt} ms)")
        if abs(n * self.dt - duration) > 1e-6 * max(1.0, duration):
            raise ValueError(
                f"Runner.run: duration {duration} ms is not a multiple of dt = {self.dt} ms "
                f"(nearest: {n * self.dt:g} ms)"
            )
        if n % self.monitor_every:
            raise ValueError(
                f"Runner.run: {n} steps is not a multiple of monitor_every = {self.monitor_every}"
            )
        return n

    def _record_bytes(self, n: int, initial: bool) -> dict[str, int]:
        rows = n // self.monitor_every + int(initial)
        out = {}
        for m in self._monitors:
            dtype = np.dtype(np.int32) if m.count else m.dtype
            out[m.name] = rows * int(np.prod(m.shape, dtype=np.int64)) * dtype.itemsize
        for e in self._events:
            # one chunk's packed bits; the events themselves grow with the number of spikes, unknown here
            out[e.name] = min(n, self.chunk_size) * e.words * 4
        return out

    def _check_memory(self, n: int, initial: bool) -> None:
        sizes = self._record_bytes(n, initial)
        streamed = {m.name for m in self._monitors} if self.record_to is not None else set()
        if streamed:
            on_disk = sum(sizes[k] for k in streamed)
            os.makedirs(self.record_to, exist_ok=True)
            free = shutil.disk_usage(self.record_to).free
            if on_disk > free:
                raise MemoryError(f"Runner.run: the records streamed to '{self.record_to}' need {_fmt(on_disk)}, "
                                  f"but the disk has {_fmt(free)} free; nothing was run")
        in_memory = {k: v for k, v in sizes.items() if k not in streamed}
        total = sum(in_memory.values())
        if not total:
            return
        available = _available_memory()
        if available is None:
            return
        biggest = max(in_memory, key=in_memory.get)
        hint = ("record fewer values: monitor_every=N, an index selection ('E.V', indices), a reduction on "
                "the device (a callable monitor such as lambda m: m.E.V.mean()), nd.SpikeMonitor for spikes, "
                "or stream the records to disk with Runner(..., record_to='dir')")
        if total > 0.9 * available:
            raise MemoryError(
                f"Runner.run: the records of this run need {_fmt(total)} (monitor '{biggest}': "
                f"{_fmt(in_memory[biggest])}), but only {_fmt(available)} of memory is available; nothing "
                f"was run. {hint[0].upper() + hint[1:]}.")
        if total > 0.25 * available:
            warnings.warn(
                f"Runner.run: the records of this run need {_fmt(total)} (monitor '{biggest}': "
                f"{_fmt(in_memory[biggest])}) of the {_fmt(available)} of memory available; to "
                f"{hint}", ResourceWarning, stacklevel=3)

    def run(self, duration: float, progress_bar: bool | None = None) -> Monitors:
        """Advance the model by ``duration`` ms; returns (and stores in ``.mon``) the monitors.

        Everything (duration, inputs, record size) is checked before the model
        moves. If the run is interrupted (Ctrl-C), the chunks already
        dispatched finish and their records are kept: :attr:`t` matches the
        model's state and ``.mon`` covers exactly the steps taken; the next
        ``run`` continues from there.

        Example:
            >>> import neurodyn as nd
            >>> from neurodyn import nn
            >>> runner = nd.Runner(nn.LIF(4), monitors=["spike"], inputs=[("input", 30.)], progress_bar=False)
            >>> mon = runner.run(100.)
            >>> float(mon["spike"].mean() / runner.dt * 1000)   # Hz
            80.0
        """
        n = self._steps(duration)
        for inp in self._inputs:
            if inp.kind == "iter":
                need = inp.rows_needed(self.i + n, self.dt)
                if need > inp.value.shape[0]:
                    spacing = self.dt if inp.dt is None else inp.dt
                    raise ValueError(
                        f"Runner.run: input '{inp.path}' has {inp.value.shape[0]} rows ({spacing} ms apart), "
                        f"but this run would need {need} (up to t = {(self.i + n) * self.dt:g} ms); pad it "
                        f"(e.g. with zeros) to cover the run")
        initial = self.record_initial and self.i == 0
        self._check_memory(n, initial)
        show = self.progress_bar if progress_bar is None else progress_bar
        if self._placement is not None:
            self._placement.place()  # reset_state / new initial conditions replace values unsharded
        chunk, layout = self._fn, self._layout()
        values = [inp.value for inp in self._inputs]
        full, rest = divmod(n, self.chunk_size)
        lengths = [self.chunk_size] * full + ([rest] if rest else [])
        cap = self._capacity_steps(n)
        if self.unroll == 1:  # a program compiled for longer chunks runs this one as well
            cap = min([s for s in self._fn.sizes(self._layout(), self._inputs) if cap <= s <= self.chunk_size],
                      default=cap)
        first = self.i
        sink = _Sink(self, first, n, initial)
        with context(dt=self.dt):
            t0 = time.perf_counter()
            traces = chunk.trace_count
            if initial:
                sink.record_initial()
            if self.jit:
                chunk.compile(layout, self.i, self._programs(lengths, cap), values)
            compile_s = time.perf_counter() - t0
            bar = tqdm(total=round(n * self.dt, 6), unit="ms", disable=not show, leave=True,
                       desc=f"{type(self.model).__name__}", dynamic_ncols=True,
                       bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} ms [{elapsed}<{remaining}, {rate_fmt}]")
            t1 = time.perf_counter()
            state = {"i": first}
            try:
                with _DeferInterrupt() as stop:
                    self._loop(chunk, layout, lengths, cap, values, state, sink, bar, stop)
                jax.block_until_ready([v.value for v in self.model.vars().values()])
            finally:
                bar.close()
                # Also when interrupted: the clock matches the model's state, and the records
                # of every step taken are in .mon.
                self.i = state["i"]
                self.mon = sink.result(self.i)
            run_s = time.perf_counter() - t1
        self.stats = {"compile_s": compile_s, "run_s": run_s, "steps": n,
                      "realtime_factor": run_s / (n * self.dt / 1000.0),
                      "traces": chunk.trace_count - traces}
        return self.mon

    def _capacity_steps(self, n: int) -> int:
        """Steps one compiled chunk holds for a run of ``n`` steps: the chunk size, or for a
        shorter run the next power of two of its recording periods (so that runs of
        different short lengths share a few programs)."""
        if n >= self.chunk_size or self.unroll != 1:
            return self.chunk_size
        rows = n // self.monitor_every
        return min(self.chunk_size, (1 << max(rows - 1, 0).bit_length()) * self.monitor_every)

    def _programs(self, lengths: list[int], cap: int) -> list[int]:
        """The static lengths of the compiled chunks a run uses: one capacity, whatever the lengths
        (``unroll > 1`` unrolls a loop of static length: one program per distinct length)."""
        return [cap] if self.unroll == 1 else sorted(set(lengths))

    def _loop(self, chunk: "_Chunk", layout: "_Layout", lengths: list[int], cap: int, values: list, state: dict,
              sink: "_Sink", bar: Any, stop: "_DeferInterrupt") -> None:
        """Dispatch chunk k, then wait for chunk k-1 and copy its records: the device always
        has the next chunk queued while the host copies."""
        inflight: list[tuple[Any, int, int]] = []  # (outputs, first step, length)
        k = 0
        try:
            while k < len(lengths) or inflight:
                if k < len(lengths) and not stop.requested:
                    length = lengths[k]
                    size = cap if self.unroll == 1 else length
                    if self.jit:
                        out = chunk(layout, state["i"], size, length, values)
                    else:
                        with jax.disable_jit():
                            out = chunk(layout, state["i"], size, length, values)
                    inflight.append((out, state["i"], length))
                    state["i"] += length  # the model's Variables now hold this chunk's results
                    k += 1
                    if len(inflight) < 2 and k < len(lengths):
                        continue
                elif not inflight:
                    break
                out, i0, length = inflight[0]
                sink.add(out, i0, length)
                inflight.pop(0)  # after the copy: a failed copy is retried by the handler below
                bar.update(round(length * self.dt, 6))
            if stop.requested:
                raise KeyboardInterrupt
        except BaseException:
            # Whatever stopped the loop, the chunks already dispatched have run (or will): copy
            # their records, so that .mon covers exactly the steps the model advanced.
            try:
                for out, i0, length in inflight:
                    sink.add(out, i0, length)
            except BaseException:  # noqa: BLE001 - the original error is the one to report
                pass
            raise

    def reset(self, reset_state: bool = True) -> None:
        """Start again from time 0 (and, by default, reset the model's state).

        Example:
            >>> import neurodyn as nd
            >>> from neurodyn import nn
            >>> runner = nd.Runner(nn.LIF(4), monitors=["V"], inputs=[("input", 30.)], progress_bar=False)
            >>> _ = runner.run(10.)
            >>> runner.reset(); runner.t
            0.0
            >>> float(runner.run(10.).ts[0])      # records from t = 0 again
            0.1
        """
        self.i = 0
        if reset_state:
            self.model.reset_state()


class _Layout:
    """What a chunk records and applies: a Runner's monitors, inputs and event monitors.

    The static argument of the compiled chunk: layouts with the same keys are
    equal, so Runners of one model with the same monitors and inputs share
    compiled code, and each trace reads the layout it was called with.
    """

    __slots__ = ("monitors", "inputs", "events", "_key")

    def __init__(self, monitors: tuple, inputs: tuple, events: tuple) -> None:
        self.monitors, self.inputs, self.events = monitors, inputs, events
        self._key = (tuple(m.key() for m in monitors), tuple(i.key() for i in inputs),
                     tuple(e.key() for e in events))

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, _Layout) and self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)


class _Chunk:
    """Up to ``size`` steps of a model in one compiled call, recording after each step (or every ``every``).

    ``chunk(layout, i0, size, n, values)`` runs steps ``i0 .. i0 + n - 1``
    (``n <= size``) with the inputs' ``values`` and returns ``(records, packed
    spikes, i0 + n)``: records with room for ``size // every`` rows, and for each
    event monitor its spikes of every step packed into ``(size, words)`` uint32
    (the first ``n`` rows hold this call's). ``layout`` and ``size`` are static,
    ``n`` is not: a run whose length is not a multiple of the chunk size runs its
    last chunk with the same program. With ``unroll > 1`` the loop has the static
    length ``size`` (``n == size``).
    """

    def __init__(self, model: Module, every: int, unroll: int, placement: Placement | None) -> None:
        self.model, self.every, self.unroll, self.placement = model, every, unroll, placement
        self._fn: Any = None
        self._step_writes: set | None = None
        self._compiled: set = set()

    @property
    def fn(self) -> Any:
        """The compiled chunk function, made at first use with every Variable one step touches
        as its initial guess of inputs: nd.jit's first trace then finds no Variable it did not
        expect, so the loop is traced once. (A trace that stops at an unexpected Variable also
        keeps the model's arrays referenced, which costs a copy of each at the first call.)"""
        if self._fn is None:
            reads, writes = self._discover_step()
            self._step_writes = {id(v) for v in writes}
            known = reads + writes
            self._fn = jit(self._run, static_argnums=(0, 2), dyn_vars=known)
        return self._fn

    def _discover_step(self) -> tuple[list[Variable], list[Variable]]:
        """The Variables one ``model.update()`` reads and writes (an abstract trace)."""
        def model_step(i: jax.Array) -> None:
            with context(t=i * get_dt(), i=i):
                self.model.update()
        return _discover(model_step, (jax.ShapeDtypeStruct((), jnp.int32),))

    @property
    def trace_count(self) -> int:
        return self.fn.trace_count

    def __call__(self, layout: _Layout, i0: int, size: int, n: int, values: list) -> Any:
        return self.fn(layout, jnp.int32(i0), size, jnp.int32(n), values)

    def sizes(self, layout: _Layout, inputs: list) -> set[int]:
        """The chunk sizes compiled for this layout and these inputs' shapes."""
        shapes = tuple(None if i.value is None else (i.value.shape, str(i.value.dtype)) for i in inputs)
        return {k[1] for k in self._compiled if k[0] == layout and k[2] == shapes}

    def compile(self, layout: _Layout, i0: int, sizes: list[int], values: list) -> None:
        """Compile ahead for every chunk size of a run (once per shapes)."""
        shapes = tuple(None if v is None else (v.shape, str(v.dtype)) for v in values)
        for size in sizes:
            if (layout, size, shapes) not in self._compiled:
                self.fn.compile(layout, jnp.int32(i0), size, jnp.int32(size), values)
                self._compiled.add((layout, size, shapes))

    def _step(self, layout: _Layout, i: jax.Array, values: list, once: frozenset) -> list:
        t = i * get_dt()
        with context(t=t, i=i):
            for k, (inp, value) in enumerate(zip(layout.inputs, values)):
                if k in once:
                    continue
                if inp.kind == "func":
                    inp.apply(inp.fn(t))
                elif inp.kind == "iter":
                    inp.apply(value[inp.row(i, get_dt())])
                else:
                    inp.apply(value)
            self.model.update()
        if self.placement is not None:
            # the loop carry keeps the neuron-axis split (without this XLA may gather a
            # scatter's result onto every device and carry it replicated)
            self.placement.constrain()
        return [e.packed() for e in layout.events]

    def _constant_inputs(self, layout: _Layout) -> frozenset:
        """Inputs to set once per chunk instead of before every step.

        A constant '=' input into a Variable that nothing else writes holds the same
        value before every step: setting it once keeps it out of the loop carry (a
        per-step write is a per-step operation, several % of a small network's step on a CPU).
        """
        targets: dict[int, int] = {}
        for inp in layout.inputs:
            targets[id(inp.var)] = targets.get(id(inp.var), 0) + 1

        # the first trace follows the discovery made when the function was created
        written_ids, self._step_writes = self._step_writes, None
        if written_ids is None:
            written_ids = {id(v) for v in self._discover_step()[1]}
        return frozenset(k for k, inp in enumerate(layout.inputs) if inp.kind == "fix" and inp.op == "="
                         and targets[id(inp.var)] == 1 and id(inp.var) not in written_ids)

    def _run(self, layout: _Layout, i0: jax.Array, size: int, steps: jax.Array,
             values: list) -> tuple[Any, Any, jax.Array]:
        once = self._constant_inputs(layout)
        for k in once:
            layout.inputs[k].apply(values[k])
        # The last output is the step reached: an array that exists even without
        # monitors, so the host can wait for this chunk while the next one runs.
        if self.unroll != 1:
            recs, packed = self._scan(layout, i0, size, values, once)
            return recs, packed, i0 + size
        recs, packed = self._while(layout, i0, size, steps, values, once)
        return recs, packed, i0 + steps

    def _while(self, layout: _Layout, i0: jax.Array, size: int, steps: jax.Array, values: list,
               once: frozenset) -> tuple[Any, Any]:
        """``steps`` steps (a traced count, at most ``size``) in a while loop that writes each
        recording period's row into buffers of ``size // every`` rows: the cost per step of a
        scan of static length, and one program for every count."""
        model, every = self.model, self.every
        rows = size // every
        recs = {m.name: jnp.zeros((rows,) + m.shape, jnp.int32 if m.count else m.dtype) for m in layout.monitors}
        packed = [jnp.zeros((size, e.words), jnp.uint32) for e in layout.events]

        def body(carry: tuple) -> tuple:
            r, recs, packed = carry
            if every == 1:
                c = [x[None] for x in self._step(layout, i0 + r, values, once)]
                row = {m.name: m.read(model) for m in layout.monitors}
            else:
                counted = [m for m in layout.monitors if m.count]

                def inner(i: jax.Array) -> Any:
                    return self._step(layout, i, values, once), {m.name: m.read(model) for m in counted}

                c, sums = for_loop(inner, i0 + r * every + jnp.arange(every))
                row = {m.name: m.read(model) for m in layout.monitors if not m.count}
                row.update({k: jnp.sum(v, axis=0, dtype=jnp.int32) for k, v in sums.items()})
            recs = {k: jax.lax.dynamic_update_index_in_dim(buf, jnp.asarray(row[k], buf.dtype), r, 0)
                    for k, buf in recs.items()}
            packed = [jax.lax.dynamic_update_slice(buf, x, (r * every, 0)) for buf, x in zip(packed, c)]
            return r + 1, recs, packed

        _, recs, packed = while_loop(lambda carry: carry[0] < steps // every, body, (jnp.int32(0), recs, packed))
        return recs, packed

    def _scan(self, layout: _Layout, i0: jax.Array, n: int, values: list, once: frozenset) -> tuple[Any, Any]:
        """``n`` steps (static) in a scan, unrolled ``self.unroll`` steps per iteration."""
        model, every = self.model, self.every
        if every == 1:
            def body(i: jax.Array) -> Any:
                packed = self._step(layout, i, values, once)
                return {m.name: m.read(model) for m in layout.monitors}, packed
            recs, packed = for_loop(body, i0 + jnp.arange(n), unroll=self.unroll)
        else:
            counted = [m for m in layout.monitors if m.count]

            def inner(i: jax.Array) -> Any:
                packed = self._step(layout, i, values, once)
                return packed, {m.name: m.read(model) for m in counted}

            def outer(j: jax.Array) -> Any:
                packed, rows = for_loop(inner, i0 + j * every + jnp.arange(every), unroll=self.unroll)
                rec = {m.name: m.read(model) for m in layout.monitors if not m.count}
                rec.update({k: jnp.sum(v, axis=0, dtype=jnp.int32) for k, v in rows.items()})
                return rec, packed
            recs, packed = for_loop(outer, jnp.arange(n // every))
            packed = [c.reshape(-1, c.shape[-1]) for c in packed]
        return recs, packed


class _Sink:
    """The host side of a run's records: dense rows into preallocated arrays (or files), events into lists."""

    def __init__(self, runner: Runner, first: int, n: int, initial: bool) -> None:
        self.runner, self.first, self.initial = runner, first, initial
        self.rows = 0
        rows_total = n // runner.monitor_every + int(initial)
        self.dense: dict[str, np.ndarray] = {}
        self.files: dict[str, Any] = {}
        for m in runner._monitors:
            dtype = np.dtype(np.int32) if m.count else m.dtype
            if runner.record_to is not None:
                fname = m.name.replace(os.sep, "_") + ".npy"
                self.files[m.name] = _NpyWriter(os.path.join(runner.record_to, fname), dtype, m.shape, rows_total)
            else:
                self.dense[m.name] = np.empty((rows_total,) + m.shape, dtype)
        self.events = {e.name: ([], []) for e in runner._events}
        self.row_steps: list[np.ndarray] = []

    def _put(self, name: str, arr: np.ndarray) -> None:
        if name in self.files:
            self.files[name].write(arr)
        else:
            self.dense[name][self.rows:self.rows + arr.shape[0]] = arr

    def record_initial(self) -> None:
        r = self.runner
        for m in r._monitors:
            value = np.asarray(unwrap_variables(m.read(r.model)))
            self._put(m.name, value.astype(np.int32)[None] if m.count else value[None])
        for e in r._events:
            idx = np.flatnonzero(np.asarray(e.read()))
            self.events[e.name][0].append(np.zeros(idx.size, np.int64) + self.first)
            self.events[e.name][1].append(idx)
        self.row_steps.append(np.array([self.first]))
        self.rows += 1

    def add(self, out: Any, i0: int, length: int) -> None:
        """Copy one chunk's records to the host; event monitors' packed spikes become events."""
        recs, packed, reached = out
        recs, packed = jax.device_get((recs, packed))
        jax.block_until_ready(reached)
        rows = length // self.runner.monitor_every
        for name, arr in (recs or {}).items():
            self._put(name, np.asarray(arr[:rows]))  # a chunk has room for more steps than it ran
        for e, words in zip(self.runner._events, packed):
            step, neuron = _unpack_events(np.asarray(words[:length]))
            self.events[e.name][0].append(i0 + 1 + step)
            self.events[e.name][1].append(neuron)
        every = self.runner.monitor_every
        self.row_steps.append(i0 + np.arange(every, length + 1, every))
        self.rows += length // every

    def result(self, reached: int) -> Monitors:
        r = self.runner
        data: dict[str, Any] = {}
        for name, arr in self.dense.items():
            data[name] = arr[:self.rows] if self.rows < arr.shape[0] else arr
        for name, w in self.files.items():
            data[name] = w.close(self.rows)
        steps = np.concatenate(self.row_steps) if self.row_steps else np.zeros((0,), np.int64)
        for e in r._events:
            st, ix = self.events[e.name]
            data[e.name] = SpikeRecord(np.concatenate(st) if st else np.zeros(0, np.int64),
                                       np.concatenate(ix) if ix else np.zeros(0, np.int64),
                                       e.size, r.dt, self.first * r.dt, reached * r.dt,
                                       self.first if self.initial else self.first + 1,
                                       e.index)
        order = [n for n in data]
        return Monitors({k: data[k] for k in order}, (steps * r.dt).astype(np.float64))


class _NpyWriter:
    """Rows appended to a ``.npy`` file whose header is rewritten with the final row count."""

    _HEADER = 256

    def __init__(self, path: str, dtype: np.dtype, shape: tuple, rows: int) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.path, self.dtype, self.shape = path, np.dtype(dtype), tuple(shape)
        # written under another name and moved into place when done: a record of an earlier
        # run still mapped from the old file stays valid
        self.f = open(path + ".partial", "wb")
        self._header(rows)

    def _header(self, rows: int) -> None:
        d = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
             "shape": (rows,) + self.shape}
        text = repr(d).encode("latin1")
        pad = self._HEADER - 10 - len(text) - 1
        self.f.seek(0)
        self.f.write(b"\x93NUMPY\x01\x00" + (self._HEADER - 10).to_bytes(2, "little") + text + b" " * pad + b"\n")

    def write(self, arr: np.ndarray) -> None:
        self.f.seek(0, os.SEEK_END)
        self.f.write(np.ascontiguousarray(arr, self.dtype).tobytes())

    def close(self, rows: int) -> np.ndarray:
        self._header(rows)
        self.f.close()
        os.replace(self.path + ".partial", self.path)
        return np.load(self.path, mmap_mode="r")


class _DeferInterrupt:
    """Turn the first Ctrl-C into a request the run loop honours between chunks."""

    def __init__(self) -> None:
        self.requested = False
        self._old: Any = None

    def _handler(self, signum: int, frame: Any) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, self._old)  # a second Ctrl-C interrupts at once

    def __enter__(self) -> "_DeferInterrupt":
        if threading.current_thread() is threading.main_thread():
            try:
                self._old = signal.signal(signal.SIGINT, self._handler)
            except ValueError:
                self._old = None
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._old is not None and signal.getsignal(signal.SIGINT) == self._handler:
            signal.signal(signal.SIGINT, self._old)


def _fmt(nbytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if nbytes < 1024 or unit == "TiB":
            return f"{nbytes:.1f} {unit}" if unit != "B" else f"{int(nbytes)} B"
        nbytes /= 1024
    return ""


def _available_memory() -> int | None:
    """Bytes this process can still allocate: free memory, and the address-space limit if one is set."""
    avail = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            used = 0
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("VmSize:"):
                        used = int(line.split()[1]) * 1024
                        break
            room = max(soft - used, 0)
            avail = room if avail is None else min(avail, room)
    except (ImportError, OSError, ValueError):
        pass
    return avail
