"""How many threads XLA:CPU runs compiled code on (Linux).

XLA:CPU sizes its execution thread pool from the process's CPU affinity when the
backend starts, and hands the operations of a compiled program to that pool. A time
step of a spiking network, or of a training step through time, is many small
operations, and on a machine with few cores handing them between threads costs more
than it gains: on a 2-core machine one execution thread ran every ``bench/suite.py``
network, the plasticity benchmark and a training epoch faster than two
(``bench/README.md``). So on machines where the process may use at most two CPUs,
neurodyn starts XLA:CPU with one execution thread; elsewhere it leaves XLA's default.

The setting is applied when neurodyn builds its first object (a ``Module``, a
``Variable``, or a key of ``nd.random``: seeding or a first draw), not at ``import neurodyn``: JAX's backend must not start at import,
because ``jax.distributed.initialize`` and some ``jax.config`` options have to come
before it. Compilation and Python keep every core: the affinity is narrowed only while
the backend starts, and restored on every thread the backend started.
"""

from __future__ import annotations

import os
import warnings

__all__ = ["set_cpu_threads"]

ENV_VAR = "NEURODYN_CPU_THREADS"
# at or below this many usable CPUs, one execution thread is the default (measured on 2)
_FEW_CPUS = 2

# (thread count, asked for by the user) still to apply when neurodyn builds its first
# object; None once applied or when there is nothing to do.
pending: tuple[int, bool] | None = None
# the pool size set_cpu_threads gave XLA:CPU; None while XLA's default holds
threads: int | None = None


def set_cpu_threads(n: int) -> None:
    """Run XLA:CPU's compiled code on ``n`` threads (call before the first JAX computation).

    Starts JAX's backends with XLA:CPU's execution thread pool sized ``n``, by
    narrowing the process's CPU affinity to ``n`` of its cores while they start,
    then restoring it on every thread. Without a call, neurodyn chooses when it
    builds its first object: one thread where the process may use at most two
    CPUs, XLA's default (one per core) elsewhere. The environment variable
    ``NEURODYN_CPU_THREADS`` overrides that choice: an integer ``n``, ``xla``
    for XLA's default, or ``auto`` (the default).

    Raises ``RuntimeError`` once a JAX backend has started (the pool size is
    fixed then), ``ValueError`` for a bad ``n``, and ``NotImplementedError``
    where the OS has no CPU affinity (``os.sched_setaffinity``: Linux only).

    Example:
        >>> import subprocess, sys
        >>> code = "import neurodyn as nd; nd.set_cpu_threads(1); import jax; print(jax.numpy.ones(2).sum())"
        >>> subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
        '2.0\\n'
    """
    global pending, threads
    from jax._src import xla_bridge

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_cpu_threads: n must be an int >= 1, got {n!r}")
    if not hasattr(os, "sched_setaffinity"):
        raise NotImplementedError("set_cpu_threads: this OS has no CPU affinity (os.sched_setaffinity); "
                                  "it is available on Linux")
    if xla_bridge.backends_are_initialized():
        raise RuntimeError("set_cpu_threads: JAX's backends have already started, and XLA:CPU's thread "
                           "pool size is fixed then; call it before the first JAX computation "
                           f"(or set {ENV_VAR}={n} in the environment)")
    mask = os.sched_getaffinity(0)
    existing = _thread_ids()
    os.sched_setaffinity(0, sorted(mask)[:n])
    try:
        xla_bridge.backends()
    finally:
        os.sched_setaffinity(0, mask)
        # The backend's other threads (compilation, dispatch) inherited the narrowed mask and
        # would pass it on to the threads they start; widened again, the pool keeps its size and
        # compiling keeps every core (COBA's compile took 2.3 s instead of 1.3 s while they stayed
        # narrowed).
        for tid in _thread_ids() - existing:
            try:
                os.sched_setaffinity(tid, mask)
            except OSError:  # the thread has ended
                pass
    pending, threads = None, n


def _thread_ids() -> set[int]:
    try:
        return {int(t) for t in os.listdir("/proc/self/task")}
    except OSError:
        return set()


def _usable_cpus() -> int | None:
    if not (hasattr(os, "sched_getaffinity") and hasattr(os, "sched_setaffinity")):
        return None
    return len(os.sched_getaffinity(0))


def _from_environment() -> None:
    """Read ``NEURODYN_CPU_THREADS`` at import (a bad value fails here) and note what to apply."""
    global pending
    from jax._src import xla_bridge

    raw = os.environ.get(ENV_VAR, "")
    value = raw.strip().lower()
    if value == "xla":
        return
    if value in ("", "auto"):
        cpus = _usable_cpus()
        if cpus is not None and cpus <= _FEW_CPUS and not xla_bridge.backends_are_initialized():
            pending = (1, False)
        return
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"{ENV_VAR} must be 'auto', 'xla' or an integer >= 1, got {raw!r}")
    if xla_bridge.backends_are_initialized():
        # importing neurodyn after a first JAX computation must not fail; the setting just cannot apply
        warnings.warn(f"{ENV_VAR}={raw} is ignored: JAX's backends started before neurodyn was imported, "
                      "and XLA:CPU's thread pool size is fixed then", RuntimeWarning, stacklevel=3)
        return
    if _usable_cpus() is None:
        warnings.warn(f"{ENV_VAR}={raw} is ignored: this OS has no CPU affinity (os.sched_setaffinity)",
                      RuntimeWarning, stacklevel=3)
        return
    pending = (n, True)


def apply_pending() -> None:
    """Apply the environment's (or the automatic) setting; called as neurodyn builds an object."""
    global pending
    todo, pending = pending, None
    if todo is None:
        return
    from jax._src import xla_bridge

    n, asked = todo
    if xla_bridge.backends_are_initialized():
        if asked:
            warnings.warn(f"{ENV_VAR}={n} is ignored: JAX's backends started (a JAX computation ran) before "
                          "neurodyn built its first object, and XLA:CPU's thread pool size is fixed then",
                          RuntimeWarning, stacklevel=3)
        return
    set_cpu_threads(n)


def describe() -> str:
    """The execution pool's size as neurodyn set it, or will set it, for benchmark headers."""
    from jax._src import xla_bridge

    if xla_bridge.backends_are_initialized() or pending is None:
        return f"{threads} (set by neurodyn)" if threads else "XLA's default (one per core)"
    n, asked = pending
    why = f"{ENV_VAR}={n}" if asked else f"automatic, {_usable_cpus()} usable CPUs"
    return f"{n} ({why}; applied at neurodyn's first object)"
