"""The simulation step ``dt``, the float precision and per-step shared values (``t``, ``i``).

``dt`` is a Python float: a compile-time constant of compiled code. Changing it
(``set_dt`` or ``context(dt=...)``) makes compiled functions re-trace.
``t`` and ``i`` are set by the Runner for every step (traced values inside the
compiled loop) and read by models through ``nd.share.t`` / ``nd.share.i``.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Iterator

import jax
import numpy as np

from ._module import EPOCH

__all__ = ["set_dt", "get_dt", "context", "share", "get", "set_precision", "get_precision",
           "float_dtype", "time_to_steps"]

_DT = [0.1]
# float64 when JAX itself was started with x64 (JAX_ENABLE_X64=1), float32 otherwise
_PRECISION = [64 if jax.config.jax_enable_x64 else 32]


class _Stack(threading.local):
    def __init__(self) -> None:
        self.stack: list[dict[str, Any]] = []


_LOCAL = _Stack()


def set_dt(dt: float) -> None:
    """Set the global simulation step in ms (default 0.1).

    Example:
        >>> import neurodyn as nd
        >>> nd.set_dt(0.05)
        >>> nd.get_dt()
        0.05
        >>> nd.set_dt(0.1)                       # back to the default
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
        >>> import neurodyn as nd
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


def set_precision(bits: int) -> None:
    """Simulate and train in float32 (``bits=32``, the default) or float64 (``bits=64``).

    Every Variable, initializer, synaptic weight and integrator created after
    this call uses :func:`float_dtype`. float64 needs JAX's global x64 mode,
    which this switches on (or off for 32), so call it once at the start of a
    program, before building models: Variables created earlier keep their
    dtype. Compiled functions re-trace afterwards. Starting Python with
    ``JAX_ENABLE_X64=1`` makes float64 the default.

    Example:
        >>> import neurodyn as nd
        >>> nd.set_precision(64)
        >>> nd.nn.LIF(10).V.dtype
        dtype('float64')
        >>> nd.set_precision(32)                 # back to the default
    """
    if bits not in (32, 64) or isinstance(bits, bool):
        raise ValueError(f"set_precision: bits must be 32 or 64, got {bits!r}")
    jax.config.update("jax_enable_x64", bits == 64)
    if bits != _PRECISION[0]:
        _PRECISION[0] = bits
        EPOCH[0] += 1


def get_precision() -> int:
    """The float precision in bits: 32 (default) or 64 (see :func:`set_precision`).

    Example:
        >>> import neurodyn as nd
        >>> nd.get_precision()
        32
    """
    return _PRECISION[0]


def float_dtype() -> np.dtype:
    """The float dtype of model state and parameters: float32, or float64 after ``set_precision(64)``.

    Example:
        >>> import jax.numpy as jnp
        >>> import neurodyn as nd
        >>> jnp.zeros(3, nd.float_dtype()).dtype
        dtype('float32')
    """
    return np.dtype(np.float64) if _PRECISION[0] == 64 else np.dtype(np.float32)


def half_up_steps(duration: Any, dt: float, tol: float = 1e-9) -> np.ndarray:
    """``duration / dt`` rounded half up, elementwise (int64); ratios within ``tol`` below a
    half-integer count as that half-integer. The one rounding rule of times to steps."""
    return np.floor(np.asarray(duration, np.float64) / float(dt) + 0.5 + tol).astype(np.int64)


def time_to_steps(duration: float, dt: float | None = None, what: str = "duration") -> int:
    """The number of steps of ``dt`` in ``duration`` ms, rounded half up (as Brian2 and NEST).

    A ratio within 1e-9 of a half-integer counts as that half-integer, so
    ``0.25 / 0.1`` (2.4999999999999996 in floating point) gives 3.
    ``dt`` defaults to :func:`get_dt`.

    Example:
        >>> import neurodyn as nd
        >>> nd.time_to_steps(0.25, dt=0.1)
        3
    """
    dt = get_dt() if dt is None else float(dt)
    duration = float(duration)
    if not duration >= 0:
        raise ValueError(f"{what} must be >= 0 ms, got {duration}")
    return int(half_up_steps(duration, dt))


def get(name: str, default: Any = ...) -> Any:
    """A shared value set by the Runner or :func:`context` (``'t'``, ``'i'``, ``'dt'``).

    Example:
        >>> from neurodyn import _environ
        >>> with _environ.context(i=3):
        ...     _environ.get("i"), _environ.get("t", default=0.)
        (3, 0.0)
    """
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
        >>> import neurodyn as nd
        >>> with nd.context(dt=0.05, t=2.):
        ...     nd.get_dt(), float(nd.share.t)
        (0.05, 2.0)
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
