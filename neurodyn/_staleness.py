"""When compiled code is stale: the plain Python values a trace compiled in.

A trace turns every plain value it reads (a number, a flag, a tuple of sizes)
into a constant of the compiled computation. Compiled code is reused only
while those values are unchanged, and this module is the one place that
decides it, in three parts:

* **What a trace read.** While a neurodyn transformation traces, every
  attribute read on a :class:`~neurodyn.Module` is recorded (``recording``),
  whichever way the function reached the module: argument, closure, global,
  container, attribute of a plain object, nested call. Nothing is found by
  scanning for modules, so no path can be missed.
* **What the values were.** Each recorded attribute gets a *token* (``token``):
  its value for numbers, strings and other immutable data, its structure for
  containers, and identity for arrays, Variables, Modules and functions
  (JAX's function wrappers such as ``jax.nn.relu``, a ``custom_jvp``, and
  ``functools.partial`` count as functions).
* **When to look again.** Changes that neurodyn observes (assigning a Module
  attribute, mutating a list or dict held by a Module, changing ``dt``) bump
  ``EPOCH``; compiled code rechecks its tokens only when ``EPOCH`` moved, so a
  call where nothing changed costs one integer comparison. Values whose
  changes cannot be observed (an attribute of a plain object, a plain list
  inside one) are *volatile*: their tokens are rechecked on every call.

Not covered, as in ``jax.jit``: plain values read from a closure, a global or
a plain object without going through a Module attribute (they are constants of
the trace), class attributes changed after tracing, and NumPy arrays changed
in place (arrays are compared by identity: assign a new array instead).
"""

from __future__ import annotations

import dataclasses
import enum
import threading
import types
from contextlib import contextmanager
from typing import Any, Iterator

import jax
import numpy as np

from ._state import Variable

__all__ = ["EPOCH", "Guards", "Identity", "ObservedDict", "ObservedList", "bump", "observe", "recording", "token",
           "watch_reads"]

# Bumped by every change neurodyn observes outside compiled code.
EPOCH = [0]


def bump() -> None:
    """Tell compiled code that an observed value changed (it rechecks on its next call)."""
    EPOCH[0] += 1


# -- observed containers ------------------------------------------------------------------

def _bumping(method: Any) -> Any:
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        EPOCH[0] += 1
        return method(self, *args, **kwargs)
    wrapper.__name__ = method.__name__
    wrapper.__doc__ = method.__doc__
    return wrapper


class ObservedList(list):
    """A list held by a Module: every in-place change bumps ``EPOCH``.

    Module attributes that are lists are stored as this subclass, so
    ``model.layers.append(layer)`` is seen by compiled code like an assignment.

    Example:
        >>> import neurodyn as nd
        >>> class Stack(nd.Module):
        ...     def __init__(self):
        ...         self.sizes = [1, 2]
        >>> s = Stack()
        >>> type(s.sizes).__name__, s.sizes == [1, 2]
        ('ObservedList', True)
    """

    __slots__ = ()

    def __reduce_ex__(self, protocol: Any) -> Any:
        return (ObservedList, (list(self),))


class ObservedDict(dict):
    """A dict held by a Module: every in-place change bumps ``EPOCH``.

    Example:
        >>> import neurodyn as nd
        >>> class Table(nd.Module):
        ...     def __init__(self):
        ...         self.taus = {'E': 10.}
        >>> t = Table(); t.taus['I'] = 5.
        >>> type(t.taus).__name__, t.taus
        ('ObservedDict', {'E': 10.0, 'I': 5.0})
    """

    __slots__ = ()

    def __reduce_ex__(self, protocol: Any) -> Any:
        return (ObservedDict, (dict(self),))


for _m in ("__setitem__", "__delitem__", "__iadd__", "__imul__", "append", "extend", "insert", "pop",
           "remove", "clear", "sort", "reverse"):
    setattr(ObservedList, _m, _bumping(getattr(list, _m)))
for _m in ("__setitem__", "__delitem__", "__ior__", "update", "pop", "popitem", "clear", "setdefault"):
    setattr(ObservedDict, _m, _bumping(getattr(dict, _m)))

jax.tree_util.register_pytree_node(ObservedList, lambda x: (list(x), None), lambda _, c: ObservedList(c))
jax.tree_util.register_pytree_with_keys(
    ObservedDict,
    lambda x: ([(jax.tree_util.DictKey(k), v) for k, v in x.items()], tuple(x)),
    lambda keys, c: ObservedDict(zip(keys, c)),
    lambda x: (list(x.values()), tuple(x)))


def observe(value: Any) -> Any:
    """``value`` with its lists and dicts (also inside tuples) replaced by observed copies."""
    t = type(value)
    if t is list:
        return ObservedList(observe(v) for v in value)
    if t is dict:
        return ObservedDict((k, observe(v)) for k, v in value.items())
    if t is tuple:
        items = tuple(observe(v) for v in value)
        return value if all(a is b for a, b in zip(items, value)) else items
    return value


# -- tokens -----------------------------------------------------------------------------

class Identity:
    """A hashable stand-in that compares by identity (arrays in tokens are never compared by
    value; Modules passed to ``nd.jit`` as static arguments key its cache by identity)."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, Identity) and other.obj is self.obj

    def __hash__(self) -> int:
        return id(self.obj)


_VALUE = (bool, int, float, complex, str, bytes, type(None), type(...), np.generic, np.dtype, range,
          slice, enum.Enum)
_IDENTITY = (jax.Array, np.ndarray, type, types.FunctionType, types.BuiltinFunctionType, types.MethodType,
             types.ModuleType, jax.tree_util.Partial)
_STATEFUL: tuple = (Variable,)
_FUNCTION_WRAPPER_MODULES = frozenset({"jax", "jaxlib", "functools"})


def token(value: Any, volatile: list | None = None, _seen: frozenset = frozenset()) -> Any:
    """What a trace assumed about ``value``; equal tokens mean the same compiled code is valid.

    Appends True to ``volatile`` when the token covers data whose changes are not
    observed (a plain object's attributes, a plain list or dict, a set), which
    then has to be rechecked on every call.
    """
    if isinstance(value, _VALUE):
        return (type(value), value)
    if isinstance(value, _IDENTITY) or id(value) in _seen:
        return Identity(value)
    if callable(value) and type(value).__module__.partition(".")[0] in _FUNCTION_WRAPPER_MODULES:
        # walking their internals (hundreds of nodes for jax.nn.relu) on every call cost more
        # than the step it guards; like plain functions, they are compared by identity
        return Identity(value)
    if isinstance(value, _STATEFUL):
        return Identity(value)  # a Module's own attributes are recorded when they are read
    seen = _seen | {id(value)}
    if isinstance(value, (list, tuple)):
        if volatile is not None and not isinstance(value, (tuple, ObservedList)):
            volatile.append(True)
        return (type(value), tuple(token(v, volatile, seen) for v in value))
    if isinstance(value, dict):
        if volatile is not None and not isinstance(value, ObservedDict):
            volatile.append(True)
        return (type(value), tuple((k, token(v, volatile, seen)) for k, v in value.items()))
    if isinstance(value, (set, frozenset)):
        if volatile is not None and not isinstance(value, frozenset):
            volatile.append(True)
        return (type(value), frozenset(token(v, None, seen) for v in value))
    if isinstance(value, jax.ShapeDtypeStruct):
        return (type(value), value.shape, value.dtype)
    if dataclasses.is_dataclass(value) and value.__dataclass_params__.frozen:
        return (type(value), tuple(token(getattr(value, f.name), volatile, seen)
                                   for f in dataclasses.fields(value)))
    state = getattr(value, "__dict__", None)
    if state is None and hasattr(type(value), "__slots__"):
        state = {k: getattr(value, k) for k in _slot_names(type(value)) if hasattr(value, k)}
    if state is None:
        return Identity(value)  # an opaque object: only its identity can be compared
    if volatile is not None:
        volatile.append(True)
    return (type(value), id(value), tuple((k, token(v, volatile, seen)) for k, v in state.items()
                                          if not k.startswith("_nd_")))


def _slot_names(cls: type) -> list[str]:
    names: list[str] = []
    for c in cls.__mro__:
        s = c.__dict__.get("__slots__", ())
        names.extend([s] if isinstance(s, str) else s)
    return [n for n in names if n not in ("__dict__", "__weakref__")]


# -- recording the attributes a trace reads -------------------------------------------------

class _Recorders(threading.local):
    def __init__(self) -> None:
        self.stack: list[dict] = []


_REC = _Recorders()
_INSTALL_LOCK = threading.Lock()
_ACTIVE = [0]
_WATCHED: list[type] = []
_CLASS_CODE: dict[tuple[type, str], bool] = {}


def watch_reads(cls: type) -> None:
    """Record attribute reads on instances of ``cls`` (and subclasses) while tracing."""
    global _STATEFUL
    _WATCHED.append(cls)
    _STATEFUL = _STATEFUL + (cls,)


def _is_class_code(cls: type, name: str) -> bool:
    """True when ``cls.name`` is a method, property or other descriptor (not data)."""
    key = (cls, name)
    try:
        return _CLASS_CODE[key]
    except KeyError:
        pass
    found = False
    for c in cls.__mro__:
        if name in c.__dict__:
            attr = c.__dict__[name]
            found = hasattr(type(attr), "__get__") or isinstance(attr, (staticmethod, classmethod))
            break
    _CLASS_CODE[key] = found
    return found


def _recording_getattribute(self: Any, name: str) -> Any:
    value = object.__getattribute__(self, name)
    stack = _REC.stack
    if stack and name[:2] != "__":
        reads = stack[-1]
        key = (id(self), name)
        if key not in reads:
            if name in object.__getattribute__(self, "__dict__") or not _is_class_code(type(self), name):
                reads[key] = (self, name)
    return value


@contextmanager
def recording() -> Iterator[dict]:
    """Record the Module attributes read in this thread until the block ends.

    Yields a dict filled with ``(module, name)`` pairs; a recording nested in
    another passes what it saw on to the outer one.
    """
    reads: dict = {}
    with _INSTALL_LOCK:
        if _ACTIVE[0] == 0:
            for cls in _WATCHED:
                cls.__getattribute__ = _recording_getattribute
        _ACTIVE[0] += 1
    _REC.stack.append(reads)
    try:
        yield reads
    finally:
        _REC.stack.pop()
        if _REC.stack:
            _REC.stack[-1].update(reads)
        with _INSTALL_LOCK:
            _ACTIVE[0] -= 1
            if _ACTIVE[0] == 0:
                for cls in _WATCHED:
                    del cls.__getattribute__


_MISSING = object()


def _current(module: Any, name: str) -> Any:
    d = module.__dict__
    if name in d:
        return d[name]
    return getattr(type(module), name, _MISSING)


class Guards:
    """The tokens of the attributes one trace read, and the check that they still hold.

    Example:
        >>> import neurodyn as nd
        >>> class Scaled(nd.Module):
        ...     def __init__(self):
        ...         self.scale = 2.
        >>> m = Scaled()
        >>> from neurodyn._staleness import Guards, recording
        >>> with recording() as reads:
        ...     _ = m.scale
        >>> g = Guards(reads)
        >>> g.valid()
        True
        >>> m.scale = 3.
        >>> g.valid()
        False
    """

    __slots__ = ("items", "volatile", "epoch", "reads")

    def __init__(self, reads: dict) -> None:
        self.reads = dict(reads)
        self.items: list[tuple[Any, str, Any]] = []
        self.volatile: list[tuple[Any, str, Any]] = []
        for module, name in reads.values():
            vol: list = []
            tok = token(_current(module, name), vol)
            (self.volatile if vol else self.items).append((module, name, tok))
        self.epoch = EPOCH[0]

    def valid(self) -> bool:
        """True when every recorded attribute still has the value the trace compiled in."""
        for module, name, tok in self.volatile:
            if token(_current(module, name)) != tok:
                return False
        if self.epoch == EPOCH[0]:
            return True
        for module, name, tok in self.items:
            if token(_current(module, name)) != tok:
                return False
        self.epoch = EPOCH[0]
        return True

    def changed(self) -> list[str]:
        """``'Class.attr'`` of every recorded attribute that changed (for messages)."""
        out = []
        for module, name, tok in self.items + self.volatile:
            if token(_current(module, name)) != tok:
                out.append(f"{type(module).__name__}.{name}")
        return out
