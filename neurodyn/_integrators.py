"""One-step ODE integrators for neuron and synapse models.

Every integrator has the signature ``method(f, x, t, dt, *args) -> x_next`` for
an ODE ``dx/dt = f(x, t, *args)``. ``x`` may be a single array or a pytree
(e.g. a tuple ``(V, w)``) and ``f`` then returns a pytree of the same
structure. :func:`odeint` wraps ``f`` into a stepper that takes ``dt`` from
``nd.get_dt()``.

Exponential Euler treats each state variable as linear in itself around the
current point (the derivative of ``f_i`` with respect to ``x_i`` only, the
others held fixed, as in BrainPy) and integrates that linear ODE exactly. For a
linear ODE ``dx/dt = a x + b`` with elementwise ``a`` it is therefore exact.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from ._environ import get_dt

__all__ = ["euler", "rk2", "rk4", "exp_euler", "exp_decay", "odeint", "METHODS"]

Derivative = Callable[..., Any]


def _axpy(x: Any, a: float, y: Any) -> Any:
    return jax.tree.map(lambda xi, yi: xi + a * yi, x, y)


def euler(f: Derivative, x: Any, t: Any, dt: float, *args: Any) -> Any:
    """Forward Euler: ``x + dt * f(x, t, *args)``.

    Example:
        >>> import neurodyn as nd
        >>> nd.integrators.euler(lambda x, t: -x, 1., 0., 0.1)
        0.9
    """
    return _axpy(x, dt, f(x, t, *args))


def rk2(f: Derivative, x: Any, t: Any, dt: float, *args: Any) -> Any:
    """Heun's second-order Runge-Kutta method (explicit trapezoid rule).

    Example:
        >>> import neurodyn as nd
        >>> round(nd.integrators.rk2(lambda x, t: -x, 1., 0., 0.1), 6)   # 1 - 0.1 + 0.005
        0.905
    """
    k1 = f(x, t, *args)
    k2 = f(_axpy(x, dt, k1), t + dt, *args)
    return jax.tree.map(lambda xi, a, b: xi + (dt / 2) * (a + b), x, k1, k2)


def rk4(f: Derivative, x: Any, t: Any, dt: float, *args: Any) -> Any:
    """The classic fourth-order Runge-Kutta method.

    Example:
        >>> import math
        >>> import neurodyn as nd
        >>> x = nd.integrators.rk4(lambda x, t: -x, 1., 0., 0.1)
        >>> abs(x - math.exp(-0.1)) < 1e-7
        True
    """
    k1 = f(x, t, *args)
    k2 = f(_axpy(x, dt / 2, k1), t + dt / 2, *args)
    k3 = f(_axpy(x, dt / 2, k2), t + dt / 2, *args)
    k4 = f(_axpy(x, dt, k3), t + dt, *args)
    return jax.tree.map(lambda xi, a, b, c, d: xi + (dt / 6) * (a + 2 * b + 2 * c + d),
                        x, k1, k2, k3, k4)


def _phi1(z: jax.Array) -> jax.Array:
    """``(exp(z) - 1) / z`` with the limit 1 at z = 0 (expm1 keeps it accurate)."""
    small = jnp.abs(z) < 1e-6
    safe = jnp.where(small, 1.0, z)
    return jnp.where(small, 1.0 + z / 2, jnp.expm1(safe) / safe)


def exp_euler(f: Derivative, x: Any, t: Any, dt: float, *args: Any) -> Any:
    """Exponential Euler: exact for ``dx/dt = a x + b`` with elementwise ``a``.

    Linearises each variable around the current state, ``f_i(x) ~ f_i + A_i
    (x_i' - x_i)`` with ``A_i = d f_i / d x_i`` (a Jacobian-vector product with
    ones, so ``f`` must act elementwise on each variable), and steps
    ``x_i + dt * phi1(dt A_i) * f_i`` where ``phi1(z) = (e^z - 1) / z``.

    Example:
        >>> # dV/dt = (-V + 5) / 10 is solved exactly: V(dt) = 5 - 5 exp(-dt/10)
        >>> import math
        >>> import neurodyn as nd
        >>> V = nd.integrators.exp_euler(lambda V, t: (-V + 5.) / 10., 0., 0., 0.1)
        >>> abs(float(V) - 5. * (1. - math.exp(-0.01))) < 1e-6
        True
    """
    leaves, treedef = jax.tree.flatten(x)
    leaves = [jnp.asarray(v) for v in leaves]
    if not leaves:
        raise ValueError("exp_euler: the state x has no arrays")
    for v in leaves:
        if not jnp.issubdtype(v.dtype, jnp.floating):
            raise TypeError(f"exp_euler: state variables must be floating point, got dtype {v.dtype}")
    out = []
    for i, xi in enumerate(leaves):
        def fi(y: jax.Array, i: int = i) -> jax.Array:
            state = list(leaves)
            state[i] = y
            return jax.tree.leaves(f(jax.tree.unflatten(treedef, state), t, *args))[i]

        fx, a = jax.jvp(fi, (xi,), (jnp.ones_like(xi),))
        out.append(xi + dt * _phi1(dt * a) * fx)
    return jax.tree.unflatten(treedef, out)


def exp_decay(tau: float, dt: float | None = None) -> float:
    """The exact decay factor ``exp(-dt / tau)`` of ``dx/dt = -x / tau`` (a Python float).

    Example:
        >>> import neurodyn as nd
        >>> nd.integrators.exp_decay(10., 0.1)
        0.99004983...
    """
    import math

    dt = get_dt() if dt is None else float(dt)
    return math.exp(-dt / tau)


METHODS: dict[str, Callable] = {"euler": euler, "rk2": rk2, "heun": rk2, "rk4": rk4,
                                "exp_euler": exp_euler, "exponential_euler": exp_euler}


def get_method(method: str | Callable) -> Callable:
    """The integrator named ``method`` (or ``method`` itself if it is callable)."""
    if callable(method):
        return method
    try:
        return METHODS[method]
    except KeyError:
        raise ValueError(f"unknown integration method {method!r}; expected one of {sorted(METHODS)} "
                         "or a callable method(f, x, t, dt, *args)") from None


class odeint:
    """Turn a derivative ``f(x, t, *args)`` into a one-step integrator.

    The stepper is called as ``step(x, t, *args, dt=None)`` and returns the
    state one step later; ``dt`` defaults to ``nd.get_dt()``. Works as a plain
    call or as a decorator.

    Args:
        f: the derivative ``dx/dt = f(x, t, *args)``; ``x`` may be a pytree.
        method: ``'exp_euler'`` (default), ``'euler'``, ``'rk2'``, ``'rk4'`` or a
            callable ``method(f, x, t, dt, *args)``.

    Example:
        >>> import jax.numpy as jnp
        >>> import neurodyn as nd
        >>> @nd.odeint(method='exp_euler')
        ... def dV(V, t, I):
        ...     return (-(V + 65.) + I) / 10.
        >>> V = dV(jnp.full(3, -65.), 0., 2.)       # one step of nd.get_dt() = 0.1 ms
        >>> V.shape, bool(jnp.all(V > -65.))
        ((3,), True)
    """

    def __init__(self, f: Derivative | None = None, method: str | Callable = "exp_euler") -> None:
        self.method = get_method(method)
        self.f = f

    def __call__(self, *args: Any, dt: float | None = None) -> Any:
        if self.f is None:  # used as @nd.odeint(method=...)
            if len(args) != 1 or not callable(args[0]):
                raise TypeError("nd.odeint(method=...) used as a decorator expects one function")
            return odeint(args[0], self.method)
        if len(args) < 2:
            raise TypeError(f"odeint stepper expects (x, t, *args), got {len(args)} positional arguments")
        x, t, *rest = args
        return self.method(self.f, x, t, get_dt() if dt is None else float(dt), *rest)

    def __repr__(self) -> str:
        return f"odeint({getattr(self.f, '__name__', self.f)}, method={self.method.__name__})"
