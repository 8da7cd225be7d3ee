"""How many threads XLA:CPU runs compiled code on (an opt-in setting, Linux only).

XLA:CPU sizes its execution thread pool from the process's CPU affinity when the
backend starts, and splits large loops and independent operations over that pool.
The simulations and training steps of small and mid-sized networks are made of many
small operations per time step, and handing them between threads costs more than it
gains: on a 2-core machine one execution thread ran a spiking network's training epoch in
0.76x the time of two, and every ``bench/suite.py`` network faster (``bench/README.md``).
Compilation and Python keep every core: the affinity is narrowed only while the
backend starts.
"""

from __future__ import annotations

import os
import warnings

__all__ = ["set_cpu_threads"]

ENV_VAR = "NEURODYN_CPU_THREADS"


def set_cpu_threads(n: int) -> None:
    """Run XLA:CPU's compiled code on ``n`` threads (call before the first JAX computation).

    Starts JAX's CPU backend with its execution thread pool sized ``n``, by
    narrowing the process's CPU affinity to ``n`` of its cores while the
    backend starts, then restoring it. Setting the environment variable
    ``NEURODYN_CPU_THREADS=n`` does the same at ``import neurodyn`` (with a
    warning instead of an error if JAX has already started by then).

    Raises ``RuntimeError`` once a JAX backend has started (the pool size is
    fixed then) and ``NotImplementedError`` where the OS has no CPU affinity
    (``os.sched_setaffinity``: Linux only).

    Example:
        >>> import subprocess, sys
        >>> code = "import neurodyn as nd; nd.set_cpu_threads(1); import jax; print(jax.numpy.ones(2).sum())"
        >>> subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
        '2.0\\n'
    """
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
    os.sched_setaffinity(0, sorted(mask)[:n])
    try:
        xla_bridge.backends()
    finally:
        os.sched_setaffinity(0, mask)


def _from_environment() -> None:
    value = os.environ.get(ENV_VAR)
    if not value:
        return
    try:
        n = int(value)
    except ValueError:
        raise ValueError(f"{ENV_VAR} must be an integer >= 1, got {value!r}") from None
    from jax._src import xla_bridge

    if xla_bridge.backends_are_initialized():
        # importing neurodyn after a first JAX computation must not fail; the setting just cannot apply
        warnings.warn(f"{ENV_VAR}={value} is ignored: JAX's backends started before neurodyn was imported, "
                      "and XLA:CPU's thread pool size is fixed then", RuntimeWarning, stacklevel=3)
        return
    set_cpu_threads(n)
