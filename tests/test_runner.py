"""Runner: chunked compiled loops, monitors, inputs, continuation, no re-tracing, errors."""

import gc

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import neurodyn as nd


class Noisy(nd.Module):
    """A leaky unit with noise and a threshold: its result depends on every step."""

    def __init__(self, n, tau=10.):
        self.tau = tau
        self.V = nd.Variable(jnp.zeros(n))
        self.input = nd.Variable(jnp.zeros(n))
        self.spike = nd.Variable(jnp.zeros(n, bool))
        self.last_t = nd.Variable(0.)

    def update(self):
        noise = nd.random.normal(0., 0.1, size=self.V.shape)
        V = self.V + (-self.V + self.input) * (nd.get_dt() / self.tau) + noise
        self.spike.value = V > 0.5
        self.V.value = jnp.where(self.spike, 0., V)
        self.last_t.value = nd.share.t

    def reset_state(self, batch_size=None):
        self.V.value = jnp.zeros(self.V.shape)


class Net(nd.Module):
    def __init__(self, n=6):
        self.E = Noisy(n)

    def update(self):
        self.E.update()


def _run(chunk_size, duration=30., **kw):
    nd.random.seed(3)
    net = Net()
    runner = nd.Runner(net, monitors=["E.V", "E.spike"], inputs=[("E.input", 1.)],
                       progress_bar=False, chunk_size=chunk_size, **kw)
    runner.run(duration)
    return runner, net


def test_chunking_gives_identical_results_for_any_chunk_size():
    ref, _ = _run(1000)
    for chunk in (1, 7, 100, 300):
        other, _ = _run(chunk)
        np.testing.assert_array_equal(other.mon["E.V"], ref.mon["E.V"])
        np.testing.assert_array_equal(other.mon["E.spike"], ref.mon["E.spike"])


def test_monitor_shapes_dtypes_and_times():
    runner, net = _run(100)
    mon = runner.mon
    assert mon["E.V"].shape == (300, 6) and mon["E.V"].dtype == np.float32
    assert mon["E.spike"].dtype == np.bool_
    np.testing.assert_allclose(mon.ts, np.arange(1, 301) * 0.1, atol=1e-9)  # the state after step k at k dt
    assert float(net.E.last_t) == pytest.approx(29.9, abs=1e-4)  # nd.share.t of the last step
    assert isinstance(mon["E.V"], np.ndarray)


def test_repeated_runs_continue_and_equal_one_long_run():
    long, _ = _run(100, duration=40.)
    nd.random.seed(3)
    net = Net()
    runner = nd.Runner(net, monitors=["E.V"], inputs=[("E.input", 1.)], progress_bar=False, chunk_size=100)
    first = runner.run(20.)["E.V"]
    second = runner.run(20.)
    np.testing.assert_array_equal(np.concatenate([first, second["E.V"]]), long.mon["E.V"])
    np.testing.assert_allclose(second.ts[0], 20.1)
    assert runner.t == pytest.approx(40.0)


def test_no_retrace_for_repeated_runs_new_runners_and_new_initial_conditions():
    net = Net()
    runner = nd.Runner(net, monitors=["E.spike"], inputs=[("E.input", 1.)], progress_bar=False)
    runner.run(10.)
    fn = runner._fn
    traces = fn.trace_count
    for k in range(50):
        net.reset_state()
        net.E.V.value = jnp.full(6, 0.01 * k)  # new initial conditions
        again = nd.Runner(net, monitors=["E.spike"], inputs=[("E.input", 1.)], progress_bar=False)
        again.run(10.)
        assert again._fn is fn
        if k == 4:
            gc.collect()
            live = len(jax.live_arrays())
    assert fn.trace_count == traces
    gc.collect()
    assert len(jax.live_arrays()) <= live  # nothing accumulates on the device run after run
    assert len(fn.fn._cache) == 1 and len(next(iter(fn.fn._cache.values()))) == 1


def test_changing_a_constant_input_value_does_not_recompile():
    net = Net()
    runner = nd.Runner(net, inputs=[("E.input", 1.)], progress_bar=False)
    runner.run(5.)
    n = runner._fn.trace_count
    runner2 = nd.Runner(net, inputs=[("E.input", 2.)], progress_bar=False)
    runner2.run(5.)
    assert runner2._fn is runner._fn and runner2._fn.trace_count == n
    np.testing.assert_array_equal(net.E.input.value, np.full(6, 2.))


def test_monitor_every_callable_reduction_and_index():
    nd.random.seed(0)
    net = Net()
    runner = nd.Runner(net, monitors={"rate": lambda m: m.E.spike.mean(), "V01": ("E.V", [0, 1]),
                                      "V": "E.V"},
                       inputs=[("E.input", 1.)], monitor_every=10, progress_bar=False)
    mon = runner.run(50.)
    assert mon["rate"].shape == (50,) and mon["V01"].shape == (50, 2)
    np.testing.assert_allclose(mon.ts, np.arange(10, 501, 10) * 0.1, atol=1e-9)
    np.testing.assert_array_equal(mon["V01"], mon["V"][:, :2])
    # the same as recording every step and subsampling
    nd.random.seed(0)
    net2 = Net()
    full = nd.Runner(net2, monitors=["E.V"], inputs=[("E.input", 1.)], progress_bar=False).run(50.)
    np.testing.assert_array_equal(full["E.V"][9::10], mon["V"])


def test_no_monitors_runs_and_advances_state():
    net = Net()
    runner = nd.Runner(net, inputs=[("E.input", 5.)], progress_bar=False)
    mon = runner.run(10.)
    assert dict(mon) == {} and len(mon.ts) == 100
    assert float(jnp.abs(net.E.V.value).sum()) > 0


def test_iter_and_func_inputs_against_hand_loop():
    n_steps = 50
    drive = np.linspace(0., 2., n_steps * 2).astype(np.float32)

    class Integrator(nd.Module):
        def __init__(self):
            self.x = nd.Variable(jnp.zeros(3))
            self.input = nd.Variable(jnp.zeros(3))

        def update(self):
            self.x.value = self.x * 0.9 + self.input

    m = Integrator()
    runner = nd.Runner(m, monitors=["x"], inputs=[("input", drive[:, None], "iter")], progress_bar=False)
    runner.run(n_steps * 0.1)
    runner.run(n_steps * 0.1)  # continues through the array
    x, ref = 0., []
    for d in drive:
        x = x * 0.9 + d
        ref.append(x)
    np.testing.assert_allclose(runner.mon["x"][:, 0], ref[n_steps:], rtol=1e-5)

    m2 = Integrator()
    r2 = nd.Runner(m2, monitors=["x"], inputs=[("input", lambda t: jnp.where(t < 1.0, 1., 0.))],
                   progress_bar=False)
    r2.run(2.0)
    x, ref = 0., []
    for k in range(20):
        x = x * 0.9 + (1. if k * 0.1 < 1.0 - 1e-6 else 0.)
        ref.append(x)
    np.testing.assert_allclose(r2.mon["x"][:, 0], ref, rtol=1e-5)
    # '+' op accumulates on top of what the model wrote
    m3 = Integrator()
    r3 = nd.Runner(m3, monitors=["input"], inputs=[("input", 1., "fix", "+")], progress_bar=False)
    r3.run(0.3)
    np.testing.assert_array_equal(r3.mon["input"][:, 0], [1., 2., 3.])


def test_constant_input_is_there_before_every_step_even_if_the_model_consumes_it():
    class Consumer(nd.Module):
        """Reads its input and clears it, as BrainPy-style models do."""

        def __init__(self):
            self.x = nd.Variable(jnp.zeros(2))
            self.input = nd.Variable(jnp.zeros(2))

        def update(self):
            self.x.value = self.x + self.input
            self.input.value = jnp.zeros(2)

    m = Consumer()
    nd.Runner(m, inputs=[("input", 1.5)], progress_bar=False, chunk_size=4).run(1.0)
    np.testing.assert_array_equal(np.asarray(m.x.value), [15., 15.])
    # '=' then '+' into one Variable: both apply before every step
    m2 = Consumer()
    nd.Runner(m2, inputs=[("input", 1.), ("input", 0.5, "fix", "+")], progress_bar=False).run(1.0)
    np.testing.assert_array_equal(np.asarray(m2.x.value), [15., 15.])

    class Keeper(nd.Module):
        def __init__(self):
            self.x = nd.Variable(jnp.zeros(2))
            self.input = nd.Variable(jnp.zeros(2))

        def update(self):
            self.x.value = self.x + self.input

    m3 = Keeper()
    r3 = nd.Runner(m3, monitors=["input"], inputs=[("input", 2.)], progress_bar=False, chunk_size=3)
    r3.run(1.0)
    np.testing.assert_array_equal(np.asarray(m3.x.value), [20., 20.])
    np.testing.assert_array_equal(r3.mon["input"], np.full((10, 2), 2.))
    m3.input.value = jnp.zeros(2)  # written between runs: the next run sets it again
    r3.run(0.5)
    np.testing.assert_array_equal(np.asarray(m3.x.value), [30., 30.])


def test_runner_dt_argument_and_share():
    seen = []

    class Clock(nd.Module):
        def __init__(self):
            self.t = nd.Variable(0.)
            self.dt = nd.Variable(0.)

        def update(self):
            self.t.value = nd.share.t
            self.dt.value = nd.share.dt

    c = Clock()
    r = nd.Runner(c, monitors=["t", "dt"], dt=0.5, progress_bar=False)
    mon = r.run(2.0)
    np.testing.assert_allclose(mon["t"], [0., 0.5, 1.0, 1.5])
    np.testing.assert_allclose(mon["dt"], 0.5)
    assert nd.get_dt() == pytest.approx(0.1)  # the global step is untouched


def test_errors_before_compiling():
    net = Net()
    with pytest.raises(KeyError, match="no attribute path 'E.W'"):
        nd.Runner(net, monitors=["E.W"])
    with pytest.raises(TypeError, match="must name a Variable"):
        nd.Runner(net, monitors=["E.tau"])
    with pytest.raises(ValueError, match=r"shape \(3,\), which does not broadcast to the target's shape \(6,\)"):
        nd.Runner(net, inputs=[("E.input", jnp.ones(3))])
    with pytest.raises(ValueError, match="kind must be one of"):
        nd.Runner(net, inputs=[("E.input", 1., "sometimes")])
    with pytest.raises(IndexError, match="selects indices up to 9"):
        nd.Runner(net, monitors={"v": ("E.V", [9])})
    runner = nd.Runner(net, monitors=["E.V"], progress_bar=False)
    with pytest.raises(ValueError, match=r"duration 10.05 ms is not a multiple of dt = 0.1 ms"):
        runner.run(10.05)
    with pytest.raises(ValueError, match="positive"):
        runner.run(-1.)
    assert runner._fn.trace_count == 0
    with pytest.raises(TypeError, match="needs an nd.Module"):
        nd.Runner(lambda: None)


def test_eager_mode_matches_compiled():
    compiled, _ = _run(100, duration=3.)
    eager, _ = _run(100, duration=3., jit=False)
    np.testing.assert_allclose(eager.mon["E.V"], compiled.mon["E.V"], rtol=1e-5, atol=1e-6)


def test_interrupted_run_keeps_clock_state_and_records_consistent():
    ref, _ = _run(100, duration=40.)  # 400 steps straight through, chunks of 100
    nd.random.seed(3)
    net = Net()
    runner = nd.Runner(net, monitors=["E.V", "E.spike"], inputs=[("E.input", 1.)],
                       progress_bar=False, chunk_size=100)
    from neurodyn import _runner
    add, calls = _runner._Sink.add, []

    def interrupted_add(self, *a):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # an error while the host waits for the second chunk
        return add(self, *a)
    _runner._Sink.add = interrupted_add
    try:
        with pytest.raises(KeyboardInterrupt):
            runner.run(30.)
    finally:
        _runner._Sink.add = add
    # all three chunks were dispatched before the second one's copy failed: the model holds
    # their result, and the records still cover every step
    assert runner.i == 300
    np.testing.assert_array_equal(runner.mon["E.V"], ref.mon["E.V"][:300])
    np.testing.assert_allclose(runner.mon.ts, ref.mon.ts[:300])
    np.testing.assert_array_equal(np.asarray(net.E.V.value), ref.mon["E.V"][299])
    runner.run(10.)  # and it goes on from there
    assert runner.i == 400 and runner.mon.ts[0] == pytest.approx(30.1)
    np.testing.assert_array_equal(runner.mon["E.V"], ref.mon["E.V"][300:])


def test_print_shows_what_a_run_does():
    net = Net()
    runner = nd.Runner(net, monitors={"V": "E.V", "rate": lambda m: m.E.spike.mean(), "ev": nd.SpikeMonitor("E.spike"),
                                      "two": ("E.spike", [0, 2])},
                       inputs=[("E.input", 2.), ("E.input", np.ones((40, 6)), "iter", "+")],
                       progress_bar=False, monitor_every=2, chunk_size=10, record_initial=True)
    text = repr(runner)
    assert text.startswith("Runner(\n  model:\n    ") and repr(net).splitlines()[0] in text
    expected = """
  dt: 0.1 ms, compiled chunks of 10 steps
  monitors, recorded every 2 steps, and at t = 0:
    V: E.V -> (6,) float32
    rate: test_print_shows_what_a_run_does.<locals>.<lambda>(model) -> () float32
    two: E.spike[2 indices] -> (2,) bool, summed per interval
    ev: spike events of E.spike
  inputs, before every step:
    E.input = 2
    E.input += rows of an array (40, 6) float32
  placement: default device
  at t = 0 ms (step 0)
)"""
    assert text.endswith(expected), text
    runner.run(2.)
    assert repr(runner).endswith("  at t = 2 ms (step 20)\n)")
    bare = repr(nd.Runner(net, progress_bar=False, jit=False, unroll=4))
    assert "dt: 0.1 ms, eager (not compiled) chunks of 1000 steps, unroll 4\n  monitors: none\n  inputs: none" in bare


def test_first_run_traces_the_loop_once_and_leaves_no_trace_alive():
    """A fused network reads Variables its Modules do not list (the fused table): the chunk
    still traces once, and no aborted trace keeps the model's arrays (and tracers) alive."""
    from neurodyn import nn

    def live_tracers():
        gc.collect()
        return sum(type(o).__name__ == "DynamicJaxprTracer" for o in gc.get_objects())

    nd.random.seed(0)
    net = nn.Network(E=nn.LIF(200, V_initializer=nn.Uniform(0., 20.)))
    net.EE = nn.Projection(net.E, net.E, nn.FixedProb(0.05, seed=1), 0.5, nn.Expon(200, 2.), nn.CUBA(),
                           mode="event")
    assert net._fusion is not None
    before = live_tracers()
    runner = nd.Runner(net, monitors=["E.spike"], inputs=[("E.input", 25.)], progress_bar=False)
    first = runner.run(20.)
    assert runner.stats["traces"] == 1
    assert live_tracers() == before
    assert first["E.spike"].sum() > 0
