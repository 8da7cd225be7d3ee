"""Runner: one compiled program for every chunk of a run, whatever its length; identical results."""

import logging

import jax
import numpy as np
import pytest

import neurodyn as nd
from neurodyn import nn

from test_runner import Net


class _Compiles(logging.Handler):
    """Names of the XLA programs compiled while active (JAX's compile log)."""

    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.names = []

    def emit(self, rec):
        msg = rec.getMessage()
        if msg.startswith("Finished XLA compilation of"):
            self.names.append(msg.split()[4])

    def __enter__(self):
        self._logger = logging.getLogger("jax._src.dispatch")
        self._old = self._logger.level
        self._logger.addHandler(self)
        self._logger.setLevel(logging.DEBUG)
        self._log = jax.log_compiles(True)
        self._log.__enter__()
        return self

    def __exit__(self, *exc):
        self._log.__exit__(*exc)
        self._logger.removeHandler(self)
        self._logger.setLevel(self._old)

    def loops(self):
        return [n for n in self.names if n == "jit(pure)"]


def _runner(chunk_size, **kw):
    nd.random.seed(3)
    net = Net()
    return nd.Runner(net, monitors=["E.V", "E.spike"], inputs=[("E.input", 1.)], progress_bar=False,
                     chunk_size=chunk_size, **kw), net


def test_a_run_that_is_not_a_multiple_of_the_chunk_compiles_one_loop():
    runner, _ = _runner(100)
    with _Compiles() as c:
        mon = runner.run(25.)  # chunks of 100, 100 and 50 steps
    assert len(c.loops()) == 1 and runner.stats["traces"] == 1
    assert mon["E.V"].shape == (250, 6) and runner.i == 250
    np.testing.assert_allclose(mon.ts, np.arange(1, 251) * 0.1, atol=1e-9)
    with _Compiles() as c:  # shorter runs reuse it
        for duration in (0.1, 0.3, 3.7, 9.9, 10.0):
            runner.run(duration)
    assert c.loops() == [] and runner.i == 250 + 1 + 3 + 37 + 99 + 100


def test_short_runs_of_different_lengths_share_programs():
    runner, _ = _runner(1000)
    with _Compiles() as c:
        for steps in (3, 4, 2, 1, 5, 7, 8):
            runner.run(steps * 0.1)
    # sized for the next power of two of the steps: 4 (3, 4, 2, 1) and 8 (5, 7, 8)
    assert len(c.loops()) == 2
    assert runner.i == 30


@pytest.mark.parametrize("kw", [{}, {"monitor_every": 3}, {"record_initial": True}, {"unroll": 2}])
def test_identical_records_for_any_chunk_size(kw):
    ref, _ = _runner(1000, **kw)
    want = ref.run(30.)
    for chunk in (1, 7, 301) if not kw else (7, 301):
        other, net = _runner(chunk, **kw)
        got = other.run(30.)
        np.testing.assert_array_equal(got["E.V"], want["E.V"], err_msg=f"chunk {chunk}")
        np.testing.assert_array_equal(got["E.spike"], want["E.spike"], err_msg=f"chunk {chunk}")
        np.testing.assert_array_equal(got.ts, want.ts)
        np.testing.assert_array_equal(np.asarray(net.E.V.value), np.asarray(ref.model.E.V.value))


def test_event_monitor_equal_for_any_chunk_size():
    def run(chunk):
        nd.random.seed(5)
        lif = nn.LIF(40, V_th=20., V_initializer=nn.Uniform(0., 20.))
        r = nd.Runner(lif, monitors={"s": nd.SpikeMonitor("spike"), "dense": "spike"},
                      inputs=[("input", 25.)], progress_bar=False, chunk_size=chunk)
        return r.run(40.)

    want = run(1000)
    assert len(want["s"].times) > 50
    for chunk in (7, 150, 399):
        got = run(chunk)
        np.testing.assert_array_equal(got["s"].indices, want["s"].indices)
        np.testing.assert_array_equal(got["s"].times, want["s"].times)
        np.testing.assert_array_equal(got["dense"], want["dense"])


def test_an_unrolled_loop_compiles_per_chunk_length_and_equals_the_rolled_one():
    want = _runner(100)[0].run(25.)["E.V"]
    unrolled, _ = _runner(100, unroll=2)
    with _Compiles() as c:
        got = unrolled.run(25.)
    assert len(c.loops()) == 2  # static lengths 100 and 50
    np.testing.assert_array_equal(got["E.V"], want)
