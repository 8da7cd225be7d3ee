"""Recurrent cells (state in Variables) and sequence layers that loop them with ``nd.for_loop``.

Gate layouts follow PyTorch, with weights stored ``(in, gates * hidden)`` so
that ``x @ w_ih``:

* ``RNNCell``: ``h' = act(x W_ih + b_ih + h W_hh + b_hh)``
* ``GRUCell`` (gates r, z, n): ``r = σ(x W_ir + b_ir + h W_hr + b_hr)``,
  ``z = σ(...)``, ``n = tanh(x W_in + b_in + r * (h W_hn + b_hn))``,
  ``h' = (1 - z) * n + z * h``
* ``LSTMCell`` (gates i, f, g, o): ``c' = f * c + i * g``, ``h' = o * tanh(c')``
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from .._environ import float_dtype
from .._module import Module
from .._state import Variable, in_trace
from .._transforms import for_loop
from ._init import Initializer, init_param

__all__ = ["RNNCell", "GRUCell", "LSTMCell", "RNN", "GRU", "LSTM"]

State = tuple[jax.Array, ...]


class _Cell(Module):
    """Shared machinery: parameters, state Variables, reset_state and one step."""

    _gates = 1
    _state_names: tuple[str, ...] = ("h",)

    def __init__(self, input_size: int, hidden_size: int, bias: bool,
                 w_init: Initializer, hh_init: Initializer, b_init: Initializer,
                 batch_size: int | None, dtype: Any) -> None:
        self.input_size = int(input_size)
        self.hidden_size = int(hidden_size)
        dtype = self.dtype = float_dtype() if dtype is None else dtype
        g = self._gates * self.hidden_size
        name = type(self).__name__
        self.w_ih = init_param(w_init, (self.input_size, g), dtype, f"{name}.w_ih")
        self.w_hh = init_param(hh_init, (self.hidden_size, g), dtype, f"{name}.w_hh")
        if bias:
            self.b_ih = init_param(b_init, (g,), dtype, f"{name}.b_ih")
            self.b_hh = init_param(b_init, (g,), dtype, f"{name}.b_hh")
        else:
            self.b_ih = self.b_hh = None
        for n, z in zip(self._state_names, self.init_state(batch_size)):
            setattr(self, n, Variable(z))

    # -- state ---------------------------------------------------------------------
    def init_state(self, batch_size: int | tuple[int, ...] | None = None) -> State:
        """Zero states of shape ``(batch_size, hidden)`` (``(hidden,)`` for None)."""
        batch = () if batch_size is None else ((batch_size,) if isinstance(batch_size, int) else tuple(batch_size))
        return tuple(jnp.zeros(batch + (self.hidden_size,), self.dtype) for _ in self._state_names)

    def reset_state(self, batch_size: int | tuple[int, ...] | None = None) -> None:
        """Zero the hidden state for ``batch_size`` sequences (None: one unbatched sequence).

        Keeping the batch size works inside compiled code; changing it must be
        done outside (it uses ``Variable.reset_value``).
        """
        for n, z in zip(self._state_names, self.init_state(batch_size)):
            var = getattr(self, n)
            if var.shape == z.shape:
                var.value = z
            else:
                var.reset_value(z)

    @property
    def state(self) -> State:
        """The current state values (``(h,)`` or ``(h, c)``)."""
        return tuple(getattr(self, n).value for n in self._state_names)

    # -- one step ------------------------------------------------------------------
    def input_projection(self, x: Any) -> jax.Array:
        """``x @ w_ih + b_ih`` (done for all time steps at once by sequence layers)."""
        x = jnp.asarray(x)
        if x.ndim == 0 or x.shape[-1] != self.input_size:
            raise ValueError(f"{type(self).__name__}({self.input_size}, {self.hidden_size}) expects inputs "
                             f"with {self.input_size} features on the last axis, got shape "
                             f"{tuple(x.shape)} dtype {x.dtype}")
        gx = x @ self.w_ih.value
        return gx + self.b_ih.value if self.b_ih is not None else gx

    def _hh(self, h: jax.Array) -> jax.Array:
        gh = h @ self.w_hh.value
        return gh + self.b_hh.value if self.b_hh is not None else gh

    def recurrence(self, state: State, gx: jax.Array) -> State:
        """The new state from the old one and the projected input ``gx``."""
        raise NotImplementedError

    def step(self, state: State, x: Any) -> State:
        """Pure step: the new state tuple for input ``x`` (the output is ``new[0]``)."""
        return self.recurrence(state, self.input_projection(x))

    def update(self, x: Any) -> jax.Array:
        """Advance the state held in the Variables by one input; return the new ``h``."""
        state = self.state
        x = jnp.asarray(x)
        if tuple(x.shape[:-1]) != tuple(state[0].shape[:-1]):
            raise ValueError(
                f"{type(self).__name__}: input of shape {tuple(x.shape)} has batch shape "
                f"{tuple(x.shape[:-1])} but the hidden state has shape {tuple(state[0].shape)}; "
                f"call reset_state({x.shape[0] if x.ndim > 1 else None}) first (outside compiled code)."
            )
        new = self.step(state, x)
        for n, v in zip(self._state_names, new):
            getattr(self, n).value = v
        return new[0]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.input_size}, {self.hidden_size})"


_DEFAULTS = dict(w_init=jax.nn.initializers.lecun_normal(),
                 hh_init=jax.nn.initializers.orthogonal(),
                 b_init=jax.nn.initializers.zeros)


class RNNCell(_Cell):
    """Elman cell ``h' = act(x W_ih + b_ih + h W_hh + b_hh)`` with state ``h`` in a Variable.

    Call it with one time step ``x`` of shape ``(batch, input_size)`` (after
    ``reset_state(batch)``) or ``(input_size,)``; returns the new ``h``.

    Example:
        >>> import neurodyn.nn as nn
        >>> import jax.numpy as jnp
        >>> cell = nn.RNNCell(3, 5, batch_size=2)
        >>> h = cell(jnp.ones((2, 3)))
        >>> cell.h.shape
        (2, 5)
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 activation: Callable[[jax.Array], jax.Array] = jnp.tanh,
                 w_init: Initializer = _DEFAULTS["w_init"], hh_init: Initializer = _DEFAULTS["hh_init"],
                 b_init: Initializer = _DEFAULTS["b_init"], batch_size: int | None = None,
                 dtype: Any = None) -> None:
        self.activation = activation
        super().__init__(input_size, hidden_size, bias, w_init, hh_init, b_init, batch_size, dtype)

    def recurrence(self, state: State, gx: jax.Array) -> State:
        return (self.activation(gx + self._hh(state[0])),)


class GRUCell(_Cell):
    """Gated recurrent unit (PyTorch gate layout r, z, n) with state ``h`` in a Variable.

    Example:
        >>> import neurodyn.nn as nn
        >>> import jax.numpy as jnp
        >>> cell = nn.GRUCell(3, 5)
        >>> cell.reset_state(4)
        >>> h = cell(jnp.ones((4, 3)))
    """

    _gates = 3

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 w_init: Initializer = _DEFAULTS["w_init"], hh_init: Initializer = _DEFAULTS["hh_init"],
                 b_init: Initializer = _DEFAULTS["b_init"], batch_size: int | None = None,
                 dtype: Any = None) -> None:
        super().__init__(input_size, hidden_size, bias, w_init, hh_init, b_init, batch_size, dtype)

    def recurrence(self, state: State, gx: jax.Array) -> State:
        h = state[0]
        gh = self._hh(h)
        xr, xz, xn = jnp.split(gx, 3, axis=-1)
        hr, hz, hn = jnp.split(gh, 3, axis=-1)
        r = jax.nn.sigmoid(xr + hr)
        z = jax.nn.sigmoid(xz + hz)
        n = jnp.tanh(xn + r * hn)
        return ((1.0 - z) * n + z * h,)


class LSTMCell(_Cell):
    """Long short-term memory cell (gates i, f, g, o) with states ``h`` and ``c`` in Variables.

    Example:
        >>> import neurodyn.nn as nn
        >>> import jax.numpy as jnp
        >>> cell = nn.LSTMCell(3, 5, batch_size=4)
        >>> h = cell(jnp.ones((4, 3)))
        >>> cell.c.shape
        (4, 5)
    """

    _gates = 4
    _state_names = ("h", "c")

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 w_init: Initializer = _DEFAULTS["w_init"], hh_init: Initializer = _DEFAULTS["hh_init"],
                 b_init: Initializer = _DEFAULTS["b_init"], batch_size: int | None = None,
                 dtype: Any = None) -> None:
        super().__init__(input_size, hidden_size, bias, w_init, hh_init, b_init, batch_size, dtype)

    def recurrence(self, state: State, gx: jax.Array) -> State:
        h, c = state
        i, f, g, o = jnp.split(gx + self._hh(h), 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (h, c)


class _Sequence(Module):
    """Runs a cell over the time axis with ``nd.for_loop``."""

    _cell_type: type = _Cell

    def __init__(self, input_size: int, hidden_size: int, batch_first: bool = False,
                 stateful: bool = False, return_state: bool = False, unroll: int = 1,
                 **cell_kwargs: Any) -> None:
        self.cell = self._cell_type(input_size, hidden_size, **cell_kwargs)
        self.input_size = int(input_size)
        self.hidden_size = int(hidden_size)
        self.batch_first = bool(batch_first)
        self.stateful = bool(stateful)
        self.return_state = bool(return_state)
        self.unroll = unroll

    def forward(self, xs: Any, state: Any = None) -> Any:
        xs = jnp.asarray(xs)
        name = type(self).__name__
        if xs.ndim < 2 or xs.shape[-1] != self.input_size:
            layout = "(batch, time, features)" if self.batch_first else "(time, batch, features)"
            raise ValueError(f"{name}({self.input_size}, {self.hidden_size}) expects a sequence shaped "
                             f"{layout} or (time, features) with {self.input_size} features, got shape "
                             f"{tuple(xs.shape)} dtype {xs.dtype}")
        if self.batch_first and xs.ndim >= 3:
            xs = jnp.swapaxes(xs, 0, 1)
        batch = tuple(xs.shape[1:-1])
        cell = self.cell
        expected = batch + (self.hidden_size,)
        if state is not None:
            state0 = (state,) if not isinstance(state, (tuple, list)) else tuple(state)
            for s in state0:
                if tuple(jnp.shape(s)) != expected:
                    raise ValueError(f"{name}: initial state must have shape {expected}, got {tuple(jnp.shape(s))}")
        elif self.stateful:
            if tuple(cell.state[0].shape) != expected:
                if in_trace():
                    raise ValueError(
                        f"{name}(stateful=True): the cell state has shape {tuple(cell.state[0].shape)} but "
                        f"this input needs {expected}; call reset_state({batch[0] if batch else None}) "
                        "before the compiled call.")
                cell.reset_state(batch if batch else None)
            state0 = cell.state
        else:
            state0 = cell.init_state(batch)
        # Local Variables carry the state through nd.for_loop; the cell's own
        # Variables are only written in stateful mode.
        carry = [Variable(s) for s in state0]
        gxs = cell.input_projection(xs)  # one big matmul instead of one per step

        def body(gx: jax.Array) -> jax.Array:
            new = cell.recurrence(tuple(c.value for c in carry), gx)
            for c, v in zip(carry, new):
                c.value = v
            return new[0]

        ys = for_loop(body, gxs, unroll=self.unroll)
        final = tuple(c.value for c in carry)
        if self.stateful:
            for n, v in zip(cell._state_names, final):
                getattr(cell, n).value = v
        if self.batch_first and ys.ndim >= 3:
            ys = jnp.swapaxes(ys, 0, 1)
        if self.return_state:
            return ys, (final[0] if len(final) == 1 else final)
        return ys

    def reset_state(self, batch_size: int | None = None) -> None:
        """Zero the cell's state (used with ``stateful=True``)."""
        self.cell.reset_state(batch_size)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.input_size}, {self.hidden_size}, batch_first={self.batch_first})"


_SEQ_DOC = """Run a {cell} over a whole sequence with ``nd.for_loop``; returns every step's ``h``.

    Inputs are **time-major** ``(time, batch, {i})`` by default (as in PyTorch),
    batch-major ``(batch, time, {i})`` with ``batch_first=True``, or unbatched
    ``(time, {i})``. The output has the same layout with ``hidden_size`` features.

    By default each call starts from zeros (or from ``state`` if given) and the
    cell's own state Variables are left alone. With ``stateful=True`` the layer
    continues from the cell's state and writes the final state back (call
    ``reset_state(batch_size)`` to start over). ``return_state=True`` also
    returns the final state ({final}). Extra keyword arguments go to the cell.

    Example:
        >>> import neurodyn as nd
        >>> import neurodyn.nn as nn
        >>> import jax.numpy as jnp
        >>> layer = nn.{name}(100, 200)
        >>> f = nd.jit(layer)
        >>> f(jnp.ones((20, 8, 100))).shape
        (20, 8, 200)
"""


class RNN(_Sequence):
    __doc__ = _SEQ_DOC.format(cell="RNNCell", i="input_size", final="h", name="RNN")
    _cell_type = RNNCell


class GRU(_Sequence):
    __doc__ = _SEQ_DOC.format(cell="GRUCell", i="input_size", final="h", name="GRU")
    _cell_type = GRUCell


class LSTM(_Sequence):
    __doc__ = _SEQ_DOC.format(cell="LSTMCell", i="input_size", final="(h, c)", name="LSTM")
    _cell_type = LSTMCell
