"""Fault injection: NaN batches, interrupts (SIGINT in a subprocess), threads, memory limits,
killed saves, and bad input that must be refused before anything changes."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import threading
import types
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import neurodyn as nd
from neurodyn import nn, optim, surrogate

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _run_py(code, timeout=120, preexec=None, env_extra=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu", **(env_extra or {})}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=str(ROOT), preexec_fn=preexec)


# -- NaN batches --------------------------------------------------------------------------------------
def _lin_data(n=40, d=5):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = (x @ np.linspace(-1, 1, d) + 0.3).astype(np.float32)[:, None]
    return x, y


def _mse(model, batch):
    x, y = batch
    return jnp.mean((model(x) - y) ** 2)


def _params(model):
    return {k: np.asarray(v.value) for k, v in model.train_vars().items()}


def _reference(x, y, batches, lr=0.05):
    """Plain SGD over the given batch indices (batches of 10, in order)."""
    nd.random.seed(0)
    model = nn.Linear(5, 1)
    p = {k: jnp.asarray(v) for k, v in _params(model).items()}
    for b in batches:
        xb, yb = x[b * 10:(b + 1) * 10], y[b * 10:(b + 1) * 10]
        g = jax.grad(lambda p: jnp.mean((xb @ p["weight"] + p["bias"] - yb) ** 2))(p)
        p = {k: p[k] - lr * g[k] for k in p}
    return p


@pytest.mark.parametrize("spc", [1, 2])
def test_nan_batch_is_skipped_with_one_warning_and_counted(spc):
    x, y = _lin_data()
    y_bad = y.copy()
    y_bad[25] = np.nan  # batch 2 of 4
    nd.random.seed(0)
    model = nn.Linear(5, 1)
    tr = nd.Trainer(model, _mse, optim.SGD(0.05), progress_bar=False, steps_per_call=spc)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        h = tr.fit((x, y_bad), batch_size=10, shuffle=False)
    msgs = [str(m.message) for m in w if "non-finite" in str(m.message)]
    assert msgs == ["Trainer: non-finite loss nan at training step 2 (epoch 0, batch 2); its update was skipped"]
    ref = _reference(x, y, [0, 1, 3])
    for k, v in _params(model).items():
        assert np.all(np.isfinite(v))
        np.testing.assert_allclose(v, ref[k], rtol=1e-5, atol=1e-6)
    assert h["skipped"] == [1.0]
    assert np.isfinite(h["loss"][0])
    tr.fit((x, y), batch_size=10, shuffle=False)
    assert tr.history["skipped"] == [1.0, 0.0]


def test_nan_gradient_with_finite_loss_is_skipped():
    nd.random.seed(0)
    model = nn.Linear(5, 1)
    before = _params(model)
    # sqrt at 0 has an infinite derivative: a finite loss with a non-finite gradient
    tr = nd.Trainer(model, lambda m, b: jnp.sum(jnp.sqrt(jnp.abs(m(b) - m(b)))), optim.SGD(0.1),
                    progress_bar=False)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        tr.fit([np.ones((4, 5), np.float32)])
    assert any("non-finite gradient at training step 0" in str(m.message) for m in w)
    for k, v in _params(model).items():
        np.testing.assert_array_equal(v, before[k])


def test_stop_on_nan_stops_at_once_with_parameters_before_the_bad_step():
    x, y = _lin_data(n=60)
    y_bad = y.copy()
    y_bad[25] = np.nan  # batch 2 of 6; batches 3..5 are dispatched before the host sees it
    nd.random.seed(0)
    model = nn.Linear(5, 1)
    tr = nd.Trainer(model, _mse, optim.SGD(0.05), progress_bar=False, stop_on_nan=True, log_every=20)
    with pytest.raises(FloatingPointError, match=r"non-finite loss nan at training step 2 \(epoch 0, batch 2\)"):
        tr.fit((x, y_bad), batch_size=10, shuffle=False)
    ref = _reference(x, y, [0, 1])
    for k, v in _params(model).items():
        np.testing.assert_allclose(v, ref[k], rtol=1e-5, atol=1e-6)
    assert tr.global_step == 2 and tr.batch_in_epoch == 2
    # a direct step raises at once as well, and the Trainer is usable afterwards
    with pytest.raises(FloatingPointError, match="step 2"):
        tr.step((x[20:30], y_bad[20:30]))
    tr.step((x[20:30], y[20:30]))
    assert tr.global_step == 3


@pytest.mark.parametrize("donate", [False, True])
def test_nan_step_leaves_batchnorm_statistics_and_optimizer_state_alone(donate):
    nd.random.seed(0)
    model = nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))
    tr = nd.Trainer(model, _mse, optim.Adam(1e-2), progress_bar=False, donate=donate)
    x, y = _lin_data(n=10)
    tr.step((x, y))
    state = {k: np.asarray(v.value) for k, v in {**model.vars(), **tr.optimizer.vars()}.items()}
    x_bad = x.copy()
    x_bad[0, 0] = np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tr.fit([(x_bad, y)])
    for k, v in {**model.vars(), **tr.optimizer.vars()}.items():
        np.testing.assert_array_equal(np.asarray(v.value), state[k], err_msg=k)


# -- Trainer checkpoints and interrupted fits -------------------------------------------------------
class _TinySNN(nd.Module):
    reset_state_per_batch = True

    def __init__(self):
        self.fc = nn.Linear(6, 8, w_init=jax.nn.initializers.normal(1.0))
        self.lif = nn.LIF(8, V_rest=0.0, V_reset=0.0, V_th=1.0, tau=5.0, R=5.0, spike_fn=surrogate.Sigmoid(4.0))
        self.out = nn.LeakyReadout(8, 3, tau=10.0)

    def update(self, x_t):
        return self.out(self.lif(self.fc(x_t)))


def _snn_loss(model, batch):
    x, y = batch
    V = nd.for_loop(model.update, x)
    logits = V.mean(0)
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], 1))


def _snn_data(n=14, T=12):
    rng = np.random.default_rng(3)
    x = (rng.random((T, n, 6)) < 0.3).astype(np.float32)
    return x, rng.integers(0, 3, n).astype(np.int32)


def _snn_trainer(seed):
    nd.random.seed(seed)
    return nd.Trainer(_TinySNN(), _snn_loss, optim.Adam(1e-2), progress_bar=False, batch_axis=(1, 0))


def test_trainer_checkpoint_of_per_batch_reset_model_loads_fresh_and_resumes_exactly(tmp_path):
    x, y = _snn_data()
    batches = [(x[:, :4], y[:4]), (x[:, 4:8], y[4:8]), (x[:, 8:12], y[8:12]), (x[:, 12:], y[12:])]
    straight = _snn_trainer(0)
    straight.fit(batches, epochs=1)  # ends on the short batch of 2: neuron state has batch size 2
    assert straight.model.lif.V.shape == (2, 8)
    path = tmp_path / "snn.npz"
    straight.save(path)
    with np.load(path) as f:
        assert "model/lif.V" not in f.files and "model/fc.weight" in f.files
    straight.fit(batches, epochs=1)

    resumed = _snn_trainer(5)  # a fresh model and Trainer: state shapes from construction
    resumed.load(path)
    resumed.fit(batches, epochs=1)
    for k, v in _params(straight.model).items():
        np.testing.assert_array_equal(_params(resumed.model)[k], v, err_msg=k)
    assert resumed.history == straight.history


def test_interrupted_fit_resumes_at_the_batch_reached(tmp_path):
    x, y = _lin_data(n=60)

    def make():
        nd.random.seed(0)
        # one host batch per call: the test interrupts Trainer._step
        return nd.Trainer(nn.Linear(5, 1), _mse, optim.Adam(1e-2), progress_bar=False, log_every=2,
                          steps_per_call=1)

    straight = make()
    straight.fit((x, y), epochs=2, batch_size=10, seed=3)

    tr = make()
    real_step, calls = tr._step, [0]

    def interrupted(batch):
        calls[0] += 1
        if calls[0] == 9:  # epoch 1, batch 2
            raise KeyboardInterrupt
        return real_step(batch)

    tr._step = interrupted
    with pytest.raises(KeyboardInterrupt):
        tr.fit((x, y), epochs=2, batch_size=10, seed=3)
    assert (tr.epoch, tr.batch_in_epoch, tr.global_step) == (1, 2, 8)
    path = tmp_path / "mid.npz"
    tr.save(path)
    tr.fit((x, y), epochs=1, batch_size=10, seed=3)
    for k, v in _params(straight.model).items():
        np.testing.assert_array_equal(_params(tr.model)[k], v)
    np.testing.assert_allclose(tr.history["loss"], straight.history["loss"], rtol=1e-6)
    assert tr.global_step == 12 and tr.epoch == 2 and tr.batch_in_epoch == 0
    # the position survives a checkpoint
    again = make()
    again.load(path)
    assert (again.epoch, again.batch_in_epoch) == (1, 2)
    again.fit((x, y), epochs=1, batch_size=10, seed=3)
    for k, v in _params(straight.model).items():
        np.testing.assert_array_equal(_params(again.model)[k], v)
    np.testing.assert_allclose(again.history["loss"], straight.history["loss"], rtol=1e-6)


# -- nd.save / nd.load ------------------------------------------------------------------------------------
def test_metadata_round_trips_or_is_refused_before_writing(tmp_path):
    model = nn.Linear(3, 2)
    path = tmp_path / "m.npz"
    meta = {"cfg": {"lr": 1e-3, "layers": [3, 2]}, "note": None, "epoch": 4, "name": "run-1",
            "curve": np.arange(3.0)}
    nd.save(path, model, metadata=meta)
    back = nd.load(path, model)
    assert back["cfg"] == {"lr": 1e-3, "layers": [3, 2]} and back["note"] is None
    assert int(back["epoch"]) == 4 and str(back["name"]) == "run-1"
    np.testing.assert_array_equal(back["curve"], np.arange(3.0))
    with pytest.raises(TypeError, match=r"metadata\['bad'\] is a object.*nothing was written"):
        nd.save(tmp_path / "n.npz", model, metadata={"bad": object()})
    assert not (tmp_path / "n.npz").exists() and os.listdir(tmp_path) == ["m.npz"]


def test_killed_save_leaves_the_old_file_and_its_temporary_is_cleaned_up(tmp_path):
    path = tmp_path / "big.npz"
    model = nn.Linear(3, 2)
    nd.save(path, model)
    old = path.read_bytes()
    code = f"""
        import os, signal
        import numpy as np
        import neurodyn as nd
        from neurodyn import nn
        model = nn.Linear(300, 300)
        real = np.savez
        def dying(f, **arrays):
            f.write(b"x" * 100000)
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        np.savez = dying
        nd.save({str(path)!r}, model)
    """
    r = _run_py(code)
    assert r.returncode == -signal.SIGKILL
    left = [n for n in os.listdir(tmp_path) if n != "big.npz"]
    assert len(left) == 1 and left[0].startswith(".tmp-big.npz-")
    assert path.read_bytes() == old
    nd.save(path, model)  # the next save to that path removes what the killed one left
    assert os.listdir(tmp_path) == ["big.npz"]


# -- Runner: interrupts, memory, bad durations, monitors and inputs ----------------------------------
_NET = """
import jax.numpy as jnp
import neurodyn as nd

class Noisy(nd.Module):
    def __init__(self, n):
        self.V = nd.Variable(jnp.zeros(n))
        self.input = nd.Variable(jnp.zeros(n))
        self.spike = nd.Variable(jnp.zeros(n, bool))

    def update(self):
        V = self.V + (-self.V + self.input) * 0.01 + nd.random.normal(0., 0.1, size=self.V.shape)
        self.spike.value = V > 0.5
        self.V.value = jnp.where(self.spike, 0., V)

def make(chunk_size):
    nd.random.seed(3)
    m = Noisy(8)
    return m, nd.Runner(m, monitors={"V": "V", "ev": nd.SpikeMonitor("spike")}, inputs=[("input", 1.)],
                        progress_bar=False, chunk_size=chunk_size)
"""


def test_sigint_during_run_keeps_the_records_of_every_step_taken():
    code = _NET + """
import json, os, signal, threading
import numpy as np
m, r = make(50)
r.run(5.)                                  # compiled before the interrupt
threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
try:
    r.run(100000.)                         # 1e6 steps: far longer than the timer
    interrupted = False
except KeyboardInterrupt:
    interrupted = True
steps, mon, V_now = r.i, r.mon, np.asarray(m.V.value)
after = r.run(5.)                          # continues seamlessly
ref_m, ref = make(5000)
ref.run(5.)
full = ref.run((steps - 50) * 0.1)
ref_after = ref.run(5.)
ev, ref_ev = mon["ev"], full["ev"]
print("RESULT " + json.dumps({
    "interrupted": interrupted, "steps": steps,
    "rows": len(mon.ts), "ts_ok": bool(np.allclose(mon.ts, np.arange(51, steps + 1) * 0.1)),
    "V_ok": bool(np.array_equal(mon["V"], full["V"])), "state_ok": bool(np.array_equal(V_now, full["V"][-1])),
    "events_ok": bool(np.array_equal(ev.steps, ref_ev.steps) and np.array_equal(ev.indices, ref_ev.indices)),
    "t_stop": ev.t_stop,
    "after_ok": bool(np.array_equal(after["V"], ref_after["V"]) and np.allclose(after.ts, ref_after.ts)),
}))
"""
    r = _run_py(code, timeout=300)
    line = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
    assert line, r.stderr[-3000:]
    res = json.loads(line[0][len("RESULT "):])
    assert res["interrupted"] and 50 < res["steps"] < 1_000_050
    assert res["rows"] == res["steps"] - 50 and res["ts_ok"]
    assert res["V_ok"] and res["state_ok"] and res["events_ok"] and res["after_ok"]
    assert res["t_stop"] == pytest.approx(res["steps"] * 0.1)


def test_a_record_larger_than_memory_is_refused_before_running():
    code = """
import json, resource, warnings
import jax.numpy as jnp
import numpy as np
import neurodyn as nd

class Leak(nd.Module):
    def __init__(self, n):
        self.V = nd.Variable(jnp.zeros(n))

    def update(self):
        self.V.value = self.V * 0.99 + 1.

m = Leak(4000)
r = nd.Runner(m, monitors=["V"], progress_bar=False)
r.run(1.)
used = [int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmSize:")][0]
resource.setrlimit(resource.RLIMIT_AS, (used + 900 * 2**20, resource.RLIM_INFINITY))
before = np.asarray(m.V.value).copy()
try:
    r.run(10000.)                         # 1e5 steps x 4000 float32 = 1.6 GB
    err = None
except MemoryError as e:
    err = str(e)
refused_i, same = r.i, bool(np.array_equal(np.asarray(m.V.value), before))
with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter("always")
    big = nd.Runner(m, monitors=["V"], progress_bar=False).run(200.)   # 2000 x 4000 x 4 = 32 MB: fine
    r2 = nd.Runner(m, monitors={"V": ("V", np.arange(100))}, progress_bar=False, chunk_size=5000)
    part = r2.run(10000.)                 # the same duration with an index selection: 40 MB
print("RESULT " + json.dumps({"err": err, "i": refused_i, "same": same, "rows": len(part["V"]),
                              "warned": [str(x.message) for x in w]}))
"""
    r = _run_py(code, timeout=300)
    line = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
    assert line, r.stderr[-3000:]
    res = json.loads(line[0][len("RESULT "):])
    assert res["err"] is not None, "the oversized record was not refused"
    assert "monitor 'V'" in res["err"] and "1.5 GiB" in res["err"] and "available" in res["err"]
    assert "monitor_every" in res["err"] and "record_to" in res["err"]
    assert res["i"] == 1 * 10 and res["same"]  # nothing ran
    assert res["rows"] == 100000 and not res["warned"]


def test_a_large_record_warns():
    class Big(nd.Module):
        def __init__(self):
            self.V = nd.Variable(jnp.zeros(10))

        def update(self):
            self.V.value = self.V + 1

    r = nd.Runner(Big(), monitors=["V"], progress_bar=False)
    from neurodyn import _runner
    real = _runner._available_memory
    _runner._available_memory = lambda: 100_000  # bytes: the 40 kB record is 40 % of it
    try:
        with pytest.warns(ResourceWarning, match=r"need 39.1 KiB \(monitor 'V'"):
            r.run(100.)
        with pytest.raises(MemoryError, match=r"need 97.7 KiB .* only 97.7 KiB of memory is available"):
            r.run(250.)
    finally:
        _runner._available_memory = real
    assert r.i == 1000


def test_bad_durations_and_monitors_are_refused_before_anything_moves():
    class Leak(nd.Module):
        def __init__(self):
            self.V = nd.Variable(jnp.ones(3))

        def update(self):
            self.V.value = self.V * 0.5

    m = Leak()
    r = nd.Runner(m, monitors=["V"], progress_bar=False)
    mon = r.run(1.)
    for bad, err, msg in ((1e-9, ValueError, "shorter than one step"), (float("inf"), ValueError, "finite"),
                          (float("nan"), ValueError, "finite"), (None, TypeError, "number of ms")):
        with pytest.raises(err, match=msg):
            r.run(bad)
    assert r.i == 10 and r.mon is mon and len(mon["V"]) == 10
    with pytest.raises(TypeError, match=r"monitor 'none' must give one array per step, but its function returned None"):
        nd.Runner(m, monitors={"none": lambda model: None}, progress_bar=False)
    with pytest.raises(TypeError, match=r"monitor 'pair' must give one array per step"):
        nd.Runner(m, monitors={"pair": lambda model: (model.V.value, model.V.value)}, progress_bar=False)
    with pytest.raises(AttributeError):  # the monitor's own error, raised at construction
        nd.Runner(m, monitors={"typo": lambda model: model.W}, progress_bar=False)
    np.testing.assert_allclose(np.asarray(m.V.value), 0.5 ** 10)


def test_iter_inputs_have_an_explicit_time_base():
    class Integrator(nd.Module):
        def __init__(self):
            self.x = nd.Variable(jnp.zeros(2))
            self.input = nd.Variable(jnp.zeros(2))

        def update(self):
            self.x.value = self.x + self.input

    drive = np.arange(1., 11.).astype(np.float32)  # built for dt = 0.1: 10 rows = 1 ms
    m = Integrator()
    with pytest.raises(ValueError, match=r"Runner steps dt = 0.05 ms while nd.get_dt\(\) = 0.1 ms"):
        nd.Runner(m, inputs=[("input", drive, "iter")], dt=0.05)
    # stating the rows' spacing: each row is held for 0.1 ms = two steps of 0.05 ms
    r = nd.Runner(m, monitors=["input"], inputs=[(m.input, drive, "iter", "=", 0.1)], dt=0.05, progress_bar=False)
    mon = r.run(1.0)
    np.testing.assert_array_equal(mon["input"][:, 0], np.repeat(drive, 2))
    with pytest.raises(ValueError, match=r"has 10 rows \(0.1 ms apart\), but this run would need 11"):
        r.run(0.05)
    assert r.i == 20
    r2 = nd.Runner(Integrator(), inputs=[("input", drive, "iter")], progress_bar=False)
    with pytest.raises(ValueError, match="pad it"):
        r2.run(1.1)


def test_variables_are_accepted_as_input_targets_and_monitors():
    class Integrator(nd.Module):
        def __init__(self):
            self.x = nd.Variable(jnp.zeros(2))
            self.input = nd.Variable(jnp.zeros(2))

        def update(self):
            self.x.value = self.x + self.input

    m = Integrator()
    mon = nd.Runner(m, monitors={"x": m.x}, inputs=[(m.input, 2.)], progress_bar=False).run(0.3)
    np.testing.assert_array_equal(mon["x"][:, 0], [2., 4., 6.])
    with pytest.raises(TypeError, match="an input target is a dotted path or a Variable, got 3"):
        nd.Runner(m, inputs=[(3, 2.)])


# -- threads sharing nd.random ----------------------------------------------------------------------
def test_threads_drawing_from_the_default_random_state_never_share_a_key():
    nd.random.seed(0)
    f = nd.jit(lambda: nd.random.normal(size=(4,)))
    f()
    draws, barrier = [], threading.Barrier(3)

    def work(compiled):
        barrier.wait()
        out = [f() if compiled else nd.random.normal(size=(4,)) for _ in range(150)]
        draws.extend(np.asarray(x)[0] for x in out)

    threads = [threading.Thread(target=work, args=(c,)) for c in (True, True, False)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(draws) == 450 and len(set(draws)) == 450
    # one thread, seeded: the same numbers as before (a key split per draw)
    nd.random.seed(7)
    a = [np.asarray(f()) for _ in range(3)]
    key = jax.random.PRNGKey(7)
    for x in a:
        key, sub = jax.random.split(key)
        np.testing.assert_array_equal(x, jax.random.normal(sub, (4,)))


# -- stale constants ----------------------------------------------------------------------------------
class _Scaled(nd.Module):
    def __init__(self):
        self.w = nd.Variable(jnp.ones(2))
        self.scale = 2.0

    def update(self, x):
        return x * self.w * self.scale


class _Holder(nd.Module):
    """A container module with no Variables of its own; its plain attribute is read."""

    def __init__(self):
        self.inner = _Scaled()
        self.offset = 0.0

    def update(self, x):
        return self.inner(x) + self.offset


_GLOBAL_NS = types.SimpleNamespace(m=_Scaled())


def test_plain_attributes_reached_through_plain_objects_containers_and_globals_are_never_stale():
    x = jnp.ones(2)
    ns = types.SimpleNamespace(m=_Scaled())

    class Box:
        def __init__(self):
            self.models = [{"a": _Scaled()}]

    box = Box()
    hold = types.SimpleNamespace(h=_Holder())
    cases = {
        "attribute of a plain object": (nd.jit(lambda x: ns.m(x)), lambda: ns.m),
        "container in a plain object": (nd.jit(lambda x: box.models[0]["a"](x)), lambda: box.models[0]["a"]),
        "global plain object": (nd.jit(lambda x: _GLOBAL_NS.m(x)), lambda: _GLOBAL_NS.m),
    }
    for name, (f, get) in cases.items():
        np.testing.assert_array_equal(f(x), [2., 2.], err_msg=name)
        get().scale = 5.0
        np.testing.assert_array_equal(f(x), [5., 5.], err_msg=name)
        n = f.trace_count
        f(x)
        assert f.trace_count == n, name  # no re-trace once the new value is compiled in
    # a deep copy reached through a plain object
    import copy
    dup = types.SimpleNamespace(m=copy.deepcopy(ns.m))
    d = nd.jit(lambda x: dup.m(x))
    np.testing.assert_array_equal(d(x), [5., 5.])
    dup.m.scale = 7.0
    np.testing.assert_array_equal(d(x), [7., 7.])
    # a module without Variables of its own, whose child's Variables the trace touched
    g = nd.jit(lambda x: hold.h(x))
    np.testing.assert_array_equal(g(x), [2., 2.])
    hold.h.offset = 1.0
    np.testing.assert_array_equal(g(x), [3., 3.])
    hold.h.inner.scale = 3.0
    np.testing.assert_array_equal(g(x), [4., 4.])


# -- small ones ------------------------------------------------------------------------------------
def test_small_input_checks():
    with pytest.raises(TypeError, match=r"nd.jit\(dyn_vars=...\): expected Variables or Modules .* got int 3"):
        nd.jit(lambda: 0, dyn_vars=[3])
    with pytest.raises(TypeError, match=r"child_objs=...\): .* got str 'model'"):
        nd.jit(lambda: 0, child_objs={"m": "model"})
    with pytest.raises(TypeError, match="Linear: in_features must be a positive int, got float 3.5"):
        nn.Linear(3.5, 2)
    with pytest.raises(ValueError, match="Linear: out_features must be a positive int, got -2"):
        nn.Linear(3, -2)
    assert nn.Linear(np.int64(3), 2).weight.shape == (3, 2)

    class NoStep(nd.Module):
        pass

    with pytest.raises(NotImplementedError, match="NoStep defines neither update"):
        NoStep().update()
    with pytest.raises(TypeError, match="Runner: NoStep defines no update"):
        nd.Runner(NoStep())

    class OnlyForward(nd.Module):
        def forward(self, x=1.):
            return x

    assert OnlyForward().update(3.) == 3.


def test_timed_input_plays_at_its_own_time_base_under_another_dt():
    lif = nn.LIF(2)
    with nd.context(dt=0.1):
        stim = nn.TimedInput(lif, jnp.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]))
    assert stim.rows_dt == 0.1
    rows = []
    with nd.context(dt=0.05):
        for i in range(7):
            with nd.context(i=i):
                rows.append(np.asarray(stim._current(None)))
    # each 0.1 ms row is held for two 0.05 ms steps; after the last row the stimulus has ended
    np.testing.assert_array_equal(np.stack(rows)[:, 0], [1, 1, 3, 3, 5, 5, 0])
    with pytest.raises(ValueError, match=r"TimedInput: dt \(the rows' spacing\).*got 0.0"):
        nn.TimedInput(lif, jnp.ones((3, 2)), dt=0.0)
    assert list(lif.current_inputs) == [stim.name]
