"""Per-neuron parameters, state initializers and the refractory / rounding conventions."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

import neurodyn as nd
import neurodyn.nn as nn

DT = 0.1


def run_spikes(group, n):
    f = nd.jit(lambda: nd.for_loop(lambda: group.update(), length=n))
    return np.asarray(f())


def crossing_steps(V0, V_inf, V_th, tau):
    """Steps of free integration from V0 until V >= V_th (the exact LIF solution per step)."""
    k = 1
    while V_inf + (V0 - V_inf) * math.exp(-k * DT / tau) < V_th:
        k += 1
    return k


def isi_steps(s):
    return [np.unique(np.diff(np.flatnonzero(s[:, i]))) for i in range(s.shape[1])]


def test_heterogeneous_tau_gives_each_neuron_its_own_rate():
    tau = np.array([5.0, 10.0, 20.0, 40.0])
    lif = nn.LIF(4, V_rest=0.0, V_reset=0.0, V_th=10.0, tau=tau)
    lif.input.value = jnp.full(4, 15.0)
    s = run_spikes(lif, 3000)
    for i, isi in enumerate(isi_steps(s)):
        k = crossing_steps(0.0, 15.0, 10.0, tau[i])
        np.testing.assert_array_equal(isi, [k])
        # the analytic rate of the continuous model, to within one step per interval
        T = tau[i] * math.log(15.0 / 5.0)
        assert abs(k * DT - T) <= DT


def test_heterogeneous_V_th_and_tau_ref_give_each_neuron_its_own_rate():
    V_th = np.array([5.0, 10.0, 12.0, 14.0])
    lif = nn.LIF(4, V_rest=0.0, V_reset=0.0, V_th=V_th, tau=10.0)
    lif.input.value = jnp.full(4, 15.0)
    for i, isi in enumerate(isi_steps(run_spikes(lif, 3000))):
        np.testing.assert_array_equal(isi, [crossing_steps(0.0, 15.0, V_th[i], 10.0)])

    tau_ref = np.array([0.0, 0.1, 0.25, 2.0, 5.04])
    lif = nn.LIF(5, V_rest=0.0, V_reset=0.0, V_th=10.0, tau=10.0, tau_ref=tau_ref)
    lif.input.value = jnp.full(5, 15.0)
    k = crossing_steps(0.0, 15.0, 10.0, 10.0)
    n_ref = [0, 1, 3, 20, 50]  # tau_ref / dt rounded half up (0.25 ms -> 3 steps)
    for i, isi in enumerate(isi_steps(run_spikes(lif, 3000))):
        # released at t_spike + tau_ref: the spiking step is the first of the n_ref steps
        np.testing.assert_array_equal(isi, [max(n_ref[i] - 1, 0) + k])
        assert abs(isi[0] * DT - (tau_ref[i] + 10.0 * math.log(3.0))) <= DT + 0.051


def test_refractory_convention_against_hand_computed_spike_times():
    # tau = 10, V_reset = -5, V_th = 20, I = 40, tau_ref = 2 ms, dt = 0.1 ms.
    # First spike: 40 (1 - exp(-k dt / 10)) >= 20 first at k = 70 -> step index 69 (row t = 7.0 ms).
    # Then clamped at V_reset during steps 70..88 (n - 1 = 19 steps, Brian2), and from -5:
    # 40 - 45 exp(-m dt / 10) >= 20 first at m = 82 -> the next spike at step 88 + 82 = 170.
    lif = nn.LIF(1, V_rest=0.0, V_reset=-5.0, V_th=20.0, tau=10.0, tau_ref=2.0)
    lif.input.value = jnp.array([40.0])
    f = nd.jit(lambda: nd.for_loop(lambda: (lif.update(), lif.V.value), length=400))
    s, V = (np.asarray(a)[:, 0] for a in f())
    np.testing.assert_array_equal(np.flatnonzero(s), [69, 170, 271, 372])
    np.testing.assert_array_equal(V[69:89], -5.0)
    assert V[89] > -5.0
    # ISI 10.1 ms; the continuous model's 2 + 10 ln(45 / 20) = 10.109 ms
    # NEST's convention clamps n = 20 steps: every interval one step longer (10.2 ms)
    nest = nn.LIF(1, V_rest=0.0, V_reset=-5.0, V_th=20.0, tau=10.0, tau_ref=2.0)
    nest.refractory_convention = "nest"
    nest.input.value = jnp.array([40.0])
    np.testing.assert_array_equal(np.flatnonzero(run_spikes(nest, 400)[:, 0]), [69, 171, 273, 375])
    nest.refractory_convention = "neuron"
    with pytest.raises(ValueError, match="refractory_convention must be 'brian2' or 'nest', got 'neuron'"):
        nest.update()


def test_tau_ref_rounds_half_up():
    assert nd.time_to_steps(0.25, 0.1) == 3 and nd.time_to_steps(0.05, 0.1) == 1
    assert nd.time_to_steps(0.15, 0.1) == 2 and nd.time_to_steps(0.049, 0.1) == 0
    with pytest.raises(ValueError, match="tau_ref must be >= 0 ms, got -1"):
        nn.LIF(2, tau_ref=-1.0)


@pytest.mark.parametrize("make,name", [
    (lambda v: nn.LIF(5, tau=v), "LIF: tau"),
    (lambda v: nn.LIF(5, tau_ref=v), "LIF: tau_ref"),
    (lambda v: nn.LIF(5, V_th=v), "LIF: V_th"),
    (lambda v: nn.ALIF(5, tau_a=v), "ALIF: tau_a"),
    (lambda v: nn.Izhikevich(5, a=v), "Izhikevich: a"),
    (lambda v: nn.HH(5, g_Na=v), "HH: g_Na"),
    (lambda v: nn.AdEx(5, tau_w=v), "AdEx: tau_w"),
    (lambda v: nn.Expon(5, tau=v), "Expon: tau"),
    (lambda v: nn.DualExpon(5, tau_decay=v), "DualExpon: tau_decay"),
])
def test_parameter_shape_errors_name_the_parameter(make, name):
    with pytest.raises(ValueError, match=rf"{name} must be a scalar or have one value per neuron "
                                         r"\(shape \(5,\)\), got shape \(3,\)"):
        make(np.ones(3) * 20.0)
    make(np.full(5, 20.0))  # one value per neuron is accepted


def test_positive_parameters_checked_per_neuron():
    with pytest.raises(ValueError, match="LIF: tau must be > 0 ms, got an array with minimum -1"):
        nn.LIF(3, tau=np.array([10.0, -1.0, 5.0]))
    with pytest.raises(ValueError, match="AdEx: tau_w must be > 0 ms, got 0"):
        nn.AdEx(3, tau_w=0.0)


def test_per_neuron_parameters_of_every_model_match_separate_neurons():
    # a group with per-neuron parameters equals single-neuron groups with the scalars
    cases = [
        (nn.Izhikevich, dict(a=[0.02, 0.1], b=[0.2, 0.25], c=[-65.0, -55.0], d=[8.0, 2.0]), 10.0),
        (nn.AdEx, dict(tau_w=[30.0, 100.0], a=[1.0, 0.5], b=[1.0, 5.0], tau=[10.0, 20.0]), 70.0),
        (nn.HH, dict(g_Na=[120.0, 100.0], g_K=[36.0, 30.0], C=[1.0, 1.5]), 10.0),
        (nn.ALIF, dict(tau=[20.0, 10.0], tau_a=[100.0, 200.0], beta=[0.5, 1.0], tau_ref=[1.0, 2.0]), 3.0),
    ]
    for cls, kw, I in cases:
        group = cls(2, **{k: np.array(v) for k, v in kw.items()})
        group.input.value = jnp.full(2, I)
        s = run_spikes(group, 1000)
        assert s.sum() > 2, cls.__name__
        for i in range(2):
            single = cls(1, **{k: v[i] for k, v in kw.items()})
            single.input.value = jnp.full(1, I)
            np.testing.assert_array_equal(s[:, i], run_spikes(single, 1000)[:, 0], err_msg=cls.__name__)


def test_synapse_time_constants_per_neuron():
    syn = nn.Expon(3, tau=np.array([2.0, 5.0, 10.0]))
    syn.update(jnp.ones(3))
    for _ in range(9):
        syn.update()
    np.testing.assert_allclose(syn.g.value, np.exp(-0.9 / np.array([2.0, 5.0, 10.0])), rtol=1e-6)
    alpha = nn.Alpha(2, tau=np.array([2.0, 4.0]))
    g = [np.asarray(alpha.update(jnp.ones(2) if k == 0 else 0.0)) for k in range(200)]
    peak = np.argmax(np.stack(g), axis=0)
    np.testing.assert_array_equal(peak, [20, 40])  # the alpha function peaks at t = tau
    dual = nn.DualExpon(2, tau_rise=np.array([1.0, 2.0]), tau_decay=np.array([5.0, 10.0]))
    g = np.stack([np.asarray(dual.update(jnp.ones(2) if k == 0 else 0.0)) for k in range(400)])
    np.testing.assert_allclose(g.max(axis=0), 1.0, atol=2e-3)  # A normalises each peak to 1


def test_initializers_for_every_state_and_reset_from_them():
    hh = nn.HH(2, V_initializer=-70.0, m_initializer=0.1, h_initializer=np.array([0.5, 0.6]))
    np.testing.assert_allclose(hh.m.value, 0.1)
    np.testing.assert_allclose(hh.h.value, [0.5, 0.6])
    am, bm, ah, bh, an, bn = nn.HH.rates(jnp.float32(-70.0))
    np.testing.assert_allclose(hh.n.value, an / (an + bn), rtol=1e-6)  # steady state by default
    adex = nn.AdEx(3, w_initializer=np.array([1.0, 2.0, 3.0]), refractory_initializer=4, tau_ref=1.0)
    np.testing.assert_array_equal(adex.w.value, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(adex.refractory.value, 4)
    adex.w.value = jnp.zeros(3)
    adex.reset_state(2)
    np.testing.assert_array_equal(adex.w.value, [[1.0, 2.0, 3.0]] * 2)
    assert adex.refractory.value.shape == (2, 3) and adex.refractory.dtype == jnp.int32
    # a refractory initializer clamps V for that many steps
    lif = nn.LIF(1, V_rest=0.0, V_th=1e9, tau_ref=5.0, refractory_initializer=3)
    lif.input.value = jnp.array([10.0])
    V = []
    for _ in range(5):
        lif.update()
        V.append(float(lif.V.value[0]))
    assert V[:3] == [0.0, 0.0, 0.0] and V[3] > 0.0
    izh = nn.Izhikevich(2, b=np.array([0.2, 0.25]), V_initializer=-70.0)
    np.testing.assert_allclose(izh.u.value, [-14.0, -17.5])
    with pytest.raises(ValueError, match="AdEx w initializer produced shape"):
        nn.AdEx(3, w_initializer=np.ones(2))
