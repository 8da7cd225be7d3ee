import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "examples"))


def test_linear_net_sgd_loss_decreases_as_in_seed():
    import linear_net_sgd

    losses = linear_net_sgd.main()  # the seed's sizes: 100-200-1, 1000 samples, 30 steps
    assert len(losses) == 30
    assert all(b < a for a, b in zip(losses, losses[1:]))
    assert losses[-1] < 1e-3 * losses[0]


def test_linear_net_sgd_script_prints_losses():
    out = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "linear_net_sgd.py"), "--small"],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    lines = [l for l in out.splitlines() if l.startswith("Train ")]
    assert len(lines) == 10
    losses = [float(l.split("loss = ")[1]) for l in lines]
    assert losses[-1] < losses[0]


def test_logistic_regression_learns_and_jit_agrees():
    import logistic_regression

    r = logistic_regression.main(n=500, dim=10, iterations=20)
    assert r["same"]
    assert r["acc_jit"] > 0.9 and r["acc_jit"] > r["acc_before"]


@pytest.mark.parametrize("length", [6])
def test_gru_sequence_learns_delayed_recall(length):
    import gru_sequence

    r = gru_sequence.main(length=length, hidden=24, n_train=1024, epochs=6, progress_bar=False)
    assert r["before"]["acc"] < 0.4
    assert r["after"]["acc"] > 0.9  # chance is 0.25
    assert r["history"]["loss"][-1] < r["history"]["loss"][0]
