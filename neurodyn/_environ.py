"""The simulation step ``dt`` and per-step shared values (``t``, ``i``).

``dt`` is a Python float: a compile-time constant of compiled code. Changing it
(``set_dt`` or ``context(dt=...)``) makes compiled functions re-trace.
``t`` and ``i`` are set by the Runner for every step (traced values inside the
compiled loop) and read by models through ``nd.share.t`` / ``nd.share.i``.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Iterator

from ._module import EPOCH

__all__ = ["set_dt", "get_dt", "context", "share", "get"]

_DT = [0.1]


class _Stack(threading.local):
    def __init__(self) -> None:
        self.stack: list[dict[str, Any]] = []


_LOCAL = _Stack()


def set_dt(dt: float) -> None:
    """Set the global simulation step in ms (default 0.1).

    Example:
        >>> nd.set_dt(0.05)
    """
    dt = float(dt)
    if not dt > 0:
        raise ValueError(f"dt must be a positive number of ms, got {dt}")
    if dt != _DT[0]:
        _DT[0] = dt
        EPOCH[0] += 1


def get_dt() -> float:
    """The current simulation step in ms (the innermost ``context(dt=...)`` wins).

    Example:
        >>> nd.get_dt()
        0.1
        >>> with nd.context(dt=0.05):
        ...     nd.get_dt()
        0.05
    """
    for frame in reversed(_LOCAL.stack):
        if "dt" in frame:
            return frame["dt"]
    return _DT[0]


def get(name: str, default: Any = ...) -> Any:
    """A shared value set by the Runner or :func:`context` (``'t'``, ``'i'``, ``'dt'``)."""
    if name == "dt":
        return get_dt()
    for frame in reversed(_LOCAL.stack):
        if name in frame:
            return frame[name]
    if default is not ...:
        return default
    raise KeyError(
        f"nd.share.{name} is not set: the Runner sets 't' and 'i' for every step; outside a "
        f"Runner use `with nd.context({name}=...):`"
    )


@contextlib.contextmanager
def context(**values: Any) -> Iterator[None]:
    """Set shared values (``dt``, ``t``, ``i``, anything) for a block of code.

    Example:
        >>> with nd.context(dt=0.05, t=0.):
        ...     model.update()
    """
    if "dt" in values:
        values["dt"] = float(values["dt"])
        if not values["dt"] > 0:
            raise ValueError(f"dt must be a positive number of ms, got {values['dt']}")
    changes_dt = "dt" in values and values["dt"] != get_dt()
    _LOCAL.stack.append(values)
    if changes_dt:
        EPOCH[0] += 1
    try:
        yield
    finally:
        _LOCAL.stack.pop()
        if changes_dt:
            EPOCH[0] += 1


class _Share:
    """Attribute access to shared values: ``nd.share.t``, ``nd.share.i``, ``nd.share.dt``."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return get(name)

    def __repr__(self) -> str:
        merged: dict[str, Any] = {"dt": get_dt()}
        for frame in _LOCAL.stack:
            merged.update(frame)
        return f"nd.share({merged})"


share = _Share()
