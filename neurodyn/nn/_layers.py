"""Feed-forward layers: Linear, Sequential, Dropout, Flatten and activations."""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from .. import random as _random
from .._environ import float_dtype
from .._module import Module
from ._dense import dense
from ._init import Initializer, init_param

__all__ = [
    "Linear", "Sequential", "Dropout", "Flatten", "Activation",
    "ReLU", "Tanh", "Sigmoid", "GELU", "Softmax", "LogSoftmax",
]

def _check_features(layer: str, x: Any, n: int) -> None:
    shape = jnp.shape(x)
    if not shape or shape[-1] != n:
        raise ValueError(f"{layer} expects inputs whose last axis has {n} features, got "
                         f"shape {tuple(shape)} dtype {jnp.result_type(x)}")


def _size(cls: str, name: str, value: Any) -> int:
    """A layer size: a positive int (NumPy ints too), never a float truncated in silence."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{cls}: {name} must be a positive int, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{cls}: {name} must be a positive int, got {value}")
    return int(value)


class Linear(Module):
    """A dense layer ``y = x @ weight + bias``; ``weight`` has shape ``(in, out)``.

    Args:
        in_features, out_features: sizes of the last input and output axes.
        bias: add a trainable bias.
        w_init, b_init: any ``jax.nn.initializers`` function; keys come from
            ``nd.random`` so ``nd.random.seed(s)`` makes the draw reproducible.
        dtype: the parameters' dtype (default ``nd.float_dtype()``).

    Example:
        >>> import neurodyn.nn as nn
        >>> import jax.numpy as jnp
        >>> fc = nn.Linear(3, 2)
        >>> fc(jnp.ones((5, 3))).shape
        (5, 2)
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 w_init: Initializer = jax.nn.initializers.lecun_normal(),
                 b_init: Initializer = jax.nn.initializers.zeros, dtype: Any = None) -> None:
        self.in_features = _size("Linear", "in_features", in_features)
        self.out_features = _size("Linear", "out_features", out_features)
        self.weight = init_param(w_init, (self.in_features, self.out_features), dtype, "Linear.weight")
        self.bias = init_param(b_init, (self.out_features,), dtype, "Linear.bias") if bias else None

    def forward(self, x: Any) -> jax.Array:
        _check_features("Linear", x, self.in_features)
        y = dense(x, self.weight.value)
        if self.bias is not None:
            y = y + self.bias.value
        return y

    def __repr__(self) -> str:
        return f"Linear({self.in_features}, {self.out_features}, bias={self.bias is not None})"


class Sequential(Module):
    """Apply layers in order; layers are Modules or plain functions (``jax.nn.relu``).

    Example:
        >>> import neurodyn.nn as nn
        >>> import jax.numpy as jnp
        >>> import jax
        >>> mlp = nn.Sequential(nn.Linear(4, 8), jax.nn.relu, nn.Linear(8, 2))
        >>> mlp(jnp.ones((3, 4))).shape
        (3, 2)
    """

    def __init__(self, *layers: Module | Callable) -> None:
        for i, layer in enumerate(layers):
            if not callable(layer):
                raise TypeError(f"Sequential: layer {i} must be a Module or a function, got {type(layer).__name__}")
        self.layers = list(layers)

    def forward(self, x: Any) -> Any:
        for layer in self.layers:
            x = layer(x)
        return x

    def __getitem__(self, i: int) -> Any:
        return self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)


class Dropout(Module):
    """Zero each element with probability ``p`` in training mode (scaling the rest by ``1/(1-p)``).

    Draws from ``nd.random.DEFAULT`` (or the given ``rng``); does nothing after ``eval()``.

    Example:
        >>> import neurodyn.nn as nn
        >>> import jax.numpy as jnp
        >>> drop = nn.Dropout(0.5)
        >>> y = drop(jnp.ones(10))        # about half zeros, the rest 2.
        >>> _ = drop.eval(); drop(jnp.ones(3)).tolist()
        [1.0, 1.0, 1.0]
    """

    def __init__(self, p: float = 0.5, rng: Any = None) -> None:
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p = float(p)
        self.rng = rng

    def forward(self, x: Any) -> jax.Array:
        x = jnp.asarray(x)
        if not self.training or self.p == 0.0:
            return x
        rng = self.rng if self.rng is not None else _random.DEFAULT
        keep = rng.bernoulli(1.0 - self.p, jnp.shape(x))
        return jnp.where(keep, x / (1.0 - self.p), jnp.zeros((), x.dtype))


class Flatten(Module):
    """Flatten all axes after the first (the batch axis).

    Example:
        >>> import neurodyn.nn as nn
        >>> import jax.numpy as jnp
        >>> nn.Flatten()(jnp.ones((2, 3, 4))).shape
        (2, 12)
    """

    def forward(self, x: Any) -> jax.Array:
        x = jnp.asarray(x)
        return x.reshape(x.shape[0], -1)


class Activation(Module):
    """Wrap an element-wise function (any ``jax.nn`` activation) as a layer.

    Example:
        >>> import neurodyn.nn as nn
        >>> import jax
        >>> act = nn.Activation(jax.nn.softplus)
    """

    def __init__(self, fn: Callable[[jax.Array], jax.Array]) -> None:
        if not callable(fn):
            raise TypeError(f"Activation expects a function, got {type(fn).__name__}")
        self.fn = fn

    def forward(self, x: Any) -> jax.Array:
        return self.fn(x)


class ReLU(Activation):
    """``jax.nn.relu`` as a layer. Example: ``nn.ReLU()(x)``."""

    def __init__(self) -> None:
        super().__init__(jax.nn.relu)


class Tanh(Activation):
    """``jnp.tanh`` as a layer. Example: ``nn.Tanh()(x)``."""

    def __init__(self) -> None:
        super().__init__(jnp.tanh)


class Sigmoid(Activation):
    """``jax.nn.sigmoid`` as a layer. Example: ``nn.Sigmoid()(x)``."""

    def __init__(self) -> None:
        super().__init__(jax.nn.sigmoid)


class GELU(Activation):
    """``jax.nn.gelu`` as a layer. Example: ``nn.GELU()(x)``."""

    def __init__(self) -> None:
        super().__init__(jax.nn.gelu)


class Softmax(Module):
    """``jax.nn.softmax`` over ``axis`` as a layer. Example: ``nn.Softmax()(logits)``."""

    def __init__(self, axis: int = -1) -> None:
        self.axis = axis

    def forward(self, x: Any) -> jax.Array:
        return jax.nn.softmax(x, axis=self.axis)


class LogSoftmax(Module):
    """``jax.nn.log_softmax`` over ``axis`` as a layer. Example: ``nn.LogSoftmax()(logits)``."""

    def __init__(self, axis: int = -1) -> None:
        self.axis = axis

    def forward(self, x: Any) -> jax.Array:
        return jax.nn.log_softmax(x, axis=self.axis)

