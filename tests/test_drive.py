"""Conductance inputs (integrated with the conductance folded into the decay) and voltage jumps."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

import neurodyn as nd
import neurodyn.nn as nn


class Source(nn.Group):
    """A presynaptic group whose spikes the test sets by hand."""

    def update(self):
        return self.spike.value


def test_stiff_conductance_stays_below_reversal_potential():
    # g = 300 x the leak conductance towards E = 0 mV: explicit Euler jumps to
    # -60 + (0.1 / 20) * 300 * 60 = +30 mV in one step; the exact solution approaches
    # the fixed point 300 * 0 / 301 + (-60) / 301 from below.
    lif = nn.LIF(1, V_rest=-60.0, V_reset=-60.0, V_th=1e9, tau=20.0, V_initializer=-60.0)
    lif.add_input("stiff", lambda V: nn.Conductance.reversal(300.0, 0.0))
    step = nd.jit(lif)
    V = []
    for _ in range(50):
        step()
        V.append(float(lif.V.value[0]))
    V = np.array(V)
    assert (V < 0.0).all()
    V_inf = -60.0 / 301.0
    t = 0.1 * np.arange(1, 51)
    np.testing.assert_allclose(V, V_inf + (-60.0 - V_inf) * np.exp(-t * 301.0 / 20.0), rtol=1e-5)
    explicit = -60.0 + 0.1 / 20.0 * (0.0 + 300.0 * (0.0 - -60.0))
    assert explicit > 25.0  # what an explicit step would have done


def test_coba_single_neuron_against_hand_written_integration():
    # one neuron, an excitatory and an inhibitory Expon synapse, input spikes at given steps
    pe, pi = Source(1), Source(1)
    post = nn.LIF(1, V_rest=-60.0, V_reset=-60.0, V_th=-50.0, tau=20.0, tau_ref=5.0,
                  V_initializer=-58.0)
    post.input.value = jnp.array([12.0])
    net = nn.Network(pe=pe, pi=pi, post=post,
                     exc=nn.Projection(pe, post, nn.AllToAll(), 0.3, nn.Expon(1, 5.0), nn.COBA(E=0.0)),
                     inh=nn.Projection(pi, post, nn.AllToAll(), 1.5, nn.Expon(1, 10.0), nn.COBA(E=-80.0)))
    rng = np.random.default_rng(3)
    spikes = rng.random((2000, 2)) < [0.05, 0.01]
    step = nd.jit(lambda s: (pe.spike.update(s[:1]), pi.spike.update(s[1:]), net.update(),
                             post.V.value, post.spike.value)[3:])
    out = [step(s) for s in spikes]
    V_nd = np.array([float(v[0]) for v, _ in out])
    s_nd = np.array([bool(s[0]) for _, s in out])

    dt = 0.1
    V, ge, gi, ref = -58.0, 0.0, 0.0, 0
    V_ref, s_ref = [], []
    n_clamped = 49  # released at t_spike + 5 ms: the spiking step is the first of 50
    for k in range(2000):
        prev = spikes[k]  # set on the sources just before the network's step
        ge = ge * math.exp(-dt / 5.0) + 0.3 * prev[0]
        gi = gi * math.exp(-dt / 10.0) + 1.5 * prev[1]
        g = ge + gi
        V_inf = (-60.0 + 12.0 + ge * 0.0 + gi * -80.0) / (1.0 + g)
        V_new = V_inf + (V - V_inf) * math.exp(-dt * (1.0 + g) / 20.0)
        is_ref = ref > 0
        if is_ref:
            V_new = V
        spike = V_new >= -50.0 and not is_ref
        V = -60.0 if spike else V_new
        ref = n_clamped if spike else max(ref - 1, 0)
        V_ref.append(V)
        s_ref.append(spike)
    assert sum(s_ref) > 5
    np.testing.assert_array_equal(s_nd, s_ref)
    np.testing.assert_allclose(V_nd, V_ref, atol=2e-4)


@pytest.mark.parametrize("model", [
    lambda: nn.HH(1),
    lambda: nn.Izhikevich(1),
    lambda: nn.AdEx(1, V_th=1e9),
])
def test_integrator_models_fold_the_conductance(model):
    # exp_euler sees g V inside the derivative: a huge inhibitory conductance pulls V to E = -90
    # without passing it (explicit Euler would oscillate around E with amplitude ~ dt * g)
    neu = model()
    neu.add_input("shunt", lambda V: nn.Conductance.reversal(500.0, -90.0))
    V = []
    for _ in range(30):
        neu.update()
        V.append(float(neu.V.value[0]))
    V = np.array(V)
    assert (V > -90.0 - 1e-3).all() and abs(V[-1] + 90.0) < 1.0


def test_voltage_jumps_from_a_delta_projection():
    pre = Source(3)
    post = nn.LIF(2, V_rest=0.0, V_reset=0.0, V_th=10.0, tau=10.0, tau_ref=1.0)
    proj = nn.Projection(pre, post, nn.AllToAll(), 3.0, nn.Delta(2), nn.VoltageJump(), mode="dense")
    net = nn.Network(pre=pre, post=post, proj=proj)
    step = nd.jit(net)
    e = math.exp(-0.1 / 10.0)
    # one spike: +3 mV at the next step, then the free decay
    pre.spike.value = jnp.array([True, False, False])
    step()
    np.testing.assert_allclose(post.V.value, [3.0, 3.0], rtol=1e-6)
    pre.spike.value = jnp.zeros(3, bool)
    step()
    np.testing.assert_allclose(post.V.value, [3.0 * e, 3.0 * e], rtol=1e-6)
    # three spikes: 9 mV more (3 e^2 + 9 > 10) crosses the threshold at this very step
    pre.spike.value = jnp.ones(3, bool)
    step()
    assert post.spike.value.all()
    np.testing.assert_array_equal(post.V.value, 0.0)
    # during the refractory period jumps are discarded (as NEST's iaf_psc_delta)
    step()
    assert not post.spike.value.any()
    np.testing.assert_array_equal(post.V.value, 0.0)


def test_jumps_in_integrator_models_and_sum_inputs_refuses_them():
    izh = nn.Izhikevich(1)
    twin = nn.Izhikevich(1)
    izh.add_input("kick", lambda V: nn.Jump(3.0))
    izh.update()
    twin.update()
    np.testing.assert_allclose(izh.V.value, twin.V.value + 3.0, rtol=1e-6)
    with pytest.raises(TypeError, match=r"inputs \['kick'\] are voltage jumps"):
        izh.sum_inputs(izh.V.value)
    with pytest.raises(TypeError, match="nn.Jump input is not a current"):
        jnp.zeros(1) + nn.Jump(1.0)
    with pytest.raises(TypeError, match="nn.Conductance input is not a current"):
        1.0 + nn.Conductance(1.0, 0.0)


def test_drive_sums_each_kind_in_order():
    lif = nn.LIF(2)
    lif.input.value = jnp.array([1.0, 2.0])
    lif.add_input("c", lambda V: 0.5)
    lif.add_input("g1", lambda V: nn.Conductance.reversal(2.0, -80.0))
    lif.add_input("g2", lambda V: nn.Conductance.reversal(1.0, 0.0))
    lif.add_input("j", lambda V: nn.Jump(0.25))
    V = jnp.array([-60.0, -50.0])
    d = lif.drive(V, x=1.0)
    np.testing.assert_array_equal(d.I, [2.5, 3.5])
    assert d.g == 3.0 and d.gE == -160.0 and d.jump == 0.25
    np.testing.assert_allclose(d.current(V), [2.5 - 160 + 180, 3.5 - 160 + 150])
