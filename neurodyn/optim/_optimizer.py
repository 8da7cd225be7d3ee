"""Optimizers: optax gradient transformations whose state lives in Variables."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import optax

from .._module import Module
from .._state import Variable, in_trace

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSProp"]


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

    The optax state is flattened into a list of Variables (``opt.opt_state``,
    treedef kept) next to a step counter (``opt.step_count``), so a compiled
    function that calls :meth:`update` carries the optimizer state with no
    extra code, and ``nd.save`` checkpoints it. The registered parameters are
    not part of the optimizer's own ``vars()``.

    Args:
        tx: the optax transformation (chains, clipping, schedules all work).
        train_vars: the Variables to optimise: a dict ``path -> Variable``
            (``model.train_vars()``), a list, or a Module. Can be given later
            with :meth:`register`.

    Example:
        >>> opt = optim.Optimizer(optax.chain(optax.clip_by_global_norm(1.), optax.adam(1e-3)),
        ...                       train_vars=model.train_vars())
        >>> grads = nd.grad(loss_fn, grad_vars=model.train_vars())(x, y)
        >>> opt.update(grads)
    """

    def __init__(self, tx: optax.GradientTransformation, train_vars: Any = None,
                 lr: Any = None) -> None:
        if not (hasattr(tx, "init") and hasattr(tx, "update")):
            raise TypeError(f"Optimizer expects an optax.GradientTransformation, got {type(tx).__name__}")
        self.tx = tx
        self._nd_lr = lr  # kept out of the compile-time snapshot: schedules are plain functions
        self._nd_params: dict[str, Variable] = {}
        self._nd_treedef: Any = None
        self.step_count = Variable(jnp.zeros((), jnp.int32))
        self.opt_state: list[Variable] = []
        if train_vars is not None:
            self.register(train_vars)

    def register(self, train_vars: Any) -> None:
        """Add Variables to optimise and (re)initialise the optax state for all of them.

        Example:
            >>> opt = optim.Adam(1e-3); opt.register(model.train_vars())
        """
        if in_trace():
            raise RuntimeError("Optimizer.register() creates state Variables; call it outside compiled code.")
        new = _as_dict(train_vars)
        params = dict(self._nd_params)
        for k, v in new.items():
            if k in params and params[k] is not v:
                raise ValueError(f"Optimizer.register: the name '{k}' is already registered for another Variable")
            params[k] = v
        leaves, treedef = jax.tree.flatten(self.tx.init({k: v.value for k, v in params.items()}))
        self._nd_params = params
        self._nd_treedef = treedef
        self.opt_state = [Variable(jnp.asarray(x)) for x in leaves]
        for i, v in enumerate(self.opt_state):
            v._name = f"{type(self).__name__}.opt_state.{i}"

    @property
    def params(self) -> dict[str, Variable]:
        """The registered Variables, keyed as the gradients must be."""
        return dict(self._nd_params)

    @property
    def state(self) -> Any:
        """The optax state pytree, rebuilt from the Variables."""
        return jax.tree.unflatten(self._nd_treedef, [v.value for v in self.opt_state])

    @property
    def lr(self) -> Any:
        """The current learning rate (the schedule evaluated at ``step_count``), if known."""
        lr = self._nd_lr
        return lr(self.step_count.value) if callable(lr) else lr

    def update(self, grads: Mapping[str, Any]) -> None:
        """Apply one optimisation step to the registered Variables in place.

        ``grads`` is keyed like the registered ``train_vars`` (what
        ``nd.grad(..., grad_vars=model.train_vars())`` returns).
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
        values = {k: v.value for k, v in params.items()}
        updates, new_state = self.tx.update(g, self.state, values)
        new_values = optax.apply_updates(values, updates)
        for k, var in params.items():
            var.value = new_values[k]
        new_leaves = jax.tree.leaves(new_state)
        for var, x in zip(self.opt_state, new_leaves):
            var.value = jnp.asarray(x).astype(var.dtype)
        self.step_count.value = self.step_count.value + 1

    def __repr__(self) -> str:
        return f"{type(self).__name__}(params={len(self._nd_params)}, state_leaves={len(self.opt_state)})"


def _with_decay(tx: optax.GradientTransformation, weight_decay: float) -> optax.GradientTransformation:
    # L2 penalty added to the gradient before the update rule, as in PyTorch.
    return optax.chain(optax.add_decayed_weights(weight_decay), tx) if weight_decay else tx


class SGD(Optimizer):
    """Stochastic gradient descent (``optax.sgd``), optional momentum, Nesterov and L2 weight decay.

    Example:
        >>> opt = optim.SGD(lr=1e-6, train_vars=model.train_vars())
        >>> opt.update(grads)
    """

    def __init__(self, lr: Any, momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0,
                 train_vars: Any = None) -> None:
        tx = optax.sgd(lr, momentum=momentum or None, nesterov=nesterov)
        super().__init__(_with_decay(tx, weight_decay), train_vars, lr=lr)


class Adam(Optimizer):
    """Adam (``optax.adam``) with optional L2 weight decay added to the gradient.

    Example:
        >>> opt = optim.Adam(optax.cosine_decay_schedule(1e-3, 1000), train_vars=model.train_vars())
    """

    def __init__(self, lr: Any = 1e-3, betas: Sequence[float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, train_vars: Any = None) -> None:
        tx = optax.adam(lr, b1=betas[0], b2=betas[1], eps=eps)
        super().__init__(_with_decay(tx, weight_decay), train_vars, lr=lr)


class AdamW(Optimizer):
    """Adam with decoupled weight decay (``optax.adamw``).

    Example:
        >>> opt = optim.AdamW(1e-3, weight_decay=1e-2, train_vars=model.train_vars())
    """

    def __init__(self, lr: Any = 1e-3, betas: Sequence[float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, train_vars: Any = None) -> None:
        tx = optax.adamw(lr, b1=betas[0], b2=betas[1], eps=eps, weight_decay=weight_decay)
        super().__init__(tx, train_vars, lr=lr)


class RMSProp(Optimizer):
    """RMSProp (``optax.rmsprop``); ``eps`` is added outside the square root, as in PyTorch.

    Example:
        >>> opt = optim.RMSProp(1e-2, alpha=0.99, train_vars=model.train_vars())
    """

    def __init__(self, lr: Any = 1e-2, alpha: float = 0.99, eps: float = 1e-8, momentum: float = 0.0,
                 centered: bool = False, weight_decay: float = 0.0, train_vars: Any = None) -> None:
        tx = optax.rmsprop(lr, decay=alpha, eps=eps, eps_in_sqrt=False, momentum=momentum or None,
                           centered=centered)
        super().__init__(_with_decay(tx, weight_decay), train_vars, lr=lr)

