"""Optimizers built on optax, with their state kept in Variables.

Example:
    >>> from neurodyn import optim
    >>> opt = optim.Adam(1e-3, train_vars=model.train_vars())
    >>> opt.update(grads)
"""

from ._optimizer import SGD, Adam, AdamW, Optimizer, RMSProp

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSProp"]
