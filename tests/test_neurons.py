import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import neurodyn as nd
import neurodyn.nn as nn
from neurodyn import surrogate
from neurodyn import _integrators as integ


def run(group, n, **kw):
    """Run ``group.update()`` n times in a compiled loop; return stacked (V, spike)."""
    f = nd.jit(lambda: nd.for_loop(lambda: (group.update(**kw), group.V.value)[::-1], length=n))
    V, s = f()
    return np.asarray(V), np.asarray(s)


# -- integrators ------------------------------------------------------------------------
def test_one_step_methods_on_linear_decay():
    f = lambda x, t: -x
    dt = 0.1
    assert abs(float(integ.euler(f, 1.0, 0.0, dt)) - 0.9) < 1e-7
    assert abs(float(integ.rk2(f, 1.0, 0.0, dt)) - (1 - dt + dt**2 / 2)) < 1e-7
    assert abs(float(integ.rk4(f, 1.0, 0.0, dt)) - (1 - dt + dt**2 / 2 - dt**3 / 6 + dt**4 / 24)) < 1e-7
    assert abs(float(integ.exp_euler(f, jnp.float32(1.0), 0.0, dt)) - math.exp(-dt)) < 1e-7


def test_exp_euler_exact_for_linear_systems_of_several_variables():
    # dV/dt = (-V + 5) / 10, dw/dt = -2 w + V (w depends on V: held fixed per step)
    def f(x, t):
        V, w = x
        return (-V + 5.0) / 10.0, -2.0 * w + V
    dt = 0.5
    V, w = integ.exp_euler(f, (jnp.float32(1.0), jnp.float32(3.0)), 0.0, dt)
    assert abs(float(V) - (5 + (1 - 5) * math.exp(-dt / 10))) < 1e-6
    w_inf = 1.0 / 2.0
    assert abs(float(w) - (w_inf + (3 - w_inf) * math.exp(-2 * dt))) < 1e-6


def test_odeint_decorator_and_default_dt():
    @nd.odeint(method="rk2")
    def dx(x, t, a):
        return a * x
    with nd.context(dt=0.2):
        out = dx(jnp.float32(1.0), 0.0, -1.0)
    assert abs(float(out) - (1 - 0.2 + 0.02)) < 1e-6
    with pytest.raises(ValueError, match="unknown integration method"):
        nd.odeint(lambda x, t: x, method="rk9")


# -- LIF ------------------------------------------------------------------------------------
def test_lif_subthreshold_matches_analytic_solution():
    lif = nn.LIF(3, V_rest=-60.0, V_th=100.0, tau=20.0, R=2.0, V_initializer=jnp.array([-60.0, -50.0, -70.0]))
    lif.input.value = jnp.array([1.0, 2.0, 3.0])
    V, s = run(lif, 200)
    t = 0.1 * np.arange(1, 201)[:, None]
    V_inf = -60.0 + 2.0 * np.array([1.0, 2.0, 3.0])
    expected = V_inf + (np.array([-60.0, -50.0, -70.0]) - V_inf) * np.exp(-t / 20.0)
    np.testing.assert_allclose(V, expected, atol=2e-4)
    assert not s.any()


def _first_crossing(V0, V_inf, V_th, tau, dt):
    k = 1
    while V_inf + (V0 - V_inf) * math.exp(-k * dt / tau) < V_th:
        k += 1
    return k


def test_lif_spike_times_reset_and_refractoriness():
    dt, tau, tau_ref = 0.1, 10.0, 2.0
    lif = nn.LIF(1, V_rest=0.0, V_reset=-5.0, V_th=10.0, tau=tau, tau_ref=tau_ref)
    lif.input.value = jnp.array([15.3])
    V, s = run(lif, 400)
    steps = np.flatnonzero(s[:, 0]) + 1  # 1-based step numbers
    k0 = _first_crossing(0.0, 15.3, 10.0, tau, dt)
    k1 = _first_crossing(-5.0, 15.3, 10.0, tau, dt)
    n_ref = round(tau_ref / dt)
    assert steps[0] == k0
    # released at t_spike + tau_ref (Brian2): the spiking step is the first of the n_ref steps
    np.testing.assert_array_equal(np.diff(steps), n_ref - 1 + k1)
    # clamped at V_reset during the refractory period
    np.testing.assert_array_equal(V[k0 - 1:k0 - 1 + n_ref, 0], -5.0)
    assert V[k0 - 1 + n_ref, 0] > -5.0


def test_inputs_sum_in_order_with_x():
    a = nn.LIF(4, V_th=1e9)
    b = nn.LIF(4, V_th=1e9)
    a.input.value = jnp.full(4, 1.0)
    a.add_input("leak", lambda V: 0.5 * (3.0 - V))
    a.add_input("bias", lambda V: 2.0)
    with pytest.raises(ValueError, match="already has an input named 'bias'"):
        a.add_input("bias", lambda V: 0.0)
    for _ in range(3):
        Vb = b.V.value
        a.update(x=0.25)
        b.input.value = ((jnp.full(4, 1.0) + 0.5 * (3.0 - Vb)) + 2.0)
        b.update(x=0.25)
    np.testing.assert_array_equal(a.V.value, b.V.value)
    a.remove_input("bias")
    assert list(a.current_inputs) == ["leak"]


def test_initializers_and_batch_reset():
    nd.random.seed(0)
    lif = nn.LIF(20000, V_initializer=nn.Normal(-55.0, 2.0))
    v = np.asarray(lif.V.value)
    assert abs(v.mean() + 55) < 0.1 and abs(v.std() - 2) < 0.1
    lif2 = nn.LIF(5, V_initializer=jax.nn.initializers.constant(-3.0))
    np.testing.assert_array_equal(lif2.V.value, -3.0)
    lif2.reset_state(batch_size=3)
    assert lif2.V.shape == (3, 5) and lif2.spike.shape == (3, 5) and lif2.refractory.shape == (3, 5)
    assert lif2.spike.dtype == jnp.bool_
    lif3 = nn.LIF(4, V_initializer=lambda shape: jnp.arange(4.0))
    np.testing.assert_array_equal(lif3.V.value, np.arange(4.0))
    with pytest.raises(ValueError, match="does not broadcast"):
        nn.LIF(4, V_initializer=lambda shape: jnp.zeros(3))
    with pytest.raises(ValueError, match="tau must be > 0"):
        nn.LIF(4, tau=0.0)
    with pytest.raises(ValueError, match="size must be a positive int"):
        nn.LIF(0)


def test_surrogate_gradient_through_lif():
    dt, tau = 0.1, 10.0
    sg = surrogate.Sigmoid(alpha=2.0)
    lif = nn.LIF(1, V_rest=0.0, V_reset=0.0, V_th=1.0, tau=tau, spike_fn=sg,
                 V_initializer=jnp.array([0.9]))
    assert lif.spike.dtype == jnp.float32

    def loss(x):
        return lif.update(x=x).sum()

    x = 1.2
    g = nd.grad(loss, argnums=0)(x)
    e = math.exp(-dt / tau)
    V_new = x + (0.9 - x) * e
    z = V_new - 1.0
    s = 1 / (1 + math.exp(-2 * z))
    assert abs(float(g) - 2 * s * (1 - s) * (1 - e)) < 1e-5


@pytest.mark.parametrize("detach", [False, True])
def test_detach_reset_gradient(detach):
    dt, tau = 0.1, 10.0
    e = math.exp(-dt / tau)
    sg = surrogate.ArcTan(alpha=2.0)
    lif = nn.LIF(1, V_rest=0.0, V_reset=-1.0, V_th=1.0, tau=tau, spike_fn=sg, detach_reset=detach,
                 V_initializer=jnp.array([1.0]))
    V0 = lif.V.value

    def V_after(x):
        lif.V.value = V0
        lif.update(x=x)
        return lif.V.value.sum()

    x = 2.0
    g = float(nd.grad(V_after, argnums=0)(x))
    V_new = x + (1.0 - x) * e
    dVnew = 1 - e
    s = 1.0  # V_new >= V_th: a spike
    dsdx = (2.0 / 2) / (1 + (math.pi / 2 * 2.0 * (V_new - 1.0)) ** 2) * dVnew
    expected = (1 - s) * dVnew + (0.0 if detach else (-1.0 - V_new) * dsdx)
    assert abs(g - expected) < 1e-5


# -- other models -------------------------------------------------------------------------
def test_alif_threshold_adaptation():
    dt, tau_a = 0.1, 50.0
    alif = nn.ALIF(1, V_rest=0.0, V_reset=0.0, V_th=1.0, tau=10.0, tau_a=tau_a, beta=0.5)
    alif.input.value = jnp.array([3.0])
    a_hist = []
    spikes = []
    for _ in range(200):
        spikes.append(bool(alif.update()[0]))
        a_hist.append(float(alif.a.value[0]))
    first = spikes.index(True)
    assert a_hist[first] == pytest.approx(1.0)
    assert a_hist[first + 1] == pytest.approx(math.exp(-dt / tau_a), rel=1e-6)
    # the next spike needs V >= 1 + 0.5 a: later than the first interval
    second = spikes.index(True, first + 1)
    assert second - first > first + 1  # LIF alone would repeat the first interval


def _izh_reference(I, n, dt=0.1):
    V, u = -65.0, 0.2 * -65.0
    spikes = []
    for _ in range(n):
        dV = 0.04 * V * V + 5 * V + 140 - u + I
        du = 0.02 * (0.2 * V - u)
        V, u = V + dt * dV, u + dt * du
        if V >= 30.0:
            V, u = -65.0, u + 8.0
            spikes.append(True)
        else:
            spikes.append(False)
    return np.array(spikes)


def test_izhikevich_matches_hand_written_euler():
    neu = nn.Izhikevich(1, method="euler")
    neu.input.value = jnp.array([10.0])
    _, s = run(neu, 3000)
    ref = _izh_reference(10.0, 3000)
    assert ref.sum() > 5
    np.testing.assert_array_equal(np.flatnonzero(s[:, 0]), np.flatnonzero(ref))


def _hh_rk4_spike_times(I, T, dt=0.002):
    def rates(V):
        am = 0.1 * (V + 40) / (1 - np.exp(-(V + 40) / 10))
        bm = 4 * np.exp(-(V + 65) / 18)
        ah = 0.07 * np.exp(-(V + 65) / 20)
        bh = 1 / (1 + np.exp(-(V + 35) / 10))
        an = 0.01 * (V + 55) / (1 - np.exp(-(V + 55) / 10))
        bn = 0.125 * np.exp(-(V + 65) / 80)
        return am, bm, ah, bh, an, bn

    def f(y):
        V, m, h, n = y
        am, bm, ah, bh, an, bn = rates(V)
        dV = 120 * m**3 * h * (50 - V) + 36 * n**4 * (-77 - V) + 0.3 * (-54.387 - V) + I
        return np.array([dV, am * (1 - m) - bm * m, ah * (1 - h) - bh * h, an * (1 - n) - bn * n])

    am, bm, ah, bh, an, bn = rates(-65.0)
    y = np.array([-65.0, am / (am + bm), ah / (ah + bh), an / (an + bn)])
    times = []
    for k in range(int(round(T / dt))):
        k1 = f(y); k2 = f(y + dt / 2 * k1); k3 = f(y + dt / 2 * k2); k4 = f(y + dt * k3)
        y_new = y + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        if y[0] < 20 <= y_new[0]:
            times.append((k + 1) * dt)
        y = y_new
    return np.array(times)


@pytest.mark.parametrize("method,atol", [("rk4", 0.02), ("exp_euler", 0.3)])  # exp_euler: 1st order
def test_hh_rest_and_spike_times_match_rk4_reference(method, atol):
    with nd.context(dt=0.01):
        hh = nn.HH(2, method=method)
        hh.input.value = jnp.array([0.0, 10.0])
        V, s = run(hh, 5000)
    assert np.all(np.abs(V[:, 0] + 65.0) < 0.05)  # resting state is a fixed point
    assert not s[:, 0].any()
    t_nd = (np.flatnonzero(s[:, 1]) + 1) * 0.01
    t_ref = _hh_rk4_spike_times(10.0, 50.0)
    assert len(t_ref) >= 3 and len(t_nd) == len(t_ref)
    np.testing.assert_allclose(t_nd, t_ref, atol=atol)


def test_adex_matches_hand_written_euler():
    neu = nn.AdEx(1, method="euler")
    neu.input.value = jnp.array([70.0])
    _, s = run(neu, 2000)
    V, w, spikes = -65.0, 0.0, []
    for _ in range(2000):
        dV = (-(V + 65.0) + 3.48 * math.exp(min((V + 59.9) / 3.48, 30.0)) - w + 70.0) / 10.0
        dw = (1.0 * (V + 65.0) - w) / 30.0
        V, w = V + 0.1 * dV, w + 0.1 * dw
        spikes.append(V >= -30.0)
        if V >= -30.0:
            V, w = -68.0, w + 1.0
    assert sum(spikes) > 5
    np.testing.assert_array_equal(np.flatnonzero(s[:, 0]), np.flatnonzero(spikes))
