"""The matrix product of dense layers, with a weight gradient laid out for XLA:CPU's fast matmuls.

The weight gradient of ``y = x @ w`` is ``x^T @ g``: a product that contracts
the leading (batch) axis of both operands. XLA:CPU runs products in its
XNNPACK path only when the left operand contracts its last axis; the others go
to a generic kernel that was measured 2-10x slower at the sizes of one time
step of a spiking network (batch 128, 10-256 features; bench/README.md).
:func:`dense` computes the same product with a JVP whose transpose
(the backward pass) first transposes the cheaper of the two operands into a
row-major copy: ``x`` (``M K`` numbers) when that is smaller than ``g`` and
the result together (``M N + K N``), else ``g``, taking the weight gradient as
``(g^T @ x)^T``. Optimisation barriers keep XLA from folding those transposes
back into the product.

The forward value is ``x @ w`` computed exactly as before; gradients agree with
plain autodiff to float rounding (the sums run in another order). The path is
taken on the CPU backend for 2-D or batched inputs of up to
:data:`MAX_ROWS` rows and floating operands of one dtype; everything else is
a plain ``x @ w``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["dense", "MAX_ROWS"]

#: Rows (the product of the leading axes of ``x``) up to which :func:`dense` lays out the weight
#: gradient itself; above it the generic kernel was as fast or faster (an MLP step at batch 4096-8192).
MAX_ROWS = 2048

_LAST_FIRST = (((1,), (0,)), ((), ()))   # a @ b
_FIRST_FIRST = (((0,), (0,)), ((), ()))  # a^T @ b
_LAST_LAST = (((1,), (1,)), ((), ()))    # a @ b^T


def _weight_tangent(x2: jax.Array, dw: jax.Array) -> jax.Array:
    """``x2 @ dw``, written so that its transpose in ``dw`` (the weight gradient) needs no
    product contracting a leading axis."""
    m, k = x2.shape
    n = dw.shape[1]
    if m * k <= m * n + k * n:
        # transpose: ct_dw = xT @ g, with xT a row-major (k, m) copy
        xT = lax.optimization_barrier(x2.T)
        return lax.dot_general(xT, dw, _FIRST_FIRST)
    # transpose: ct_dw = (gT @ x)^T with gT a row-major (n, m) copy
    q = lax.dot_general(lax.optimization_barrier(dw.T), x2, _LAST_LAST)   # (n, m)
    return lax.optimization_barrier(q).T


@jax.custom_jvp
def _dense(x: jax.Array, w: jax.Array) -> jax.Array:
    return x @ w


@_dense.defjvp
def _dense_jvp(primals: tuple, tangents: tuple) -> tuple:
    x, w = primals
    dx, dw = tangents
    y = x @ w
    t = _weight_tangent(x.reshape(-1, x.shape[-1]), dw).reshape(y.shape)
    return y, t + dx @ w


def dense(x: Any, w: Any) -> jax.Array:
    """``x @ w`` for a weight matrix ``w`` of shape ``(in, out)``, with a fast weight gradient on CPU.

    Same value as ``x @ w``; see the module docstring for when and how the
    gradient differs in layout (not in value, beyond rounding).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from neurodyn.nn._dense import dense
        >>> x, w = jnp.ones((4, 3)), jnp.ones((3, 2))
        >>> dense(x, w).tolist()
        [[3.0, 3.0], [3.0, 3.0], [3.0, 3.0], [3.0, 3.0]]
        >>> jax.grad(lambda w: dense(x, w).sum())(w).tolist()
        [[4.0, 4.0], [4.0, 4.0], [4.0, 4.0]]
    """
    x = jnp.asarray(x)
    w = jnp.asarray(w)
    if (x.ndim < 2 or w.ndim != 2 or x.dtype != w.dtype or not jnp.issubdtype(w.dtype, jnp.floating)
            or x.size // max(x.shape[-1], 1) > MAX_ROWS or jax.default_backend() != "cpu"):
        return x @ w
    return _dense(x, w)
