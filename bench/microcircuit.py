"""The Potjans & Diesmann (2014) microcircuit: build time, peak memory and real-time factor.

neurodyn (``neurodyn.models.PotjansDiesmann2014``) at the given scale, and NEST 3
(NEST's own PyNEST microcircuit, rebuilt here from its published parameters with
``iaf_psc_exp``, fixed_total_number connections and redrawn normal weights and delays)
at ``--nest-scale`` where ``import nest`` works (NEST installed in a separate venv:
``--nest-site /work/venv-nest/lib/python3.11/site-packages``, or ``--nest-python`` with
neurodyn's dependencies), in its own process, with the same number of threads.

As NEST recommends for benchmarks, the background is DC (``--background dc``), no
spikes are recorded during the timed run, and a short pre-simulation (``--presim``)
is run and excluded. The real-time factor is wall time per simulated second.

Run:  python bench/microcircuit.py --scale 1.0 --t-sim 200 [--nest-scale 0.1]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2


def run_neurodyn(scale: float, t_sim: float, presim: float, background: str, seed: int) -> dict:
    import jax

    import neurodyn as nd
    from neurodyn import analysis, models

    t0, c0 = time.perf_counter(), time.process_time()
    net = models.PotjansDiesmann2014(scale=scale, background=background, seed=seed)
    jax.block_until_ready(net.synapses.weights.value)
    build_s, build_cpu = time.perf_counter() - t0, time.process_time() - c0
    rss_build = peak_rss_gb()
    # a short recorded run for the rates, then the timed run without monitors
    runner = nd.Runner(net, monitors=net.spike_monitor(), progress_bar=False, chunk_size=1000)
    t0 = time.perf_counter()
    runner.run(presim)
    presim_s = time.perf_counter() - t0
    st = net.spike_trains(runner)
    rates = {k: v["rate"] for k, v in analysis.summary(
        st.window(min(presim / 2, 100.0), presim), populations=net.population_slices(), n_sync=200).items()}
    timed = nd.Runner(net, progress_bar=False, chunk_size=1000)
    timed.run(10.0)  # compile the monitor-less loop
    jax.block_until_ready(net.I_syn.value)
    t0, c0 = time.perf_counter(), time.process_time()
    timed.run(t_sim)
    jax.block_until_ready(net.I_syn.value)
    run_s, run_cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"simulator": "neurodyn", "scale": scale, "neurons": net.n_neurons, "synapses": net.n_synapses,
            "build_s": build_s, "build_cpu_s": build_cpu, "run_cpu_s": run_cpu, "rss_after_build_gb": rss_build, "presim_s_incl_compile": presim_s,
            "t_sim_ms": t_sim, "run_s": run_s, "rtf": run_s / (t_sim / 1000.0), "peak_rss_gb": peak_rss_gb(),
            "rates_hz_presim": rates, "threads": os.environ.get("XLA_FLAGS", "default")}


def run_nest(scale: float, t_sim: float, presim: float, background: str, threads: int, seed: int) -> dict:
    import numpy as np
    import nest

    from neurodyn.models._microcircuit import CONN_PROBS, K_EXT, N_FULL, REFERENCE_RATES, psp_to_psc

    nest.ResetKernel()
    nest.set_verbosity("M_ERROR")
    nest.SetKernelStatus({"local_num_threads": threads, "resolution": 0.1, "rng_seed": seed})
    t0, c0 = time.perf_counter(), time.process_time()
    n = np.round(N_FULL * scale).astype(int)
    prod = np.outer(N_FULL, N_FULL).astype(float)
    full_syn = np.log(1 - CONN_PROBS) / np.log((prod - 1) / prod)
    num = np.round(full_syn * scale * scale).astype(int)
    psc = psp_to_psc(250.0, 10.0, 0.5)
    w = np.tile([0.15, -0.6], 4)[None, :] * psc * np.ones((8, 1))
    w[0, 2] *= 2
    w_ext = 0.15 * psc
    dc = 8.0 * K_EXT * w_ext * 0.5e-3 if background == "dc" else np.zeros(8)
    k = scale
    if k < 1:
        rates = np.array(list(REFERENCE_RATES.values()))
        rec = (w * (full_syn / N_FULL[:, None]) * rates).sum(1)
        dc = dc + 0.5e-3 * (1 - np.sqrt(k)) * (rec + (w_ext * K_EXT * 8.0 if background == "poisson" else 0))
        w, w_ext = w / np.sqrt(k), w_ext / np.sqrt(k)
    pops = []
    means, sds = [-68.28, -63.16, -63.33, -63.45, -63.11, -61.66, -66.72, -61.43], \
        [5.36, 4.57, 4.74, 4.94, 4.94, 4.55, 5.46, 4.48]
    for i in range(8):
        p = nest.Create("iaf_psc_exp", int(n[i]))
        p.set(tau_syn_ex=0.5, tau_syn_in=0.5, E_L=-65.0, V_th=-50.0, V_reset=-65.0, t_ref=2.0, C_m=250.0,
              tau_m=10.0, I_e=float(dc[i]), V_m=nest.random.normal(means[i], sds[i]))
        pops.append(p)
    for t in range(8):
        for s in range(8):
            if num[t, s] == 0:
                continue
            lo, hi = (0.0, np.inf) if w[t, s] > 0 else (-np.inf, 0.0)
            d = 1.5 if s % 2 == 0 else 0.75
            nest.Connect(pops[s], pops[t], {"rule": "fixed_total_number", "N": int(num[t, s])},
                         {"synapse_model": "static_synapse",
                          "weight": nest.math.redraw(nest.random.normal(w[t, s], abs(w[t, s]) * 0.1), lo, hi),
                          "delay": nest.math.redraw(nest.random.normal(d, 0.5 * d), 0.1, np.inf)})
    if background == "poisson":
        for i in range(8):
            pg = nest.Create("poisson_generator", params={"rate": 8.0 * round(K_EXT[i] * k)})
            nest.Connect(pg, pops[i], "all_to_all", {"weight": w_ext, "delay": 1.5})
    nest.Prepare()
    nest.Run(0.1)
    build_s, build_cpu = time.perf_counter() - t0, time.process_time() - c0
    nest.Run(presim)
    t0, c0 = time.perf_counter(), time.process_time()
    nest.Run(t_sim)
    run_s, run_cpu = time.perf_counter() - t0, time.process_time() - c0
    nest.Cleanup()
    return {"simulator": f"NEST {nest.__version__}", "scale": scale, "neurons": int(n.sum()),
            "synapses": int(num.sum()), "build_s": build_s, "build_cpu_s": build_cpu, "run_cpu_s": run_cpu,
            "t_sim_ms": t_sim, "run_s": run_s,
            "rtf": run_s / (t_sim / 1000.0), "peak_rss_gb": peak_rss_gb(), "threads": threads}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--t-sim", type=float, default=200.0, help="timed biological time (ms)")
    ap.add_argument("--presim", type=float, default=100.0, help="excluded biological time (ms)")
    ap.add_argument("--background", choices=["dc", "poisson"], default="dc")
    ap.add_argument("--seed", type=int, default=55)
    ap.add_argument("--nest-scale", type=float, default=None, help="also run NEST at this scale")
    ap.add_argument("--nest-python", default=sys.executable, help="python to run NEST with")
    ap.add_argument("--nest-site", default=None, help="site-packages holding nest (added to PYTHONPATH)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--only", choices=["neurodyn", "nest"], default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.only == "nest":
        print(json.dumps(run_nest(args.nest_scale, args.t_sim, args.presim, args.background, args.threads,
                                  args.seed)))
        return
    results = [run_neurodyn(args.scale, args.t_sim, args.presim, args.background, args.seed)]
    if args.nest_scale is not None:
        # NEST in its own process (and possibly its own venv): separate peak memory
        cmd = [args.nest_python, __file__, "--only", "nest", "--nest-scale", str(args.nest_scale),
               "--t-sim", str(args.t_sim), "--presim", str(args.presim), "--background", args.background,
               "--threads", str(args.threads), "--seed", str(args.seed)]
        path = [os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]
        path += [args.nest_site] if args.nest_site else []
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(path))
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode == 0:
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        else:
            print(f"NEST run failed or NEST is not installed:\n{proc.stderr[-2000:]}")
    for r in results:
        print(f"{r['simulator']:>12s}  scale {r['scale']:<5g} {r['neurons']:>6,d} neurons {r['synapses']:>12,d} "
              f"synapses  build {r['build_s']:6.1f} s (CPU {r['build_cpu_s']:.1f} s)  run {r['run_s']:7.2f} s "
              f"(CPU {r['run_cpu_s']:.1f} s) for {r['t_sim_ms']:g} ms  RTF {r['rtf']:7.1f}  "
              f"peak RSS {r['peak_rss_gb']:.2f} GB")
    if len(results) == 2:
        a, b = results
        per_syn = (a["rtf"] / a["synapses"]) / (b["rtf"] / b["synapses"])
        print(f"RTF per synapse, neurodyn / NEST: {per_syn:.2f} (NEST scaled to neurodyn's size by synapse "
              f"count: RTF ~ {b['rtf'] * a['synapses'] / b['synapses']:.1f})")
    print("rates during the pre-simulation (Hz):",
          {k: round(v, 2) for k, v in results[0]["rates_hz_presim"].items()})


if __name__ == "__main__":
    main()
