"""Module: the PyTorch-like base class whose state lives in Variables."""

from __future__ import annotations

from typing import Any, Iterator, Mapping

import jax
import numpy as np

from . import _cpu
from ._staleness import EPOCH, observe, watch_reads
from ._state import CTX, TrainVar, Variable, is_traced

__all__ = ["Module"]

_MISSING = object()


def _contains(value: Any, pred: Any, depth: int = 0) -> bool:
    if pred(value):
        return True
    if depth > 3:
        return False
    if isinstance(value, (list, tuple)):
        return any(_contains(v, pred, depth + 1) for v in value)
    if isinstance(value, dict):
        return any(_contains(v, pred, depth + 1) for v in value.values())
    return False


def _born_in_active_trace(value: Any) -> bool:
    if isinstance(value, Variable):
        return any(id(value) in f.born for f in CTX.frames)
    if isinstance(value, Module):
        return value.__dict__.get("_nd_local", False)
    return False


class Module:
    """Base class for models: layers, neuron groups, networks.

    Attributes that are Variables or Modules (also inside lists, tuples and
    dicts) are found automatically; there is nothing to register. Calling the
    module runs ``update`` (the name used for dynamics) or ``forward``.

    Plain attributes (numbers, flags, arrays that are not Variables) are
    compile-time constants of compiled code; assigning a new value to one from
    outside makes the next compiled call re-trace, so a stale value is never
    used.

    Example:
        >>> import neurodyn as nd
        >>> class Counter(nd.Module):
        ...     def __init__(self):
        ...         self.count = nd.Variable(0)
        ...     def update(self, n):
        ...         self.count += n
        ...         return self.count.value
        >>> c = Counter()
        >>> step = nd.jit(c)
        >>> _ = step(2); _ = step(3)
        >>> int(c.count)
        5
    """

    training: bool = True

    def __new__(cls, *args: Any, **kwargs: Any) -> "Module":
        if _cpu.pending is not None:  # the first object: size XLA:CPU's pool before JAX starts
            _cpu.apply_pending()
        obj = super().__new__(cls)
        if CTX.frames:
            # Created inside compiled code: a temporary that dies with the trace.
            object.__setattr__(obj, "_nd_local", True)
        return obj

    def __setattr__(self, name: str, value: Any) -> None:
        d = self.__dict__
        old = d.get(name, _MISSING)
        if old is value:  # ``self.v += 1`` rebinds the same Variable
            return
        if isinstance(old, Variable) and not isinstance(value, Variable):
            raise TypeError(
                f"{type(self).__name__}.{name} holds a {type(old).__name__}; assigning a "
                f"{type(value).__name__} would replace it instead of updating it. Write "
                f"`self.{name}.value = x` (or `self.{name}[...] = x`) to update its value, "
                f"or `del self.{name}` first if you really mean to replace it."
            )
        local = d.get("_nd_local", False)
        if CTX.frames or is_traced(value):
            if not local:
                self._check_assign_in_trace(name, value, old)
        else:
            EPOCH[0] += 1
        if isinstance(value, Variable) and value.name is None:
            value.name = f"{type(self).__name__}.{name}"
        object.__setattr__(self, name, observe(value))

    def _check_assign_in_trace(self, name: str, value: Any, old: Any) -> None:
        where = f"{type(self).__name__}.{name}"
        if _contains(value, is_traced):
            raise RuntimeError(
                f"Assigning a traced value to the plain attribute {where} inside compiled "
                "code would leak the tracer out of the compiled call. Keep changing state "
                f"in a Variable: create `self.{name} = nd.Variable(init)` in __init__ and "
                f"write `self.{name}.value = x` here."
            )
        if _contains(value, _born_in_active_trace):
            raise RuntimeError(
                f"A Variable or Module created inside compiled code was assigned to {where}; "
                "it would outlive the compiled call holding dead tracers. Create it in "
                "__init__ (or reset_state()) outside compiled code, then update its value."
            )
        if isinstance(old, (Variable, Module)) or _contains(value, lambda v: isinstance(v, (Variable, Module))):
            raise RuntimeError(
                f"Changing the structure of a model ({where}) inside compiled code is not "
                "supported; do it outside the compiled call (the next call re-traces)."
            )

    def __delattr__(self, name: str) -> None:
        if CTX.frames and not self.__dict__.get("_nd_local", False):
            raise RuntimeError(f"Deleting {type(self).__name__}.{name} inside compiled code is not supported.")
        EPOCH[0] += 1
        object.__delattr__(self, name)

    # -- calling -----------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        cls = type(self)
        if cls.update is not Module.update:
            return self.update(*args, **kwargs)
        if cls.forward is not Module.forward:
            return self.forward(*args, **kwargs)
        raise NotImplementedError(f"{cls.__name__} defines neither update() nor forward().")

    def update(self, *args: Any, **kwargs: Any) -> Any:
        """One step of the module's dynamics (override this or ``forward``)."""
        cls = type(self)
        if cls.forward is not Module.forward:
            return self.forward(*args, **kwargs)
        raise NotImplementedError(f"{cls.__name__} defines neither update() nor forward(): a Module's "
                                  "computation (one step of its dynamics) goes in update() or forward().")

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The module's computation (override this or ``update``)."""
        cls = type(self)
        if cls.update is not Module.update:
            return self.update(*args, **kwargs)
        raise NotImplementedError(f"{cls.__name__} defines neither forward() nor update(): a Module's "
                                  "computation (one step of its dynamics) goes in update() or forward().")

    # -- traversal -----------------------------------------------------------------
    def _children(self) -> Iterator[tuple[str, Any]]:
        for k, v in self.__dict__.items():
            if not k.startswith("_nd_"):
                yield k, v

    def _walk(self, prefix: str, seen: set[int]) -> Iterator[tuple[str, Any]]:
        """Yield (path, obj) for every Variable and Module below self, once each."""
        for name, value in self._children():
            yield from _walk_value(value, f"{prefix}{name}", seen)

    def vars(self, *types: type) -> dict[str, Variable]:
        """All Variables below this module, keyed by dotted path (shared ones once).

        ``types`` restricts the result to those Variable subclasses.

        Example:
            >>> import neurodyn as nd
            >>> net = nd.nn.Sequential(nd.nn.Linear(3, 4), nd.nn.Linear(4, 2))
            >>> list(net.vars())
            ['layers.0.weight', 'layers.0.bias', 'layers.1.weight', 'layers.1.bias']
        """
        out = {}
        for path, obj in self._walk("", {id(self)}):
            if isinstance(obj, Variable) and (not types or isinstance(obj, types)):
                out[path] = obj
        return out

    def train_vars(self) -> dict[str, TrainVar]:
        """The trainable parameters (``TrainVar``) below this module, by path."""
        return self.vars(TrainVar)  # type: ignore[return-value]

    def modules(self) -> dict[str, "Module"]:
        """This module (key ``''``) and every submodule, keyed by dotted path."""
        out: dict[str, Module] = {"": self}
        for path, obj in self._walk("", {id(self)}):
            if isinstance(obj, Module):
                out[path] = obj
        return out

    def children(self) -> dict[str, "Module"]:
        """The direct submodules, keyed by path."""
        out = {}
        for name, value in self._children():
            for path, obj in _walk_value(value, name, set(), recurse=False):
                if isinstance(obj, Module):
                    out[path] = obj
        return out

    def get(self, path: str) -> Any:
        """The object at a dotted path (``'E.V'``, ``'layers.0.weight'``)."""
        obj: Any = self
        for part in path.split("."):
            try:
                if isinstance(obj, (list, tuple)):
                    obj = obj[int(part)]
                elif isinstance(obj, dict):
                    obj = obj[part]
                else:
                    obj = getattr(obj, part)
            except (AttributeError, KeyError, IndexError, ValueError):
                raise KeyError(
                    f"{type(self).__name__} has no attribute path '{path}' (failed at '{part}'). "
                    f"Variables here: {sorted(self.vars())[:20]}"
                ) from None
        return obj

    # -- state -----------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Every Variable's value as a NumPy array, keyed by dotted path."""
        return {k: np.asarray(v.value) for k, v in self.vars().items()}

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> None:
        """Load values saved by :meth:`state_dict`; checks every entry first.

        With ``strict`` missing and unexpected keys are errors; a shape or dtype
        mismatch is always an error. Nothing is changed if any check fails.
        """
        own = self.vars()
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if strict and (missing or unexpected):
            raise KeyError(
                f"load_state_dict into {type(self).__name__}: missing keys {missing}, "
                f"unexpected keys {unexpected}"
            )
        staged = []
        for k, var in own.items():
            if k not in state:
                continue
            value = np.asarray(state[k])
            if value.shape != var.shape:
                raise ValueError(
                    f"load_state_dict into {type(self).__name__}: '{k}' expects shape "
                    f"{var.shape}, got {value.shape}"
                )
            staged.append((var, value))
        for var, value in staged:
            var.value = value
        notify_state_replaced(self)

    def train(self, mode: bool = True) -> "Module":
        """Set the ``training`` flag on this module and every submodule."""
        for m in self.modules().values():
            if m.__dict__.get("training", type(m).training) != mode:
                m.training = mode
        return self

    def eval(self) -> "Module":
        """Evaluation mode: ``train(False)``."""
        return self.train(False)

    def _state_replaced(self) -> None:
        """Hook: neurodyn replaced Variable values in bulk outside compiled code
        (``load_state_dict``, ``nd.graph.update``, placement on a mesh). A module
        that keeps host-side data derived from its Variables rebuilds it here."""

    def reset_state(self, batch_size: int | None = None) -> None:
        """Reset the dynamical state of every submodule (override for own state)."""
        for child in self.children().values():
            child.reset_state(batch_size)

    def _repr_extra(self) -> str:
        """A short summary of hyperparameters for ``repr`` (override; default none).

        Shown on the module's line of ``print(model)``, as PyTorch's
        ``extra_repr``. Keep it to one line: sizes, time constants, flags.

        Example:
            >>> import neurodyn as nd
            >>> import jax.numpy as jnp
            >>> class Leaky(nd.Module):
            ...     def __init__(self, n, tau=10.):
            ...         self.tau = tau
            ...         self.v = nd.Variable(jnp.zeros(n))
            ...     def _repr_extra(self):
            ...         return f"tau={self.tau}"
            >>> print(Leaky(3))
            Leaky(
              tau=10.0
              (v): Variable(shape=(3,), dtype=float32)
            )
        """
        return ""

    def __repr__(self) -> str:
        """The module tree: submodules indented, each Variable's kind, shape and dtype.

        Example:
            >>> import neurodyn as nd
            >>> import jax.numpy as jnp
            >>> class Block(nd.Module):
            ...     def __init__(self):
            ...         self.w = nd.TrainVar(jnp.ones((2, 3)))
            ...         self.layers = [nd.Module(), {'rng': nd.RandomState(0)}]
            >>> print(Block())
            Block(
              (w): TrainVar(shape=(2, 3), dtype=float32)
              (layers): [
                (0): Module()
                (1): {
                  (rng): RandomState(shape=(2,), dtype=uint32)
                }
              ]
            )
        """
        return "\n".join(_tree_lines(self, "", {id(self): ""}))


def _repr_extra_of(m: Module) -> str:
    extra = m._repr_extra()
    if extra or type(m).__repr__ is Module.__repr__:
        return extra
    # A class that prints itself on one line as ``Name(args)``: show its args.
    own = type(m).__repr__(m)
    name = type(m).__name__
    if "\n" not in own and own.startswith(name + "(") and own.endswith(")"):
        return own[len(name) + 1:-1]
    return ""


def _holds_state(value: Any) -> bool:
    if isinstance(value, (Module, Variable)):
        return True
    if isinstance(value, (list, tuple)):
        return any(_holds_state(v) for v in value)
    if isinstance(value, dict):
        return any(_holds_state(v) for v in value.values())
    return False


def _tree_lines(m: Module, path: str, seen: dict[int, str]) -> list[str]:
    """Lines of ``repr(m)``; ``seen`` maps objects already shown to their paths."""
    extra = _repr_extra_of(m)
    body = [f"  {extra}"] if extra else []
    for name, value in m._children():
        if _holds_state(value):
            body.extend("  " + line for line in _entry_lines(name, value, f"{path}{name}", seen))
    head = type(m).__name__
    if not body:
        return [f"{head}()"]
    if len(body) == 1 and extra:
        return [f"{head}({extra})"]
    return [f"{head}(", *body, ")"]


def _entry_lines(label: Any, value: Any, path: str, seen: dict[int, str]) -> list[str]:
    tag = f"({label}): "
    if isinstance(value, (Module, Variable)) and id(value) in seen:
        kind = type(value).__name__
        return [f"{tag}{kind}  # shared with {seen[id(value)] or 'the root'}"]
    if isinstance(value, Variable):
        seen[id(value)] = path
        return [f"{tag}{type(value).__name__}(shape={tuple(value.shape)}, dtype={value.dtype})"]
    if isinstance(value, Module):
        seen[id(value)] = path
        lines = _tree_lines(value, path + ".", seen)
        return [tag + lines[0], *lines[1:]]
    items = value.items() if isinstance(value, dict) else enumerate(value)
    opening, closing = ("{", "}") if isinstance(value, dict) else (("[", "]") if isinstance(value, list)
                                                                   else ("(", ")"))
    lines = [tag + opening]
    for k, v in items:
        if _holds_state(v):
            lines.extend("  " + line for line in _entry_lines(k, v, f"{path}.{k}", seen))
    return lines + [closing]


def _walk_value(value: Any, path: str, seen: set[int], recurse: bool = True) -> Iterator[tuple[str, Any]]:
    if isinstance(value, Variable):
        if id(value) not in seen:
            seen.add(id(value))
            yield path, value
    elif isinstance(value, Module):
        if id(value) not in seen:
            seen.add(id(value))
            yield path, value
            if recurse:
                yield from value._walk(path + ".", seen)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _walk_value(v, f"{path}.{i}", seen, recurse)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _walk_value(v, f"{path}.{k}", seen, recurse)


def notify_state_replaced(*roots: Module) -> None:
    """Call :meth:`Module._state_replaced` on every module under ``roots`` (once each)."""
    seen: set[int] = set()
    for root in roots:
        for m in root.modules().values():
            if id(m) not in seen:
                seen.add(id(m))
                m._state_replaced()


watch_reads(Module)
