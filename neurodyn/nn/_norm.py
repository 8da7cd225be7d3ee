"""Normalisation layers: LayerNorm and BatchNorm1d (features on the last axis)."""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp

from .._environ import float_dtype
from .._module import Module
from .._state import TrainVar, Variable

__all__ = ["LayerNorm", "BatchNorm1d"]


class LayerNorm(Module):
    """Normalise over the trailing ``normalized_shape`` axes, then scale and shift.

    Example:
        >>> import neurodyn.nn as nn
        >>> import jax.numpy as jnp
        >>> ln = nn.LayerNorm(8)
        >>> y = ln(jnp.arange(16.).reshape(2, 8))   # each row: mean 0, variance 1
    """

    def __init__(self, normalized_shape: int | Sequence[int], eps: float = 1e-5,
                 elementwise_affine: bool = True, dtype: Any = None) -> None:
        dtype = float_dtype() if dtype is None else dtype
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.normalized_shape = tuple(int(s) for s in shape)
        self.eps = float(eps)
        if elementwise_affine:
            self.weight = TrainVar(jnp.ones(self.normalized_shape, dtype))
            self.bias = TrainVar(jnp.zeros(self.normalized_shape, dtype))
        else:
            self.weight = self.bias = None

    def forward(self, x: Any) -> jax.Array:
        x = jnp.asarray(x)
        n = len(self.normalized_shape)
        if tuple(x.shape[x.ndim - n:]) != self.normalized_shape:
            raise ValueError(f"LayerNorm expects inputs ending in shape {self.normalized_shape}, "
                             f"got shape {tuple(x.shape)} dtype {x.dtype}")
        axes = tuple(range(x.ndim - n, x.ndim))
        mean = x.mean(axes, keepdims=True)
        var = jnp.square(x - mean).mean(axes, keepdims=True)
        y = (x - mean) * jax.lax.rsqrt(var + self.eps)
        if self.weight is not None:
            y = y * self.weight.value + self.bias.value
        return y


class BatchNorm1d(Module):
    """Batch normalisation over every axis but the last (the features).

    Inputs are ``(batch, features)`` or ``(batch, length, features)``
    (features last, unlike PyTorch's ``(N, C, L)``). In training mode the
    batch statistics normalise the input and update ``running_mean`` /
    ``running_var`` (non-trainable Variables; the variance is the unbiased
    one, as in PyTorch); after ``eval()`` the running statistics are used and
    nothing is written.

    Example:
        >>> import neurodyn.nn as nn
        >>> import jax.numpy as jnp
        >>> bn = nn.BatchNorm1d(4)
        >>> y = bn(jnp.ones((8, 4)))       # updates the running statistics
        >>> _ = bn.eval(); y = bn(jnp.ones((8, 4)))
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1,
                 affine: bool = True, dtype: Any = None) -> None:
        dtype = float_dtype() if dtype is None else dtype
        self.num_features = int(num_features)
        self.eps = float(eps)
        self.momentum = float(momentum)
        self.running_mean = Variable(jnp.zeros(self.num_features, dtype))
        self.running_var = Variable(jnp.ones(self.num_features, dtype))
        if affine:
            self.weight = TrainVar(jnp.ones(self.num_features, dtype))
            self.bias = TrainVar(jnp.zeros(self.num_features, dtype))
        else:
            self.weight = self.bias = None

    def forward(self, x: Any) -> jax.Array:
        x = jnp.asarray(x)
        if x.ndim < 2 or x.shape[-1] != self.num_features:
            raise ValueError(f"BatchNorm1d({self.num_features}) expects (batch, ..., {self.num_features}) "
                             f"inputs, got shape {tuple(x.shape)} dtype {x.dtype}")
        axes = tuple(range(x.ndim - 1))
        if self.training:
            mean = x.mean(axes)
            var = jnp.square(x - mean).mean(axes)
            n = x.size // self.num_features
            unbiased = var * (n / max(n - 1, 1))
            m = self.momentum
            self.running_mean.value = (1 - m) * self.running_mean.value + m * jax.lax.stop_gradient(mean)
            self.running_var.value = (1 - m) * self.running_var.value + m * jax.lax.stop_gradient(unbiased)
        else:
            mean, var = self.running_mean.value, self.running_var.value
        y = (x - mean) * jax.lax.rsqrt(var + self.eps)
        if self.weight is not None:
            y = y * self.weight.value + self.bias.value
        return y
