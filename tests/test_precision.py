"""nd.set_precision(64): every Variable, weight and integrator in float64."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

import neurodyn as nd
import neurodyn.nn as nn

from _helpers import coba_reference, coba_targets, float64, load_example  # noqa: F401 (fixture)


def test_default_is_float32_and_errors():
    assert nd.get_precision() == 32 and nd.float_dtype() == np.float32
    assert nn.LIF(2).V.dtype == jnp.float32
    with pytest.raises(ValueError, match="bits must be 32 or 64, got 16"):
        nd.set_precision(16)
    assert nd.get_precision() == 32


def test_float64_everywhere(float64):
    assert nd.get_precision() == 64 and nd.float_dtype() == np.float64
    nd.random.seed(0)
    models = [nn.LIF(3, V_initializer=nn.Normal(-55., 2.)), nn.ALIF(3), nn.Izhikevich(3), nn.HH(3),
              nn.AdEx(3), nn.Expon(3), nn.Alpha(3), nn.DualExpon(3), nn.Linear(2, 3),
              nn.LIF(3, spike_fn=nd.surrogate.Sigmoid())]
    for m in models:
        for name, v in m.vars().items():
            if jnp.issubdtype(v.dtype, jnp.floating):
                assert v.dtype == jnp.float64, (type(m).__name__, name)
    pre = nn.LIF(4)
    proj = nn.Projection(pre, nn.LIF(5), nn.AllToAll(), np.full(20, 0.5), nn.Expon(5), nn.CUBA())
    assert proj.weight.dtype == jnp.float64
    assert nd.random.normal(size=3).dtype == jnp.float64
    hh = nn.HH(1)
    hh.input.value = jnp.array([10.0])
    step = nd.jit(hh)
    step()
    assert hh.V.value.dtype == jnp.float64


def test_lif_float64_agrees_with_numpy_to_1e_12(float64):
    lif = nn.LIF(1, V_rest=-65.0, V_reset=-65.0, V_th=1e9, tau=10.0, V_initializer=-65.0)
    lif.input.value = jnp.array([18.0])
    step = nd.jit(lif)
    for _ in range(1000):
        step()
    # exact solution after 100 ms
    expected = -65.0 + 18.0 * (1 - math.exp(-100.0 / 10.0))
    assert abs(float(lif.V.value[0]) - expected) < 1e-11


def test_coba_network_float64_identical_spikes_to_hand_written_reference_over_1s(float64):
    ei = load_example("ei_network_example_f64", "examples/ei_network.py")
    runner, summary = ei.simulate(duration=1000., scale=1.0, seed=11, progress_bar=False)
    nd.random.seed(11)
    fresh = ei.COBANet(scale=1.0, seed=11)
    assert fresh.E.V.dtype == jnp.float64 and fresh.E2E.syn.g.dtype == jnp.float64
    sE, sI = coba_reference(coba_targets(fresh), np.asarray(fresh.E.V.value), np.asarray(fresh.I.V.value),
                            n_steps=10000, dtype=jnp.float64)
    assert sE.shape == (10000, 3200) and sE.sum() > 3200 * 10
    np.testing.assert_array_equal(runner.mon["E.spike"], sE)
    np.testing.assert_array_equal(runner.mon["I.spike"], sI)
    assert 12. < summary["rate_E_hz"] < 30. and 12. < summary["rate_I_hz"] < 30.
