"""Optimizers: optax gradient transformations whose state lives in Variables."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import optax

from .._module import Module
from .._state import Variable, in_trace

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSProp", "all_finite"]


_GROUP = 1 << 15  # arrays up to this size are checked together (one reduction instead of one each)


def _scale(dtype: Any) -> float:
    return 2.0 ** -(jnp.finfo(dtype).maxexp // 2 + 11)


def _sum_of_squares(x: jax.Array) -> jax.Array:
    # Scaled by a power of two so that squares of finite values cannot overflow: the
    # result is finite exactly when every entry is (NaN and inf survive the scaling).
    y = x * jnp.asarray(_scale(x.dtype), x.dtype)
    return jnp.sum(jnp.abs(y) ** 2 if jnp.iscomplexobj(y) else y * y)


def all_finite(*trees: Any) -> jax.Array:
    """One scalar bool: every floating array in ``trees`` is free of NaN and inf.

    Built for the hot path of a training step: one sum of (scaled) squares per
    large array (a fast vectorised reduction) and one test over all small
    arrays of a dtype together, so a model with many small parameters costs a
    few reductions, not one per array.

    Example:
        >>> import jax.numpy as jnp
        >>> from neurodyn.optim import all_finite
        >>> bool(all_finite({"w": jnp.ones(3)}, jnp.float32(2.0)))
        True
        >>> bool(all_finite({"w": jnp.array([1.0, jnp.nan])})), bool(all_finite(jnp.float32(3e38) * 2))
        (False, False)
    """
    leaves = [jnp.asarray(x) for x in jax.tree.leaves(trees)]
    sums, groups = [], {}
    for x in leaves:
        if not jnp.issubdtype(x.dtype, jnp.inexact):
            continue
        if x.size > _GROUP:
            sums.append(_sum_of_squares(x))
            continue
        group = groups.setdefault(x.dtype, [[]])
        if sum(y.size for y in group[-1]) + x.size > 2 * _GROUP:
            group.append([])
        group[-1].append(jnp.ravel(x))
    ok = jnp.asarray(True)
    for group in groups.values():
        for xs in group:
            # small arrays: one copy into a buffer (scaled on the way) and one dot product
            y = jnp.concatenate(xs) * jnp.asarray(_scale(xs[0].dtype), xs[0].dtype)
            ok = ok & jnp.isfinite(jnp.vdot(y, y).real)
    for s in sums:
        ok = ok & jnp.isfinite(s)
    return ok


def _param_owner(kpath: tuple, leaf: Any, params: Mapping[str, Variable]) -> str | None:
    """The parameter a leaf of optax state belongs to: its path names the parameter and its shape is the same.

    optax keeps per-parameter state (moments, traces) in trees shaped like the
    parameters, so the key that names a parameter sits in the leaf's path;
    counters and other scalars have none.
    """
    for k in kpath:
        key = getattr(k, "key", None)
        if isinstance(key, str) and key in params and tuple(jnp.shape(leaf)) == params[key].shape:
            return key
    return None


def _as_dict(train_vars: Any) -> dict[str, Variable]:
    if isinstance(train_vars, Module):
        return dict(train_vars.train_vars())
    if isinstance(train_vars, Variable):
        return {"0": train_vars}
    if isinstance(train_vars, Mapping):
        out = {}
        for k, v in train_vars.items():
            if not isinstance(v, Variable):
                raise TypeError(f"Optimizer.register: train_vars['{k}'] must be a Variable, got {type(v).__name__}")
            out[str(k)] = v
        return out
    if isinstance(train_vars, (list, tuple)):
        out = {}
        for i, v in enumerate(train_vars):
            if not isinstance(v, Variable):
                raise TypeError(f"Optimizer.register: train_vars[{i}] must be a Variable, got {type(v).__name__}")
            out[str(i)] = v
        return out
    raise TypeError("Optimizer.register expects a dict of Variables (e.g. model.train_vars()), a list of "
                    f"Variables or a Module, got {type(train_vars).__name__}")


class Optimizer(Module):
    """Apply any ``optax.GradientTransformation`` to Variables, in place.

    The optax state is kept in Variables (``opt.opt_state``, one per leaf,
    treedef kept) next to a step counter (``opt.step_count``), so a compiled
    function that calls :meth:`update` carries the optimizer state with no
    extra code, and ``nd.save`` checkpoints it. :meth:`state_of` gives the
    state Variables of each parameter (e.g. Adam's two moments). The
    registered parameters are not part of the optimizer's own ``vars()``.

    Args:
        tx: the optax transformation (chains, clipping, schedules all work).
        train_vars: the Variables to optimise: a dict ``path -> Variable``
            (``model.train_vars()``), a list, or a Module. Can be given later
            with :meth:`register`.

    Example:
        >>> import jax.numpy as jnp, optax
        >>> import neurodyn as nd
        >>> from neurodyn import nn, optim
        >>> model = nn.Linear(3, 1)
        >>> opt = optim.Optimizer(optax.chain(optax.clip_by_global_norm(1.), optax.adam(1e-3)),
        ...                       train_vars=model.train_vars())
        >>> loss_fn = lambda x, y: jnp.mean((model(x) - y) ** 2)
        >>> grads = nd.grad(loss_fn, grad_vars=model.train_vars())(jnp.ones((4, 3)), jnp.zeros((4, 1)))
        >>> opt.update(grads)
        >>> int(opt.step_count.value), [v.shape for v in opt.state_of("weight")]
        (1, [(3, 1), (3, 1)])
    """

    def __init__(self, tx: optax.GradientTransformation, train_vars: Any = None,
                 lr: Any = None) -> None:
        if not (hasattr(tx, "init") and hasattr(tx, "update")):
            raise TypeError(f"Optimizer expects an optax.GradientTransformation, got {type(tx).__name__}")
        self.tx = tx
        self._nd_lr = lr  # kept out of the compile-time snapshot: schedules are plain functions
        self._nd_params: dict[str, Variable] = {}
        self._nd_treedef: Any = None
        self._nd_owned: dict[str, list[Variable]] = {}  # parameter name -> its state Variables
        self.step_count = Variable(jnp.zeros((), jnp.int32))
        self.opt_state: list[Variable] = []
        if train_vars is not None:
            self.register(train_vars)

    def register(self, train_vars: Any) -> None:
        """Add Variables to optimise and (re)initialise the optax state for all of them.

        Example:
            >>> from neurodyn import nn, optim
            >>> model = nn.Linear(3, 2)
            >>> opt = optim.Adam(1e-3); opt.register(model.train_vars())
            >>> sorted(opt.params)
            ['bias', 'weight']
        """
        if in_trace():
            raise RuntimeError("Optimizer.register() creates state Variables; call it outside compiled code.")
        new = _as_dict(train_vars)
        params = dict(self._nd_params)
        for k, v in new.items():
            if k in params and params[k] is not v:
                raise ValueError(f"Optimizer.register: the name '{k}' is already registered for another Variable")
            params[k] = v
        leaves, treedef = jax.tree_util.tree_flatten_with_path(self.tx.init({k: v.value for k, v in params.items()}))
        self._nd_params = params
        self._nd_treedef = treedef
        self.opt_state = [Variable(jnp.asarray(x)) for _, x in leaves]
        owned: dict[str, list[Variable]] = {k: [] for k in params}
        for i, ((kpath, x), v) in enumerate(zip(leaves, self.opt_state)):
            v.name = f"{type(self).__name__}.opt_state.{i}"
            owner = _param_owner(kpath, x, params)
            if owner is not None:
                owned[owner].append(v)
        self._nd_owned = owned

    @property
    def params(self) -> dict[str, Variable]:
        """The registered Variables, keyed as the gradients must be."""
        return dict(self._nd_params)

    def state_of(self, name: str) -> list[Variable]:
        """The state Variables that belong to parameter ``name`` (shaped like it; counters are shared).

        Example:
            >>> from neurodyn import nn, optim
            >>> opt = optim.Adam(1e-3, train_vars=nn.Linear(3, 2).train_vars())
            >>> [v.shape for v in opt.state_of("bias")]     # first and second moment
            [(2,), (2,)]
        """
        try:
            return list(self._nd_owned[name])
        except KeyError:
            raise KeyError(f"{type(self).__name__}.state_of: no parameter '{name}' is registered; "
                           f"expected one of {sorted(self._nd_params)}") from None

    @property
    def state(self) -> Any:
        """The optax state pytree, rebuilt from the Variables."""
        return jax.tree.unflatten(self._nd_treedef, [v.value for v in self.opt_state])

    @property
    def lr(self) -> Any:
        """The current learning rate (the schedule evaluated at ``step_count``), if known."""
        lr = self._nd_lr
        return lr(self.step_count.value) if callable(lr) else lr

    def update(self, grads: Mapping[str, Any], apply_if: Any = None, *, donated: bool = False) -> None:
        """Apply one optimisation step to the registered Variables in place.

        ``grads`` is keyed like the registered ``train_vars`` (what
        ``nd.grad(..., grad_vars=model.train_vars())`` returns). ``apply_if``:
        a scalar bool (traced or not); where it is False, parameters, optimizer
        state and step count keep their values (what ``optax.apply_if_finite``
        does, with the condition computed by the caller, e.g. :func:`all_finite`).
        ``donated``: say so when the compiled call donates these Variables'
        buffers (``nd.jit(donate=True)``); the gate is then a ``lax.cond``, which
        keeps the update in place, rather than a select, which is cheaper otherwise.

        Example:
            >>> import jax.numpy as jnp
            >>> import neurodyn as nd
            >>> from neurodyn import optim
            >>> w = nd.TrainVar(jnp.array([1.0, 2.0]))
            >>> opt = optim.SGD(0.5, train_vars={"w": w})
            >>> opt.update({"w": jnp.array([1.0, 1.0])}); w.value
            Array([0.5, 1.5], dtype=float32)
            >>> opt.update({"w": jnp.array([jnp.nan, 1.0])}, apply_if=False); w.value
            Array([0.5, 1.5], dtype=float32)
        """
        params = self._nd_params
        if self._nd_treedef is None or not params:
            raise RuntimeError(f"{type(self).__name__}.update: no Variables registered; pass train_vars= "
                               "or call register(model.train_vars()) first.")
        if isinstance(grads, (list, tuple)) and len(grads) == len(params):
            grads = dict(zip(params, grads))
        if not isinstance(grads, Mapping):
            raise TypeError(f"{type(self).__name__}.update expects a dict of gradients keyed like the registered "
                            f"train_vars, got {type(grads).__name__}")
        missing = [k for k in params if k not in grads]
        unexpected = [k for k in grads if k not in params]
        if missing or unexpected:
            raise KeyError(f"{type(self).__name__}.update: gradients are missing {missing} and have unexpected "
                           f"keys {unexpected}; they must be keyed like the registered train_vars")
        g = {}
        for k, var in params.items():
            gk = grads[k]
            gk = gk.value if isinstance(gk, Variable) else gk
            if tuple(jnp.shape(gk)) != var.shape:
                raise ValueError(f"{type(self).__name__}.update: gradient '{k}' has shape {tuple(jnp.shape(gk))}, "
                                 f"the Variable has shape {var.shape} dtype {var.dtype}")
            g[k] = gk
        dtypes = [v.dtype for v in self.opt_state]

        def step(values: dict, leaves: list, count: Any, g: dict) -> tuple:
            updates, state = self.tx.update(g, jax.tree.unflatten(self._nd_treedef, leaves), values)
            new_leaves = [jnp.asarray(x).astype(d) for d, x in zip(dtypes, jax.tree.leaves(state))]
            return optax.apply_updates(values, updates), new_leaves, count + 1

        current = ({k: v.value for k, v in params.items()}, [v.value for v in self.opt_state],
                   self.step_count.value)
        if apply_if is None:
            new_values, new_leaves, count = step(*current, g)
        elif donated:
            # With donated buffers a conditional updates them in place; a select of new and old
            # values would keep the old optimizer state alive past its update (a copy of each).
            new_values, new_leaves, count = jax.lax.cond(
                apply_if, step, lambda values, leaves, count, g: (values, leaves, count), *current, g)
        else:
            # Without donation a select, which XLA fuses into the update (a conditional would
            # copy every parameter and state buffer into its operands first).
            new_values, new_leaves, count = optax.tree.where(apply_if, step(*current, g), current)
        for k, var in params.items():
            var.value = new_values[k]
        for var, x in zip(self.opt_state, new_leaves):
            var.value = x
        self.step_count.value = count

    def __repr__(self) -> str:
        return f"{type(self).__name__}(params={len(self._nd_params)}, state_leaves={len(self.opt_state)})"


def _with_decay(tx: optax.GradientTransformation, weight_decay: float) -> optax.GradientTransformation:
    # L2 penalty added to the gradient before the update rule, as in PyTorch.
    return optax.chain(optax.add_decayed_weights(weight_decay), tx) if weight_decay else tx


class SGD(Optimizer):
    """Stochastic gradient descent (``optax.sgd``), optional momentum, Nesterov and L2 weight decay.

    Example:
        >>> import jax.numpy as jnp
        >>> import neurodyn as nd
        >>> from neurodyn import optim
        >>> w = nd.TrainVar(jnp.array([1.0, 2.0]))
        >>> opt = optim.SGD(lr=0.1, momentum=0.9, train_vars={"w": w})
        >>> opt.update({"w": jnp.array([1.0, -1.0])}); w.value
        Array([0.9, 2.1], dtype=float32)
    """

    def __init__(self, lr: Any, momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0,
                 train_vars: Any = None) -> None:
        tx = optax.sgd(lr, momentum=momentum or None, nesterov=nesterov)
        super().__init__(_with_decay(tx, weight_decay), train_vars, lr=lr)


class Adam(Optimizer):
    """Adam (``optax.adam``) with optional L2 weight decay added to the gradient.

    Example:
        >>> import optax
        >>> from neurodyn import nn, optim
        >>> opt = optim.Adam(optax.cosine_decay_schedule(1e-3, 1000), train_vars=nn.Linear(3, 2).train_vars())
        >>> round(float(opt.lr), 6)
        0.001
    """

    def __init__(self, lr: Any = 1e-3, betas: Sequence[float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, train_vars: Any = None) -> None:
        tx = optax.adam(lr, b1=betas[0], b2=betas[1], eps=eps)
        super().__init__(_with_decay(tx, weight_decay), train_vars, lr=lr)


class AdamW(Optimizer):
    """Adam with decoupled weight decay (``optax.adamw``).

    Example:
        >>> from neurodyn import nn, optim
        >>> opt = optim.AdamW(1e-3, weight_decay=1e-2, train_vars=nn.Linear(3, 2).train_vars())
        >>> opt
        AdamW(params=2, state_leaves=5)
    """

    def __init__(self, lr: Any = 1e-3, betas: Sequence[float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, train_vars: Any = None) -> None:
        tx = optax.adamw(lr, b1=betas[0], b2=betas[1], eps=eps, weight_decay=weight_decay)
        super().__init__(tx, train_vars, lr=lr)


class RMSProp(Optimizer):
    """RMSProp (``optax.rmsprop``); ``eps`` is added outside the square root, as in PyTorch.

    Example:
        >>> from neurodyn import nn, optim
        >>> opt = optim.RMSProp(1e-2, alpha=0.99, train_vars=nn.Linear(3, 2).train_vars())
        >>> [v.shape for v in opt.state_of("weight")]
        [(3, 2)]
    """

    def __init__(self, lr: Any = 1e-2, alpha: float = 0.99, eps: float = 1e-8, momentum: float = 0.0,
                 centered: bool = False, weight_decay: float = 0.0, train_vars: Any = None) -> None:
        tx = optax.rmsprop(lr, decay=alpha, eps=eps, eps_in_sqrt=False, momentum=momentum or None,
                           centered=centered)
        super().__init__(_with_decay(tx, weight_decay), train_vars, lr=lr)

