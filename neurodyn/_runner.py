"""Runner: simulate a model for a duration of biological time.

The loop over time steps is compiled (``nd.for_loop`` inside ``nd.jit``) and
cut into chunks of a fixed number of steps. Between chunks the progress bar
advances and the monitored values of the previous chunk are copied to the host
while the device already computes the next one, so device memory stays bounded
and the bar tells the truth. Compiled chunks are cached per model and monitor /
input layout, so new Runners over the same model, new initial conditions and
repeated runs never re-trace.
"""

from __future__ import annotations

import math
import time
import weakref
from typing import Any, Callable, Iterable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from ._environ import context, get_dt
from ._jit import JittedFunction, jit
from ._module import Module
from ._sharding import Placement, as_mesh, module_placement
from ._state import Variable
from ._transforms import _discover, for_loop

__all__ = ["Runner", "Monitors"]

_INPUT_KINDS = ("fix", "iter", "func")
_INPUT_OPS = {"=": None, "+": jnp.add, "-": jnp.subtract, "*": jnp.multiply, "/": jnp.divide}

# model -> {layout key -> compiled chunk function}; weak, so models can be freed.
_COMPILED: "weakref.WeakKeyDictionary[Module, dict]" = weakref.WeakKeyDictionary()


class Monitors(dict):
    """Recorded values of the last run: ``mon['E.spike']`` and ``mon.ts`` (ms), NumPy arrays.

    Arrays have time as their first axis, one row per recorded step.

    Example:
        >>> mon = runner.run(100.)
        >>> mon['E.spike'].shape, mon.ts[:2]
        ((1000, 3200), array([0. , 0.1]))
    """

    ts: np.ndarray

    def __init__(self, data: Mapping[str, np.ndarray], ts: np.ndarray) -> None:
        super().__init__(data)
        self.ts = ts

    def __repr__(self) -> str:
        items = ", ".join(f"{k!r}: {v.dtype}{list(v.shape)}" for k, v in self.items())
        return f"Monitors(ts: [{len(self.ts)}], {items})"


class _Monitor:
    __slots__ = ("name", "path", "var", "fn", "index")

    def __init__(self, name: str, target: Any, index: Any, model: Module) -> None:
        self.name = name
        self.index = None if index is None else np.asarray(index)
        self.path = None
        self.var = None
        self.fn = None
        if callable(target) and not isinstance(target, Variable):
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
            if self.index is not None:
                size = obj.shape[-1] if obj.ndim else 0
                if self.index.size and (self.index.max() >= size or self.index.min() < -size):
                    raise IndexError(
                        f"Runner: monitor '{name}' selects indices up to {int(self.index.max())} of "
                        f"'{target}', which has shape {obj.shape}"
                    )
        else:
            raise TypeError(f"Runner: monitor '{name}' must be a dotted path or a callable, got {target!r}")

    def key(self) -> Any:
        idx = None if self.index is None else (self.index.shape, self.index.tobytes())
        return (self.name, self.path, id(self.fn) if self.fn else None, idx)

    def read(self, model: Module) -> Any:
        value = self.var.value if self.var is not None else self.fn(model)
        if isinstance(value, Variable):
            value = value.value
        if self.index is not None:
            value = value[..., self.index]
        return value


class _Input:
    __slots__ = ("path", "var", "kind", "op", "value", "fn")

    def __init__(self, spec: Sequence[Any], model: Module) -> None:
        if not isinstance(spec, (tuple, list)) or not 2 <= len(spec) <= 4:
            raise ValueError(
                f"Runner: an input is (path, value[, kind[, op]]), e.g. ('E.input', 20.); got {spec!r}"
            )
        path, value = spec[0], spec[1]
        kind = spec[2] if len(spec) > 2 else ("func" if callable(value) else "fix")
        op = spec[3] if len(spec) > 3 else "="
        if kind not in _INPUT_KINDS:
            raise ValueError(f"Runner: input '{path}' kind must be one of {_INPUT_KINDS}, got {kind!r}")
        if op not in _INPUT_OPS:
            raise ValueError(f"Runner: input '{path}' op must be one of {list(_INPUT_OPS)}, got {op!r}")
        target = model.get(path)
        if not isinstance(target, Variable):
            raise TypeError(f"Runner: input target '{path}' is a {type(target).__name__}, not a Variable")
        self.path, self.var, self.kind, self.op = path, target, kind, op
        self.fn = None
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
        return (self.path, self.kind, self.op, id(self.fn) if self.fn else None, shape)

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

    Args:
        model: the network (an ``nd.Module`` whose ``update()`` takes one step).
        monitors: what to record after each step: a list of dotted paths
            (``['E.spike', 'E.V']``), or a dict name -> path, ``(path, indices)``
            or a callable ``model -> array`` evaluated on the device (for
            reductions such as a population rate).
        inputs: ``(path, value[, kind[, op]])`` tuples: kind ``'fix'`` (a constant,
            the default), ``'iter'`` (an array with one row per step, indexed by
            the global step) or ``'func'`` (a callable of time ``t`` in ms); op
            ``'='`` (default), ``'+'``, ``'-'``, ``'*'``, ``'/'``. Applied before
            every step.
        dt: the step in ms (default: ``nd.get_dt()``).
        jit: compile the loop (``False`` runs it eagerly, for debugging).
        progress_bar: show a tqdm bar that advances per chunk.
        monitor_every: record every N-th step only.
        chunk_size: steps per compiled chunk (host copies and progress happen
            between chunks).
        unroll: steps per compiled loop iteration (faster runs, slower compiles).
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

    Example:
        >>> runner = nd.Runner(net, monitors=['E.spike'], inputs=[('E.input', 20.)])
        >>> runner.run(100.)
        >>> runner.mon['E.spike'].shape
        (1000, 3200)
        >>> sharded = nd.Runner(net, monitors=['E.spike'], inputs=[('E.input', 20.)], mesh=4)
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
    ) -> None:
        if not isinstance(model, Module):
            raise TypeError(f"Runner needs an nd.Module, got {type(model).__name__}")
        self.model = model
        self.dt = float(dt) if dt is not None else get_dt()
        if not self.dt > 0:
            raise ValueError(f"Runner: dt must be positive, got {dt}")
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
        self._monitors = self._parse_monitors(monitors)
        self._inputs = [_Input(spec, model) for spec in inputs]
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

    def _parse_monitors(self, monitors: Any) -> list[_Monitor]:
        if monitors is None:
            return []
        if isinstance(monitors, str):
            monitors = [monitors]
        out = []
        if isinstance(monitors, Mapping):
            for name, target in monitors.items():
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
                    raise TypeError(f"Runner: list monitors are dotted paths; use a dict for callables, got {target!r}")
                out.append(_Monitor(target, target, index, self.model))
        names = [m.name for m in out]
        if len(set(names)) != len(names):
            raise ValueError(f"Runner: duplicate monitor names in {names}")
        return out

    def _compiled_chunk(self) -> JittedFunction:
        placement = self._placement
        key = (tuple(m.key() for m in self._monitors), tuple(i.key() for i in self._inputs),
               self.monitor_every, self.unroll, None if placement is None else placement.key())
        cache = _COMPILED.setdefault(self.model, {})
        if key in cache:
            fn = cache[key]
            fn._nd_runner_layout = (self._monitors, self._inputs)
            return fn
        model, monitors, inputs, every, unroll = self.model, self._monitors, self._inputs, self.monitor_every, self.unroll
        holder: dict[str, Any] = {"layout": (monitors, inputs)}

        def step(i: jax.Array, values: list, once: frozenset = frozenset()) -> None:
            mons, ins = holder["layout"]
            t = i * get_dt()
            with context(t=t, i=i):
                for k, (inp, value) in enumerate(zip(ins, values)):
                    if k in once:
                        continue
                    if inp.kind == "func":
                        inp.apply(inp.fn(t))
                    elif inp.kind == "iter":
                        inp.apply(value[i])
                    else:
                        inp.apply(value)
                model.update()
            if placement is not None:
                # the loop carry keeps the neuron-axis split (without this XLA may gather a
                # scatter's result onto every device and carry it replicated)
                placement.constrain()

        def record() -> dict:
            mons, _ = holder["layout"]
            return {m.name: m.read(model) for m in mons}

        def constant_inputs() -> frozenset:
            # A constant '=' input into a Variable that nothing else writes holds the same
            # value before every step: set it once per chunk rather than carry it through
            # the loop (a per-step write is a per-step operation, several % of a small
            # network's step on a CPU).
            _, ins = holder["layout"]
            targets: dict[int, int] = {}
            for inp in ins:
                targets[id(inp.var)] = targets.get(id(inp.var), 0) + 1

            def model_step(i: jax.Array) -> None:
                with context(t=i * get_dt(), i=i):
                    model.update()
            _, written = _discover(model_step, (jax.ShapeDtypeStruct((), jnp.int32),))
            written_ids = {id(v) for v in written}
            return frozenset(k for k, inp in enumerate(ins) if inp.kind == "fix" and inp.op == "="
                             and targets[id(inp.var)] == 1 and id(inp.var) not in written_ids)

        def chunk(i0: jax.Array, n: int, values: list) -> tuple[Any, jax.Array]:
            _, ins = holder["layout"]
            once = constant_inputs()
            for k in once:
                ins[k].apply(values[k])
            # The second output is the step reached: an array that exists even without
            # monitors, so the host can wait for this chunk while the next one runs.
            if every == 1:
                def body(i: jax.Array) -> Any:
                    step(i, values, once)
                    return record()
                return for_loop(body, i0 + jnp.arange(n), unroll=unroll), i0 + n

            def outer(j: jax.Array) -> Any:
                for_loop(lambda i: step(i, values, once), i0 + j * every + jnp.arange(every), unroll=unroll)
                return record()
            return for_loop(outer, jnp.arange(n // every)), i0 + n

        fn = jit(chunk, static_argnums=1)
        fn._nd_runner_layout = (monitors, inputs)
        fn._nd_holder = holder
        cache[key] = fn
        return fn

    # -- running -----------------------------------------------------------------
    def _steps(self, duration: float) -> int:
        duration = float(duration)
        if not duration > 0:
            raise ValueError(f"Runner.run: duration must be a positive number of ms, got {duration}")
        n = int(round(duration / self.dt))
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

    def run(self, duration: float, progress_bar: bool | None = None) -> Monitors:
        """Advance the model by ``duration`` ms; returns (and stores in ``.mon``) the monitors.

        If the run is interrupted (Ctrl-C between chunks), :attr:`t` still matches
        the model's state (every dispatched chunk has run) and ``.mon`` holds the
        records that reached the host; the next ``run`` continues from there.

        Example:
            >>> mon = runner.run(1000.)
            >>> rate = mon['E.spike'].mean() / runner.dt * 1000  # Hz
        """
        n = self._steps(duration)
        for inp in self._inputs:
            if inp.kind == "iter" and self.i + n > inp.value.shape[0]:
                raise ValueError(
                    f"Runner.run: input '{inp.path}' has values for {inp.value.shape[0]} steps, but "
                    f"this run would reach step {self.i + n}"
                )
        show = self.progress_bar if progress_bar is None else progress_bar
        if self._placement is not None:
            self._placement.place()  # reset_state / new initial conditions replace values unsharded
        fn = self._fn
        fn._nd_holder["layout"] = (self._monitors, self._inputs)
        values = [inp.value for inp in self._inputs]
        full, rest = divmod(n, self.chunk_size)
        lengths = [self.chunk_size] * full + ([rest] if rest else [])
        recorded: dict[str, list[np.ndarray]] = {m.name: [] for m in self._monitors}
        with context(dt=self.dt):
            t0 = time.perf_counter()
            traces = fn.trace_count
            if self.jit:
                shapes = tuple(None if v is None else (v.shape, str(v.dtype)) for v in values)
                done = fn.__dict__.setdefault("_nd_compiled", set())
                for length in sorted(set(lengths)):
                    if (length, shapes) not in done:
                        fn.compile(jnp.int32(self.i), length, values)
                        done.add((length, shapes))
            compile_s = time.perf_counter() - t0
            bar = tqdm(total=round(n * self.dt, 6), unit="ms", disable=not show, leave=True,
                       desc=f"{type(self.model).__name__}", dynamic_ncols=True,
                       bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} ms [{elapsed}<{remaining}, {rate_fmt}]")
            t1 = time.perf_counter()
            pending: tuple[Any, jax.Array, int] | None = None
            first = i = self.i
            fetched = 0  # steps whose records reached the host
            try:
                for length in lengths:
                    # Dispatch chunk k, then wait for chunk k-1 and copy its records: the
                    # device always has the next chunk queued while the host copies.
                    if self.jit:
                        out, reached = fn(jnp.int32(i), length, values)
                    else:
                        with jax.disable_jit():
                            out, reached = fn(jnp.int32(i), length, values)
                    i += length  # the model's Variables now hold this chunk's results
                    if pending is not None:
                        fetched += self._fetch(pending, recorded, bar)
                    pending = (out, reached, length)
                fetched += self._fetch(pending, recorded, bar)
                jax.block_until_ready([v.value for v in self.model.vars().values()])
            finally:
                bar.close()
                # Also when interrupted (Ctrl-C): the clock matches the model's state, and
                # what reached the host is kept in .mon.
                self.i = i
                self.mon = self._collect(first, fetched, recorded)
            run_s = time.perf_counter() - t1
        self.stats = {"compile_s": compile_s, "run_s": run_s, "steps": n,
                      "realtime_factor": run_s / (n * self.dt / 1000.0),
                      "traces": fn.trace_count - traces}
        return self.mon

    def _fetch(self, pending: tuple[Any, jax.Array, int], recorded: dict, bar: Any) -> int:
        """Copy a finished chunk's records to the host; returns its number of steps."""
        out, reached, length = pending
        arrays = {name: np.asarray(arr) for name, arr in (out or {}).items()}
        jax.block_until_ready(reached)
        for name, arr in arrays.items():
            recorded[name].append(arr)
        bar.update(round(length * self.dt, 6))
        return length

    def _collect(self, first: int, steps: int, recorded: dict) -> Monitors:
        step_ids = first + np.arange(self.monitor_every - 1, steps, self.monitor_every)
        data = {k: (np.concatenate(v) if v else np.zeros((0,))) for k, v in recorded.items()}
        return Monitors(data, (step_ids * self.dt).astype(np.float64))

    def reset(self, reset_state: bool = True) -> None:
        """Start again from time 0 (and, by default, reset the model's state)."""
        self.i = 0
        if reset_state:
            self.model.reset_state()
