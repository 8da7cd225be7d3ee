"""The kinds of input a neuron group sums each step: currents, conductances, voltage jumps.

An input function registered with ``NeuronGroup.add_input(name, fn)`` returns,
for the membrane potential ``V`` before the step, one of

* a current (a number or an array): added to the input current ``I``;
* a :class:`Conductance` ``(g, g * E)``: a conductance ``g`` towards the
  reversal potential ``E``. It contributes ``g * (E - V)`` to the current, but
  the built-in models fold ``g`` into the membrane's decay and integrate
  ``V`` exactly over the step (``g`` held constant), so large conductances
  stay stable: ``V`` never passes the reversal potential;
* a :class:`Jump`: an instantaneous change of ``V`` in mV, added after the
  step's integration and before the threshold test (a delta synapse, as
  NEST's ``iaf_psc_delta``). Jumps arriving during the refractory period are
  discarded.

:meth:`NeuronGroup.drive` sums every kind separately into a :class:`Drive`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax

__all__ = ["Conductance", "Jump", "Drive"]


def _no_add(self: Any, other: Any) -> Any:
    raise TypeError(
        f"an nn.{type(self).__name__} input is not a current and cannot be added to one; "
        "a model reads its inputs with NeuronGroup.drive(V), which sums currents, "
        "conductances and voltage jumps separately")


@jax.tree_util.register_pytree_node_class
class Conductance:
    """A conductance input: conductance ``g`` and the product ``gE = g * E``.

    Several conductances add up as ``g = sum g_k`` and ``gE = sum g_k E_k``;
    their current at potential ``V`` is ``gE - g * V``.

    Example:
        >>> import neurodyn.nn as nn
        >>> lif = nn.LIF(10)
        >>> lif.add_input('shunt', lambda V: nn.Conductance(0.5, 0.5 * -70.))
    """

    __slots__ = ("g", "gE")

    def __init__(self, g: Any, gE: Any) -> None:
        self.g, self.gE = g, gE

    @classmethod
    def reversal(cls, g: Any, E: Any) -> "Conductance":
        """The conductance ``g`` towards the reversal potential ``E`` (mV)."""
        return cls(g, g * E)

    def current(self, V: Any) -> Any:
        """The current ``gE - g * V`` at the potential ``V``."""
        return self.gE - self.g * V

    __add__ = __radd__ = __sub__ = __rsub__ = _no_add

    def tree_flatten(self) -> tuple:
        return (self.g, self.gE), None

    @classmethod
    def tree_unflatten(cls, aux: Any, children: Any) -> "Conductance":
        return cls(*children)

    def __repr__(self) -> str:
        return f"Conductance(g={self.g!r}, gE={self.gE!r})"


@jax.tree_util.register_pytree_node_class
class Jump:
    """A voltage-jump input: ``dV`` mV added to the membrane potential at this step.

    Example:
        >>> import neurodyn.nn as nn
        >>> lif = nn.LIF(10)
        >>> lif.add_input('kick', lambda V: nn.Jump(0.5))   # +0.5 mV every step
    """

    __slots__ = ("dV",)

    def __init__(self, dV: Any) -> None:
        self.dV = dV

    __add__ = __radd__ = __sub__ = __rsub__ = _no_add

    def tree_flatten(self) -> tuple:
        return (self.dV,), None

    @classmethod
    def tree_unflatten(cls, aux: Any, children: Any) -> "Jump":
        return cls(*children)

    def __repr__(self) -> str:
        return f"Jump(dV={self.dV!r})"


class Drive(NamedTuple):
    """A group's inputs for one step, summed by kind (see :meth:`NeuronGroup.drive`).

    ``I``: the total current. ``g`` / ``gE``: the total conductance and
    ``sum g_k E_k`` (None without conductance inputs). ``jump``: the total
    voltage jump in mV (None without jump inputs).

    Example:
        >>> import neurodyn.nn as nn
        >>> lif = nn.LIF(3)
        >>> d = lif.drive(lif.V.value)
        >>> I_total = d.current(lif.V.value)
    """

    I: Any
    g: Any = None
    gE: Any = None
    jump: Any = None

    def current(self, V: Any) -> Any:
        """The total current at potential ``V``: ``I + gE - g * V`` (``I`` without conductances)."""
        if self.g is None:
            return self.I
        return self.I + (self.gE - self.g * V)

    def add_jump(self, V: Any) -> Any:
        """``V`` plus the voltage jumps (``V`` itself without jump inputs)."""
        return V if self.jump is None else V + self.jump
