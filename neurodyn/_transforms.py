"""Stateful control flow, vectorisation and autodiff: for_loop, cond, while_loop, vmap, grad.

Each transformation wraps the user's function in a :class:`StatefulFunction`,
learns abstractly which Variables it writes (``discover``), then threads
exactly those through the JAX primitive (as loop carry, branch outputs or
auxiliary outputs). Variables that are only read are closed over, which the
enclosing ``nd.jit`` frame turns into inputs.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, Sequence

import jax
import jax.numpy as jnp

from ._module import Module
from ._random import RandomState
from ._state import StatefulFunction, Variable, assign, values_of

__all__ = ["for_loop", "cond", "while_loop", "vmap", "grad", "value_and_grad"]


def _abstract(tree: Any) -> Any:
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(jnp.shape(x), jnp.result_type(x)), tree)


def _discover(fn: Callable, args: tuple) -> tuple[list[Variable], list[Variable]]:
    """Variables ``fn(*args)`` reads and writes (abstract trace, no effect on state)."""
    return StatefulFunction(fn).discover(*args)


def for_loop(body: Callable, *xs: Any, length: int | None = None, reverse: bool = False,
             unroll: int | bool = 1, checkpoint: bool = False) -> Any:
    """Run ``body(*x)`` for each slice ``x`` of ``xs`` along axis 0 (a ``lax.scan``).

    The body may read and write Variables freely; written ones are carried
    through the loop and hold their final values afterwards. Returns the
    body's outputs stacked along a new leading axis. Compile time does not
    depend on the number of iterations.

    Args:
        body: the loop body; its return value is stacked.
        *xs: arrays (or pytrees) to iterate over; none if ``length`` is given.
        length: the number of iterations when there are no ``xs``.
        reverse: iterate from the end.
        unroll: iterations per compiled loop step. Measure before raising it:
            for a spiking network's training step on a 2-core CPU
            (bench/unroll.py, quiet machine) 2 ran in 0.92x the time of 1 by
            median and no faster by minimum, 3 and 5 ran 1.1x slower and
            compiled 1.5x as long, 10 ran 2x slower with 5x the compile time,
            and 100 has been seen 23x slower with an 88 s compile.
        checkpoint: rematerialise the body in the backward pass (``jax.checkpoint``):
            memory for activations stays constant in the number of steps, at the
            price of recomputing each step once during differentiation.

    Example:
        >>> import neurodyn as nd
        >>> import jax.numpy as jnp
        >>> acc = nd.Variable(0.)
        >>> def body(x):
        ...     acc.value += x
        ...     return acc.value
        >>> nd.for_loop(body, jnp.arange(4.))
        Array([0., 1., 3., 6.], dtype=float32)
    """
    if not xs and length is None:
        raise ValueError("nd.for_loop needs arrays to iterate over or an explicit length=")
    slices = _abstract(jax.tree.map(lambda x: x[0], xs)) if xs else ()
    if xs:
        n = {jnp.shape(x)[0] for x in jax.tree.leaves(xs)}
        if len(n) > 1:
            raise ValueError(f"nd.for_loop: all xs must have the same leading length, got {sorted(n)}")
    sf = StatefulFunction(body, "nd.for_loop")
    reads, writes = sf.discover(*slices)
    values_of(reads)  # the enclosing frame records them as inputs
    init = values_of(writes)

    def step(carry: list, x: tuple) -> tuple[list, Any]:
        out, new = sf.run_bound(writes, carry, x)
        return new, out

    if checkpoint:
        step = jax.checkpoint(step)
    final, ys = jax.lax.scan(step, init, xs, length=length, reverse=reverse, unroll=unroll)
    assign(writes, final)
    return ys


def cond(pred: Any, true_fun: Callable, false_fun: Callable, *operands: Any) -> Any:
    """``true_fun(*operands)`` if ``pred`` else ``false_fun(*operands)``, compiled.

    Both branches may read and write Variables.

    Example:
        >>> import neurodyn as nd
        >>> v = nd.Variable(1.)
        >>> def up(): v.value += 1.
        >>> def down(): v.value -= 1.
        >>> nd.cond(True, up, down); float(v)
        2.0
    """
    avals = _abstract(operands)
    sf_true, sf_false = StatefulFunction(true_fun, "nd.cond"), StatefulFunction(false_fun, "nd.cond")
    r1, w1 = sf_true.discover(*avals)
    r2, w2 = sf_false.discover(*avals)
    writes = list({id(v): v for v in w1 + w2}.values())
    values_of(r1 + r2)
    init = values_of(writes)

    def branch(sf: StatefulFunction) -> Callable:
        return lambda wvals, ops: sf.run_bound(writes, wvals, ops)

    out, new = jax.lax.cond(pred, branch(sf_true), branch(sf_false), init, operands)
    assign(writes, new)
    return out


def while_loop(cond_fun: Callable, body_fun: Callable, init_val: Any) -> Any:
    """Repeat ``val = body_fun(val)`` while ``cond_fun(val)``; both may use Variables.

    ``cond_fun`` may read Variables but not write them.

    Example:
        >>> import neurodyn as nd
        >>> n = nd.Variable(0)
        >>> def body(x):
        ...     n.value += 1
        ...     return x * 2
        >>> nd.while_loop(lambda x: x < 100, body, 1)
        Array(128, dtype=int32, weak_type=True)
        >>> int(n)
        7
    """
    aval = _abstract(init_val)
    sf_cond, sf_body = StatefulFunction(cond_fun, "nd.while_loop"), StatefulFunction(body_fun, "nd.while_loop")
    rc, wc = sf_cond.discover(aval)
    if wc:
        raise RuntimeError(f"nd.while_loop: cond_fun must not write Variables, but it wrote "
                           f"{[v.label for v in wc]}")
    rb, writes = sf_body.discover(aval)
    values_of(rc + rb)
    init = values_of(writes)

    def c(carry: tuple) -> Any:
        out, _ = sf_cond.run_bound(writes, carry[1], (carry[0],))
        return out

    def b(carry: tuple) -> tuple:
        return sf_body.run_bound(writes, carry[1], (carry[0],))

    val, final = jax.lax.while_loop(c, b, (init_val, init))
    assign(writes, final)
    return val


# -- vectorisation ----------------------------------------------------------------------

def _mapped_state(state_axes: Any) -> list[tuple[Variable, int]]:
    """``state_axes`` as ``[(Variable, axis)]``, Modules expanded to their Variables."""
    out: dict[int, tuple[Variable, int]] = {}

    def add(obj: Any, axis: Any, where: str) -> None:
        if not isinstance(axis, int) or isinstance(axis, bool):
            raise TypeError(f"nd.vmap: the axis of {where} in state_axes must be an int, got {axis!r}")
        if isinstance(obj, Module):
            for path, v in obj.vars().items():
                add(v, axis, f"'{path}' of {type(obj).__name__}")
            return
        if not isinstance(obj, Variable):
            raise TypeError(f"nd.vmap: state_axes takes Variables and Modules, got {type(obj).__name__}")
        if not -obj.ndim <= axis < obj.ndim:
            raise ValueError(f"nd.vmap: state_axes maps {obj.label} (shape {obj.shape}) along axis "
                             f"{axis}, which it does not have")
        out.setdefault(id(obj), (obj, axis % obj.ndim))

    if state_axes is None:
        return []
    if isinstance(state_axes, dict):
        for obj, axis in state_axes.items():
            add(obj, axis, type(obj).__name__)
    elif isinstance(state_axes, (list, tuple)):
        for obj in state_axes:
            add(obj, 0, type(obj).__name__)
    else:
        add(state_axes, 0, type(state_axes).__name__)
    return list(out.values())


@contextlib.contextmanager
def _element_views(mapped: Sequence[tuple[Variable, int]]) -> Iterator[None]:
    """While ``fun`` is traced per element, mapped Variables have their element's shape
    (``v.shape`` and the shape checks of assignments see one element).

    The committed value is swapped out for that time (and always restored), so
    another thread must not use these Variables while the trace runs."""
    saved = [(v, v.committed_value) for v, _ in mapped]
    try:
        for v, ax in mapped:
            shape = v.shape[:ax] + v.shape[ax + 1:]
            v.committed_value = jax.ShapeDtypeStruct(shape, v.dtype)
        yield
    finally:
        for v, x in saved:
            v.committed_value = x


def vmap(fun: Callable, in_axes: Any = 0, out_axes: Any = 0, *, state_axes: Any = None,
         axis_size: int | None = None) -> Callable:
    """Vectorise ``fun`` over a batch axis (``jax.vmap``) with Variables handled for you.

    ``in_axes``, ``out_axes`` and ``axis_size`` are those of ``jax.vmap``
    (keyword arguments are passed to every element unmapped). The Variables
    ``fun`` uses are found by tracing:

    * Variables listed in ``state_axes`` hold one entry per element: ``fun``
      sees and updates its element's entry (``v.shape`` is the element's
      shape). ``state_axes`` is a Variable, a Module (all its Variables: for a
      network whose connectivity must stay shared, list its state Variables
      instead), a list of them (axis 0), or a dict ``{Variable or Module: axis}``.
      All mapped values must have the batch size along their axis.
    * Every other Variable is shared by all elements. Writing it a value that
      differs between elements is an error that names it.
    * A :class:`RandomState` that is not mapped gives every element its own
      numbers: its key is split once per call, so the draws are fresh on every
      call and reproducible after seeding.

    Example:
        >>> import neurodyn as nd
        >>> from neurodyn import nn
        >>> import jax.numpy as jnp
        >>> net = nn.Linear(3, 2)
        >>> ys = nd.vmap(net)(jnp.ones((5, 3)))          # shared weights
        >>> lif = nn.LIF(1); lif.reset_state(8)           # 8 neurons' state, one per current
        >>> def rate(I):                                   # an f-I curve in one call
        ...     lif.input.value = jnp.full(1, I)
        ...     return nd.for_loop(lambda i: lif.update(), jnp.arange(1000)).mean()
        >>> rates = nd.vmap(rate, state_axes=lif)(jnp.linspace(10., 30., 8))
    """
    if not callable(fun):
        raise TypeError(f"nd.vmap expects a callable, got {type(fun).__name__}")
    if axis_size is not None and (not isinstance(axis_size, int) or axis_size < 1):
        raise ValueError(f"nd.vmap: axis_size must be a positive int, got {axis_size!r}")
    name = getattr(fun, "__name__", type(fun).__name__)

    def vectorised(*args: Any, **kwargs: Any) -> Any:
        mapped = _mapped_state(state_axes)
        if isinstance(in_axes, (tuple, list)):
            if len(in_axes) != len(args):
                raise ValueError(f"nd.vmap({name}): in_axes has {len(in_axes)} entries for "
                                 f"{len(args)} positional arguments")
            arg_axes = tuple(in_axes)
        else:
            arg_axes = (in_axes,) * len(args)
        m_axes = [ax for _, ax in mapped]
        m_avals = [jax.ShapeDtypeStruct(v.shape, v.dtype) for v, _ in mapped]
        try:
            n = jax.eval_shape(jax.vmap(lambda m, *a: jnp.zeros(()), in_axes=(m_axes, *arg_axes),
                                        axis_size=axis_size), m_avals, *args).shape[0]
        except ValueError as e:
            raise ValueError(f"nd.vmap({name}): cannot tell the batch size: {e}. Map an argument "
                             "(in_axes), a Variable (state_axes) or give axis_size.") from None

        # Which Variables does one element read and write?
        sf = StatefulFunction(lambda *a: fun(*a, **kwargs), f"nd.vmap({name})")
        frames = []

        def probe(mvals: list, *a: Any) -> Any:
            out, frame = sf.run([v for v, _ in mapped], mvals, a)
            frames.append(frame)
            return out

        with _element_views(mapped):
            jax.eval_shape(jax.vmap(probe, in_axes=(m_axes, *arg_axes), axis_size=n), m_avals, *args)
        frame = frames[0]
        mapped_ids = {id(v) for v, _ in mapped}
        touched = {**frame.reads, **frame.writes}
        rngs = [v for i, v in touched.items()
                if isinstance(v, RandomState) and i not in mapped_ids and i not in frame.born]
        rng_ids = {id(v) for v in rngs}
        shared_writes = [v for i, v in frame.writes.items()
                         if i not in mapped_ids and i not in rng_ids and i not in frame.born]
        values_of([v for i, v in frame.reads.items() if i not in mapped_ids and i not in rng_ids])

        every = mapped + [(r, 0) for r in rngs]
        every_axes = [ax for _, ax in every]
        keys = [jax.random.split(k, n + 1) for k in values_of(rngs)]
        mvals = values_of([v for v, _ in mapped]) + [k[1:] for k in keys]
        wvals = values_of(shared_writes)
        bound = [v for v, _ in every] + shared_writes

        def pure(mvals: list, wvals: list, *a: Any) -> Any:
            out, new = sf.run_bound(bound, list(mvals) + list(wvals), a)
            return out, new[:len(every)], new[len(every):]

        def run(shared_out_axes: list) -> Any:
            return jax.vmap(pure, in_axes=(every_axes, None, *arg_axes),
                            out_axes=(out_axes, every_axes, shared_out_axes), axis_size=n)(mvals, wvals, *args)

        with _element_views(mapped):
            try:
                out, new_m, new_w = run([None] * len(shared_writes))
            except ValueError as e:
                if "out_axes" not in str(e) or not shared_writes:
                    raise
                # find the shared Variable that got a different value per element
                for k, v in enumerate(shared_writes):
                    axes = [None if j == k else 0 for j in range(len(shared_writes))]
                    try:
                        jax.eval_shape(lambda: run(axes))
                    except ValueError:
                        raise ValueError(
                            f"nd.vmap({name}): the function writes {v.label} (shape {v.shape}) a value "
                            "that differs between batch elements, but it is shared by all of them. Map "
                            f"it with state_axes (e.g. state_axes={{var: 0}} with its values stacked along "
                            "axis 0) or write it a value that is the same for every element.") from None
                raise
        assign([v for v, _ in mapped], new_m[:len(mapped)])
        assign(rngs, [k[0] for k in keys])
        assign(shared_writes, new_w)
        return out

    return vectorised


# -- autodiff -------------------------------------------------------------------------

def _flatten_grad_vars(grad_vars: Any) -> tuple[list[Variable], Callable[[list], Any]]:
    if grad_vars is None:
        return [], lambda g: None
    if isinstance(grad_vars, Module):
        grad_vars = grad_vars.train_vars()
    if isinstance(grad_vars, Variable):
        return [grad_vars], lambda g: g[0]
    if isinstance(grad_vars, dict):
        keys = list(grad_vars)
        for k in keys:
            if not isinstance(grad_vars[k], Variable):
                raise TypeError(f"grad_vars['{k}'] must be a Variable, got {type(grad_vars[k]).__name__}")
        return [grad_vars[k] for k in keys], lambda g: dict(zip(keys, g))
    if isinstance(grad_vars, (list, tuple)):
        for i, v in enumerate(grad_vars):
            if not isinstance(v, Variable):
                raise TypeError(f"grad_vars[{i}] must be a Variable, got {type(v).__name__}")
        kind = type(grad_vars)
        return list(grad_vars), lambda g: kind(g)
    raise TypeError(
        "grad_vars must be a Variable, a list/tuple/dict of Variables or a Module, got "
        f"{type(grad_vars).__name__}"
    )


def _make_grad(fun: Callable, grad_vars: Any, argnums: Any, has_aux: bool) -> Callable:
    flat, rebuild = _flatten_grad_vars(grad_vars)
    if argnums is None and not flat:
        argnums = 0
    single_arg = isinstance(argnums, int)
    arg_idx = () if argnums is None else ((argnums,) if single_arg else tuple(argnums))
    sf = StatefulFunction(fun, "nd.grad")

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        for i in arg_idx:
            if i >= len(args):
                raise ValueError(f"nd.grad: argnums {i} but the function got {len(args)} positional arguments")
        record: dict[str, list[Variable]] = {}

        def inner(gvals: list, *dargs: Any) -> Any:
            call = list(args)
            for i, a in zip(arg_idx, dargs):
                call[i] = a
            res, frame = sf.run(flat, gvals, tuple(call), kwargs)
            loss, aux = (res if has_aux else (res, None))
            if jnp.ndim(loss) != 0:
                raise TypeError(f"nd.grad: the function must return a scalar loss, got shape {jnp.shape(loss)}")
            writes = frame.written()
            record["writes"] = writes
            wvals = [jax.lax.stop_gradient(frame.value_of(v)) for v in writes]
            return loss, (aux, wvals, loss)

        gvals = values_of(flat)
        diff = (0,) + tuple(1 + k for k in range(len(arg_idx)))
        grads, (aux, wvals, loss) = jax.grad(inner, argnums=diff, has_aux=True)(
            gvals, *(args[i] for i in arg_idx))
        assign(record["writes"], wvals)
        var_grads = rebuild(list(grads[0])) if flat else None
        arg_grads = grads[1:]
        if single_arg:
            arg_grads = arg_grads[0]
        if flat and arg_idx:
            g = (var_grads, arg_grads)
        elif flat:
            g = var_grads
        else:
            g = arg_grads
        return g, loss, aux

    return wrapped


def grad(fun: Callable, grad_vars: Any = None, argnums: int | Sequence[int] | None = None,
         has_aux: bool = False, return_value: bool = False) -> Callable:
    """Gradient of a scalar function with respect to Variables and/or arguments.

    ``grad_vars`` is a Variable, a list/tuple/dict of Variables (e.g.
    ``model.train_vars()``) or a Module (its ``train_vars()``); gradients come
    back in the same structure. Other Variables the function writes (random
    state, running statistics) keep their new values. With both ``grad_vars``
    and ``argnums`` the result is ``(var_grads, arg_grads)``. With
    ``return_value`` the loss follows the gradients, with ``has_aux`` the
    auxiliary output: ``grads``, ``(grads, loss)``, ``(grads, aux)`` or
    ``(grads, loss, aux)``.

    Example:
        >>> import neurodyn as nd
        >>> import jax.numpy as jnp
        >>> net = nd.nn.Linear(2, 1)
        >>> def loss(x, y):
        ...     return jnp.mean((net(x) - y) ** 2)
        >>> grads, value = nd.grad(loss, grad_vars=net.train_vars(), return_value=True)(
        ...     jnp.ones((4, 2)), jnp.zeros((4, 1)))
        >>> sorted(grads), grads['weight'].shape
        (['bias', 'weight'], (2, 1))
    """
    g = _make_grad(fun, grad_vars, argnums, has_aux)

    def grad_fun(*args: Any, **kwargs: Any) -> Any:
        grads, loss, aux = g(*args, **kwargs)
        if return_value and has_aux:
            return grads, loss, aux
        if return_value:
            return grads, loss
        if has_aux:
            return grads, aux
        return grads

    return grad_fun


def value_and_grad(fun: Callable, grad_vars: Any = None, argnums: int | Sequence[int] | None = None,
                   has_aux: bool = False) -> Callable:
    """Like :func:`grad`, returning ``(loss, grads)`` (``((loss, aux), grads)`` with ``has_aux``).

    Example:
        >>> import neurodyn as nd
        >>> import jax.numpy as jnp
        >>> w = nd.TrainVar(jnp.array(3.))
        >>> loss, grads = nd.value_and_grad(lambda x: (w.value * x) ** 2, grad_vars=[w])(2.)
        >>> float(loss), float(grads[0])     # d/dw (w x)^2 = 2 w x^2
        (36.0, 24.0)
    """
    g = _make_grad(fun, grad_vars, argnums, has_aux)

    def vg(*args: Any, **kwargs: Any) -> Any:
        grads, loss, aux = g(*args, **kwargs)
        return ((loss, aux), grads) if has_aux else (loss, grads)

    return vg
