"""``nd.jit``: jax.jit for functions, objects and methods that use Variables."""

from __future__ import annotations

import functools
import inspect
import threading
import weakref
from typing import Any, Callable, Iterable, Sequence

import jax
from jax._src import config as _jax_config

from ._environ import get_dt
from ._module import EPOCH, Module, collect_modules, owners_of, snapshot
from ._random import KEY_LOCK, RandomState
from ._state import CTX, Frame, Variable

__all__ = ["jit", "JittedFunction"]

_disable_jit = _jax_config.disable_jit


class Rediscover(Exception):
    """Raised from inside a trace that touched Variables the entry did not know."""

    def __init__(self, reads: list[Variable], writes: list[Variable]) -> None:
        super().__init__("internal: neurodyn re-discovers the Variables of a function")
        self.reads = reads
        self.writes = writes


def _vars_of(objs: Any, what: str = "dyn_vars") -> list[Variable]:
    """Variables named by ``dyn_vars`` / ``child_objs`` (any nesting)."""
    out: dict[int, Variable] = {}

    def visit(o: Any) -> None:
        if isinstance(o, Variable):
            out.setdefault(id(o), o)
        elif isinstance(o, Module):
            for v in o.vars().values():
                out.setdefault(id(v), v)
        elif isinstance(o, dict):
            for v in o.values():
                visit(v)
        elif isinstance(o, (list, tuple, set)):
            for v in o:
                visit(v)
        elif o is not None:
            raise TypeError(
                f"nd.jit({what}=...): expected Variables or Modules (in any nesting of lists, tuples and "
                f"dicts), got {type(o).__name__} {o!r:.80}. Neither is needed: nd.jit finds every Variable "
                "a function uses by tracing.")

    if objs is not None:
        visit(objs)
    return list(out.values())


def values_of(vars_: Sequence[Variable]) -> list[Any]:
    """Current values, read through the active frame when there is one."""
    if CTX.frames:
        return [v.value for v in vars_]
    return [v._value for v in vars_]


def assign(vars_: Sequence[Variable], values: Sequence[Any]) -> None:
    """Write results back, into the active frame when there is one."""
    if CTX.frames:
        for v, x in zip(vars_, values):
            v.value = x
    else:
        for v, x in zip(vars_, values):
            v._value = x


def unwrap_variables(tree: Any) -> Any:
    """Replace Variables in a function's output by their values."""
    return jax.tree.map(lambda x: x.value if isinstance(x, Variable) else x, tree,
                        is_leaf=lambda x: isinstance(x, Variable))


class _Entry:
    """One compiled specialisation: fixed static arguments and a fixed Variable list."""

    __slots__ = ("jitted", "reads", "writes", "guards", "epoch", "dt", "lock", "__weakref__")


class _Identity:
    """A hashable stand-in for an object passed as an argument (a Module, a Variable)."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, _Identity) and other.obj is self.obj

    def __hash__(self) -> int:
        return id(self.obj)


_OBJECT_ARGS = (Variable, Module)
_MAX_ENTRIES = 8  # specialisations kept per static key (plain-attribute variants)


class _StaticKey:
    """Cache key of the static arguments; carries their values for tracing."""

    __slots__ = ("parts", "statics", "_hash")

    def __init__(self, parts: tuple, statics: dict) -> None:
        self.parts = parts
        self.statics = statics
        self._hash = hash(parts)

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, _StaticKey) and other.parts == self.parts

    def __hash__(self) -> int:
        return self._hash


class JittedFunction:
    """A compiled function, object or method, made by :func:`jit`.

    Calling it runs the compiled code and writes every Variable it changed.
    ``compile(*args)`` compiles ahead of time, ``clear_cache()`` drops compiled
    code, ``trace_count`` tells how many times the function has been traced for
    compilation, and ``origin_fun`` is the wrapped callable.

    Example:
        >>> step = nd.jit(model)
        >>> step.compile(jnp.ones((8, 3)))      # ahead of time
        >>> traces = step.trace_count           # a discovery pass and the real trace
        >>> y = step(jnp.ones((8, 3))); step.trace_count == traces   # no re-trace
        True
    """

    def __init__(
        self,
        fun: Callable,
        static_argnums: int | Sequence[int] | None = None,
        static_argnames: str | Iterable[str] | None = None,
        dyn_vars: Any = None,
        child_objs: Any = None,
        donate: bool = False,
        device: Any = None,
        **jax_jit_options: Any,
    ) -> None:
        if not callable(fun):
            raise TypeError(f"nd.jit expects a function, a Module, or a callable object; got {type(fun).__name__}")
        self.origin_fun = fun
        target = fun if inspect.isfunction(fun) or inspect.ismethod(fun) else getattr(fun, "__call__", fun)
        self._target = target
        self._name = getattr(fun, "__qualname__", None) or type(fun).__name__
        functools.update_wrapper(self, target, updated=())
        self._static_argnums, self._static_argnames = _normalize_static(target, static_argnums, static_argnames)
        self._has_static = bool(self._static_argnums or self._static_argnames)
        self._known = _vars_of(dyn_vars) + _vars_of(child_objs, "child_objs")
        self._child_objs = child_objs
        self._donate = bool(donate)
        self._jit_options = dict(jax_jit_options)
        if device is not None:
            self._jit_options["device"] = device
        self._cache: dict[Any, list[_Entry]] = {}
        self._lock = threading.Lock()
        self.trace_count = 0
        self._bound: "weakref.WeakKeyDictionary[Any, JittedFunction]" = weakref.WeakKeyDictionary()

    def __repr__(self) -> str:
        return f"<neurodyn JittedFunction {self._name}>"

    # Used as a decorator on a method: bind per instance.
    def __get__(self, obj: Any, objtype: Any = None) -> Any:
        if obj is None:
            return self
        try:
            return self._bound[obj]
        except KeyError:
            bound = JittedFunction(
                self.origin_fun.__get__(obj, objtype), self._static_argnums, self._static_argnames,
                donate=self._donate, **self._jit_options)
            bound._known = list(self._known)
            self._bound[obj] = bound
            return bound

    def __getattr__(self, name: str) -> Any:
        # ``nd.jit(module).attr`` reaches the module, as the wrapped object would.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.__dict__["origin_fun"], name)

    # -- calling ------------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if _disable_jit.value:
            return self._call_eager(args, kwargs)
        if self._has_static:
            key, args, kwargs = self._split_static(args, kwargs)
        else:
            key = None
            for a in args:
                if isinstance(a, _OBJECT_ARGS):
                    key, args, kwargs = self._split_static(args, kwargs)
                    break
            else:
                if kwargs:
                    for a in kwargs.values():
                        if isinstance(a, _OBJECT_ARGS):
                            key, args, kwargs = self._split_static(args, kwargs)
                            break
        entries = self._cache.get(key)
        entry = entries[0] if entries else None
        if entry is None or (entry.epoch != EPOCH[0] and not _still_valid(entry)):
            entry = self._select(key, args, kwargs)
        # A call that advances a random state reads its key and writes the next one as
        # one step, so that two threads never draw with the same key.
        lock = entry.lock if not CTX.frames else None
        if lock is not None:
            lock.acquire()
        try:
            while True:
                reads, writes = entry.reads, entry.writes
                if CTX.frames:
                    if any(v._dead for v in reads) or any(v._dead for v in writes):
                        entry = self._build(key, args, kwargs, [v for v in reads if not v._dead],
                                            [v for v in writes if not v._dead], entry)
                        continue
                    rvals = [v.value for v in reads]
                    wvals = [v.value for v in writes]
                else:
                    rvals = [v._value for v in reads]
                    wvals = [v._value for v in writes]
                try:
                    out, new = entry.jitted(rvals, wvals, args, kwargs)
                except Rediscover as r:
                    entry = self._build(key, args, kwargs, entry.reads + r.reads, entry.writes + r.writes, entry)
                    if lock is None and entry.lock is not None and not CTX.frames:
                        lock = entry.lock
                        lock.acquire()
                    continue
                break
            if CTX.frames:
                for v, x in zip(writes, new):
                    v.value = x
            else:
                for v, x in zip(writes, new):
                    v._value = x
        finally:
            if lock is not None:
                lock.release()
        return out

    def _call_eager(self, args: tuple, kwargs: dict) -> Any:
        frame = Frame(CTX.frames[-1] if CTX.frames else None)
        with frame:
            out = self._target(*args, **kwargs)
        frame.commit()
        return out

    def _split_static(self, args: tuple, kwargs: dict) -> tuple[Any, tuple, dict]:
        """Pull static arguments (and object arguments) into a hashable key."""
        key_parts: list[Any] = []
        statics: dict[Any, Any] = {}
        dyn_args = list(args)
        for i, a in enumerate(args):
            if i in self._static_argnums:
                statics[i] = a
                key_parts.append((i, _hashable(a, f"position {i}", self._name)))
            elif isinstance(a, _OBJECT_ARGS):
                statics[i] = a
                key_parts.append((i, _Identity(a)))
        dyn_kwargs = {}
        for k, a in kwargs.items():
            if k in self._static_argnames:
                statics[k] = a
                key_parts.append((k, _hashable(a, f"'{k}'", self._name)))
            elif isinstance(a, _OBJECT_ARGS):
                statics[k] = a
                key_parts.append((k, _Identity(a)))
            else:
                dyn_kwargs[k] = a
        for i in statics:
            if isinstance(i, int):
                dyn_args[i] = None
        return _StaticKey(tuple(key_parts), statics), tuple(dyn_args), dyn_kwargs

    # -- building -----------------------------------------------------------------
    def _select(self, key: Any, args: tuple, kwargs: dict) -> _Entry:
        """A valid entry for the current plain-attribute values, or a new one.

        A few specialisations are kept per static key, so flipping a flag back
        (``model.train()`` after ``model.eval()``) reuses compiled code.
        """
        entries = self._cache.get(key, [])
        for k, e in enumerate(entries):
            if _still_valid(e):
                with self._lock:
                    entries.insert(0, entries.pop(k))
                return e
        # Start from the Variables found last time: usually the same set, which
        # saves the discovery pass.
        reads = entries[0].reads if entries else self._known
        writes = entries[0].writes if entries else []
        return self._build(key, args, kwargs, reads, writes)

    def _build(self, key: Any, args: tuple, kwargs: dict, reads: list[Variable], writes: list[Variable],
               replaces: _Entry | None = None) -> _Entry:
        """Make an entry for these static arguments that knows the given Variables."""
        write_ids = {id(v) for v in writes}
        unique_writes = list({id(v): v for v in writes}.values())
        unique_reads = [v for v in {id(v): v for v in reads}.values() if id(v) not in write_ids]
        statics = key.statics if key is not None else {}
        target = self._target
        entry = _Entry()
        entry.reads, entry.writes = unique_reads, unique_writes
        entry_ref = weakref.ref(entry)
        self_ref = weakref.ref(self)

        def pure(rvals: list, wvals: list, dyn_args: tuple, dyn_kwargs: dict) -> Any:
            ent = entry_ref()
            owner = self_ref()
            if owner is not None:
                owner.trace_count += 1
            frame = Frame(CTX.frames[-1] if CTX.frames else None)
            for v, x in zip(ent.reads, rvals):
                frame.bind(v, x)
            for v, x in zip(ent.writes, wvals):
                frame.bind(v, x)
            call_args, call_kwargs = _merge_static(statics, dyn_args, dyn_kwargs)
            with frame:
                out = target(*call_args, **call_kwargs)
                out = unwrap_variables(out)
            known_writes = {id(v) for v in ent.writes}
            new_writes = [v for i, v in frame.writes.items() if i not in known_writes and i not in frame.born]
            if frame.reads or new_writes:
                raise Rediscover(list(frame.reads.values()), new_writes)
            return out, [frame.values[id(v)] for v in ent.writes]

        donate = (1,) if self._donate else ()
        entry.jitted = jax.jit(pure, donate_argnums=donate, **self._jit_options)
        entry.lock = KEY_LOCK if any(isinstance(v, RandomState) for v in unique_writes) else None
        guards: dict[int, Module] = {}
        # Modules that own a Variable the trace touches, and their ancestors, however the
        # function reached them (a plain object's attribute, a container, a global) ...
        owners_of(unique_reads + unique_writes, guards)
        # ... and those it can reach by name, which may hold only plain attributes.
        collect_modules(self.origin_fun, guards)
        if inspect.ismethod(target):
            collect_modules(target.__self__, guards)
        _collect_from_closure(target, guards)
        collect_modules(list(statics.values()), guards)
        collect_modules(self._child_objs, guards)
        entry.guards = [(m, snapshot(m)) for m in guards.values()]
        entry.epoch = EPOCH[0]
        entry.dt = get_dt()
        with self._lock:
            entries = [e for e in self._cache.get(key, []) if e is not replaces]
            self._cache[key] = [entry] + entries[: _MAX_ENTRIES - 1]
        return entry

    def compile(self, *args: Any, **kwargs: Any) -> "JittedFunction":
        """Trace and compile for these arguments now, without running or changing state.

        Example:
            >>> f = nd.jit(model)
            >>> f.compile(jnp.zeros((8, 3)))
        """
        if self._has_static or any(isinstance(a, _OBJECT_ARGS) for a in (*args, *kwargs.values())):
            key, args, kwargs = self._split_static(args, kwargs)
        else:
            key = None
        entries = self._cache.get(key)
        entry = entries[0] if entries else None
        if entry is None or (entry.epoch != EPOCH[0] and not _still_valid(entry)):
            entry = self._select(key, args, kwargs)
        while True:
            try:
                entry.jitted.lower(values_of(entry.reads), values_of(entry.writes), args, kwargs).compile()
            except Rediscover as r:
                entry = self._build(key, args, kwargs, entry.reads + r.reads, entry.writes + r.writes, entry)
                continue
            return self

    def clear_cache(self) -> None:
        """Drop every compiled specialisation; the next call traces again."""
        with self._lock:
            for entries in self._cache.values():
                for entry in entries:
                    entry.jitted.clear_cache()
            self._cache.clear()

    @property
    def variables(self) -> dict[str, list[Variable]]:
        """The Variables the compiled code reads and writes (per static key)."""
        entries = [es[0] for es in self._cache.values() if es]
        return {"reads": [v for e in entries for v in e.reads],
                "writes": [v for e in entries for v in e.writes]}


def _still_valid(entry: _Entry) -> bool:
    if entry.dt != get_dt():
        return False
    for module, snap in entry.guards:
        if snapshot(module) != snap:
            return False
    entry.epoch = EPOCH[0]
    return True


def _collect_from_closure(fun: Any, out: dict[int, Module], depth: int = 0) -> None:
    """Modules a plain function reaches through closures and the globals it names.

    Functions found there (helpers, nested closures) are searched too, a few levels deep.
    """
    fun = inspect.unwrap(fun) if inspect.isfunction(fun) else fun
    code = getattr(fun, "__code__", None)
    if code is None or depth > 4:
        return
    nested = []
    for cell in getattr(fun, "__closure__", None) or ():
        try:
            value = cell.cell_contents
        except ValueError:  # empty cell
            continue
        collect_modules(value, out)
        if inspect.isfunction(value):
            nested.append(value)
        elif inspect.ismethod(value):
            collect_modules(value.__self__, out)
    glb = getattr(fun, "__globals__", {})
    stack = [code]
    while stack:
        c = stack.pop()
        for name in c.co_names:
            if name in glb:
                value = glb[name]
                collect_modules(value, out)
                if inspect.isfunction(value) and value is not fun:
                    nested.append(value)
        stack.extend(k for k in c.co_consts if inspect.iscode(k))
    for f in nested:
        _collect_from_closure(f, out, depth + 1)


def _merge_static(statics: dict, dyn_args: tuple, dyn_kwargs: dict) -> tuple[tuple, dict]:
    if not statics:
        return dyn_args, dyn_kwargs
    args = list(dyn_args)
    kwargs = dict(dyn_kwargs)
    for k, v in statics.items():
        if isinstance(k, int):
            args[k] = v
        else:
            kwargs[k] = v
    return tuple(args), kwargs


def _hashable(value: Any, where: str, fname: str) -> Any:
    try:
        hash(value)
    except TypeError:
        raise TypeError(
            f"nd.jit({fname}): static argument {where} must be hashable, got "
            f"{type(value).__name__} {value!r}. Pass a tuple instead of a list, or make "
            "the argument non-static."
        ) from None
    return value


def _normalize_static(fun: Callable, argnums: Any, argnames: Any) -> tuple[frozenset[int], frozenset[str]]:
    nums = () if argnums is None else ((argnums,) if isinstance(argnums, int) else tuple(argnums))
    names = () if argnames is None else ((argnames,) if isinstance(argnames, str) else tuple(argnames))
    try:
        params = list(inspect.signature(fun).parameters.values())
    except (TypeError, ValueError):
        params = []
    positional = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    nums_set = set(nums)
    names_set = set(names)
    for n in nums:
        if n < 0:
            raise ValueError(f"static_argnums must be non-negative, got {n}")
        if n < len(positional):
            names_set.add(positional[n])
    for name in names:
        if name in positional:
            nums_set.add(positional.index(name))
    return frozenset(nums_set), frozenset(names_set)


def jit(
    fun: Callable | None = None,
    *,
    static_argnums: int | Sequence[int] | None = None,
    static_argnames: str | Iterable[str] | None = None,
    dyn_vars: Any = None,
    child_objs: Any = None,
    donate: bool = False,
    device: Any = None,
    **jax_jit_options: Any,
) -> Any:
    """Compile a function, a Module (or any callable object) or a bound method.

    Every Variable the function reads or writes, at any depth and through
    closures, globals and ``nd.random``, is found by tracing: nothing is frozen
    as a constant and no ``dyn_vars`` are needed. Variables that are only read
    are inputs of the compiled code; written ones are outputs too and are
    updated after each call. If the traced function raises, every Variable
    keeps its previous value. Plain attributes (numbers, flags) are compiled
    in as constants; assigning a new one re-traces at the next call for every
    Module of the models whose Variables the function touches, however it
    reaches them (argument, closure, global, container, attribute of a plain
    object), and for Modules it names directly.

    Args:
        fun: what to compile. Without it, ``jit`` returns a decorator.
        static_argnums, static_argnames: arguments that are compile-time
            constants (a new value recompiles). Either form finds the other.
        dyn_vars, child_objs: accepted for BrainPy compatibility; they only add
            Variables to track.
        donate: donate the buffers of written Variables to the computation
            (saves memory; do not keep references to their old values).
        device: the device to run on.
        **jax_jit_options: passed to ``jax.jit`` (``keep_unused``, ``inline``, ...).

    Example:
        >>> @nd.jit(static_argnames='c')
        ... def f(a, b, c=1.):
        ...     return a + b if c > 0 else a * b
        >>> f(1., 2., c=0.)
        Array(2., dtype=float32, weak_type=True)
    """
    if fun is None:
        return lambda f: jit(f, static_argnums=static_argnums, static_argnames=static_argnames,
                             dyn_vars=dyn_vars, child_objs=child_objs, donate=donate, device=device,
                             **jax_jit_options)
    return JittedFunction(fun, static_argnums, static_argnames, dyn_vars, child_objs, donate,
                          device, **jax_jit_options)
