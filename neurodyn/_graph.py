"""Split a Module into a structure and plain pytrees of state, and merge them back.

For working with raw JAX transformations: ``split`` gives a :class:`GraphDef`
(the module's structure, no values) and one or more *states*, plain dicts
mapping dotted paths to arrays; ``merge`` builds a fresh module from them. The
states are ordinary pytrees, so ``jax.jit``, ``jax.grad`` and optax handle them.
"""

from __future__ import annotations

from typing import Any

from ._module import Module, notify_state_replaced
from ._state import Variable

__all__ = ["GraphDef", "split", "merge", "states", "update"]


class GraphDef:
    """The structure of a module with its Variables' values left out.

    Hashable by identity, so it can be closed over or passed as a static
    argument. Made by :func:`split`; turned back into a module by :func:`merge`.

    Example:
        >>> import neurodyn as nd
        >>> model = nd.nn.Linear(3, 2)
        >>> graphdef, params, rest = nd.graph.split(model, nd.TrainVar, ...)
        >>> clone = nd.graph.merge(graphdef, params, rest)
        >>> graphdef
        GraphDef(Linear, variables=['weight', 'bias'])
    """

    __slots__ = ("_template", "_paths")

    def __init__(self, template: Module, paths: tuple[str, ...]) -> None:
        self._template = template
        self._paths = paths

    def __repr__(self) -> str:
        return f"GraphDef({type(self._template).__name__}, variables={list(self._paths)})"


def _matches(var: Variable, flt: Any) -> bool:
    if flt is ...:
        return True
    if isinstance(flt, type):
        return isinstance(var, flt)
    if isinstance(flt, tuple):
        return any(_matches(var, f) for f in flt)
    if callable(flt):
        return bool(flt(var))
    raise TypeError(f"a filter must be a Variable type, a tuple of them, ... or a predicate; got {flt!r}")


def _partition(module: Module, filters: tuple) -> list[dict[str, Any]]:
    if not isinstance(module, Module):
        raise TypeError(f"expected a Module, got {type(module).__name__}")
    filters = filters or (...,)
    parts: list[dict[str, Any]] = [{} for _ in filters]
    for path, var in module.vars().items():
        for k, flt in enumerate(filters):
            if _matches(var, flt):
                parts[k][path] = var.value
                break
    return parts


def states(module: Module, *filters: Any) -> Any:
    """The values of a module's Variables as ``{path: array}`` dicts, one per filter.

    Filters are Variable types (``nd.TrainVar``), tuples of types, predicates, or
    ``...`` (everything not yet taken). With one filter (or none) a single dict
    is returned, else a tuple. Each Variable goes to the first filter it matches.

    Example:
        >>> import neurodyn as nd
        >>> model = nd.nn.Linear(3, 2)
        >>> params = nd.graph.states(model, nd.TrainVar)
        >>> sorted(params)
        ['bias', 'weight']
    """
    parts = _partition(module, filters)
    return parts[0] if len(parts) == 1 else tuple(parts)


def split(module: Module, *filters: Any) -> tuple:
    """``(graphdef, state, ...)``: the structure and the values, one state per filter.

    Every Variable must match a filter: end with ``...`` to take the rest.

    Example:
        >>> import neurodyn as nd
        >>> model = nd.nn.Linear(3, 2)
        >>> graphdef, params, rest = nd.graph.split(model, nd.TrainVar, ...)
        >>> sorted(params), rest
        (['bias', 'weight'], {})
    """
    parts = _partition(module, filters)
    all_paths = tuple(module.vars())
    taken = sum(len(p) for p in parts)
    if taken != len(all_paths):
        left = [p for p in all_paths if not any(p in part for part in parts)]
        raise ValueError(f"nd.graph.split: Variables {left} match no filter; add ... as the last filter")
    template = _clone(module, {}, None)
    return (GraphDef(template, all_paths), *parts)


def merge(graphdef: GraphDef, *states: dict[str, Any]) -> Module:
    """A new module with ``graphdef``'s structure and the values in ``states``.

    Works inside ``jax.jit``: the new module's Variables hold the traced values.

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> import neurodyn as nd
        >>> model = nd.nn.Linear(3, 2)
        >>> graphdef, params = nd.graph.split(model)
        >>> @jax.jit
        ... def apply(params, x):
        ...     return nd.graph.merge(graphdef, params)(x)
        >>> apply(params, jnp.ones((1, 3))).shape
        (1, 2)
    """
    values: dict[str, Any] = {}
    for s in states:
        values.update(s)
    missing = [p for p in graphdef._paths if p not in values]
    if missing:
        raise KeyError(f"nd.graph.merge: no value for Variables {missing}")
    unexpected = [p for p in values if p not in graphdef._paths]
    if unexpected:
        raise KeyError(f"nd.graph.merge: values for unknown paths {unexpected}")
    by_id = {id(v): values[p] for p, v in graphdef._template.vars().items()}
    return _clone(graphdef._template, {}, by_id)


def update(module: Module, *states: dict[str, Any]) -> None:
    """Write values from ``states`` into the module's Variables, in place.

    Example:
        >>> import jax
        >>> import neurodyn as nd
        >>> model = nd.nn.Linear(3, 2)
        >>> params = nd.graph.states(model, nd.TrainVar)
        >>> nd.graph.update(model, jax.tree.map(lambda p: p * 0, params))
        >>> float(abs(model.weight.value).sum())
        0.0
    """
    own = module.vars()
    for s in states:
        for path, value in s.items():
            if path not in own:
                raise KeyError(f"nd.graph.update: {type(module).__name__} has no Variable '{path}'")
            own[path].value = value
    notify_state_replaced(module)


def _clone(obj: Any, memo: dict[int, Any], values: dict[int, Any] | None) -> Any:
    """Copy the module structure; Variables get new objects holding ``values``."""
    i = id(obj)
    if i in memo:
        return memo[i]
    if isinstance(obj, Variable):
        value = obj.committed_value if values is None else values[i]
        new = type(obj).from_raw(value, name=obj.name)
        new.__dict__.update(obj.__dict__)
        memo[i] = new
        return new
    if isinstance(obj, Module):
        new = object.__new__(type(obj))
        memo[i] = new
        d = new.__dict__
        for k, v in obj.__dict__.items():
            d[k] = _clone(v, memo, values)
        return new
    if isinstance(obj, list):
        return [_clone(v, memo, values) for v in obj]
    if isinstance(obj, tuple) and not hasattr(obj, "_fields"):
        return tuple(_clone(v, memo, values) for v in obj)
    if isinstance(obj, dict):
        return {k: _clone(v, memo, values) for k, v in obj.items()}
    return obj

