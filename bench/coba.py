"""COBA network: neurodyn against the fastest hand-written pure-JAX versions.

Same process, same connectivity (built once by neurodyn's example network and
handed to the pure-JAX code as padded target tables), same initial potentials.

Run:  python bench/coba.py           (about 2-3 minutes on a 2-core CPU)
      python bench/coba.py --quick   (fewer rounds, no dense variant, N up to 16000)

Part 1, 1 s of the 4000-neuron network (10,000 steps of 0.1 ms):
  * neurodyn: ``examples/ei_network.py``'s ``COBANet`` run by ``nd.Runner``
    (progress bar off), once without monitors and once recording E and I spikes;
  * hand-written (``bench/coba_jax.py``, no neurodyn): the reference with
    2 groups and 4 projections (``simulate``, records all spikes), the fused
    kernels (``make_runner`` and the faster ``make_runner_tiered``, scan unroll
    1 and 4; they record spike counts only, or, like neurodyn without
    monitors, nothing but the final state, which must equal neurodyn's bit for
    bit), and the dense ``spikes @ W`` version (run 0.2 s, time scaled by 5).
Run times exclude compilation (every variant is compiled first) and block on
the results; variants alternate over rounds and the median is reported. The
ratio is neurodyn without monitors over the best hand-written run time.
Spikes recorded by neurodyn must equal the reference's bit for bit.

Part 2, scaling: N = 4000, 16000, 64000 (4:1 E:I), p = 80 / N (about 80
synapses per neuron), 200 ms; run time per synapse per step should stay flat.
"""

from __future__ import annotations

import argparse
import importlib.util
import pathlib
import resource
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import neurodyn as nd

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _load(name: str, rel: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / rel)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


ei = _load("ei_network_example", "examples/ei_network.py")
cj = _load("coba_jax", "bench/coba_jax.py")

INPUTS = [("E.input", 20.), ("I.input", 20.)]
PROJ = (("EE", "E2E"), ("EI", "E2I"), ("IE", "I2E"), ("II", "I2I"))


def _median_times(fns: dict, rounds: int) -> tuple[dict, dict, dict]:
    """Medians of wall-clock and of process CPU time (all threads), and the
    best wall-clock time, per variant.

    CPU time is the steadier figure when other jobs share the cores: waiting
    for a core costs wall time but no CPU time. The best of the rounds is the
    least disturbed by a noisy machine.
    """
    wall: dict = {k: [] for k in fns}
    cpu: dict = {k: [] for k in fns}
    names = list(fns)
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            w0, c0 = time.perf_counter(), time.process_time()
            jax.block_until_ready(fns[name]())
            wall[name].append(time.perf_counter() - w0)
            cpu[name].append(time.process_time() - c0)
    return ({k: statistics.median(v) for k, v in wall.items()},
            {k: statistics.median(v) for k, v in cpu.items()},
            {k: min(v) for k, v in wall.items()})


class NdCase:
    """A COBANet and a Runner that always restarts from the same initial state."""

    def __init__(self, scale: float, seed: int, monitors: list | None, net=None, state0=None,
                 unroll: int = 1) -> None:
        if net is None:
            nd.random.seed(seed)
            t0 = time.perf_counter()
            net = ei.COBANet(scale=scale, seed=seed)
            self.build_s = time.perf_counter() - t0
            state0 = nd.graph.states(net)
        self.net, self.state0 = net, state0
        self.runner = nd.Runner(net, monitors=monitors, inputs=INPUTS, progress_bar=False, unroll=unroll)

    def run(self, duration: float) -> None:
        nd.graph.update(self.net, self.state0)
        self.runner.reset(reset_state=False)
        self.runner.run(duration)  # blocks on the model's state before returning

    def compile(self, duration: float) -> float:
        self.run(duration)  # the first run compiles; Runner.stats tells how long that took
        return self.runner.stats["compile_s"]

    def targets(self) -> dict:
        return {k: np.asarray(getattr(self.net, p).targets.value) for k, p in PROJ}

    def V0(self) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(self.state0["E.V"]), np.asarray(self.state0["I.V"])


def _compile(f, *args) -> tuple:
    t0 = time.perf_counter()
    c = f.lower(*args).compile()
    return c, time.perf_counter() - t0


def part1(args) -> None:
    T, dt = 1000.0, 0.1
    n_steps = int(round(T / dt))
    nomon = NdCase(1.0, args.seed, None)
    mon = NdCase(1.0, args.seed, ["E.spike", "I.spike"], nomon.net, nomon.state0)
    targets = nomon.targets()
    VE, VI = nomon.V0()
    n_e, n_i = VE.size, VI.size
    syn = sum(getattr(nomon.net, p).nnz for _, p in PROJ)
    print(f"COBA {n_e} E + {n_i} I, {syn:,} synapses, dt = {dt} ms, 1 s = {n_steps} steps; "
          f"jax {jax.__version__}, {jax.devices()[0].device_kind}; network built in {nomon.build_s:.2f} s")

    V0 = jnp.asarray(np.concatenate([VE, VI]))
    VEj, VIj = jnp.asarray(VE), jnp.asarray(VI)
    cases: dict = {}  # name -> (time fn, compile s)
    comp = nomon.compile(T)
    cases["neurodyn Runner, no monitors"] = (lambda: nomon.run(T), comp)
    comp = mon.compile(T)
    cases["neurodyn Runner, E+I spike monitors"] = (lambda: mon.run(T), comp)
    nd4 = NdCase(1.0, args.seed, None, nomon.net, nomon.state0, unroll=4)
    comp = nd4.compile(T)
    cases["neurodyn Runner(unroll=4), no monitors"] = (lambda: nd4.run(T), comp)
    # Without the Runner: one nd.jit'ed for_loop over net.update() with the inputs set
    # beforehand (the Runner writes them every step), to separate Runner from model cost.
    plain_net = nomon.net
    inputs0 = {"E.input": jnp.full(n_e, 20.), "I.input": jnp.full(n_i, 20.)}
    loop = nd.jit(lambda: nd.for_loop(lambda i: plain_net.update(), jnp.arange(n_steps)))

    def plain() -> jax.Array:
        nd.graph.update(plain_net, nomon.state0, inputs0)
        loop()
        return plain_net.E.V.value
    t0 = time.perf_counter()
    jax.block_until_ready(plain())
    cases["neurodyn nd.jit(for_loop(net.update)), no Runner"] = (plain, time.perf_counter() - t0)
    # The same network with fusion off: every projection propagates on its own (the
    # path before Network fused them; projections sharing a pre group share a compaction).
    nd.random.seed(args.seed)
    unf_net = ei.COBANet(scale=1.0, seed=args.seed)
    unf_net.fuse = False
    unf = NdCase(1.0, args.seed, None, unf_net, nd.graph.states(unf_net))
    comp = unf.compile(T)
    cases["neurodyn Runner, no monitors, Network.fuse=False"] = (lambda: unf.run(T), comp)
    ref = cj.make_ref_runner(targets, n_e, n_i, n_steps, dt, mode="event", k=32)
    c_ref, comp = _compile(jax.jit(ref), VEj, VIj)
    cases["hand: reference, 2 groups, 4 proj (spikes)"] = (lambda: c_ref(VEj, VIj), comp)
    fused = {}
    variants = {"make_runner: block top_k k=16, k2=64, unroll 1":
                cj.make_runner(targets, n_e, n_i, n_steps, dt, unroll=1)}
    for unroll in (1, 4):
        variants[f"make_runner_tiered k1=16, k2=48, unroll {unroll}"] = cj.make_runner_tiered(
            targets, n_e, n_i, n_steps, dt, unroll=unroll)
    variants["make_runner_tiered, E and I states, unroll 1"] = cj.make_runner_tiered(
        targets, n_e, n_i, n_steps, dt, fused_state=False)
    # Like neurodyn without monitors: nothing computed but the final state.
    for fused_state in (True, False):
        variants[f"make_runner_tiered, {'one state' if fused_state else 'E and I states'}, final state only"] = \
            cj.make_runner_tiered(targets, n_e, n_i, n_steps, dt, fused_state=fused_state, counts=False)
    for name, f in variants.items():
        c, comp = _compile(f, V0)
        fused[name] = c
        cases[f"hand: {name}"] = (lambda c=c: c(V0), comp)

    # correctness: bit-identical spikes, and the same counts from the fused kernel
    mon.run(T)
    sE, sI = (np.asarray(x) for x in c_ref(VEj, VIj))
    same = np.array_equal(mon.runner.mon["E.spike"], sE) and np.array_equal(mon.runner.mon["I.spike"], sI)
    want = np.stack([sE.sum(1), sI.sum(1)], 1)
    differ = [k for k, c in fused.items() if c(V0)[1] is not None
              and not np.array_equal(np.asarray(c(V0)[1]), want if k.startswith("make_runner:") else want.sum(0))]
    nomon.run(T)
    V_nd = np.concatenate([np.asarray(nomon.net.E.V.value), np.asarray(nomon.net.I.V.value)])
    same_V = {k: np.array_equal(np.asarray(c(V0)[0]), V_nd) for k, c in fused.items() if "final state" in k}

    times, cpu, best = _median_times({k: f for k, (f, _) in cases.items()}, args.rounds)
    rate = {"E": sE.sum() / n_e / (T / 1000), "I": sI.sum() / n_i / (T / 1000)}
    rate_nd = {"E": mon.runner.mon["E.spike"].sum() / n_e / (T / 1000),
               "I": mon.runner.mon["I.spike"].sum() / n_i / (T / 1000)}
    print()
    hdr = f"{'variant (1 s simulated)':<62} {'compile s':>9} {'run s':>7} {'best s':>7} {'CPU s':>7}"
    print(hdr)
    print("-" * len(hdr))
    for name, (_, comp) in cases.items():
        print(f"{name:<62} {comp:>9.2f} {times[name]:>7.3f} {best[name]:>7.3f} {cpu[name]:>7.3f}")
    if not args.quick:
        nd_steps = n_steps // 5
        dense = cj.make_ref_runner(targets, n_e, n_i, nd_steps, dt, mode="dense")
        c_d, comp = _compile(jax.jit(dense), VEj, VIj)
        t0 = time.perf_counter()
        jax.block_until_ready(c_d(VEj, VIj))
        td = (time.perf_counter() - t0) * n_steps / nd_steps
        dE, dI = (np.asarray(x) for x in c_d(VEj, VIj))
        same_d = np.array_equal(dE, sE[:nd_steps]) and np.array_equal(dI, sI[:nd_steps])
        print(f"{'hand: dense spikes @ W (0.2 s run x 5)':<62} {comp:>9.2f} {td:>7.3f}"
              f"   spikes same: {same_d}")
    best_name = min((k for k in times if k.startswith("hand")), key=times.get)
    best1 = min((k for k in times if k.startswith("hand") and "unroll 4" not in k), key=times.get)
    nd_t = times["neurodyn Runner, no monitors"]
    print(f"Runner overhead: Runner / nd.jit(for_loop) of the same steps: "
          f"{nd_t / times['neurodyn nd.jit(for_loop(net.update)), no Runner']:.2f}")
    nd4_t = times["neurodyn Runner(unroll=4), no monitors"]
    print()
    print(f"ratio neurodyn (no monitors) / best hand-written ({best_name}): {nd_t / times[best_name]:.2f} wall, "
          f"{cpu['neurodyn Runner, no monitors'] / min(v for k, v in cpu.items() if k.startswith('hand')):.2f} CPU "
          "(against the lowest CPU time)")
    best_hand = min((k for k in best if k.startswith("hand")), key=best.get)
    print(f"ratio of best rounds: neurodyn (no monitors) {best['neurodyn Runner, no monitors']:.3f} s / "
          f"{best_hand} {best[best_hand]:.3f} s = {best['neurodyn Runner, no monitors'] / best[best_hand]:.2f}")
    print(f"ratio neurodyn Runner(unroll=4) / best hand-written: {nd4_t / times[best_name]:.2f}")
    print(f"ratio neurodyn (no monitors) / best hand-written without unrolling ({best1}): {nd_t / times[best1]:.2f}")
    print(f"ratio neurodyn (spike monitors) / hand-written reference (spikes): "
          f"{times['neurodyn Runner, E+I spike monitors'] / times['hand: reference, 2 groups, 4 proj (spikes)']:.2f}")
    print(f"rates: neurodyn E {rate_nd['E']:.2f} Hz, I {rate_nd['I']:.2f} Hz; hand-written E {rate['E']:.2f} Hz, "
          f"I {rate['I']:.2f} Hz")
    print(f"neurodyn spikes bit-identical to the hand-written reference: {same}")
    print(f"final potentials after 1 s bit-identical to neurodyn's: {same_V}")
    print(f"fused kernels whose per-step spike counts differ from the reference: {differ or 'none'}"
          + (" (scan unrolling lets XLA fuse float ops across steps: same statistics, other roundings)"
             if differ else ""))
    print(f"median of {args.rounds} alternating rounds, compile excluded; load average {_load_avg()}")


def _load_avg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def part2(args) -> None:
    T, dt = 200.0, 0.1
    n_steps = int(round(T / dt))
    sizes = (4000, 16000) if args.quick else (4000, 16000, 64000)
    print()
    print(f"Scaling: ~80 synapses per neuron, {T:g} ms ({n_steps} steps); ns/syn = run time / (synapses x steps)")
    hdr = (f"{'N':>6} {'synapses':>10} {'build s':>7} {'nd comp s':>9} {'nd run s':>8} {'hand run s':>10} "
           f"{'ratio':>5} {'nd ns/syn':>9} {'hand ns/syn':>11} {'nd E Hz':>7} {'table MB':>8} {'maxRSS MB':>9}")
    print(hdr)
    print("-" * len(hdr))
    for N in sizes:
        case = NdCase(N / 4000, args.seed, None)
        comp = case.compile(T)
        net = case.net
        syn = sum(getattr(net, p).nnz for _, p in PROJ)
        targets = case.targets()
        VE, VI = case.V0()
        n_e, n_i = VE.size, VI.size
        v0 = jnp.asarray(np.concatenate([VE, VI]))
        # the tiers neurodyn picks by default (1% of each group, first tier a third)
        k2 = -(-n_e // 100) + -(-n_i // 100)
        tiers = dict(k1=max(16, -(-k2 // 3)), k2=k2)
        c, _ = _compile(cj.make_runner_tiered(targets, n_e, n_i, n_steps, dt, **tiers), v0)
        # timed: the variant that, like neurodyn without monitors, computes only the final state
        c_state, _ = _compile(cj.make_runner_tiered(targets, n_e, n_i, n_steps, dt, counts=False,
                                                    fused_state=False, **tiers), v0)
        mon = NdCase(N / 4000, args.seed, ["E.spike"], net, case.state0)
        mon.run(T)
        rate_E = mon.runner.mon["E.spike"].sum() / n_e / (T / 1000)
        counts = np.asarray(c(v0)[1])
        assert counts[0] == mon.runner.mon["E.spike"].sum(), "neurodyn and hand-written disagree"
        times, _, _ = _median_times({"nd": lambda: case.run(T), "hand": lambda: c_state(v0)},
                                    max(3, args.rounds // 2))
        fusion = net.__dict__.get("_fusion")
        table_mb = 0.0 if fusion is None else fusion.table.value.nbytes / 2**20
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        per = lambda t: t / (syn * n_steps) * 1e9
        print(f"{N:>6} {syn:>10,} {case.build_s:>7.2f} {comp:>9.2f} {times['nd']:>8.3f} {times['hand']:>10.3f} "
              f"{times['nd'] / times['hand']:>5.2f} {per(times['nd']):>9.4f} {per(times['hand']):>11.4f} "
              f"{rate_E:>7.2f} {table_mb:>8.1f} {rss:>9.0f}")
        del case, mon, c, c_state
    print("table MB: neurodyn's fused target table (the projections' own tables hold about as much again); "
          "maxRSS: peak resident memory of this process so far")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 rounds, no dense variant, N up to 16000")
    ap.add_argument("--rounds", type=int, default=None, help="alternating timing rounds (default 7, quick 3)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--skip-scaling", action="store_true")
    args = ap.parse_args()
    if args.rounds is None:
        args.rounds = 3 if args.quick else 7
    t0 = time.perf_counter()
    part1(args)
    if not args.skip_scaling:
        part2(args)
    print(f"\ntotal script time {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
