"""Optimizers built on optax, with their state kept in Variables.

Example:
    >>> import jax.numpy as jnp
    >>> import neurodyn as nd
    >>> from neurodyn import nn, optim
    >>> model = nn.Linear(2, 1)
    >>> opt = optim.Adam(1e-3, train_vars=model.train_vars())
    >>> grads = nd.grad(lambda x: jnp.sum(model(x)), grad_vars=model.train_vars())(jnp.ones((1, 2)))
    >>> opt.update(grads)
"""

from ._optimizer import SGD, Adam, AdamW, Optimizer, RMSProp, all_finite

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSProp", "all_finite"]
