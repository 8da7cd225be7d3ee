"""The Network container: groups and projections updated in the standard order."""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax

from .._environ import float_dtype
from .._module import Module
from .._state import CTX
from ._kernels import Fusion, event_inputs, fusable, fusion_digest, fusion_signature, shares_compaction
from ._neurons import Group
from ._plasticity import plastic_update
from ._projection import Projection

__all__ = ["Network"]


def _build_fusion_once(init: Callable) -> Callable:
    """Wrap a Network ``__init__``: projections assigned in it are fused once, at its end,
    not once per assignment (the table of a large network takes a while to build)."""

    @functools.wraps(init)
    def __init__(self: "Network", *args: Any, **kwargs: Any) -> None:
        depth = self.__dict__.get("_nd_constructing", 0)
        object.__setattr__(self, "_nd_constructing", depth + 1)
        try:
            init(self, *args, **kwargs)
        finally:
            object.__setattr__(self, "_nd_constructing", depth)
        if depth == 0:
            self._refuse()

    return __init__


class Network(Module):
    """A container of groups and projections with the standard update order.

    ``update()`` first updates every :class:`Projection` among the direct
    attributes (in attribute order), then every group (neuron groups, Poisson
    groups: instances of ``nn.Group``), in attribute order. Projections thus
    see the spikes of the previous step, and every group sees the synaptic
    input of this step. Other child modules are not updated automatically;
    override ``update()`` for any other order.

    Fusion: all event-mode projections with unbatched boolean spikes, a scalar
    (or no) delay and the stock ``Projection`` dynamics are propagated
    together, with one spike compaction over the concatenated spike vectors
    they read (each presynaptic group, delayed by each distinct delay: the
    output of the projections' spike histories), one row gather and one
    scatter-add into a single vector, from a combined target table the Network
    builds on the host when a projection is assigned (and again in
    ``reset_state()`` or an eager ``update()`` if the projections'
    connectivity arrays were replaced since). A projection with a scalar
    weight receives ``weight * count`` exactly as unfused, so results are
    bit-identical; per-connection weights are summed in the same order as
    unfused (identical on CPU). Up to 16 spiking rows are scattered at once
    (where the sources' ``max_spikes`` make that the typical step, the
    compaction of those 16 itself tells whether a step has more, so the
    common step needs no spike count first); more are compacted into the
    smallest of a ladder of buffers that fits this step's spikes (the first
    holds a third of the sources' summed ``max_spikes``, at least 16, the
    next ones double up to 8 times that sum; beyond, all spiking rows are
    listed) and scattered 16 rows at a time, so a step costs about its
    spikes' rows. Other projections (dense,
    per-synapse delays, float or batched spikes, subclasses overriding the
    dynamics), and all of them when the table is stale inside compiled code,
    take the per-projection path, where those without delay that share a
    presynaptic group still share a compaction. The table sits in a hidden
    Variable: it is not part of ``vars()``, state dicts or checkpoints, and
    doubles the memory of the fused connectivity.

    Modules may be given as keyword arguments or set as attributes in a
    subclass's ``__init__``.

    Example:
        >>> import neurodyn as nd
        >>> import neurodyn.nn as nn
        >>> E = nn.LIF(100); I = nn.LIF(25)
        >>> net = nn.Network(E=E, I=I, E2I=nn.Projection(E, I, nn.FixedProb(0.1), 1.,
        ...                                              nn.Expon(25, 5.), nn.CUBA()))
        >>> step = nd.jit(net)
    """

    #: set False (on the class or an instance) to propagate every projection separately
    fuse: bool = True

    def __init__(self, **modules: Any) -> None:
        for name, m in modules.items():
            setattr(self, name, m)

    __init__ = _build_fusion_once(__init__)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is not None:
            cls.__init__ = _build_fusion_once(init)

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if isinstance(value, Projection) or name == "fuse":
            self._refuse()

    def __delattr__(self, name: str) -> None:
        was = isinstance(self.__dict__.get(name), Projection)
        super().__delattr__(name)
        if was:
            self._refuse()

    def _fusable(self) -> list[Projection]:
        if not self.fuse:
            return []
        return [p for p in self.projections().values() if fusable(p)]

    def _refuse(self) -> None:
        """(Re)build the fused table for the current projections (outside compiled code)."""
        if CTX.frames or self.__dict__.get("_nd_constructing", 0):
            return
        projs = self._fusable()
        if any(isinstance(p.targets.committed_value, jax.core.Tracer) for p in projs):
            return  # a module rebuilt inside a raw JAX transformation (nd.graph.merge)
        old = self.__dict__.get("_fusion")
        signature = fusion_signature(projs)
        if old is not None and old.signature == signature:
            return
        if old is not None and old.digest == fusion_digest(projs):
            # the same connectivity on new arrays (placed on a mesh, reloaded): keep the table,
            # and the compiled code that uses it
            old.signature = signature
            return
        # A plain attribute (not hidden): replacing it makes compiled code re-trace.
        super().__setattr__("_fusion", Fusion(projs) if projs else None)

    def _current_fusion(self, projs: list[Projection]) -> "Fusion | None":
        fusion = self.__dict__.get("_fusion")
        if fusion is None or fusion.signature != fusion_signature(projs):
            self._refuse()  # no-op inside compiled code: the unfused path is exact too
            fusion = self.__dict__.get("_fusion")
        return fusion if fusion is not None and fusion.signature == fusion_signature(projs) else None

    def reset_state(self, batch_size: int | None = None) -> None:
        super().reset_state(batch_size)
        self._refuse()

    def _state_replaced(self) -> None:
        # new connectivity arrays (a loaded checkpoint, placement on a mesh): keep the table if
        # their contents are the same, rebuild it otherwise
        self._refuse()

    def projections(self) -> dict[str, Projection]:
        """The direct child projections, in update order."""
        return {k: v for k, v in self.children().items() if isinstance(v, Projection)}

    def groups(self) -> dict[str, Group]:
        """The direct child groups, in update order."""
        return {k: v for k, v in self.children().items() if isinstance(v, Group)}

    def update(self) -> None:
        """One step: all projections, then all groups."""
        children = self.children()
        projs = [m for m in children.values() if isinstance(m, Projection)]
        inputs: dict[int, jax.Array] = {}
        fusion = self._current_fusion(self._fusable())
        try:
            if fusion is not None:
                for p, x in zip(fusion.projs, fusion.inputs()):
                    inputs[id(p)] = x
            # Remaining event-driven projections without delay that share a presynaptic
            # group share one spike compaction and one branch (same numbers, fewer operations).
            shared: dict[int, list[Projection]] = {}
            for p in projs:
                if id(p) not in inputs and shares_compaction(p):
                    shared.setdefault(id(p.pre), []).append(p)
            for peers in shared.values():
                if len(peers) > 1:
                    sf = peers[0].pre.spike.value.astype(float_dtype())
                    for q, x in zip(peers, event_inputs(peers, sf)):
                        inputs[id(q)] = x
            _delay_inputs(self, projs, inputs)
            # Synapses update in attribute order (two projections may share one).
            for p in projs:
                if id(p) in inputs:
                    p.syn.update(inputs[id(p)])
                elif fusion is not None and _plastic_stock(p):
                    # reads the fused compaction of its spikes instead of compacting them again
                    plastic_update(p, fusion.first_spikes)
                else:
                    p.update()
        finally:
            if fusion is not None:
                fusion.forget()  # the table keeps no traced value beyond this step, even on an error
        for m in children.values():
            if isinstance(m, Group):
                m.update()


def _plastic_stock(p: Projection) -> bool:
    return p.plasticity is not None and type(p).update is Projection.update


def _delay_inputs(net: Network, projs: list[Projection], inputs: dict[int, jax.Array]) -> None:
    """Per-synapse-delay projections: those from one presynaptic group share the listing of its
    spikes (``nn._projection.delay_inputs``)."""
    from ._projection import delay_fusable, delay_inputs
    het = [p for p in projs if id(p) not in inputs and delay_fusable(p)] if net.fuse else []
    if len(het) > 1:
        inputs.update(zip(map(id, het), delay_inputs(het)))
