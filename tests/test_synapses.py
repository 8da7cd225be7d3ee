import math

import jax.numpy as jnp
import numpy as np
import pytest

import neurodyn as nd
import neurodyn.nn as nn


def impulse_response(syn, n):
    out = [float(syn.update(jnp.ones(1))[0])]
    out += [float(syn.update(0.0)[0]) for _ in range(n - 1)]
    return np.array(out)


def test_expon_impulse_response():
    g = impulse_response(nn.Expon(1, tau=5.0), 100)
    np.testing.assert_allclose(g, np.exp(-0.1 * np.arange(100) / 5.0), rtol=1e-5)


def test_alpha_impulse_response():
    g = impulse_response(nn.Alpha(1, tau=2.0), 200)
    t = 0.1 * np.arange(200)
    np.testing.assert_allclose(g, t / 2.0 * np.exp(-t / 2.0), atol=1e-6)
    assert abs(t[np.argmax(g)] - 2.0) < 0.11


def test_dual_expon_impulse_response_peak_normalised():
    syn = nn.DualExpon(1, tau_rise=1.0, tau_decay=5.0)
    g = impulse_response(syn, 400)
    t = 0.1 * np.arange(400)
    np.testing.assert_allclose(g, syn.A * (np.exp(-t / 5.0) - np.exp(-t)), atol=1e-6)
    assert abs(g.max() - 1.0) < 1e-3
    with pytest.raises(ValueError, match="tau_rise"):
        nn.DualExpon(1, tau_rise=5.0, tau_decay=1.0)


def test_outputs_and_batch_reset():
    g, V = jnp.array([0.5, 2.0]), jnp.array([-60.0, -40.0])
    np.testing.assert_array_equal(nn.CUBA()(g, V), g)
    cond = nn.COBA(E=-80.0)(g, V)
    assert isinstance(cond, nn.Conductance)
    np.testing.assert_allclose(cond.g, g)
    np.testing.assert_allclose(cond.gE, g * -80.0)
    np.testing.assert_allclose(cond.current(V), [0.5 * -20.0, 2.0 * -40.0])
    syn = nn.Alpha(3, tau=2.0)
    syn.reset_state(4)
    assert syn.g.shape == (4, 3) and syn.h.shape == (4, 3)


def test_section_and_ramp_input():
    I = nn.section_input([0.0, 2.0, 1.0], [1.0, 0.5, 0.2], dt=0.1)
    np.testing.assert_array_equal(I, [0.0] * 10 + [2.0] * 5 + [1.0] * 2)
    r = nn.ramp_input(0.0, 1.0, 1.0, t_start=0.2, t_end=0.6, dt=0.1)
    np.testing.assert_allclose(r, [0, 0, 0, 0.25, 0.5, 0.75, 0, 0, 0, 0], atol=1e-7)
    with pytest.raises(ValueError, match="2 values but 1 durations"):
        nn.section_input([0.0, 1.0], [1.0])


def test_timed_and_constant_input_reach_the_neuron():
    lif = nn.LIF(2, V_rest=0.0, V_th=1e9, tau=10.0)
    nn.TimedInput(lif, jnp.array([[1.0, 2.0], [3.0, 4.0]]))
    nn.ConstantInput(lif, 0.5)
    Vs = []
    for i in range(3):
        with nd.context(t=0.1 * i, i=i):
            lif.update()
        Vs.append(np.asarray(lif.V.value))
    e = math.exp(-0.1 / 10.0)
    V = np.zeros(2)
    for I in ([1.5, 2.5], [3.5, 4.5], [0.5, 0.5]):  # after the table: 0
        V = np.array(I) + (V - np.array(I)) * e
    np.testing.assert_allclose(Vs[-1], V, rtol=1e-5)


def test_poisson_group_rate():
    nd.random.seed(1)
    src = nn.PoissonGroup(1000, freq=50.0)
    f = nd.jit(lambda: nd.for_loop(lambda: src.update().sum(dtype=jnp.int32), length=1000))
    total = int(f().sum())
    # 1000 neurons x 0.1 s x 50 Hz = 5000 expected, std ~ 70
    assert abs(total - 5000) < 350
    with pytest.raises(ValueError, match="freq"):
        nn.PoissonGroup(10, freq=-1.0)


def test_poisson_input_mean():
    nd.random.seed(2)
    lif = nn.LIF(500, V_th=1e9)
    noise = nn.PoissonInput(lif, num_input=200, freq=20.0, weight=0.5)
    samples = np.stack([np.asarray(noise._current(lif.V.value)) for _ in range(20)])
    # mean 0.5 * 200 * 0.002 = 0.2 per step
    assert abs(samples.mean() - 0.2) < 0.02
