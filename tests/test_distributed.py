"""Sharded training and simulation on 4 virtual CPU devices, and the 2-process loopback example.

The device count of a process is fixed when JAX starts, so the multi-device
checks run in one subprocess (``XLA_FLAGS=--xla_force_host_platform_device_count=4``)
that executes this file's ``__main__`` block and reports each check's outcome
as JSON; every pytest test below asserts one of them.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import traceback

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


# -- checks, run inside the 4-device subprocess -----------------------------------------
def _mlp_trainer(mesh, param_sharding=None, steps_per_call=1):
    import jax
    import jax.numpy as jnp
    import neurodyn as nd
    from neurodyn import nn, optim

    nd.random.seed(0)
    model = nn.Sequential(nn.Linear(6, 16), jax.nn.tanh, nn.Linear(16, 3))
    return nd.Trainer(model, lambda m, b: jnp.mean((m(b[0]) - b[1]) ** 2), optim.Adam(1e-2), mesh=mesh,
                      param_sharding=param_sharding, progress_bar=False, steps_per_call=steps_per_call)


def _data():
    import numpy as np
    rng = np.random.default_rng(1)
    x = rng.normal(size=(96, 6)).astype(np.float32)
    y = np.sin(x[:, :3] * 2).astype(np.float32)
    return x, y


def _params(trainer):
    import numpy as np
    return {k: np.asarray(v.value) for k, v in trainer.model.train_vars().items()}


def check_data_parallel_equals_single_device():
    import numpy as np
    from jax.sharding import PartitionSpec as P
    x, y = _data()
    single, multi = _mlp_trainer(None), _mlp_trainer(4)
    ls, lm = [], []
    for k in range(0, 96, 16):
        ls.append(float(single.step((x[k:k + 16], y[k:k + 16]))["loss"]))
        lm.append(float(multi.step((x[k:k + 16], y[k:k + 16]))["loss"]))
    np.testing.assert_allclose(lm, ls, rtol=1e-5, atol=1e-6)
    ps, pm = _params(single), _params(multi)
    for k in ps:
        np.testing.assert_allclose(pm[k], ps[k], rtol=1e-5, atol=1e-6)
    assert ls[-1] < ls[0]
    # parameters and optimizer state are still replicated over the 4 devices after stepping
    for v in list(multi.model.train_vars().values()) + list(multi.optimizer.opt_state):
        assert v.value.sharding.spec == P() and len(v.value.sharding.device_set) == 4, v.value.sharding
    # fit + evaluate on the same data agree too
    h1 = _mlp_trainer(None).fit((x, y), epochs=2, batch_size=32, seed=3)["loss"]
    h4 = _mlp_trainer(4).fit((x, y), epochs=2, batch_size=32, seed=3)["loss"]
    np.testing.assert_allclose(h4, h1, rtol=1e-5)


def check_steps_per_call_sharded():
    import numpy as np
    x, y = _data()
    h1 = _mlp_trainer(None).fit((x, y), epochs=1, batch_size=16, shuffle=False)["loss"]
    h4 = _mlp_trainer(4, steps_per_call=3).fit((x, y), epochs=1, batch_size=16, shuffle=False)["loss"]
    np.testing.assert_allclose(h4, h1, rtol=1e-5)


def check_param_sharding():
    import numpy as np
    import neurodyn as nd
    from jax.sharding import PartitionSpec as P
    x, y = _data()
    mesh = nd.distributed.make_mesh((2, 2), ("data", "model"))
    single = _mlp_trainer(None)
    sharded = _mlp_trainer(mesh, param_sharding={"layers.0.weight": P(None, "model")})
    for k in range(0, 96, 16):
        a = float(single.step((x[k:k + 16], y[k:k + 16]))["loss"])
        b = float(sharded.step((x[k:k + 16], y[k:k + 16]))["loss"])
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    w = sharded.model.train_vars()["layers.0.weight"].value
    assert w.sharding.spec == P(None, "model"), w.sharding
    assert w.addressable_shards[0].data.shape == (6, 8)  # really split, not replicated
    # Adam's two moments of that weight follow it; the other states stay replicated
    specs = [v.value.sharding.spec for v in sharded.optimizer.opt_state if v.shape == (6, 16)]
    assert specs == [P(None, "model")] * 2, specs
    assert sharded.shardings["layers.2.weight"] == P()
    # the rule helper: the largest dividing axis of big parameters
    rule_tr = _mlp_trainer(mesh, param_sharding=nd.distributed.shard_largest_axis("model", min_size=48))
    assert rule_tr.shardings["layers.0.weight"] == P(None, "model")   # (6, 16): axis 1 is largest
    assert rule_tr.shardings["layers.2.weight"] == P("model")         # (16, 3)
    assert rule_tr.shardings["layers.0.bias"] == P()                  # 16 elements < 48


def check_bad_input():
    import neurodyn as nd
    from jax.sharding import PartitionSpec as P
    x, y = _data()
    tr = _mlp_trainer(4)
    try:
        tr.step((x[:10], y[:10]))
    except ValueError as e:
        assert "multiple of 4" in str(e) and "10" in str(e), e
    else:
        raise AssertionError("a batch of 10 on 4 devices must fail")
    for bad, word in [(8, "device count"), ("x", "Mesh")]:
        try:
            _mlp_trainer(bad)
        except (ValueError, TypeError) as e:
            assert word in str(e), e
        else:
            raise AssertionError(f"mesh={bad!r} must fail")
    try:
        _mlp_trainer(4, param_sharding={"layers.0.weight": P("model")})
    except ValueError as e:
        assert "'model'" in str(e) and "layers.0.weight" in str(e), e
    else:
        raise AssertionError("an axis the mesh lacks must fail")
    try:
        _mlp_trainer(nd.distributed.make_mesh((1, 4), ("data", "model")),
                     param_sharding={"layers.2.weight": P(None, "model")})  # 3 columns over 4
    except ValueError as e:
        assert "divisible by 4" in str(e), e
    else:
        raise AssertionError("an axis that does not divide must fail")


def _coba(mesh, mode, duration=60.):
    import neurodyn as nd
    sys.path.insert(0, str(ROOT / "examples"))
    from ei_network import COBANet
    nd.random.seed(5)
    net = COBANet(scale=0.25, seed=5, mode=mode)  # 800 E + 200 I: both divide by 4
    runner = nd.Runner(net, monitors=["E.spike", "I.spike", "E.V"], inputs=[("E.input", 20.), ("I.input", 20.)],
                       progress_bar=False, mesh=mesh, chunk_size=200)
    runner.run(duration)
    return runner, net


def check_sharded_coba_same_spikes():
    import numpy as np
    import neurodyn as nd
    from jax.sharding import PartitionSpec as P
    # "auto": event-driven E projections and a dense I2I matrix at this size, so both paths are sharded
    for mode in ("auto",):
        (r1, n1), (r4, n4) = _coba(None, mode, 40.), _coba(4, mode, 40.)
        assert hasattr(n4.I2I, "conn_matrix") and hasattr(n4.E2E, "targets")
        assert r1.mon["E.spike"].sum() > 100, "the network should be active"
        for k in ("E.spike", "I.spike", "E.V"):
            np.testing.assert_array_equal(r4.mon[k], r1.mon[k], err_msg=f"{mode} {k}")
        # the state stayed split along the neuron axis through the compiled loop
        for path in ("E.V", "I.V", "E.spike", "E2E.syn.g", "I2E.syn.g"):
            s = n4.get(path).value.sharding
            assert s.spec == P("neurons") and len(s.device_set) == 4, (path, s)
        # reset_state replaces values unsharded; the next run re-places them, same spikes again
        # (reset draws new potentials from nd.random: the same seed for both)
        nd.random.seed(11); r1.reset()
        nd.random.seed(11); r4.reset()
        r1.run(20.); r4.run(20.)
        np.testing.assert_array_equal(r4.mon["E.spike"], r1.mon["E.spike"])
        assert n4.E.V.value.sharding.spec == P("neurons")


def check_sharded_microcircuit_same_spikes():
    import numpy as np
    import neurodyn as nd
    from jax.sharding import PartitionSpec as P
    from neurodyn import models

    def run(mesh):
        nd.random.seed(2)
        net = models.PotjansDiesmann2014(scale=0.02, k_scale=0.05, seed=4)
        runner = nd.Runner(net, monitors=net.spike_monitor(), progress_bar=False, mesh=mesh)
        runner.run(30.0)
        return net, np.unpackbits(np.asarray(runner.mon["spikes"]), axis=1, count=net.n_neurons)

    (_, s1), (n4, s4) = run(None), run(4)
    assert s1.sum() > 50, "the microcircuit should be active"
    np.testing.assert_array_equal(s4, s1)
    # 288 L6E neurons split 4 ways; the bits of delayed spikes split along their neuron axis
    # (1544 neurons); the table and the PRNG key whole on every device
    for var, spec in ((n4.L6E.V, P("neurons")), (n4.synapses.history, P(None, "neurons")),
                      (n4.synapses.targets, P()), (n4.poisson.key, P())):
        s = var.value.sharding
        assert s.spec == spec and len(s.device_set) == 4, (var, s)


def check_shard_function():
    import neurodyn as nd
    from jax.sharding import PartitionSpec as P
    sys.path.insert(0, str(ROOT / "examples"))
    from ei_network import COBANet
    nd.random.seed(0)
    net = COBANet(scale=0.25, seed=0)
    specs = nd.distributed.shard(net, 4, rule={"I.*": P()})
    assert specs["E.V"] == P("data") and specs["I.V"] == P()
    assert net.E.V.value.sharding.spec == P("data")
    try:
        nd.distributed.shard(net, 4, rule=lambda p, v: P("nope") if p == "E.V" else None)
    except ValueError as e:
        assert "nope" in str(e) and "E.V" in str(e), e
    else:
        raise AssertionError("an unknown mesh axis must fail")


CHECKS = {name: fn for name, fn in globals().items() if name.startswith("check_")}


def _main() -> None:
    import jax
    assert jax.device_count() == 4, jax.devices()
    results = {}
    for name, fn in CHECKS.items():
        try:
            fn()
            results[name] = "ok"
        except BaseException:  # noqa: BLE001 -- reported to the parent test
            results[name] = traceback.format_exc()
    print("RESULTS " + json.dumps(results))


# -- pytest side ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def four_devices():
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=4")
    proc = subprocess.run([sys.executable, __file__], env=env, capture_output=True, text=True, timeout=240,
                          cwd=ROOT)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULTS ")), None)
    assert line is not None, f"the 4-device run failed (rc {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return json.loads(line[len("RESULTS "):])


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_four_devices(four_devices, name):
    assert four_devices[name] == "ok", four_devices[name]


def test_two_process_loopback_example():
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "distributed_training.py"),
                           "--epochs", "2", "--timeout", "90"],
                          capture_output=True, text=True, timeout=150, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 processes, 2 devices" in proc.stdout, proc.stdout
    assert "max |difference|" in proc.stdout


IMPORT_CHECK = r"""
import jax, numpy as np
import neurodyn as nd
# importing neurodyn (and nd.random.DEFAULT with it) starts no JAX backend ...
assert isinstance(nd.random.DEFAULT.value, np.ndarray)
np.testing.assert_array_equal(nd.random.DEFAULT.value, jax.random.PRNGKey(0))
first = np.asarray(nd.random.normal(size=3))
nd.random.seed(0)
np.testing.assert_array_equal(np.asarray(nd.random.normal(size=3)), first)
# ... so initialize can still run; once arrays exist, a clear error instead
try:
    nd.distributed.initialize("127.0.0.1:1", num_processes=1, process_id=0)
except RuntimeError as e:
    assert "call initialize first" in str(e), e
    print("CLEAR ERROR")
"""


def test_import_starts_no_backend_and_late_initialize_is_a_clear_error():
    proc = subprocess.run([sys.executable, "-c", IMPORT_CHECK], capture_output=True, text=True,
                          timeout=60, cwd=ROOT, env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert proc.returncode == 0 and "CLEAR ERROR" in proc.stdout, proc.stdout + proc.stderr


def test_single_process_helpers():
    import jax
    import neurodyn as nd
    assert nd.distributed.process_count() == 1 and nd.distributed.process_index() == 0
    assert not nd.distributed.is_initialized()
    mesh = nd.distributed.make_mesh()
    assert mesh.axis_names == ("data",) and mesh.devices.size == jax.device_count()
    with pytest.raises(ValueError, match="process_id"):
        nd.distributed.initialize("127.0.0.1:1", num_processes=2, process_id=5)
    with pytest.raises(ValueError, match="needs 99 devices"):
        nd.distributed.make_mesh(99)


if __name__ == "__main__":
    _main()
