"""NIR export/import: round trips give the same outputs, a graph written by hand from the NIR
specification runs as a forward-Euler simulation of its equations, shapes and metadata, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import neurodyn as nd
from neurodyn import nn

nir = pytest.importorskip("nir")

RNG = np.random.default_rng(0)


def _spikes(T, B, n, p=0.4):
    return (RNG.random((T, B, n)) < p).astype(np.float32)


def _run(model, xs):
    model.reset_state(xs.shape[1])
    return np.asarray(nd.jit(lambda x: nd.for_loop(model, x))(xs))


def _model():
    nd.random.seed(1)
    normal = jax.nn.initializers.normal
    return nn.Sequential(
        nn.Linear(6, 10, w_init=normal(0.8), b_init=normal(0.1)),
        nn.Leaky(10, beta=np.linspace(0.5, 0.95, 10).astype(np.float32), threshold=0.8),
        nn.Delay(10, steps=np.arange(10) % 3),
        nn.Linear(10, 8, bias=False, w_init=normal(0.6)),
        nn.RLeaky(8, beta=0.9, recurrent_bias=True, w_init=normal(0.4)),
        nn.Linear(8, 7, w_init=normal(0.6)),
        nn.Synaptic(7, alpha=0.7, beta=0.85, reset="zero", reset_delay=False),
        nn.Sequential(nn.Linear(7, 5), nn.RSynaptic(5, alpha=0.5, beta=0.9, w_init=normal(0.5))),
        nn.Linear(5, 3),
        nn.LeakyIntegrator(3, beta=0.8),
    )


def test_round_trip_gives_the_same_outputs(tmp_path):
    model = _model()
    xs = _spikes(40, 4, 6)
    ref = _run(model, xs)
    graph = nd.nir.export(model, dt=1e-3)
    loaded = nd.nir.load(graph)  # dt from the graph's metadata
    np.testing.assert_allclose(_run(loaded, xs), ref, rtol=1e-4, atol=1e-5)
    # through a file: parameters, shapes and the reset conventions in node metadata survive
    nir.write(tmp_path / "net.nir", graph)
    again = nd.nir.load(str(tmp_path / "net.nir"))
    np.testing.assert_allclose(_run(again, xs), ref, rtol=1e-4, atol=1e-5)
    # the hidden layers did spike (the check is not vacuous)
    model.reset_state(4)
    spikes = nd.for_loop(lambda x: model.layers[1](model.layers[0](x)), xs)
    assert 0.05 < float(jnp.mean(spikes)) < 0.95
    # imported layers are neurodyn's own; parameters are TrainVars, so the model trains on
    assert isinstance(loaded.nodes["4"], nn.RLeaky) and isinstance(loaded.nodes["1"], nn.Leaky)
    assert loaded.nodes["4"].reset == "subtract" and loaded.nodes["4"].reset_delay
    assert "0.weight" in {k.replace("nodes.", "") for k in loaded.train_vars()}


def test_export_shapes_metadata_and_mapping():
    model = _model()
    g = nd.nir.export(model, dt=0.5)
    assert g.metadata["dt"] == 0.5 and g.metadata["source"] == "neurodyn"
    assert [e for e in g.edges] == [("input", "0"), *[(str(i), str(i + 1)) for i in range(9)], ("9", "output")]
    np.testing.assert_array_equal(g.nodes["input"].input_type["input"], [6])
    np.testing.assert_array_equal(g.nodes["output"].output_type["output"], [3])
    for name, node in g.nodes.items():  # every node carries its shapes
        assert node.input_type and node.output_type, name
    lif = g.nodes["1"]
    assert isinstance(lif, nir.LIF)
    beta = np.linspace(0.5, 0.95, 10)
    np.testing.assert_allclose(lif.tau, 0.5 / (1 - beta), rtol=1e-5)  # beta = 1 - dt / tau
    np.testing.assert_allclose(lif.r * 0.5 / lif.tau, 1.0, rtol=1e-6)  # unit input gain
    np.testing.assert_allclose(lif.v_threshold, 0.8)
    assert lif.metadata == {"reset": "subtract", "reset_delay": True}
    np.testing.assert_array_equal(g.nodes["2"].delay, 0.5 * (np.arange(10) % 3))
    assert isinstance(g.nodes["3"], nir.Linear) and g.nodes["3"].weight.shape == (8, 10)  # (out, in)
    np.testing.assert_array_equal(g.nodes["3"].weight, np.asarray(model.layers[3].weight.value).T)
    rec = g.nodes["4"]
    assert isinstance(rec, nir.NIRGraph) and ("w_rec", "lif") in rec.edges and ("lif", "w_rec") in rec.edges
    assert isinstance(rec.nodes["w_rec"], nir.Affine) and rec.nodes["w_rec"].weight.shape == (8, 8)
    cuba = g.nodes["6"]
    assert isinstance(cuba, nir.CubaLIF)
    np.testing.assert_allclose(cuba.tau_syn, 0.5 / 0.3, rtol=1e-5)
    np.testing.assert_allclose(cuba.w_in * 0.5 / cuba.tau_syn, 1.0, rtol=1e-6)
    assert isinstance(g.nodes["7"], nir.NIRGraph)  # a nested Sequential is a subgraph
    li = g.nodes["9"]
    assert isinstance(li, nir.LI)
    np.testing.assert_allclose(li.tau, 0.5 / 0.2, rtol=1e-5)
    # beta = 1 is an IF / I node with r = 1 / dt
    g2 = nd.nir.export(nn.Sequential(nn.Linear(2, 2), nn.Leaky(2, beta=1.0), nn.LeakyIntegrator(2, beta=1.0)), dt=0.1)
    assert isinstance(g2.nodes["1"], nir.IF) and isinstance(g2.nodes["2"], nir.I)
    np.testing.assert_allclose(g2.nodes["1"].r, 10.0)


def _euler_lif(v, I, tau, r, v_leak, thr, v_reset, dt):
    v = v + dt / tau * (v_leak - v + r * I)
    z = (v > thr).astype(np.float64)
    return np.where(z > 0, v_reset, v), z


def test_hand_written_nir_graph_runs_its_equations():
    """A graph written from the NIR specification (time in seconds, dt = 1 ms), against forward Euler
    of its equations in NumPy: LIF with leak and reset potentials, CubaLIF, IF, a Delay, an LI readout,
    and a recurrent cycle through a Linear node that is not a single recurrent layer."""
    dt = 1e-3
    W1, b1 = RNG.normal(0, 1.0, (5, 4)), RNG.normal(0.3, 0.2, 5)
    W2 = np.abs(RNG.normal(0, 1.0, (3, 5)))
    Wrec = RNG.normal(0, 0.5, (5, 3))
    W3, b3 = RNG.normal(0, 1.0, (2, 3)), np.array([0.1, -0.1])
    tau = np.array([5e-3, 10e-3, 20e-3, 8e-3, 4e-3])
    lif = dict(tau=tau, r=np.full(5, 4.0), v_leak=np.full(5, -0.2), v_threshold=np.full(5, 0.5),
               v_reset=np.full(5, -0.3))
    cuba = dict(tau_syn=np.full(3, 4e-3), tau_mem=np.full(3, 10e-3), r=np.full(3, 4.0), v_leak=np.full(3, 0.1),
                v_threshold=np.full(3, 0.3), v_reset=np.full(3, 0.1), w_in=np.full(3, 2.0))
    nodes = {
        "in": nir.Input(input_type={"input": np.array([4])}),
        "fc1": nir.Affine(weight=W1, bias=b1),
        "lif": nir.LIF(**lif),
        "fc2": nir.Linear(weight=W2),
        "cuba": nir.CubaLIF(**cuba),
        "rec": nir.Linear(weight=Wrec),          # cuba -> rec -> lif closes a cycle
        "delay": nir.Delay(delay=np.array([0.0, 2e-3, 3e-3])),
        "if": nir.IF(r=np.full(3, 400.0), v_threshold=np.full(3, 1.0)),
        "fc3": nir.Affine(weight=W3, bias=b3),
        "li": nir.LI(tau=np.full(2, 20e-3), r=np.full(2, 3.0), v_leak=np.full(2, 0.05)),
        "out": nir.Output(output_type={"output": np.array([2])}),
    }
    edges = [("in", "fc1"), ("fc1", "lif"), ("lif", "fc2"), ("fc2", "cuba"), ("cuba", "rec"), ("rec", "lif"),
             ("cuba", "delay"), ("delay", "if"), ("if", "fc3"), ("fc3", "li"), ("li", "out")]
    graph = nir.NIRGraph(nodes=nodes, edges=edges)
    with pytest.raises(ValueError, match="does not record its dt; pass dt="):
        nd.nir.load(graph)
    net = nd.nir.load(graph, dt=dt)
    assert net.back == [("rec", "lif")]
    xs = _spikes(60, 3, 4, p=0.5)
    out = _run(net, xs)

    B = 3
    v1 = np.broadcast_to(lif["v_reset"], (B, 5)).copy()  # spiking membranes start at v_reset
    isyn, v2 = np.zeros((B, 3)), np.broadcast_to(cuba["v_reset"], (B, 3)).copy()
    rec_prev = np.zeros((B, 5))
    buf = []
    v_if, v_li = np.zeros((B, 3)), np.zeros((B, 2))
    ref, counts = [], np.zeros(3)
    for t in range(60):
        I1 = xs[t] @ W1.T + b1 + rec_prev
        v1, z1 = _euler_lif(v1, I1, tau, lif["r"], lif["v_leak"], lif["v_threshold"], lif["v_reset"], dt)
        isyn = isyn + dt / cuba["tau_syn"] * (-isyn + cuba["w_in"] * (z1 @ W2.T))
        v2, z2 = _euler_lif(v2, isyn, cuba["tau_mem"], cuba["r"], cuba["v_leak"], cuba["v_threshold"],
                            cuba["v_reset"], dt)
        rec_prev = z2 @ Wrec.T
        buf.append(z2)
        delayed = np.stack([buf[t - k][:, c] if t - k >= 0 else np.zeros(B) for c, k in enumerate([0, 2, 3])], -1)
        v_if = v_if + dt * 400.0 * delayed
        z3 = (v_if > 1.0).astype(np.float64)
        v_if = np.where(z3 > 0, 0.0, v_if)
        v_li = v_li + dt / 20e-3 * (0.05 - v_li + 3.0 * (z3 @ W3.T + b3))
        ref.append(v_li)
        counts += np.array([z1.sum(), z2.sum(), z3.sum()])
    np.testing.assert_allclose(out, np.stack(ref), rtol=1e-4, atol=1e-5)
    assert np.all(counts >= 20), counts  # every spiking node fired


def test_nir_errors_name_the_node_and_the_problem():
    with pytest.raises(TypeError, match=r"nd.nir.export: layer 1 is a ReLU; supported: nn.Linear"):
        nd.nir.export(nn.Sequential(nn.Linear(2, 2), nn.ReLU()))
    with pytest.raises(ValueError, match=r"layer 1 \(Leaky\(reset='none'\)\) never resets"):
        nd.nir.export(nn.Sequential(nn.Linear(2, 2), nn.Leaky(2, beta=0.9, reset="none")))
    with pytest.raises(ValueError, match="decay of 1 for some but not all neurons"):
        nd.nir.export(nn.Leaky(2, beta=np.array([0.5, 1.0], np.float32)))
    g = nir.NIRGraph.from_list(nir.LIF(tau=np.array([1e-3]), r=np.ones(1), v_leak=np.zeros(1),
                                       v_threshold=np.ones(1)))
    with pytest.raises(ValueError, match=r"node 'lif' has tau 0.001 < dt = 0.01; forward Euler"):
        nd.nir.load(g, dt=1e-2)
    g = nir.NIRGraph.from_list(nir.Threshold(threshold=np.ones(2)))
    with pytest.raises(TypeError, match=r"node 'threshold' is a NIR Threshold, which neurodyn does not import"):
        nd.nir.load(g, dt=1.0)
    with pytest.raises(TypeError, match="expected a nir.NIRGraph or a path to a .nir file, got dict"):
        nd.nir.load({}, dt=1.0)
