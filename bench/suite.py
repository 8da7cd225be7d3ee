"""The simulation benchmark suite: every workload in neurodyn, a hand-written baseline, Brian2.

Workloads (dt = 0.1 ms):
  brunel    Brunel (2000) model A (``examples/brunel.py``, regime C: g = 5, eta = 2), 600 ms,
            12,500 LIF, 15.6M synapses, delay 1.5 ms, delta synapses, Poisson drive;
            spikes recorded.
  coba      the COBA network (``examples/ei_network.py``), 4000 LIF, 1 s, spikes recorded.
  scale     COBA at N = 4000 / 16000 / 64000 (~80 synapses per neuron), 200 ms, no monitors.
  hetdelay  the COBA network with per-synapse delays Normal(1.5, 0.5) ms clipped at 0.1 ms,
            1 s, spikes recorded.

Implementations: ``neurodyn``; ``jax`` (hand-written pure JAX from ``bench/coba_jax.py``: coba and
scale); ``numpy`` (a plain NumPy loop: brunel); ``brian2`` (Brian2 C++ standalone, single thread,
when brian2 and a C++ compiler are installed: ``pip install -e ".[bench]"``). Each
(workload, implementation) runs in its own process, one after the other, so peak memory is
that process's (Brian2: of the compiled simulation binary) and nothing is shared.

Reported: build (network construction; Brian2: code generation and compilation), compile
(XLA), run (the simulation loop only; Brian2: its main loop as it reports it), peak resident
memory, rates, and run time over Brian2's and over NumPy's, plus time to first result over
Brian2's. Time to first result is what a user waits for in a fresh process: from before the
simulator's import (``import neurodyn``, which imports JAX; ``import brian2``) until the
first run's results are on the host. For neurodyn that is import + build + compile + run,
plus the Runner's setup and the copy of the records (and, counted against neurodyn, the
statistics the worker computes from them); for Brian2 it is import + code generation + g++
build + the whole binary (its own network construction and main loop).

Run:  python bench/suite.py                       (everything, full scale: ~15 min on 2 cores)
      python bench/suite.py --only brunel --repeat 2
      python bench/suite.py --only coba,scale --impl neurodyn,brian2
      python bench/suite.py --scale 0.2 --quick     (reduced sizes and durations)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import resource
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
WORKLOADS = ("brunel", "coba", "scale", "hetdelay")
IMPLS = {"brunel": ("neurodyn", "numpy", "brian2"), "coba": ("neurodyn", "jax", "brian2"),
         "scale": ("neurodyn", "jax", "brian2"), "hetdelay": ("neurodyn", "brian2")}
SCALE_N = (4000, 16000, 64000)


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _load(name: str, rel: str):
    import importlib.util
    spec = importlib.util.spec_from_file_location(name, ROOT / rel)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


# -- neurodyn ---------------------------------------------------------------------------------
def nd_brunel(scale: float, duration: float, seed: int) -> dict:
    import neurodyn as nd
    brunel = _load("brunel_example", "examples/brunel.py")
    g, eta = brunel.REGIMES["C"]
    nd.random.seed(seed)
    t0 = time.perf_counter()
    net = brunel.BrunelNetwork(g=g, eta=eta, scale=scale, seed=seed)
    build = time.perf_counter() - t0
    runner = nd.Runner(net, monitors={"E": nd.SpikeMonitor("E.spike"),
                                      "I": nd.SpikeMonitor("I.spike")}, progress_bar=False)
    mon = runner.run(duration)
    st = brunel.statistics(mon["E"], mon["I"], skip=min(100.0, duration / 4))
    return dict(build_s=build, compile_s=runner.stats["compile_s"], run_s=runner.stats["run_s"],
                synapses=sum(p.nnz for p in net.projections().values()), rate_E=st["rate_E_hz"],
                rate_I=st["rate_I_hz"], cv_E=st["cv_E"], sync_E=st["sync_E"])


def _coba_net(scale: float, seed: int, delay=None):
    import neurodyn as nd
    from neurodyn import nn
    ei = _load("ei_network_example", "examples/ei_network.py")
    if delay is None:
        return ei.COBANet(scale=scale, seed=seed)

    class DelayedCOBA(nn.Network):
        def __init__(self):
            n_e, n_i = int(3200 * scale), int(800 * scale)
            p = 0.02 / scale
            lif = dict(V_rest=-60., V_reset=-60., V_th=-50., tau=20., tau_ref=5.,
                       V_initializer=nn.Normal(-55., 2.))
            self.E, self.I = nn.LIF(n_e, **lif), nn.LIF(n_i, **lif)

            def proj(pre, post, tau, E_rev, w, k):
                return nn.Projection(pre, post, nn.FixedProb(p, seed=seed + k), w, nn.Expon(post.size, tau=tau),
                                     nn.COBA(E=E_rev), delay=delay)

            self.E2E = proj(self.E, self.E, 5., 0., 0.6, 1)
            self.E2I = proj(self.E, self.I, 5., 0., 0.6, 2)
            self.I2E = proj(self.I, self.E, 10., -80., 6.7, 3)
            self.I2I = proj(self.I, self.I, 10., -80., 6.7, 4)

    return DelayedCOBA()


def nd_coba(scale: float, duration: float, seed: int, monitors: bool = True, delay=None) -> dict:
    import neurodyn as nd
    nd.random.seed(seed)
    t0 = time.perf_counter()
    net = _coba_net(scale, seed, delay)
    build = time.perf_counter() - t0
    runner = nd.Runner(net, monitors=["E.spike", "I.spike"] if monitors else None,
                       inputs=[("E.input", 20.), ("I.input", 20.)], progress_bar=False)
    if not monitors:
        runner.run(duration)
        return dict(build_s=build, compile_s=runner.stats["compile_s"], run_s=runner.stats["run_s"],
                    synapses=sum(p.nnz for p in net.projections().values()))
    mon = runner.run(duration)
    T = duration / 1000.0
    return dict(build_s=build, compile_s=runner.stats["compile_s"], run_s=runner.stats["run_s"],
                synapses=sum(p.nnz for p in net.projections().values()),
                rate_E=float(mon["E.spike"].sum() / net.E.size / T), rate_I=float(mon["I.spike"].sum() / net.I.size / T))


# -- hand-written pure JAX (bench/coba_jax.py) --------------------------------------------------
def jax_coba(scale: float, duration: float, seed: int, per_step: bool) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np
    import neurodyn as nd
    cj = _load("coba_jax", "bench/coba_jax.py")
    nd.random.seed(seed)
    t0 = time.perf_counter()
    net = _coba_net(scale, seed)  # the same connectivity, handed over as padded tables
    targets = {k: getattr(net, p).conn.padded(getattr(net, p).n_pre, getattr(net, p).n_post)
               for k, p in (("EE", "E2E"), ("EI", "E2I"), ("IE", "I2E"), ("II", "I2I"))}
    v0 = jnp.asarray(np.concatenate([np.asarray(net.E.V.value), np.asarray(net.I.V.value)]))
    build = time.perf_counter() - t0
    n_e, n_i = net.E.size, net.I.size
    k2 = -(-n_e // 100) + -(-n_i // 100)
    n_steps = int(round(duration / 0.1))
    run = cj.make_runner_tiered(targets, n_e, n_i, n_steps, 0.1, k1=max(16, -(-k2 // 3)), k2=k2,
                                per_step=per_step, counts=per_step, fused_state=per_step)
    t0 = time.perf_counter()
    c = run.lower(v0).compile()
    comp = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = jax.block_until_ready(c(v0))
    run_s = time.perf_counter() - t0
    res = dict(build_s=build, compile_s=comp, run_s=run_s, synapses=sum(p.nnz for p in net.projections().values()))
    if per_step:
        counts = np.asarray(out[1]).sum(axis=0)
        res.update(rate_E=float(counts[0] / n_e / (duration / 1000)), rate_I=float(counts[1] / n_i / (duration / 1000)))
    return res


# -- plain NumPy: Brunel ----------------------------------------------------------------------
def numpy_brunel(scale: float, duration: float, seed: int) -> dict:
    """The Brunel network in a NumPy loop with the same connectivity and update as neurodyn's."""
    import numpy as np
    import neurodyn as nd
    brunel = _load("brunel_example", "examples/brunel.py")
    g, eta = brunel.REGIMES["C"]
    nd.random.seed(seed)
    t0 = time.perf_counter()
    net = brunel.BrunelNetwork(g=g, eta=eta, scale=scale, seed=seed)
    n_e, n_i = net.E.size, net.I.size
    N = n_e + n_i
    P = net.params
    # one CSR over the whole network: pre rows (E then I) -> post indices (E then I)
    rows = {}
    for pre, parts in (("E", (("E2E", 0), ("E2I", n_e))), ("I", (("I2E", 0), ("I2I", n_e)))):
        deg, cols = None, []
        for name, off in parts:
            p = getattr(net, name)
            ip, ix = p.conn.csr(p.n_pre, p.n_post)
            cols.append((ip, ix + off))
        n_pre = cols[0][0].size - 1
        d = sum(np.diff(ip) for ip, _ in cols)
        indptr = np.zeros(n_pre + 1, np.int64)
        np.cumsum(d, out=indptr[1:])
        idx = np.empty(indptr[-1], np.int32)
        used = indptr[:-1].copy()
        for ip, ix in cols:
            dd = np.diff(ip)
            pos = np.repeat(used - ip[:-1], dd) + np.arange(ix.size)
            idx[pos] = ix
            used += dd
        rows[pre] = (indptr, idx)
    build = time.perf_counter() - t0
    dt = 0.1
    D = int(round(P["delay"] / dt))
    decay = math.exp(-dt / brunel.TAU)
    n_ref = int(round(brunel.TAU_RP / dt))
    J, gJ = P["J"], P["g"] * P["J"]
    p_ext = net.nu_ext * dt / 1000.0
    rng = np.random.default_rng(seed)
    V = np.asarray(net.E.V.value).tolist() + np.asarray(net.I.V.value).tolist()
    V = np.asarray(V, np.float64)
    ref = np.zeros(N, np.int32)
    queue = [(np.zeros(0, np.int64), np.zeros(0, np.int64)) for _ in range(D)]

    def targets(pre, ids):
        indptr, idx = rows[pre]
        starts, lens = indptr[ids], indptr[ids + 1] - indptr[ids]
        total = int(lens.sum())
        pos = np.repeat(starts - (np.cumsum(lens) - lens), lens) + np.arange(total)
        return idx[pos]

    n_steps = int(round(duration / dt))
    count_E = count_I = 0
    t0 = time.perf_counter()
    for t in range(n_steps):
        sE, sI = queue[t % D]
        x = J * np.bincount(targets("E", sE), minlength=N) - gJ * np.bincount(targets("I", sI), minlength=N)
        x += J * rng.binomial(P["C_E"], p_ext, N)
        active = ref == 0
        V = np.where(active, V * decay + x, V)
        spike = (V >= brunel.THETA) & active
        V[spike] = brunel.V_R
        ref = np.where(spike, n_ref, np.maximum(ref - 1, 0))
        ids = np.flatnonzero(spike)
        e, i = ids[ids < n_e], ids[ids >= n_e] - n_e
        count_E += e.size
        count_I += i.size
        # emitted at step t, these arrive at step t + D (read from slot (t + D) % D = t % D)
        queue[t % D] = (e, i)
    run_s = time.perf_counter() - t0
    T = duration / 1000.0
    return dict(build_s=build, compile_s=0.0, run_s=run_s, synapses=int(rows["E"][0][-1] + rows["I"][0][-1]),
                rate_E=count_E / n_e / T, rate_I=count_I / n_i / T)


# -- Brian2 C++ standalone --------------------------------------------------------------------
def _brian2_prepare():
    import brian2 as b2
    b2.set_device("cpp_standalone", build_on_run=False)
    b2.prefs.devices.cpp_standalone.openmp_threads = 0
    b2.defaultclock.dt = 0.1 * b2.ms
    return b2


def _brian2_finish(b2, t_start: float, spikes=None, sizes=None, duration=None) -> dict:
    """Build, compile and run; peak memory of the simulation binary only (os.wait4 on it)."""
    import brian2.devices.cpp_standalone.device as bdev
    peaks = []
    real_call = subprocess.call

    class _Shim:
        def __getattr__(self, name):
            return getattr(subprocess, name)

        @staticmethod
        def call(args, **kw):
            p = subprocess.Popen(args, **kw)
            _, status, ru = os.wait4(p.pid, 0)
            peaks.append(ru.ru_maxrss / 1024.0)
            return os.waitstatus_to_exitcode(status)

    bdev.subprocess = _Shim()
    try:
        with tempfile.TemporaryDirectory() as d:
            b2.device.build(directory=d, compile=True, run=True, with_output=False)
            total = time.perf_counter() - t_start
            binary = b2.device.timers["run_binary"]
            res = dict(build_s=total - binary, compile_s=0.0, run_s=b2.device._last_run_time,
                       binary_s=binary, peak_mb=peaks[-1] if peaks else float("nan"))
            if spikes is not None:
                T = duration / 1000.0
                for name, mon, n in zip(("E", "I"), spikes, sizes):
                    res[f"rate_{name}"] = float(mon.num_spikes / n / T)
    finally:
        bdev.subprocess = subprocess
        del real_call
    return res


def brian2_brunel(scale: float, duration: float, seed: int) -> dict:
    import numpy as np
    import neurodyn as nd
    from neurodyn import nn
    t_start = time.perf_counter()
    b2 = _brian2_prepare()
    from brian2 import ms, mV, Hz
    brunel = _load("brunel_example", "examples/brunel.py")
    g, eta = brunel.REGIMES["C"]
    n_e, n_i = int(round(10000 * scale)), int(round(2500 * scale))
    c_e, c_i = max(1, int(round(0.1 * n_e))), max(1, int(round(0.1 * n_i)))
    J = 0.1 / scale
    nu_ext = eta * brunel.THETA / (J * c_e * brunel.TAU) * 1000.0
    b2.seed(seed)
    G = b2.NeuronGroup(n_e + n_i, "dv/dt = -v / (20*ms) : volt (unless refractory)", threshold="v >= 20*mV",
                       reset="v = 10*mV", refractory=2 * ms, method="exact")
    G.v = "20*mV*rand()"
    E, I = G[:n_e], G[n_e:]
    # inputs during the refractory period are lost, as in NEST and neurodyn
    SE = b2.Synapses(E, G, on_pre="v_post += int(not_refractory_post) * J_E", delay=1.5 * ms,
                     namespace={"J_E": J * mV})
    SI = b2.Synapses(I, G, on_pre="v_post += int(not_refractory_post) * J_I", delay=1.5 * ms,
                     namespace={"J_I": -g * J * mV})
    # fixed in-degree, drawn as in neurodyn (nn.FixedPreNum)
    for S, n_pre, c, k in ((SE, n_e, c_e, 1), (SI, n_i, c_i, 3)):
        pre = nn.FixedPreNum(c, seed=seed + k).csr(n_pre, n_e)
        pre2 = nn.FixedPreNum(c, seed=seed + k + 1).csr(n_pre, n_i)
        i = np.concatenate([np.repeat(np.arange(n_pre), np.diff(pre[0])), np.repeat(np.arange(n_pre), np.diff(pre2[0]))])
        j = np.concatenate([pre[1], pre2[1] + n_e])
        S.connect(i=i, j=j)
    J_X = J * mV  # noqa: F841 -- found by Brian2 in this frame's namespace at run()
    P = b2.PoissonInput(G, "v", c_e, nu_ext * Hz, weight="int(not_refractory) * J_X")  # noqa: F841
    mE, mI = b2.SpikeMonitor(E), b2.SpikeMonitor(I)
    b2.run(duration * ms)
    return _brian2_finish(b2, t_start, (mE, mI), (n_e, n_i), duration)


def brian2_coba(scale: float, duration: float, seed: int, monitors: bool = True, delay: bool = False) -> dict:
    t_start = time.perf_counter()
    b2 = _brian2_prepare()
    from brian2 import ms, mV
    b2.seed(seed)
    n_e, n_i = int(3200 * scale), int(800 * scale)
    p = 0.02 / scale
    eqs = """dv/dt = (-(v + 60*mV) + ge * (0*mV - v) + gi * (-80*mV - v) + 20*mV) / (20*ms) : volt (unless refractory)
             dge/dt = -ge / (5*ms) : 1
             dgi/dt = -gi / (10*ms) : 1"""
    G = b2.NeuronGroup(n_e + n_i, eqs, threshold="v >= -50*mV", reset="v = -60*mV", refractory=5 * ms,
                       method="euler")
    G.v = "-55*mV + 2*mV*randn()"
    E, I = G[:n_e], G[n_e:]
    Ce = b2.Synapses(E, G, on_pre="ge += 0.6")
    Ci = b2.Synapses(I, G, on_pre="gi += 6.7")
    Ce.connect(p=p)
    Ci.connect(p=p)
    if delay:
        Ce.delay = "clip(1.5 + 0.5*randn(), 0.1, 1000) * ms"
        Ci.delay = "clip(1.5 + 0.5*randn(), 0.1, 1000) * ms"
    # Brian2's run() collects the objects held by local variables (not inside containers)
    mE = b2.SpikeMonitor(E) if monitors else None
    mI = b2.SpikeMonitor(I) if monitors else None
    b2.run(duration * ms)
    return _brian2_finish(b2, t_start, (mE, mI) if monitors else None, (n_e, n_i), duration)


# -- driver -----------------------------------------------------------------------------------
def worker(workload: str, impl: str, scale: float, duration: float, seed: int, N: int | None) -> dict:
    # nothing of neurodyn, JAX or Brian2 is imported yet (see _cold_first_result)
    t_start = time.perf_counter()
    res = _dispatch(workload, impl, scale, duration, seed, N)
    res["first_s"] = _cold_first_result(impl, res, time.perf_counter() - t_start)
    # CPU seconds of the whole worker, its children included (g++, Brian2's binary): a figure for
    # time to first result that a machine shared with other jobs distorts far less than wall time
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    res["cpu_s"] = own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
    res.setdefault("peak_mb", _peak_mb())
    return res


def _cold_first_result(impl: str, res: dict, elapsed: float) -> float:
    """Seconds from before the simulator's import to the first run's results on the host.

    Brian2: from before ``import brian2`` until its binary has finished (build + binary).
    neurodyn, JAX, NumPy: the worker's whole time, which starts before their import and
    ends after the run's records have been turned into the reported rates.
    """
    if impl == "brian2":
        return res["build_s"] + res["binary_s"]
    return elapsed


def _dispatch(workload: str, impl: str, scale: float, duration: float, seed: int, N: int | None) -> dict:
    if workload == "brunel":
        fn = {"neurodyn": nd_brunel, "numpy": numpy_brunel, "brian2": brian2_brunel}[impl]
        res = fn(scale, duration, seed)
    elif workload == "coba":
        fn = {"neurodyn": nd_coba, "jax": lambda s, d, r: jax_coba(s, d, r, True), "brian2": brian2_coba}[impl]
        res = fn(scale, duration, seed)
    elif workload == "scale":
        s = N / 4000
        fn = {"neurodyn": lambda: nd_coba(s, duration, seed, monitors=False),
              "jax": lambda: jax_coba(s, duration, seed, False),
              "brian2": lambda: brian2_coba(s, duration, seed, monitors=False)}[impl]
        res = fn()
    elif workload == "hetdelay":
        if impl == "neurodyn":
            from neurodyn import nn
            res = nd_coba(scale, duration, seed, delay=nn.TruncatedNormal(1.5, 0.5, low=0.1, mode="clip"))
        else:
            res = brian2_coba(scale, duration, seed, delay=True)
    else:
        raise ValueError(workload)
    return res


def _run_worker(workload, impl, scale, duration, seed, N, timeout, python) -> dict:
    cmd = [python, __file__, "--worker", workload, impl, "--scale", str(scale), "--duration", str(duration),
           "--seed", str(seed)] + (["--N", str(N)] if N else [])
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {timeout} s"}
    line = next((ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        tail = (p.stderr or p.stdout).strip().splitlines()[-3:]
        return {"error": " | ".join(tail)}
    return json.loads(line[len("RESULT "):])


def _have_brian2(python: str) -> bool:
    ok = subprocess.run([python, "-c", "import brian2"], capture_output=True).returncode == 0
    return ok and subprocess.run(["which", "g++"], capture_output=True).returncode == 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(WORKLOADS), help=f"comma-separated subset of {WORKLOADS}")
    ap.add_argument("--impl", default="neurodyn,jax,numpy,brian2", help="comma-separated implementations")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply network sizes (brunel, coba, hetdelay)")
    ap.add_argument("--quick", action="store_true", help="short durations (brunel 200 ms, coba 300 ms) and N <= 16000")
    ap.add_argument("--repeat", type=int, default=1, help="run each case this many times (all figures listed)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--brian2-python", default=sys.executable,
                    help="the Python that runs Brian2 (one whose numpy Brian2 supports)")
    ap.add_argument("--worker", nargs=2, metavar=("WORKLOAD", "IMPL"), help=argparse.SUPPRESS)
    ap.add_argument("--duration", type=float, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--N", type=int, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        res = worker(a.worker[0], a.worker[1], a.scale, a.duration, a.seed, a.N)
        print("RESULT " + json.dumps(res))
        return

    durations = {"brunel": 600.0, "coba": 1000.0, "scale": 200.0, "hetdelay": 1000.0}
    if a.quick:
        durations.update(brunel=200.0, coba=300.0, hetdelay=300.0)
    impls = [s.strip() for s in a.impl.split(",")]
    workloads = [s.strip() for s in a.only.split(",")]
    unknown = [w for w in workloads if w not in IMPLS]
    if unknown:
        ap.error(f"--only: unknown workload(s) {unknown}; expected some of {sorted(IMPLS)}")
    if "brian2" in impls and not _have_brian2(a.brian2_python):
        print("brian2 or g++ not found: Brian2 left out (pip install -e '.[bench]')")
        impls.remove("brian2")
    import platform
    import jax
    from neurodyn import _cpu
    print(f"neurodyn bench suite: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"jax {jax.__version__}, load average {os.getloadavg()[0]:.1f}; scale {a.scale}; "
          f"neurodyn's XLA:CPU execution threads: {_cpu.describe()}")
    rows = []
    for w in workloads:
        Ns = [n for n in SCALE_N if not (a.quick and n > 16000)] if w == "scale" else [None]
        for N in Ns:
            label = f"{w} N={N}" if N else w
            for impl in IMPLS[w]:
                if impl not in impls:
                    continue
                for _ in range(a.repeat):
                    python = a.brian2_python if impl == "brian2" else sys.executable
                    res = _run_worker(w, impl, a.scale, durations[w], a.seed, N, a.timeout, python)
                    res.update(workload=label, impl=impl, load=os.getloadavg()[0])
                    rows.append(res)
                    _print_row(res)
    print()
    _print_summary(rows)


def _fmt(x, spec=".2f"):
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def _print_row(r: dict) -> None:
    if "error" in r:
        print(f"{r['workload']:<15} {r['impl']:<9} ERROR {r['error']}")
        return
    rates = f"E {_fmt(r.get('rate_E'), '.1f')} / I {_fmt(r.get('rate_I'), '.1f')} Hz"
    print(f"{r['workload']:<15} {r['impl']:<9} build {r['build_s']:7.2f} s  compile {r['compile_s']:6.2f} s  "
          f"run {r['run_s']:8.3f} s  first result {r['first_s']:6.2f} s ({r['cpu_s']:6.2f} s CPU)  "
          f"peak {r['peak_mb']:7.0f} MB  {rates}  "
          f"(load {r['load']:.1f})", flush=True)


def _print_summary(rows: list[dict]) -> None:
    import statistics
    ok = [r for r in rows if "error" not in r]
    best = {}
    for r in ok:
        key = (r["workload"], r["impl"])
        best.setdefault(key, []).append(r)
    print(f"{'workload':<15} {'impl':<9} {'run s':>8} {'/brian2':>8} {'/numpy':>7} {'first result s':>14} "
          f"{'/brian2':>8} {'(CPU s':>7} {'/brian2)':>8} {'peak MB':>8}")
    for (w, impl), rs in best.items():
        run = statistics.median(r["run_s"] for r in rs)
        first = statistics.median(r["first_s"] for r in rs)
        peak = max(r["peak_mb"] for r in rs)
        b = best.get((w, "brian2"))
        npy = best.get((w, "numpy"))
        rb = run / statistics.median(x["run_s"] for x in b) if b else None
        rn = run / statistics.median(x["run_s"] for x in npy) if npy else None
        fb = first / statistics.median(x["first_s"] for x in b) if b else None
        cpu = statistics.median(r["cpu_s"] for r in rs)
        cb = cpu / statistics.median(x["cpu_s"] for x in b) if b else None
        print(f"{w:<15} {impl:<9} {run:8.3f} {_fmt(rb):>8} {_fmt(rn):>7} {first:14.2f} {_fmt(fb):>8} "
              f"{cpu:7.2f} {_fmt(cb):>8} {peak:8.0f}")


if __name__ == "__main__":
    main()
