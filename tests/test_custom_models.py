"""nn.NeuronModel (models from their equations), the NeuronGroup contract, SpikeGeneratorGroup."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

import neurodyn as nd
import neurodyn.nn as nn

from _helpers import float64  # noqa: F401 (fixture)

DT = 0.1


def phi1(z):
    return np.where(np.abs(z) < 1e-12, 1.0, np.expm1(z) / np.where(z == 0, 1.0, z))


def record(group, n, names):
    f = nd.jit(lambda: nd.for_loop(lambda: (group.update(), tuple(getattr(group, k).value for k in names)),
                                   length=n))
    spikes, states = f()
    return np.asarray(spikes), [np.asarray(s) for s in states]


def test_qif_matches_hand_written_exponential_euler(float64):
    # the docs' QIF: tau dV/dt = (V + 65)(V + 50) / 15 + I, reset to -70 at 30 mV, tau_ref 1 ms
    qif = nn.NeuronModel(3, lambda V, I: ((V + 65.0) * (V + 50.0) / 15.0 + I) / 10.0,
                         states={"V": -65.0}, V_th=30.0, reset={"V": -70.0}, tau_ref=1.0)
    I = np.array([0.0, 10.0, 20.0])
    qif.input.value = jnp.asarray(I)
    s, (V,) = record(qif, 2000, ["V"])

    v, ref = np.full(3, -65.0), np.zeros(3, int)
    s_ref, V_ref = [], []
    for _ in range(2000):
        f = ((v + 65.0) * (v + 50.0) / 15.0 + I) / 10.0
        a = (2 * v + 115.0) / 15.0 / 10.0          # df/dV
        v_new = v + DT * phi1(DT * a) * f
        is_ref = ref > 0
        ref = np.maximum(ref - 1, 0)
        v_new = np.where(is_ref, v, v_new)
        spike = (v_new >= 30.0) & ~is_ref
        v = np.where(spike, -70.0, v_new)
        ref = np.where(spike, 9, ref)              # released 10 steps (1 ms) after the spike step
        s_ref.append(spike)
        V_ref.append(v)
    s_ref, V_ref = np.array(s_ref), np.array(V_ref)
    assert s_ref[:, 0].sum() == 0 and s_ref[:, 2].sum() > s_ref[:, 1].sum() > 3
    np.testing.assert_array_equal(s, s_ref)
    np.testing.assert_allclose(V, V_ref, rtol=1e-9, atol=1e-9)


def test_fitzhugh_nagumo_matches_hand_written_exponential_euler(float64):
    fhn = nn.NeuronModel(2, lambda v, w, I: (v - v**3 / 3 - w + I, (v + 0.7 - 0.8 * w) / 12.5),
                         states={"v": -1.2, "w": -0.6}, V_th=1.0)
    I = np.array([0.0, 0.5])
    fhn.input.value = jnp.asarray(I)
    s, (v_nd, w_nd) = record(fhn, 5000, ["v", "w"])
    v, w = np.full(2, -1.2), np.full(2, -0.6)
    vs, ws, ss = [], [], []
    for _ in range(5000):
        fv, fw = v - v**3 / 3 - w + I, (v + 0.7 - 0.8 * w) / 12.5
        v_new = v + DT * phi1(DT * (1 - v * v)) * fv
        w_new = w + DT * phi1(DT * (-0.8 / 12.5)) * fw
        ss.append((v < 1.0) & (v_new >= 1.0))     # an upward crossing: no reset
        v, w = v_new, w_new
        vs.append(v)
        ws.append(w)
    ss = np.array(ss)
    assert ss[:, 0].sum() == 0 and ss[:, 1].sum() >= 2
    np.testing.assert_array_equal(s, ss)
    np.testing.assert_allclose(v_nd, np.array(vs), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(w_nd, np.array(ws), rtol=1e-9, atol=1e-9)


def test_neuron_model_lif_with_conductances_equals_builtin_lif(float64):
    # a linear model: exponential Euler is exact, conductances included, so it equals nn.LIF
    kw = dict(V_th=-50.0, tau_ref=2.0)
    custom = nn.NeuronModel(4, lambda V, I: (-(V + 60.0) + I) / 20.0, states={"V": -60.0},
                            reset={"V": -60.0}, **kw)
    builtin = nn.LIF(4, V_rest=-60.0, V_reset=-60.0, tau=20.0, V_initializer=-60.0, **kw)
    for g in (custom, builtin):
        g.input.value = jnp.array([5.0, 15.0, 25.0, 40.0])
        g.add_input("exc", lambda V: nn.Conductance.reversal(0.3, 0.0))
        g.add_input("inh", lambda V: nn.Conductance.reversal(0.1, -80.0))
    s1, (V1,) = record(custom, 3000, ["V"])
    s2, (V2,) = record(builtin, 3000, ["V"])
    assert s1.sum() > 20
    np.testing.assert_array_equal(s1, s2)
    np.testing.assert_allclose(V1, V2, atol=1e-9)


def test_reset_functions_refractory_and_reset_state():
    m = nn.NeuronModel(2, lambda V, w, I: ((-(V + 65.0) + I - w) / 10.0, -w / 100.0),
                       states={"V": -65.0, "w": np.array([0.0, 1.0])}, V_th=-50.0,
                       reset={"V": -65.0, "w": lambda w: w + 2.0}, tau_ref=0.5)
    m.input.value = jnp.full(2, 40.0)
    s, (V, w) = record(m, 400, ["V", "w"])
    k = np.flatnonzero(s[:, 0])
    assert len(k) >= 3
    # w jumps by 2 at each spike (after its own decay over the step)
    np.testing.assert_allclose(w[k[0], 0] - w[k[0] - 1, 0] * math.exp(-DT / 100.0), 2.0, rtol=1e-4)
    np.testing.assert_array_equal(V[k[0]:k[0] + 5, 0], -65.0)   # clamped 4 steps after the spike step
    assert V[k[0] + 5, 0] > -65.0
    m.reset_state(3)
    assert m.V.shape == (3, 2)
    np.testing.assert_array_equal(m.w.value, [[0.0, 1.0]] * 3)


def test_neuron_model_errors():
    f = lambda V, I: -V
    with pytest.raises(ValueError, match=r"reset names \['u'\] are not states; states: \['V'\]"):
        nn.NeuronModel(2, f, {"V": 0.0}, V_th=1.0, reset={"u": 0.0})
    with pytest.raises(ValueError, match="state names must be identifiers other than"):
        nn.NeuronModel(2, f, {"spike": 0.0})
    with pytest.raises(ValueError, match=r"NeuronModel: V_th must be a scalar or have one value per neuron "
                                         r"\(shape \(2,\)\), got shape \(3,\)"):
        nn.NeuronModel(2, f, {"V": 0.0}, V_th=np.ones(3))
    m = nn.NeuronModel(2, lambda V, w, I: -V, {"V": 0.0, "w": 0.0})
    with pytest.raises(ValueError, match=r"derivative must return 2 values \(dV/dt, dw/dt\), got"):
        m.update()


def test_subclass_contract_reset_state_from_declared_initializers():
    class Leaky(nn.NeuronGroup):
        def __init__(self, size, tau=10.0):
            super().__init__(size)
            self.tau = self.param("tau", tau, positive=True, unit=" ms")
            self.add_state("V", nn.Uniform(0.0, 1.0))
            self.add_state("trace", 0.5)

        def update(self, x=0.0):
            V = self.V.value
            d = self.drive(V, x)
            self.V.value, _ = self.fire(d.add_jump(V - nd.get_dt() * V / self.tau + d.current(V)), 1.0, 0.0)
            return self.spike.value

    nd.random.seed(1)
    g = Leaky(5)
    V0 = np.asarray(g.V.value)
    g.V.value = jnp.full(5, 7.0)
    g.trace.value = jnp.zeros(5)
    nd.random.seed(1)
    g.reset_state()
    np.testing.assert_array_equal(g.V.value, V0)  # the user's V is re-initialised
    np.testing.assert_array_equal(g.trace.value, 0.5)
    with pytest.raises(ValueError, match=r"Leaky: tau must be > 0 ms, got -1"):
        Leaky(2, tau=-1.0)


# -- SpikeGeneratorGroup --------------------------------------------------------------------
def test_spike_generator_exact_steps():
    times = [0.0, 0.1, 0.3, 0.3, 0.25, 1.0, 0.7000000000000001, 0.69]
    indices = [0, 1, 0, 2, 1, 1, 2, 0]
    gen = nn.SpikeGeneratorGroup(3, indices, times)
    assert gen.max_per_step == 2
    spikes = np.asarray(nd.jit(lambda: nd.for_loop(gen.update, length=12))())
    expected = np.zeros((12, 3), bool)
    # floor(t / dt) with Brian2's tolerance: 0.25 -> step 2, 0.7000000000000001 -> 7, 0.69 -> 6
    for i, k in [(0, 0), (1, 1), (0, 3), (2, 3), (1, 2), (1, 10), (2, 7), (0, 6)]:
        expected[k, i] = True
    np.testing.assert_array_equal(spikes, expected)
    # reset_state restarts the schedule; a batch repeats it in every row
    gen.reset_state(2)
    out = np.asarray(nd.jit(lambda: nd.for_loop(gen.update, length=12))())
    assert out.shape == (12, 2, 3)
    np.testing.assert_array_equal(out[:, 1], expected)


def test_spike_generator_in_a_runner_and_errors():
    gen = nn.SpikeGeneratorGroup(4, [3, 0, 2], [2.0, 0.5, 9.9])
    mon = nd.Runner(gen, monitors=["spike"], progress_bar=False).run(10.0)
    rows, cols = np.nonzero(mon["spike"])
    np.testing.assert_array_equal(rows, [5, 20, 99])
    np.testing.assert_array_equal(cols, [0, 3, 2])
    with pytest.raises(ValueError, match=r"neuron 1 spikes more than once in step 3"):
        nn.SpikeGeneratorGroup(2, [1, 1], [0.3, 0.35])
    with pytest.raises(ValueError, match=r"indices must be in \[0, 2\), got values from 0 to 2"):
        nn.SpikeGeneratorGroup(2, [0, 2], [1.0, 2.0])
    with pytest.raises(ValueError, match="times must be finite and >= 0 ms"):
        nn.SpikeGeneratorGroup(2, [0], [-1.0])
    with pytest.raises(ValueError, match="same length"):
        nn.SpikeGeneratorGroup(2, [0, 1], [1.0])
    empty = nn.SpikeGeneratorGroup(2, [], [])
    assert not np.asarray(empty.update()).any()
