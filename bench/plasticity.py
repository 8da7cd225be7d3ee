"""Plasticity cost: the COBA network with pair STDP on E -> E, against the same network
without plasticity and against Brian2's C++ standalone mode with the same rule; and
the Song et al. (2000) setup in simulated seconds per wall-clock second.

Run:  python bench/plasticity.py [--duration 1000] [--rounds 3] [--song 10] [--no-brian]
                                 [--breakdown] [--projection] [--before /path/to/other/checkout]
                                 [--brian-python /path/to/python-with-brian2]

neurodyn: ``examples/stdp_song2000.py``'s ``COBASTDP`` (4000 LIF, p = 0.02,
event-driven projections; ``plastic=False`` is the static network) and
``Song2000`` (1000 Poisson inputs at 15 Hz onto one COBA LIF neuron; its
all-to-all projection takes the dense path, and is also timed forced onto the
event-driven path), run by ``nd.Runner`` without monitors, compile excluded (a
first run compiles), median over rounds alternating the variants, blocking on
the state. Wall-clock and process CPU time are both printed (CPU time is
steadier on a shared machine).

Brian2 (C++ standalone, one thread): the same equations, parameters and rule
(``on_pre: ge += w; Apre += dApre; w = clip(w + Apost, 0, wmax)``,
``on_post: Apost += dApost; w = clip(w + Apre, 0, wmax)``), its own random
connectivity; the figure is Brian2's own timing of the simulation loop
(``device._last_run_time``), build and compilation excluded.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import pathlib
import statistics
import sys
import tempfile
import time

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import neurodyn as nd
from neurodyn import _cpu, nn

ROOT = pathlib.Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("stdp_song2000", ROOT / "examples" / "stdp_song2000.py")
song = importlib.util.module_from_spec(spec)
sys.modules["stdp_song2000"] = song
spec.loader.exec_module(song)

INPUTS = [("E.input", 20.), ("I.input", 20.)]


def _timed(fn) -> tuple[float, float]:
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def neurodyn_coba(duration: float, rounds: int) -> dict:
    runners = {}
    for plastic in (False, True):
        net = song.COBASTDP(plastic=plastic)
        r = nd.Runner(net, inputs=INPUTS, progress_bar=False)
        r.run(duration)  # compile (the timed length: no recompile in the first round)
        runners["stdp" if plastic else "static"] = (r, net)
    wall = {k: [] for k in runners}
    cpu = {k: [] for k in runners}
    names = list(runners)
    for i in range(rounds):
        for k in (names if i % 2 == 0 else names[::-1]):
            r, net = runners[k]

            def go() -> None:
                r.run(duration)
                jax.block_until_ready(net.E.V.value)

            w, c = _timed(go)
            wall[k].append(w)
            cpu[k].append(c)
    rate = {}
    for k, (r, net) in runners.items():
        mon = nd.Runner(net, monitors=["E.spike"], inputs=INPUTS, progress_bar=False).run(200.)
        rate[k] = float(mon["E.spike"].mean() / nd.get_dt() * 1000.)
    return {"wall": {k: statistics.median(v) for k, v in wall.items()},
            "cpu": {k: statistics.median(v) for k, v in cpu.items()}, "rate_E": rate,
            "w_mean": float(np.mean(runners["stdp"][1].E2E.weight.value))}


def neurodyn_song(seconds: float, rounds: int) -> dict:
    """The example's setup (all-to-all onto one neuron: the dense path), and the same network
    forced onto the event-driven path, alternating rounds."""
    runners = {}
    for path in ("dense", "event"):
        net = song.Song2000()
        net.syn.plastic_index.dense = path == "dense"
        r = nd.Runner(net, progress_bar=False, chunk_size=50000)
        r.run(seconds * 1000.)  # compile (and warm up) with the timed length
        runners[path] = (r, net)
    wall = {k: [] for k in runners}
    cpu = {k: [] for k in runners}
    for i in range(rounds):
        for k in (list(runners) if i % 2 == 0 else list(runners)[::-1]):
            r, net = runners[k]
            w, c = _timed(lambda: (r.run(seconds * 1000.), jax.block_until_ready(net.syn.weight.value)))
            wall[k].append(w)
            cpu[k].append(c)
    out = {k: {"wall": statistics.median(wall[k]), "cpu": statistics.median(cpu[k])} for k in runners}
    for v in out.values():
        v["sim_per_wall"] = seconds / v["wall"]
    return out


class _NoPost(nn.STDP):
    """Pair STDP without the postsynaptic (column) pass."""
    on_post = nn.Plasticity.on_post


class _NoHooks(nn.STDP):
    """Traces and transmission through the plastic path, no weight change."""
    on_pre = nn.Plasticity.on_pre
    on_post = nn.Plasticity.on_post


def coba_breakdown(duration: float, rounds: int) -> dict:
    """Where the plastic network's extra time goes: the same E -> E rule without its column
    pass, and with no weight change at all (the transmission of a plastic projection, which
    runs apart from the static projections' fused transmission). CPU time, min over rounds."""
    runners = {}
    for k, cls in (("static", None), ("stdp", nn.STDP), ("no on_post", _NoPost), ("no hooks", _NoHooks)):
        net = song.COBASTDP(plastic=cls is not None)
        if cls is not None:
            net.E2E.plasticity.__class__ = cls
        r = nd.Runner(net, inputs=INPUTS, progress_bar=False)
        r.run(duration)
        runners[k] = (r, net)
    cpu: dict = {k: [] for k in runners}
    names = list(runners)
    for i in range(rounds):
        for k in (names if i % 2 == 0 else names[::-1]):
            r, net = runners[k]
            cpu[k].append(_timed(lambda: (r.run(duration), jax.block_until_ready(net.E.V.value)))[1])
    steps = duration / nd.get_dt()
    return {k: min(v) / steps for k, v in cpu.items()}


def song_breakdown(seconds: float, rounds: int) -> dict:
    """Song 2000 against its 1000 Poisson inputs and neuron alone (no projection). CPU time
    per step, min over rounds."""
    class Inputs(nn.Network):
        def __init__(self) -> None:
            nd.random.seed(0)
            self.inputs = nn.PoissonGroup(1000, freq=15.)
            self.neuron = nn.LIF(1, V_rest=-74., V_reset=-60., V_th=-54., tau=10., V_initializer=-74.)

    runners = {}
    for k, net in (("song", song.Song2000()), ("inputs + neuron", Inputs())):
        r = nd.Runner(net, progress_bar=False, chunk_size=50000)
        r.run(seconds * 1000.)
        runners[k] = (r, net)
    cpu: dict = {k: [] for k in runners}
    for i in range(rounds):
        for k, (r, net) in runners.items():
            cpu[k].append(_timed(lambda: (r.run(seconds * 1000.), jax.block_until_ready(net.neuron.V.value)))[1])
    steps = seconds * 1000. / nd.get_dt()
    return {k: min(v) / steps for k, v in cpu.items()}


class _Replay(nn.Group):
    """Spikes written by the benchmark before each step."""

    def update(self) -> Any:
        return self.spike.value


def projection_alone(steps: int, rounds: int) -> dict:
    """The E -> E projection alone, static and with pair STDP, replaying the E spikes of the
    static COBA network (recorded once) as both its pre- and postsynaptic spikes: the same
    work every round, whatever the weights learn."""
    net = song.COBASTDP(plastic=False)
    mon = nd.Runner(net, monitors=["E.spike"], inputs=INPUTS, progress_bar=False).run(steps * nd.get_dt() + 100.)
    raster = jnp.asarray(np.asarray(mon["E.spike"][-steps:]).astype(bool))
    fns = {}
    for plastic in (False, True):
        pre, post = _Replay(3200), nn.LIF(3200, V_th=1e9)
        rule = nn.STDP(tau_pre=20., tau_post=20., A_plus=0.006, A_minus=0.0063, w_min=0., w_max=1.2) \
            if plastic else None
        proj = nn.Projection(pre, post, nn.FixedProb(0.02, seed=43), 0.6, nn.Expon(3200, tau=5.), nn.COBA(E=0.),
                             mode="event", plasticity=rule)

        def body(s: jax.Array, proj: Any = proj) -> None:
            proj.pre.spike.value = s
            proj.post.spike.value = s
            proj.update()

        f = nd.jit(lambda r, body=body: nd.for_loop(body, r))
        f(raster)
        jax.block_until_ready(proj.syn.g.value)
        fns["stdp" if plastic else "static"] = (f, proj)
    cpu: dict = {k: [] for k in fns}
    for i in range(rounds):
        for k, (f, proj) in fns.items():
            cpu[k].append(_timed(lambda: (f(raster), jax.block_until_ready(proj.syn.g.value)))[1])
    # the fastest round: the one least disturbed by other load
    return {"cpu_per_step": {k: min(v) / steps for k, v in cpu.items()},
            "spikes_per_step": float(raster.sum() / steps)}


def coba_before_after(before: str, duration: float, rounds: int) -> dict:
    """The COBA network static, with STDP run by the plastic engine of another checkout
    (``before``: its ``neurodyn/nn/_plasticity.py``, loaded into this process) and with STDP
    run by this tree's engine; rounds alternate, so all three see the same machine load."""
    import neurodyn.nn._network as network
    import neurodyn.nn._projection as projection
    path = pathlib.Path(before) / "neurodyn" / "nn" / "_plasticity.py"
    spec_b = importlib.util.spec_from_file_location("neurodyn.nn._plasticity_before", path)
    old = importlib.util.module_from_spec(spec_b)
    sys.modules[spec_b.name] = old
    spec_b.loader.exec_module(old)
    runners = {}
    for k in ("static", "before", "after"):
        saved = (projection._attach_plasticity, projection._plastic_update, nn.STDP, getattr(network, "plastic_update", None))
        if k == "before":  # only while the network is built and its run compiled
            projection._attach_plasticity, projection._plastic_update, nn.STDP = old.attach, old.plastic_update, old.STDP
            # a Network calls the engine itself where it shares its compaction (older engines: never)
            if hasattr(network, "plastic_update"):
                network.plastic_update = (lambda p, *a: old.plastic_update(p, *a)) \
                    if "first_spikes" in old.plastic_update.__code__.co_varnames else (lambda p, *a: old.plastic_update(p))
        try:
            net = song.COBASTDP(plastic=k != "static")
            r = nd.Runner(net, inputs=INPUTS, progress_bar=False)
            r.run(duration)
            jax.block_until_ready(net.E.V.value)
        finally:
            projection._attach_plasticity, projection._plastic_update, nn.STDP = saved[:3]
            if hasattr(network, "plastic_update"):
                network.plastic_update = saved[3]
        runners[k] = (r, net)
    wall: dict = {k: [] for k in runners}
    cpu: dict = {k: [] for k in runners}
    names = list(runners)
    for i in range(rounds):
        for k in (names if i % 2 == 0 else names[::-1]):
            r, net = runners[k]
            w, c = _timed(lambda: (r.run(duration), jax.block_until_ready(net.E.V.value)))
            wall[k].append(w)
            cpu[k].append(c)
    same = bool(np.array_equal(np.asarray(runners["before"][1].E2E.weight.value),
                               np.asarray(runners["after"][1].E2E.weight.value)))
    return {"wall": {k: statistics.median(v) for k, v in wall.items()},
            "cpu": {k: statistics.median(v) for k, v in cpu.items()}, "same_weights": same}


BRIAN_COBA = """
from brian2 import *
import numpy as np
set_device('cpp_standalone', directory=r'{dir}')
prefs.devices.cpp_standalone.openmp_threads = 0
defaultclock.dt = 0.1*ms
seed(42)
taum = 20*ms; El = -60*mV; Ee = 0*mV; Ei = -80*mV
eqs = '''dv/dt = (-(v - El) + ge*(Ee - v) + gi*(Ei - v) + 20*mV) / taum : volt (unless refractory)
dge/dt = -ge / (5*ms) : 1
dgi/dt = -gi / (10*ms) : 1'''
P = NeuronGroup(4000, eqs, threshold='v > -50*mV', reset='v = -60*mV', refractory=5*ms, method='euler')
P.v = '-55*mV + 2*mV*randn()'
E, I = P[:3200], P[3200:]
w_e, w_i = 0.6, 6.7
if {plastic}:
    S = Synapses(E, E, '''w : 1
        dApre/dt = -Apre / (20*ms) : 1 (event-driven)
        dApost/dt = -Apost / (20*ms) : 1 (event-driven)''',
        on_pre='''ge_post += w
        Apre += 0.01 * w_e
        w = clip(w + Apost, 0, 2 * w_e)''',
        on_post='''Apost += -0.0105 * w_e
        w = clip(w + Apre, 0, 2 * w_e)''')
    S.connect(p=0.02)
    S.w = w_e
else:
    S = Synapses(E, E, on_pre='ge_post += w_e'); S.connect(p=0.02)
EI = Synapses(E, I, on_pre='ge_post += w_e'); EI.connect(p=0.02)
IP = Synapses(I, P, on_pre='gi_post += w_i'); IP.connect(p=0.02)
M = SpikeMonitor(E)
run({duration}*ms)
print('BRIAN', device._last_run_time, M.num_spikes / 3200 / ({duration} / 1000.))
"""

BRIAN_SONG = """
from brian2 import *
set_device('cpp_standalone', directory=r'{dir}')
defaultclock.dt = 0.1*ms
seed(0)
taum = 10*ms; Ee = 0*mV; vt = -54*mV; vr = -60*mV; El = -74*mV; taue = 5*ms
gmax = 0.01; dApre = 0.01 * gmax; dApost = -dApre * 1.05
eqs = '''dv/dt = (ge * (Ee - v) + El - v) / taum : volt
dge/dt = -ge / taue : 1'''
inp = PoissonGroup(1000, rates=15*Hz)
neuron = NeuronGroup(1, eqs, threshold='v > vt', reset='v = vr', method='euler')
neuron.v = El
S = Synapses(inp, neuron, '''w : 1
    dApre/dt = -Apre / (20*ms) : 1 (event-driven)
    dApost/dt = -Apost / (20*ms) : 1 (event-driven)''',
    on_pre='''ge += w
    Apre += dApre
    w = clip(w + Apost, 0, gmax)''',
    on_post='''Apost += dApost
    w = clip(w + Apre, 0, gmax)''')
S.connect()
S.w = 'rand() * gmax'
run({seconds}*second)
print('BRIAN', device._last_run_time)
"""


def brian(code: str, python: str) -> list[float] | None:
    import subprocess
    with tempfile.TemporaryDirectory() as d:
        src = pathlib.Path(d) / "run.py"
        src.write_text(code.replace("{dir}", str(pathlib.Path(d) / "out")))
        t0 = time.perf_counter()
        p = subprocess.run([python, str(src)], capture_output=True, text=True)
        total = time.perf_counter() - t0
        for line in p.stdout.splitlines():
            if line.startswith("BRIAN"):
                return [float(x) for x in line.split()[1:]] + [total]
        print("brian2 failed:", p.stderr[-2000:])
        return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=1000., help="COBA biological time (ms)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--song", type=float, default=10., help="Song 2000 biological time (s)")
    ap.add_argument("--no-brian", action="store_true")
    ap.add_argument("--breakdown", action="store_true",
                    help="also time the COBA network with parts of the rule removed, and Song 2000's inputs alone")
    ap.add_argument("--projection", action="store_true",
                    help="also time the E -> E projection alone on replayed spikes (min CPU time of 9 rounds)")
    ap.add_argument("--before", default=None,
                    help="also time COBA with STDP run by another checkout's plastic engine, in this process")
    ap.add_argument("--brian-python", default=sys.executable,
                    help="the interpreter with brian2 installed (default: this one)")
    args = ap.parse_args()
    _cpu.apply_pending()  # neurodyn's thread setting, before this script's first JAX call
    print(f"jax {jax.__version__}, devices {jax.devices()}, XLA:CPU execution threads: {_cpu.describe()}")
    c = neurodyn_coba(args.duration, args.rounds)
    print(f"COBA {args.duration:g} ms (median of {args.rounds}): static {c['wall']['static']:.3f} s wall "
          f"({c['cpu']['static']:.3f} s CPU), STDP on E->E {c['wall']['stdp']:.3f} s wall "
          f"({c['cpu']['stdp']:.3f} s CPU); plastic / static = {c['wall']['stdp'] / c['wall']['static']:.2f} "
          f"wall, {c['cpu']['stdp'] / c['cpu']['static']:.2f} CPU; E rates {c['rate_E']['static']:.1f} / "
          f"{c['rate_E']['stdp']:.1f} Hz, mean E->E weight after the runs {c['w_mean']:.3f}")
    ss = neurodyn_song(args.song, args.rounds)
    s = ss["dense"]
    e = ss["event"]
    print(f"Song 2000, {args.song:g} s (median of {args.rounds}): {s['wall']:.2f} s wall ({s['cpu']:.2f} s CPU), "
          f"{s['sim_per_wall']:.2f} simulated s per wall-clock s; the same forced onto the event-driven path "
          f"{e['wall']:.2f} s wall ({e['cpu']:.2f} s CPU), {e['sim_per_wall']:.2f} simulated s per wall-clock s; "
          f"dense / event = {s['wall'] / e['wall']:.2f} wall, {s['cpu'] / e['cpu']:.2f} CPU")
    if args.breakdown:
        b = coba_breakdown(args.duration / 2, 2 * args.rounds + 1)
        print("COBA breakdown (CPU per step, min of %d rounds): " % (2 * args.rounds + 1)
              + ", ".join(f"{k} {v * 1e6:.1f} us" for k, v in b.items())
              + f"; column pass {(b['stdp'] - b['no on_post']) * 1e6:.1f} us, on_pre "
              f"{(b['no on_post'] - b['no hooks']) * 1e6:.1f} us, plastic transmission and traces against the "
              f"static network {(b['no hooks'] - b['static']) * 1e6:.1f} us")
        sb = song_breakdown(min(args.song, 2.), 2 * args.rounds + 1)
        print("Song 2000 breakdown (CPU per step): " + ", ".join(f"{k} {v * 1e6:.2f} us" for k, v in sb.items()))
    if args.projection:
        p = projection_alone(2000, 9)
        pc = p["cpu_per_step"]
        print(f"E -> E projection alone, replayed spikes ({p['spikes_per_step']:.1f} per step): static "
              f"{pc['static'] * 1e6:.1f} us, pair STDP {pc['stdp'] * 1e6:.1f} us CPU per step; "
              f"STDP / static = {pc['stdp'] / pc['static']:.2f}")
    if args.before:
        ba = coba_before_after(args.before, args.duration, 2 * args.rounds + 1)
        w, cp = ba["wall"], ba["cpu"]
        print(f"COBA before / after (median of {2 * args.rounds + 1}, same process): static {w['static']:.3f} s, "
              f"STDP by {args.before} {w['before']:.3f} s ({w['before'] / w['static']:.2f}x static wall, "
              f"{cp['before'] / cp['static']:.2f}x CPU), STDP by this tree {w['after']:.3f} s "
              f"({w['after'] / w['static']:.2f}x wall, {cp['after'] / cp['static']:.2f}x CPU); after / before = "
              f"{w['after'] / w['before']:.2f} wall, {cp['after'] / cp['before']:.2f} CPU; "
              f"identical weights: {ba['same_weights']}")
    if args.no_brian:
        return
    for plastic in (False, True):
        b = brian(BRIAN_COBA.replace("{plastic}", str(plastic)).replace("{duration}", str(args.duration)), args.brian_python)
        if b:
            key = "stdp" if plastic else "static"
            print(f"Brian2 C++ standalone COBA {'STDP' if plastic else 'static'}: run {b[0]:.3f} s "
                  f"(E rate {b[1]:.1f} Hz; build+run {b[2]:.0f} s); neurodyn / Brian2 = "
                  f"{c['wall'][key] / b[0]:.2f} (wall)")
    b = brian(BRIAN_SONG.replace("{seconds}", str(args.song)), args.brian_python)
    if b:
        print(f"Brian2 C++ standalone Song 2000, {args.song:g} s: run {b[0]:.2f} s, "
              f"{args.song / b[0]:.2f} simulated s per wall-clock s; neurodyn / Brian2 = {s['wall'] / b[0]:.2f}")


if __name__ == "__main__":
    main()
