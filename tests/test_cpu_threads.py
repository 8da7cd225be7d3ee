"""nd.set_cpu_threads: XLA:CPU's execution pool sized at backend start, affinity restored."""

import json
import os
import subprocess
import sys

import jax
import pytest

import neurodyn as nd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
linux_only = pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="CPU affinity is Linux only")

# Reports the main thread's affinity before and after, and every thread's affinity once XLA has run.
PROBE = """
import json, os, sys
before = sorted(os.sched_getaffinity(0))
import neurodyn as nd
if len(sys.argv) > 1:
    nd.set_cpu_threads(int(sys.argv[1]))
import jax.numpy as jnp
total = float((jnp.arange(100000.0) * 2).sum())
threads = [sorted(os.sched_getaffinity(int(t))) for t in os.listdir("/proc/self/task")]
print(json.dumps({"before": before, "after": sorted(os.sched_getaffinity(0)), "threads": threads, "total": total}))
"""


def run_probe(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k != "NEURODYN_CPU_THREADS"}
    full_env.update(PYTHONPATH=ROOT, **(env or {}))
    return subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, env=full_env,
                          timeout=120)


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


@linux_only
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2 if hasattr(os, "sched_getaffinity") else True,
                    reason="needs 2 or more CPUs to tell one pool thread from all")
@pytest.mark.parametrize("how", ["call", "env"])
def test_pool_threads_get_one_cpu_and_the_main_thread_keeps_all(how):
    p = run_probe("1") if how == "call" else run_probe(env={"NEURODYN_CPU_THREADS": "1"})
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["after"] == out["before"]
    assert out["total"] == pytest.approx(2 * 99999 * 100000 / 2)
    # XLA's execution threads were started while the affinity was narrowed to one CPU
    assert any(t == out["before"][:1] for t in out["threads"])
    # by default no thread is narrowed
    default = json.loads(run_probe().stdout.strip().splitlines()[-1])
    assert all(t == default["before"] for t in default["threads"])


def test_a_bad_environment_value_fails_at_import_naming_the_variable():
    p = run_probe(env={"NEURODYN_CPU_THREADS": "two"})
    assert p.returncode != 0
    assert "NEURODYN_CPU_THREADS must be an integer >= 1, got 'two'" in p.stderr


def test_the_environment_setting_after_jax_started_warns_and_imports():
    code = ("import jax.numpy as jnp; jnp.ones(1).block_until_ready(); import warnings; "
            "warnings.simplefilter('error'); import neurodyn")
    env = dict(os.environ, PYTHONPATH=ROOT, NEURODYN_CPU_THREADS="1")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode != 0 and "NEURODYN_CPU_THREADS=1 is ignored: JAX's backends started" in p.stderr
    code = code.replace("warnings.simplefilter('error'); ", "") + "; print(neurodyn.set_cpu_threads.__name__)"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0 and p.stdout.strip() == "set_cpu_threads", p.stderr
