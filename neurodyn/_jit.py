"""``nd.jit``: jax.jit for functions, objects and methods that use Variables.

A call runs one compiled *entry*: the function traced once, as a pure function
of its arguments and of the values of the Variables it uses (one positional
argument each, so that the written ones can be donated). The Variables are
guessed before the first trace from what the function names (its module, its
closure, the globals it uses, Module arguments); a Variable found only while
tracing makes the entry trace again with it as an input.
"""

from __future__ import annotations

import functools
import inspect
import sys
import threading
import weakref
from typing import Any, Callable, Iterable, Sequence

import jax
import jax.numpy as jnp
from jax._src import config as _jax_config

from ._environ import get_dt
from ._module import Module
from ._random import KEY_LOCK, RandomState
from ._staleness import EPOCH, Guards, Identity, recording
from ._state import CTX, StatefulFunction, Variable, assign, values_of
from ._state import unwrap_variables  # noqa: F401  (imported from here by _runner)

__all__ = ["jit", "JittedFunction"]

_disable_jit = _jax_config.disable_jit
_refcount = sys.getrefcount


class Rediscover(Exception):
    """Raised from inside a trace whose Variables differ from those the entry was built for."""

    def __init__(self, found: list[Variable]) -> None:
        super().__init__("internal: neurodyn re-discovers the Variables of a function")
        self.found = found


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


def _named_variables(fun: Any, out: dict[int, Variable], depth: int = 0) -> None:
    """Variables a function names: its Module or ``self``, closure cells and globals.

    Only a guess of the inputs, made before the first trace so that it usually
    is the only one; correctness never depends on it.
    """
    if depth > 3:
        return
    if isinstance(fun, Module):
        _add_vars(fun, out)
        fun = type(fun).__call__
    if inspect.ismethod(fun):
        _add_vars(fun.__self__, out)
        fun = fun.__func__
    fun = inspect.unwrap(fun) if inspect.isfunction(fun) else fun
    code = getattr(fun, "__code__", None)
    if code is None:
        return
    nested = []
    for cell in getattr(fun, "__closure__", None) or ():
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        _add_vars(value, out)
        if inspect.isfunction(value) or inspect.ismethod(value):
            nested.append(value)
    glb = getattr(fun, "__globals__", {})
    stack = [code]
    while stack:
        c = stack.pop()
        for name in c.co_names:
            value = glb.get(name)
            if value is None:
                continue
            if inspect.ismodule(value):
                # ``nd.random.normal(...)`` draws from the global key
                mod = value.__name__
                if mod == "neurodyn.random" or (mod.startswith("neurodyn") and "random" in c.co_names):
                    from .random import DEFAULT
                    out.setdefault(id(DEFAULT), DEFAULT)
                continue
            _add_vars(value, out)
            if inspect.isfunction(value) and value is not fun:
                nested.append(value)
        stack.extend(k for k in c.co_consts if inspect.iscode(k))
    for f in nested:
        _named_variables(f, out, depth + 1)


def _add_vars(obj: Any, out: dict[int, Variable], depth: int = 0) -> None:
    if isinstance(obj, Variable):
        out.setdefault(id(obj), obj)
    elif isinstance(obj, Module):
        for v in obj.vars().values():
            out.setdefault(id(v), v)
    elif depth < 3 and isinstance(obj, (list, tuple)):
        for v in obj:
            _add_vars(v, out, depth + 1)
    elif depth < 3 and isinstance(obj, dict):
        for v in obj.values():
            _add_vars(v, out, depth + 1)


def _fresh_copy(x: Any) -> Any:
    # copied by the runtime, keeping the sharding: jnp.array(x, copy=True) compiles a program per shape
    return jax.device_put(x, may_alias=False)


class _Entry:
    """One compiled specialisation: fixed static arguments and a fixed list of Variables.

    ``vars`` are the inputs (one positional argument each), ``write_idx`` the
    positions of those the trace writes (outputs, donated), ``guards`` the plain
    values it compiled in.
    """

    __slots__ = ("vars", "index", "write_idx", "writes", "donated", "jitted", "attr_reads", "guards", "fresh",
                 "dt", "lock", "__weakref__")

    def __init__(self, vars_: list[Variable]) -> None:
        self.vars = vars_
        self.index = {id(v): k for k, v in enumerate(vars_)}
        self.write_idx: tuple[int, ...] | None = None
        self.writes: list[Variable] = []
        self.donated: tuple[int, ...] = ()
        self.attr_reads: dict = {}
        self.guards: Guards | None = None
        self.fresh = False
        self.dt = get_dt()
        self.lock = None

    def valid(self) -> bool:
        g = self.guards
        if g.volatile or g.epoch != EPOCH[0]:
            return self.dt == get_dt() and g.valid()
        return True

    def settle(self) -> None:
        """Take the guards after a trace (the first one, or one for new argument shapes)."""
        self.guards = Guards(self.attr_reads)
        self.fresh = False


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
    code, ``trace_count`` tells how many times the Python function has been
    traced, and ``origin_fun`` is the wrapped callable. Called inside another
    neurodyn transformation, it runs as part of that trace.

    Example:
        >>> import neurodyn as nd
        >>> import jax.numpy as jnp
        >>> model = nd.nn.Linear(3, 2)
        >>> step = nd.jit(model)
        >>> _ = step.compile(jnp.ones((8, 3)))      # ahead of time
        >>> step.trace_count
        1
        >>> y = step(jnp.ones((8, 3))); step.trace_count   # no re-trace
        1
    """

    def __init__(
        self,
        fun: Callable,
        static_argnums: int | Sequence[int] | None = None,
        static_argnames: str | Iterable[str] | None = None,
        dyn_vars: Any = None,
        child_objs: Any = None,
        donate: bool = True,
        device: Any = None,
        **jax_jit_options: Any,
    ) -> None:
        if not callable(fun):
            raise TypeError(f"nd.jit expects a function, a Module, or a callable object; got {type(fun).__name__}")
        self.origin_fun = fun
        target = fun if inspect.isfunction(fun) or inspect.ismethod(fun) else getattr(fun, "__call__", fun)
        self._target = target
        self._name = getattr(fun, "__qualname__", None) or type(fun).__name__
        self._sf = StatefulFunction(target, self._name)
        functools.update_wrapper(self, target, updated=())
        self._static_argnums, self._static_argnames = _normalize_static(target, static_argnums, static_argnames)
        self._has_static = bool(self._static_argnums or self._static_argnames)
        self._known = _vars_of(dyn_vars) + _vars_of(child_objs, "child_objs")
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
        if _disable_jit.value or CTX.frames:
            # Inside another transformation the caller's trace compiles this call too.
            return self._call_inline(args, kwargs)
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
        if entries:
            entry = entries[0]
            g = entry.guards
            if (g.volatile or g.epoch != EPOCH[0]) and not entry.valid():
                entry = self._select(key, args, kwargs)
        else:
            entry = self._select(key, args, kwargs)
        # A call that advances a random state reads its key and writes the next one as
        # one step, so that two threads never draw with the same key.
        lock = entry.lock
        if lock is not None:
            lock.acquire()
        try:
            while True:
                vals = values_of(entry.vars)
                for k in entry.donated:
                    # Donate a buffer only when the Variable is its sole owner: a reference
                    # held anywhere else (a Python name, another Variable, an argument of
                    # this call) gets a fresh copy donated in its place. The count is that
                    # of the Variable, ``vals`` and getrefcount's own argument.
                    if _refcount(vals[k]) > 3:
                        vals[k] = _fresh_copy(vals[k])
                try:
                    out, new = entry.jitted(args, kwargs, *vals)
                except Rediscover as r:
                    entry = self._build(key, args, kwargs, entry.vars + r.found, entry)
                    if lock is None and entry.lock is not None:
                        lock = entry.lock
                        lock.acquire()
                    continue
                break
            assign(entry.writes, new)
        finally:
            if lock is not None:
                lock.release()
        if entry.fresh:
            entry.settle()
        return out

    def _call_inline(self, args: tuple, kwargs: dict) -> Any:
        out, frame = self._sf.run((), (), args, kwargs)
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
                key_parts.append((i, Identity(a)))
        dyn_kwargs = {}
        for k, a in kwargs.items():
            if k in self._static_argnames:
                statics[k] = a
                key_parts.append((k, _hashable(a, f"'{k}'", self._name)))
            elif isinstance(a, _OBJECT_ARGS):
                statics[k] = a
                key_parts.append((k, Identity(a)))
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
            if e.valid():
                with self._lock:
                    entries.insert(0, entries.pop(k))
                return e
        if entries:  # the Variables found last time: usually the same set
            guess = [v for v in entries[0].vars if not v.is_dead]
        else:
            found: dict[int, Variable] = {id(v): v for v in self._known}
            _named_variables(self.origin_fun, found)
            if key is not None:
                for obj in key.statics.values():
                    _add_vars(obj, found)
            guess = list(found.values())
        return self._build(key, args, kwargs, guess)

    def _build(self, key: Any, args: tuple, kwargs: dict, guess: list[Variable],
               replaces: _Entry | None = None) -> _Entry:
        """Trace the function once for these static arguments and make its entry."""
        statics = key.statics if key is not None else {}
        sf = self._sf
        self_ref = weakref.ref(self)
        tries = 0
        while True:
            entry = _Entry(list({id(v): v for v in guess}.values()))
            entry_ref = weakref.ref(entry)

            def pure(dyn_args: tuple, dyn_kwargs: dict, *vals: Any) -> Any:
                ent = entry_ref()
                owner = self_ref()
                if owner is not None:
                    owner.trace_count += 1
                call_args, call_kwargs = _merge_static(statics, dyn_args, dyn_kwargs)
                with recording() as reads:
                    out, frame = sf.run(ent.vars, vals, call_args, call_kwargs)
                index = ent.index
                found = [v for v in frame.outside_reads() + frame.written() if id(v) not in index]
                if found:
                    raise Rediscover(found)
                # Writes of the value a Variable came in with change nothing: not outputs.
                widx = tuple(sorted(index[i] for i in frame.writes
                                    if i not in frame.born and frame.values[i] is not vals[index[i]]))
                if ent.write_idx is None:
                    ent.write_idx = widx
                elif widx != ent.write_idx:
                    raise Rediscover([])
                ent.attr_reads.update(reads)
                ent.fresh = True
                return out, [frame.values[id(ent.vars[k])] for k in widx]

            vals = values_of(entry.vars)
            try:
                # Tracing through a plain jax.jit first tells which Variables are written;
                # the donating jax.jit made next finds this trace in JAX's cache.
                jax.jit(pure, **self._jit_options).trace(args, kwargs, *vals)
            except Rediscover as r:
                guess = entry.vars + r.found
                tries += 1
                if tries > 8:
                    raise RuntimeError(
                        f"nd.jit({self._name}): the function uses new Variables on every trace "
                        f"({[v.label for v in r.found]}). Variables passed inside a container argument "
                        "are copies made by jax; pass them as top-level arguments, close over them, or "
                        "create them outside compiled code.") from None
                continue
            break
        entry.writes = [entry.vars[k] for k in entry.write_idx]
        entry.donated = entry.write_idx if self._donate else ()
        donate = tuple(2 + k for k in entry.donated)
        entry.jitted = jax.jit(pure, donate_argnums=donate, **self._jit_options)
        entry.lock = KEY_LOCK if any(isinstance(v, RandomState) for v in entry.writes) else None
        entry.settle()
        with self._lock:
            entries = [e for e in self._cache.get(key, []) if e is not replaces]
            self._cache[key] = [entry] + entries[: _MAX_ENTRIES - 1]
        return entry

    def lower(self, *args: Any, **kwargs: Any) -> Any:
        """Trace for these arguments and return JAX's ``Lowered`` (``.as_text()``,
        ``.compile()``, ``.cost_analysis()``), without running or changing state.

        Example:
            >>> import neurodyn as nd
            >>> import jax.numpy as jnp
            >>> v = nd.Variable(jnp.zeros(3))
            >>> f = nd.jit(lambda x: v.__setitem__(..., v.value + x))
            >>> 'add' in f.lower(1.).as_text()
            True
        """
        if self._has_static or any(isinstance(a, _OBJECT_ARGS) for a in (*args, *kwargs.values())):
            key, args, kwargs = self._split_static(args, kwargs)
        else:
            key = None
        entries = self._cache.get(key)
        entry = entries[0] if entries else None
        if entry is None or not entry.valid():
            entry = self._select(key, args, kwargs)
        while True:
            try:
                lowered = entry.jitted.lower(args, kwargs, *values_of(entry.vars))
            except Rediscover as r:
                entry = self._build(key, args, kwargs, entry.vars + r.found, entry)
                continue
            if entry.fresh:
                entry.settle()
            return lowered

    def compile(self, *args: Any, **kwargs: Any) -> "JittedFunction":
        """Trace and compile for these arguments now, without running or changing state.

        Example:
            >>> import neurodyn as nd
            >>> import jax.numpy as jnp
            >>> f = nd.jit(lambda x: x * 2)
            >>> f.compile(jnp.zeros(3)).trace_count
            1
        """
        self.lower(*args, **kwargs).compile()
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
        """The Variables the compiled code takes as inputs and writes (per static key).

        ``reads`` are the inputs it does not write (some may be unused).
        """
        entries = [es[0] for es in self._cache.values() if es]
        reads = [v for e in entries for k, v in enumerate(e.vars) if k not in e.write_idx]
        return {"reads": reads, "writes": [v for e in entries for v in e.writes]}


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
    donate: bool = True,
    device: Any = None,
    **jax_jit_options: Any,
) -> Any:
    """Compile a function, a Module (or any callable object) or a bound method.

    Every Variable the function reads or writes, at any depth and through
    closures, globals and ``nd.random``, is found by tracing: nothing is frozen
    as a constant and no ``dyn_vars`` are needed. Variables that are only read
    are inputs of the compiled code; written ones are outputs too and are
    updated after each call. If the traced function raises, every Variable
    keeps its previous value. The function is traced once per new argument
    shape or static value.

    Plain values it reads from Module attributes (numbers, flags, tuples,
    containers, attributes of plain objects held by a Module) are compiled in
    as constants and recorded: when one of them changes, the next call traces
    again, however the function reached the Module (argument, closure, global,
    container, attribute of a plain object). Plain values read any other way (a
    closure variable, a global, an attribute of your own non-Module object)
    are constants of the trace, as in ``jax.jit``; keep settings that change on
    a Module or in a Variable. See ``neurodyn._staleness`` for the rules.

    Args:
        fun: what to compile. Without it, ``jit`` returns a decorator.
        static_argnums, static_argnames: arguments that are compile-time
            constants (a new value recompiles). Either form finds the other.
        dyn_vars, child_objs: accepted for BrainPy compatibility; they only add
            Variables to track.
        donate: let the compiled code reuse the buffers of the Variables it
            writes for their new values (less memory, less copying). A buffer
            that is also referenced elsewhere (a Python name holding
            ``v.value``, another Variable, an argument of the call) is copied
            first, so no array you can reach is ever invalidated.
        device: the device to run on.
        **jax_jit_options: passed to ``jax.jit`` (``keep_unused``, ``inline``, ...).

    Example:
        >>> import neurodyn as nd
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
