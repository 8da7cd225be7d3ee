"""neurodyn: stateful neural dynamics on JAX.

Models are Python classes (:class:`Module`) whose changing state lives in
:class:`Variable` objects; :func:`jit` compiles functions, objects and methods
and finds every Variable they use by itself.

Example:
    >>> import jax.numpy as jnp
    >>> import neurodyn as nd
    >>> count = nd.Variable(0)
    >>> @nd.jit
    ... def step(x):
    ...     count.value += 1          # updated in place, found by nd.jit
    ...     return 2 * x
    >>> step(jnp.ones(2)), int(count.value)
    (Array([2., 2.], dtype=float32), 1)
"""

from . import graph, random, surrogate
from . import _integrators as integrators
from ._integrators import odeint
from ._environ import (context, float_dtype, get_dt, get_precision, set_dt, set_precision, share,
                       time_to_steps)
from ._jit import JittedFunction, jit
from ._module import Module
from ._random import RandomState
from ._monitors import SpikeMonitor, SpikeRecord
from ._runner import Monitors, Runner
from ._state import TrainVar, Variable, in_trace
from ._transforms import cond, for_loop, grad, value_and_grad, vmap, while_loop
from ._checkpoint import load, save
from . import _cpu
from ._cpu import set_cpu_threads
from ._trainer import Trainer
from . import analysis, distributed, encoders, nir, nn, optim, visualize
from . import models

__version__ = "0.1.0"

__all__ = [
    "Variable", "TrainVar", "RandomState", "Module",
    "jit", "JittedFunction", "grad", "value_and_grad",
    "for_loop", "cond", "while_loop", "vmap", "in_trace",
    "Runner", "Monitors", "SpikeMonitor", "SpikeRecord",
    "graph", "random", "set_dt", "get_dt", "context", "share",
    "set_precision", "get_precision", "float_dtype", "time_to_steps", "set_cpu_threads",
    "surrogate", "integrators", "odeint",
    "Trainer", "save", "load", "nn", "optim", "visualize", "distributed", "encoders", "analysis", "nir", "models",
]

_cpu._from_environment()
