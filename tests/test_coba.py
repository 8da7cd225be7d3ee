"""The COBA network of examples/ei_network.py against an independent pure-JAX implementation.

The reference (``tests/_helpers.coba_reference``) is hand-written with jax.lax.scan; it gets
the same connectivity and initial potentials and must produce exactly the same spikes.
"""

import numpy as np
import pytest

import neurodyn as nd

from _helpers import coba_reference, coba_targets, load_example

ei = load_example("ei_network_example", "examples/ei_network.py")


@pytest.fixture(scope="module")
def coba_run():
    runner, summary = ei.simulate(duration=150., scale=1.0, seed=7, progress_bar=False)
    return runner, summary


def test_coba_identical_spikes_to_hand_written_jax(coba_run):
    runner, _ = coba_run
    net = runner.model
    # the initial potentials: re-create them exactly as the example did
    nd.random.seed(7)
    fresh = ei.COBANet(scale=1.0, seed=7)
    sE, sI = coba_reference(coba_targets(fresh), np.asarray(fresh.E.V.value), np.asarray(fresh.I.V.value),
                            n_steps=1500)
    mon = runner.mon
    assert mon["E.spike"].shape == sE.shape and mon["I.spike"].shape == sI.shape
    assert sE.sum() > 1000  # the network is active
    np.testing.assert_array_equal(mon["E.spike"], sE)
    np.testing.assert_array_equal(mon["I.spike"], sI)


def test_coba_rates_in_published_range(coba_run):
    runner, s = coba_run
    mon = runner.mon
    # skip the initial transient; Brette et al. (2007) report ~20 Hz for both populations
    late = slice(500, None)
    rate_E = mon["E.spike"][late].mean() / 0.1 * 1000
    rate_I = mon["I.spike"][late].mean() / 0.1 * 1000
    assert 12. < rate_E < 30. and 12. < rate_I < 30.
    assert 300_000 < s["synapses"] < 340_000  # 4000^2 * 0.02 = 320,000 expected


def test_event_and_dense_propagation_agree_on_coba():
    r_event, _ = ei.simulate(duration=20., scale=0.25, seed=3, progress_bar=False, mode="event")
    r_dense, _ = ei.simulate(duration=20., scale=0.25, seed=3, progress_bar=False, mode="dense")
    np.testing.assert_array_equal(r_event.mon["E.spike"], r_dense.mon["E.spike"])
    np.testing.assert_array_equal(r_event.mon["I.spike"], r_dense.mon["I.spike"])
