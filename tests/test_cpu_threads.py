"""XLA:CPU's execution pool: nd.set_cpu_threads, NEURODYN_CPU_THREADS and the automatic choice.

The pool's size is read from the threads XLA names ``tf_XLAEigen``; each check runs in a fresh
process (the size is fixed once JAX's backend starts).
"""

import json
import os
import subprocess
import sys

import jax
import pytest

import neurodyn as nd
from neurodyn import _cpu

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
linux = hasattr(os, "sched_setaffinity")
linux_only = pytest.mark.skipif(not linux, reason="CPU affinity is Linux only")
two_cpus = pytest.mark.skipif(not linux or len(os.sched_getaffinity(0)) < 2,
                              reason="needs 2 CPUs to tell one pool thread from XLA's default")

# argv: what to do after the import ("call N", "object", "jax-first", "seed", "draw"); prints the affinities,
# whether the backend had started after the import, and the pool's size.
PROBE = """
import json, os, sys, warnings
os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:int(os.environ["PROBE_CPUS"])])
warnings.simplefilter("error")
before = sorted(os.sched_getaffinity(0))
import neurodyn as nd
from jax._src import xla_bridge
started_at_import = xla_bridge.backends_are_initialized()
import jax.numpy as jnp
what = sys.argv[1]
if what == "call":
    nd.set_cpu_threads(int(sys.argv[2]))
elif what == "jax-first":
    jnp.ones(1).block_until_ready()
elif what == "seed":  # how scripts usually begin
    nd.random.seed(1)
elif what == "draw":
    nd.random.normal(0.0, 1.0, size=(3,))
nd.Variable(1.0)
total = float((jnp.arange(100000.0) * 2).sum())
tasks = "/proc/self/task"
threads = [sorted(os.sched_getaffinity(int(t))) for t in os.listdir(tasks)]
pool = sum(open(f"{tasks}/{t}/comm").read().strip() == "tf_XLAEigen" for t in os.listdir(tasks))
print(json.dumps({"before": before, "after": sorted(os.sched_getaffinity(0)), "threads": threads,
                  "pool": pool, "started_at_import": started_at_import, "total": total}))
"""


def run_probe(*args: str, env: dict | None = None, cpus: int = 2) -> subprocess.CompletedProcess:
    """The probe in a process allowed ``cpus`` CPUs (so that the automatic choice applies)."""
    full_env = {k: v for k, v in os.environ.items() if k != "NEURODYN_CPU_THREADS"}
    full_env.update(PYTHONPATH=ROOT, PROBE_CPUS=str(cpus), **(env or {}))
    return subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, env=full_env,
                          timeout=120)


def probe(*args: str, **kw) -> dict:
    p = run_probe(*args, **kw)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["total"] == pytest.approx(2 * 99999 * 100000 / 2)
    return out


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_bad_thread_counts_are_value_errors(bad):
    with pytest.raises(ValueError, match=r"set_cpu_threads: n must be an int >= 1, got"):
        nd.set_cpu_threads(bad)


@linux_only
def test_after_the_backend_started_it_is_an_error_and_changes_nothing():
    jax.devices()
    mask = os.sched_getaffinity(0)
    with pytest.raises(RuntimeError, match=r"already started.*NEURODYN_CPU_THREADS=1"):
        nd.set_cpu_threads(1)
    assert os.sched_getaffinity(0) == mask


@two_cpus
def test_set_cpu_threads_sizes_the_pool_and_leaves_every_thread_all_cpus():
    out = probe("call", "1", env={"NEURODYN_CPU_THREADS": "xla"})
    assert out["pool"] == 1
    assert out["after"] == out["before"]
    # the backend's threads were started narrowed and widened again: compiling keeps every core
    assert all(t == out["before"] for t in out["threads"])


@two_cpus
@pytest.mark.parametrize("env, pool", [({}, 1), ({"NEURODYN_CPU_THREADS": "auto"}, 1),
                                       ({"NEURODYN_CPU_THREADS": "xla"}, 2), ({"NEURODYN_CPU_THREADS": "2"}, 2),
                                       ({"NEURODYN_CPU_THREADS": "1"}, 1)])
def test_the_pool_is_sized_at_the_first_object_not_at_import(env, pool):
    out = probe("object", env=env)
    assert not out["started_at_import"]
    assert out["pool"] == pool
    assert all(t == out["before"] for t in out["threads"])


@two_cpus
@pytest.mark.parametrize("first", ["seed", "draw"])
def test_seeding_or_drawing_first_also_applies_the_setting(first):
    out = probe(first)
    assert not out["started_at_import"]
    assert out["pool"] == 1


@two_cpus
def test_a_jax_computation_before_the_first_object_keeps_xla_default_silently():
    # the automatic choice gives way without a word; the probe turns warnings into errors
    assert probe("jax-first")["pool"] == 2


@two_cpus
def test_an_explicit_setting_that_comes_too_late_warns():
    p = run_probe("jax-first", env={"NEURODYN_CPU_THREADS": "1"})
    assert p.returncode != 0
    assert "NEURODYN_CPU_THREADS=1 is ignored: JAX's backends started (a JAX computation ran) before" in p.stderr


@pytest.mark.parametrize("cpus, backend_started, pending", [(1, False, (1, False)), (2, False, (1, False)),
                                                            (3, False, None), (64, False, None),
                                                            (2, True, None), (None, False, None)])
def test_the_automatic_rule(monkeypatch, cpus, backend_started, pending):
    from jax._src import xla_bridge
    monkeypatch.setattr(_cpu, "pending", None)
    monkeypatch.setattr(_cpu, "threads", None)
    monkeypatch.delenv("NEURODYN_CPU_THREADS", raising=False)
    monkeypatch.setattr(_cpu, "_usable_cpus", lambda: cpus)
    monkeypatch.setattr(xla_bridge, "backends_are_initialized", lambda: backend_started)
    _cpu._from_environment()
    assert _cpu.pending == pending
    assert ("XLA's default" in _cpu.describe()) == (pending is None)


@pytest.mark.parametrize("value, pending", [("3", (3, True)), (" 1 ", (1, True)), ("XLA", None), ("Auto", None)])
def test_environment_values(monkeypatch, value, pending):
    from jax._src import xla_bridge
    monkeypatch.setattr(_cpu, "pending", None)
    monkeypatch.setenv("NEURODYN_CPU_THREADS", value)
    monkeypatch.setattr(_cpu, "_usable_cpus", lambda: 8)
    monkeypatch.setattr(xla_bridge, "backends_are_initialized", lambda: False)
    _cpu._from_environment()
    assert _cpu.pending == pending


@pytest.mark.parametrize("value", ["two", "0", "-1", "1.5"])
def test_a_bad_environment_value_fails_at_import_naming_the_variable(value):
    p = run_probe("object", env={"NEURODYN_CPU_THREADS": value})
    assert p.returncode != 0
    assert f"NEURODYN_CPU_THREADS must be 'auto', 'xla' or an integer >= 1, got {value!r}" in p.stderr


def test_the_environment_setting_after_jax_started_warns_and_imports():
    code = ("import jax.numpy as jnp; jnp.ones(1).block_until_ready(); import warnings; "
            "warnings.simplefilter('error'); import neurodyn")
    env = dict(os.environ, PYTHONPATH=ROOT, NEURODYN_CPU_THREADS="1")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode != 0 and "NEURODYN_CPU_THREADS=1 is ignored: JAX's backends started" in p.stderr
    code = code.replace("warnings.simplefilter('error'); ", "") + "; print(neurodyn.set_cpu_threads.__name__)"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0 and p.stdout.strip() == "set_cpu_threads", p.stderr
