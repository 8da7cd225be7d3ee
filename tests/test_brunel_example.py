import math
import os
import sys

import numpy as np

import neurodyn as nd

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples"))
import brunel  # noqa: E402


def test_statistics_against_hand_computed_values():
    # neuron 0 fires every 10 ms (CV 0), neuron 1 at 5, 15, 35 ms (ISIs 10, 20: CV 1/3), neuron 2 silent
    idx = np.array([0, 1, 0, 1, 0, 0, 1])
    t = np.array([0.0, 5.0, 10.0, 15.0, 20.0, 30.0, 35.0])
    order = np.argsort(t, kind="stable")
    rec = nd.SpikeRecord((t[order] / 0.1).round().astype(int), idx[order], 3, 0.1, 0.0, 40.0, 0)
    s = brunel.statistics(rec, rec, skip=0.0)
    assert math.isclose(s["rate_E_hz"], 7 / 3 / 0.04)
    # neuron 0: ISIs 10, 10, 10 (CV 0); neuron 1: 10, 20 (CV 1/3)
    assert math.isclose(s["cv_E"], (0.0 + 1 / 3) / 2, rel_tol=1e-9)


def test_small_brunel_network_runs_in_the_asynchronous_regime():
    runner, s = brunel.simulate("C", duration=150.0, scale=0.04, progress_bar=False)
    assert s["N_E"] == 400 and s["C_E"] == 40 and s["synapses"] == (400 + 100) * (40 + 10)
    # J scaled by 1 / scale keeps the mean input of the full network (about 38 Hz there); the
    # fluctuations of a 25x smaller network are 5x larger, and so is its rate
    assert 10.0 < s["rate_E_hz"] < 250.0 and 0.2 < s["cv_E"] < 1.5
    assert abs(s["rate_E_hz"] - s["rate_I_hz"]) < 0.2 * s["rate_E_hz"]  # identical E and I neurons
