"""Export to and import from NIR, the Neuromorphic Intermediate Representation.

NIR nodes are continuous-time; neurodyn's discrete layers step once per
``dt``. The mapping is forward Euler with step ``dt`` (the convention of
snnTorch's, Norse's and spyx's NIR support), under which a NIR ``LIF``

    tau dv/dt = (v_leak - v) + r I

becomes ``v <- beta v + (dt r / tau) I + (dt / tau) v_leak`` with
``beta = 1 - dt / tau``. Export therefore writes a :class:`nn.Leaky` with decay
``beta`` as ``tau = dt / (1 - beta)``, ``r = tau / dt`` (so the input gain
``dt r / tau`` is 1), ``v_leak = 0``, ``v_reset = 0``; ``nn.LeakyIntegrator``
as ``LI``; ``nn.Synaptic`` as ``CubaLIF`` (``tau_syn = dt / (1 - alpha)``,
``w_in = tau_syn / dt``); ``beta = 1`` as ``IF`` / ``I`` with ``r = 1 / dt``;
``nn.Linear`` as ``Affine`` (or ``Linear`` without bias; NIR weights are
``(out, in)``); ``nn.Delay`` as ``Delay`` (``delay = steps dt``); and a
recurrent layer as a subgraph with a cycle. Import inverts this, for any
``r``, ``v_leak`` and ``v_reset`` (an input gain and offset in front of the
layer, and a membrane shifted by ``v_reset``, where needed); spiking
membranes start at ``v_reset``, integrators at 0.

NIR's ``LIF`` resets to ``v_reset`` right after a spike (neurodyn's
``reset='zero', reset_delay=False``). neurodyn's other reset conventions
(subtractive, applied at the next step) have no NIR field: export records
them in the node's ``metadata`` (``{'reset': ..., 'reset_delay': ...}``) and
import honours them, so a round trip is exact; other tools see NIR's reset.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

from ._module import Module
from ._state import Variable
from .nn._layers import Linear, Sequential
from .nn._neurons import _state_shape, reset_var
from .nn._spiking import Delay, Leaky, LeakyIntegrator, RLeaky, RSynaptic, Synaptic

__all__ = ["export", "load", "NIRModule"]


def _nir() -> Any:
    try:
        import nir
    except ImportError:
        raise ImportError("nd.nir needs the 'nir' package: pip install 'neurodyn[nir]'") from None
    return nir


def _vec(value: Any, n: int) -> np.ndarray:
    v = value.value if isinstance(value, Variable) else value
    return np.broadcast_to(np.asarray(v, np.float32), (n,)).copy()


# -- export ----------------------------------------------------------------------------------
def _tau(decay: np.ndarray, dt: float, what: str) -> np.ndarray:
    if np.any(decay >= 1.0):
        raise ValueError(f"nd.nir.export: {what} has a decay of 1 for some but not all neurons; NIR needs one "
                         f"node type per layer (IF for decay 1, LIF otherwise)")
    return (dt / (1.0 - decay)).astype(np.float32)


def _reset_meta(layer: Leaky) -> dict:
    return {"reset": layer.reset, "reset_delay": layer.reset_delay}


def _check_nir_reset(layer: Leaky, name: str) -> None:
    if layer.reset == "none":
        raise ValueError(f"nd.nir.export: layer {name} ({type(layer).__name__}(reset='none')) never resets, which NIR's "
                         "spiking nodes cannot express")


def _neuron_node(nir: Any, layer: Any, dt: float, name: str) -> Any:
    n = layer.size
    if isinstance(layer, LeakyIntegrator):
        beta = np.clip(_vec(layer.beta, n), 0, 1)
        if np.all(beta == 1.0):
            return nir.I(r=np.full(n, 1.0 / dt, np.float32))
        tau = _tau(beta, dt, name)
        return nir.LI(tau=tau, r=tau / dt, v_leak=np.zeros(n, np.float32))
    _check_nir_reset(layer, name)
    beta = np.clip(_vec(layer.beta, n), 0, 1)
    thr = _vec(layer.threshold, n)
    zeros = np.zeros(n, np.float32)
    if isinstance(layer, Synaptic):
        alpha = np.clip(_vec(layer.alpha, n), 0, 1)
        tau_syn, tau_mem = _tau(alpha, dt, name), _tau(beta, dt, name)
        return nir.CubaLIF(tau_syn=tau_syn, tau_mem=tau_mem, r=tau_mem / dt, v_leak=zeros, v_threshold=thr,
                           v_reset=zeros, w_in=tau_syn / dt, metadata=_reset_meta(layer))
    if np.all(beta == 1.0):
        return nir.IF(r=np.full(n, 1.0 / dt, np.float32), v_threshold=thr, v_reset=zeros,
                      metadata=_reset_meta(layer))
    tau = _tau(beta, dt, name)
    return nir.LIF(tau=tau, r=tau / dt, v_leak=zeros, v_threshold=thr, v_reset=zeros,
                   metadata=_reset_meta(layer))


def _linear_node(nir: Any, fc: Linear) -> Any:
    w = np.asarray(fc.weight.value, np.float32).T.copy()
    if fc.bias is None:
        return nir.Linear(weight=w)
    return nir.Affine(weight=w, bias=np.asarray(fc.bias.value, np.float32).copy())


def _layer_node(nir: Any, layer: Any, dt: float, name: str) -> Any:
    if isinstance(layer, Linear):
        return _linear_node(nir, layer)
    if isinstance(layer, Delay):
        return nir.Delay(delay=(layer.steps * dt).astype(np.float32))
    if isinstance(layer, (RLeaky, RSynaptic)):
        n = layer.size
        cell = _neuron_node(nir, layer, dt, name)
        nodes = {"input": nir.Input(input_type={"input": np.array([n])}), "lif": cell,
                 "w_rec": _linear_node(nir, layer.recurrent), "output": nir.Output(output_type={"output": np.array([n])})}
        edges = [("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")]
        return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"neurodyn": type(layer).__name__})
    if isinstance(layer, (Leaky, LeakyIntegrator)):
        return _neuron_node(nir, layer, dt, name)
    if isinstance(layer, Sequential):
        return _graph(nir, list(layer.layers), dt, name + ".")
    raise TypeError(f"nd.nir.export: layer {name} is a {type(layer).__name__}; supported: nn.Linear, nn.Leaky, "
                    "nn.Synaptic, nn.RLeaky, nn.RSynaptic, nn.LeakyIntegrator, nn.Delay and nn.Sequential of these")


def _size_in(node: Any) -> np.ndarray:
    return np.asarray(next(iter(node.input_type.values())))


def _size_out(node: Any) -> np.ndarray:
    return np.asarray(next(iter(node.output_type.values())))


def _graph(nir: Any, layers: list, dt: float, prefix: str = "", metadata: dict | None = None) -> Any:
    if not layers:
        raise ValueError("nd.nir.export: the model has no layers")
    nodes: dict[str, Any] = {}
    names = []
    for i, layer in enumerate(layers):
        name = str(i)
        nodes[name] = _layer_node(nir, layer, dt, f"{prefix}{i}")
        names.append(name)
    graph_nodes = {"input": nir.Input(input_type={"input": _size_in(nodes[names[0]])}), **nodes,
                   "output": nir.Output(output_type={"output": _size_out(nodes[names[-1]])})}
    chain = ["input", *names, "output"]
    edges = list(zip(chain[:-1], chain[1:]))
    return nir.NIRGraph(nodes=graph_nodes, edges=edges, metadata=dict(metadata or {}))


def export(model: Module, dt: float = 1.0) -> Any:
    """The ``nir.NIRGraph`` of a model built from discrete spiking layers.

    ``model`` is an ``nn.Sequential`` (nested ones become subgraphs) or a
    single layer: ``nn.Linear``, ``nn.Leaky``, ``nn.Synaptic``, ``nn.RLeaky``,
    ``nn.RSynaptic`` (a subgraph with the recurrent cycle),
    ``nn.LeakyIntegrator`` and ``nn.Delay``. Time constants are written for a
    step of ``dt`` (any unit; NIR graphs from other tools usually use
    seconds); every node has its input and output shapes, and the graph's
    metadata records ``dt``. See the module docstring for the mapping.

    Example:
        >>> import neurodyn as nd
        >>> from neurodyn import nn
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.Leaky(8, beta=0.9),
        ...                     nn.Linear(8, 2), nn.LeakyIntegrator(2, beta=0.9))
        >>> graph = nd.nir.export(net, dt=1e-3)
        >>> sorted(graph.nodes)
        ['0', '1', '2', '3', 'input', 'output']
        >>> type(graph.nodes['1']).__name__, graph.metadata['dt']
        ('LIF', 0.001)
        >>> import nir; nir.write("net.nir", graph)  # doctest: +SKIP
    """
    nir = _nir()
    if not dt > 0:
        raise ValueError(f"nd.nir.export: dt must be > 0, got {dt}")
    layers = list(model.layers) if isinstance(model, Sequential) else [model]
    from . import __version__
    return _graph(nir, layers, float(dt), "", {"source": "neurodyn", "version": __version__, "dt": float(dt),
                                                "discretization": "forward Euler"})


# -- import ----------------------------------------------------------------------------------
class _InputMap(Module):
    """``layer(gain * x + offset)``: NIR's input resistance and leak potential in front of a discrete layer."""

    def __init__(self, layer: Module, gain: np.ndarray, offset: np.ndarray) -> None:
        self.layer = layer
        self.gain = jnp.asarray(gain)
        self.offset = jnp.asarray(offset)

    def update(self, x: Any) -> Any:
        return self.layer(self.gain * x + self.offset)


class _Scale(Module):
    def __init__(self, scale: np.ndarray) -> None:
        self.scale = jnp.asarray(scale, jnp.float32)

    def update(self, x: Any) -> Any:
        return x * self.scale


def _wrap(layer: Module, gain: np.ndarray, offset: np.ndarray) -> Module:
    if np.allclose(gain, 1.0, rtol=1e-6) and not np.any(offset):
        return layer
    return _InputMap(layer, gain.astype(np.float32), offset.astype(np.float32))


def _decay(tau: np.ndarray, dt: float, name: str, field: str) -> np.ndarray:
    tau = np.asarray(tau, np.float64)
    if np.any(tau < dt):
        raise ValueError(f"nd.nir.load: node '{name}' has {field} {tau.min():g} < dt = {dt:g}; forward Euler with "
                         f"this dt would give a negative decay (pass a smaller dt)")
    return (1.0 - dt / tau).astype(np.float32)


def _reset_of(node: Any) -> dict:
    meta = getattr(node, "metadata", None) or {}
    return {"reset": str(meta.get("reset", "zero")), "reset_delay": bool(meta.get("reset_delay", False))}


def _spiking(nir: Any, node: Any, dt: float, name: str, recurrent: Any = None) -> Module:
    """A Leaky/Synaptic (or recurrent variant) for a NIR LIF/IF/CubaLIF node."""
    reset = _reset_of(node)
    thr = np.asarray(node.v_threshold, np.float32).reshape(-1)
    n = thr.size
    v_reset = np.asarray(node.v_reset, np.float32).reshape(-1)
    if np.any(v_reset) and reset["reset"] == "subtract":
        raise ValueError(f"nd.nir.load: node '{name}' resets by subtraction and has a non-zero v_reset")
    common = dict(threshold=thr - v_reset, **reset)
    rec_kw = {}
    if recurrent is not None:
        rec_kw = {"recurrent_bias": isinstance(recurrent, nir.Affine)}
    if isinstance(node, nir.CubaLIF):
        alpha = _decay(node.tau_syn, dt, name, "tau_syn")
        beta = _decay(node.tau_mem, dt, name, "tau_mem")
        if np.any(np.asarray(node.v_leak) != np.asarray(node.v_reset)):
            raise ValueError(f"nd.nir.load: node '{name}' (CubaLIF) has v_leak != v_reset, which nn.Synaptic cannot "
                             "represent exactly")
        # syn' = k syn with k = dt r / tau_mem folds the current-to-voltage gain into the input gain
        k = dt * np.asarray(node.r, np.float64) / np.asarray(node.tau_mem, np.float64)
        gain = k * dt * np.asarray(node.w_in, np.float64) / np.asarray(node.tau_syn, np.float64)
        offset = np.zeros(n)
        cls = RSynaptic if recurrent is not None else Synaptic
        layer = cls(n, alpha=alpha, beta=beta, **common, **rec_kw)
    else:
        if isinstance(node, nir.IF):
            beta = np.ones(n, np.float32)
            gain = dt * np.asarray(node.r, np.float64)
            offset = np.zeros(n)
        else:
            beta = _decay(node.tau, dt, name, "tau")
            ratio = dt / np.asarray(node.tau, np.float64)
            gain = ratio * np.asarray(node.r, np.float64)
            # v' = v - v_reset resets to 0 and leaks towards v_leak - v_reset
            offset = ratio * (np.asarray(node.v_leak, np.float64) - v_reset)
        cls = RLeaky if recurrent is not None else Leaky
        layer = cls(n, beta=beta, **common, **rec_kw)
    if recurrent is not None:
        # the recurrent current enters with the same gain as the external input
        g = gain.reshape(-1).astype(np.float32) * np.ones(n, np.float32)
        w = np.asarray(recurrent.weight, np.float32).T * g[None, :]
        layer.recurrent.weight.value = jnp.asarray(w)
        if isinstance(recurrent, nir.Affine):
            layer.recurrent.bias.value = jnp.asarray(np.asarray(recurrent.bias, np.float32) * g)
    return _wrap(layer, np.broadcast_to(gain, (n,)), np.broadcast_to(offset, (n,)))


def _linear(nir: Any, node: Any) -> Linear:
    w = np.asarray(node.weight, np.float32)
    if w.ndim != 2:
        raise ValueError(f"nd.nir.load: only 2-d Linear/Affine weights are supported, got shape {w.shape}")
    fc = Linear(w.shape[1], w.shape[0], bias=isinstance(node, nir.Affine))
    fc.weight.value = jnp.asarray(w.T)
    if isinstance(node, nir.Affine):
        fc.bias.value = jnp.asarray(np.asarray(node.bias, np.float32).reshape(-1))
    return fc


def _recurrent_cell(nir: Any, graph: Any) -> tuple[str, str] | None:
    """(neuron, weight) names if ``graph`` is Input -> neuron <-> Linear/Affine, neuron -> Output."""
    inner = {k: v for k, v in graph.nodes.items() if not isinstance(v, (nir.Input, nir.Output))}
    if len(inner) != 2:
        return None
    neuron = [k for k, v in inner.items() if isinstance(v, (nir.LIF, nir.IF, nir.CubaLIF))]
    weight = [k for k, v in inner.items() if isinstance(v, (nir.Linear, nir.Affine))]
    if len(neuron) != 1 or len(weight) != 1:
        return None
    nrn, w = neuron[0], weight[0]
    edges = {(a, b) for a, b in graph.edges}
    inp = next(iter(graph.inputs))
    out = next(iter(graph.outputs))
    if edges != {(inp, nrn), (nrn, w), (w, nrn), (nrn, out)}:
        return None
    return nrn, w


def _node_module(nir: Any, node: Any, dt: float, name: str) -> Module | None:
    if isinstance(node, (nir.Input, nir.Output)) or type(node).__name__ == "Identity":
        return None
    if isinstance(node, (nir.Affine, nir.Linear)):
        return _linear(nir, node)
    if isinstance(node, nir.Scale):
        return _Scale(np.asarray(node.scale))
    if isinstance(node, (nir.LIF, nir.IF, nir.CubaLIF)):
        return _spiking(nir, node, dt, name)
    if isinstance(node, (nir.LI, nir.I)):
        r = np.asarray(node.r, np.float64).reshape(-1)
        if isinstance(node, nir.I):
            return _wrap(LeakyIntegrator(r.size, beta=np.ones(r.size, np.float32)), dt * r, np.zeros(r.size))
        beta = _decay(node.tau, dt, name, "tau")
        ratio = dt / np.asarray(node.tau, np.float64).reshape(-1)
        return _wrap(LeakyIntegrator(r.size, beta=beta), ratio * r, ratio * np.asarray(node.v_leak).reshape(-1))
    if isinstance(node, nir.Delay):
        d = np.asarray(node.delay, np.float64).reshape(-1) / dt
        steps = np.rint(d)
        if not np.allclose(d, steps, atol=1e-4):
            raise ValueError(f"nd.nir.load: node '{name}' (Delay) has delays {np.asarray(node.delay).tolist()} that are "
                             f"not whole multiples of dt = {dt:g}")
        return Delay(d.size, steps.astype(np.int64))
    if isinstance(node, nir.NIRGraph):
        cell = _recurrent_cell(nir, node)
        if cell is not None:
            nrn, w = cell
            return _spiking(nir, node.nodes[nrn], dt, f"{name}.{nrn}", recurrent=node.nodes[w])
        return NIRModule(node, dt, _prefix=name + ".")
    raise TypeError(f"nd.nir.load: node '{name}' is a NIR {type(node).__name__}, which neurodyn does not import; "
                    "supported: Input, Output, Affine, Linear, Scale, LIF, IF, CubaLIF, LI, I, Delay, NIRGraph")


def _width(node: Any) -> int:
    shape = _size_out(node)
    return int(np.prod(shape)) if shape.size else 1


class NIRModule(Module):
    """A NIR graph run one time step per call: every node a neurodyn layer, edges summed.

    Nodes run in an order where each one's inputs come first; an edge that
    closes a cycle (recurrence) carries the source's output of the previous
    step. A recurrent subgraph of one spiking node and one weight node (what
    :func:`export` writes for ``nn.RLeaky``) becomes an ``nn.RLeaky`` /
    ``nn.RSynaptic``. ``nodes`` maps NIR node names to the layers.

    Example:
        >>> import jax.numpy as jnp
        >>> import neurodyn as nd
        >>> from neurodyn import nn
        >>> graph = nd.nir.export(nn.Sequential(nn.Linear(4, 8), nn.Leaky(8, beta=0.9)), dt=1.0)
        >>> net = nd.nir.load(graph)            # an NIRModule
        >>> net.reset_state(3)                  # a batch of 3
        >>> nd.for_loop(net, jnp.ones((5, 3, 4))).shape     # (time, batch, features)
        (5, 3, 8)
    """

    reset_state_per_batch = True

    def __init__(self, graph: Any, dt: float, _prefix: str = "") -> None:
        nir = _nir()
        self.dt = float(dt)
        self.nodes = {}
        for k, v in graph.nodes.items():
            m = _node_module(nir, v, self.dt, _prefix + k)
            if m is not None:
                self.nodes[k] = m
        inputs, outputs = list(graph.inputs), list(graph.outputs)
        if len(inputs) != 1:
            raise ValueError(f"nd.nir.load: graph {_prefix or '(top)'} must have exactly one Input node, got {inputs}")
        if not outputs:
            raise ValueError(f"nd.nir.load: graph {_prefix or '(top)'} has no Output node")
        self.input_name, self.output_names = inputs[0], outputs
        names = set(graph.nodes)
        for a, b in graph.edges:
            if a not in names or b not in names:
                raise ValueError(f"nd.nir.load: edge ({a!r}, {b!r}) names a node the graph does not have")
        self.preds = {k: [a for a, b in graph.edges if b == k] for k in graph.nodes}
        # depth-first from the input: an edge to a node still on the stack closes a cycle
        succ = {k: [b for a, b in graph.edges if a == k] for k in graph.nodes}
        order, state, back = [], {}, set()

        def visit(k: str) -> None:
            state[k] = 1
            for b in succ[k]:
                if state.get(b) == 1:
                    back.add((k, b))
                elif b not in state:
                    visit(b)
            state[k] = 2
            order.append(k)

        visit(self.input_name)
        unreached = [k for k in graph.nodes if k not in state]
        if unreached:
            raise ValueError(f"nd.nir.load: nodes {unreached} are not reachable from the input '{self.input_name}'")
        self.order = order[::-1]
        self.back = sorted(back)
        self.widths = {a: _width(graph.nodes[a]) for a, _ in self.back}
        self.carry = {a: Variable(jnp.zeros((w,), jnp.float32)) for a, w in self.widths.items()}

    def reset_state(self, batch_size: int | None = None) -> None:
        """Reset every node's state and the recurrent carries."""
        for m in self.nodes.values():
            m.reset_state(batch_size)
        for a, var in self.carry.items():
            reset_var(var, jnp.zeros(_state_shape(self.widths[a], batch_size), jnp.float32))

    def update(self, x: Any) -> Any:
        out: dict[str, Any] = {}
        back = set(self.back)
        for k in self.order:
            if k == self.input_name:
                out[k] = jnp.asarray(x, jnp.float32)
                continue
            total = None
            for a in self.preds[k]:
                v = self.carry[a].value if (a, k) in back else out[a]
                total = v if total is None else total + v
            m = self.nodes.get(k)
            out[k] = total if m is None else m(total)
        for a in self.carry:
            self.carry[a].value = out[a]
        res = [out[k] for k in self.output_names]
        return res[0] if len(res) == 1 else dict(zip(self.output_names, res))


def load(graph: Any, dt: float | None = None) -> NIRModule:
    """A neurodyn module running a ``nir.NIRGraph`` (or a ``.nir`` file) with time step ``dt``.

    ``dt`` is in the graph's time unit (NIR graphs from most tools use
    seconds); by default the ``dt`` recorded by :func:`export`. Each call of
    the module is one step. Spiking nodes become ``nn.Leaky`` /
    ``nn.Synaptic`` (``nn.RLeaky`` / ``nn.RSynaptic`` for a recurrent
    subgraph) with decays ``1 - dt / tau``; see the module docstring.

    Example:
        >>> import jax.numpy as jnp
        >>> import neurodyn as nd
        >>> from neurodyn import nn
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.Leaky(8, beta=0.9),
        ...                     nn.Linear(8, 2), nn.LeakyIntegrator(2, beta=0.9))
        >>> again = nd.nir.load(nd.nir.export(net, dt=1e-3))   # or nd.nir.load("net.nir")
        >>> again.reset_state(3); net.reset_state(3)
        >>> xs = jnp.ones((5, 3, 4))
        >>> bool(jnp.allclose(nd.for_loop(again, xs), nd.for_loop(net, xs)))   # an exact round trip
        True
    """
    nir = _nir()
    if isinstance(graph, str) or hasattr(graph, "__fspath__"):
        graph = nir.read(graph)
    if not isinstance(graph, nir.NIRGraph):
        raise TypeError(f"nd.nir.load: expected a nir.NIRGraph or a path to a .nir file, got {type(graph).__name__}")
    if dt is None:
        dt = (graph.metadata or {}).get("dt")
        if dt is None:
            raise ValueError("nd.nir.load: the graph does not record its dt; pass dt= (in the unit of its time "
                             "constants)")
    if not float(dt) > 0:
        raise ValueError(f"nd.nir.load: dt must be > 0, got {dt}")
    return NIRModule(graph, float(dt))

