"""CPU time of 1 s of the COBA network (``nd.jit(nd.for_loop(net.update))``), for A/B runs of two checkouts.

Run:  PYTHONPATH=<checkout> python bench/coba_ab.py <checkout> <label>
Alternate two checkouts back to back; CPU seconds are steadier than wall time on a
shared machine. Prints medians and minima over 5 runs (compile excluded).
"""
import importlib.util, resource, statistics, sys, time, pathlib
import jax
import neurodyn as nd
root = pathlib.Path(sys.argv[1])
spec = importlib.util.spec_from_file_location("ei", root / "examples/ei_network.py")
ei = importlib.util.module_from_spec(spec); spec.loader.exec_module(ei)
nd.random.seed(42)
net = ei.COBANet(scale=1.0, seed=42)
net.E.input.value = net.E.input.value + 20.0
net.I.input.value = net.I.input.value + 20.0
state = {k: v.value for k, v in net.vars().items()}
run = nd.jit(lambda: nd.for_loop(net.update, length=10000) and None)
run(); jax.block_until_ready(net.E.V.value)
cpu, wall = [], []
for _ in range(5):
    for k, v in net.vars().items():
        v.value = state[k]
    r0 = resource.getrusage(resource.RUSAGE_SELF); t0 = time.perf_counter()
    run(); jax.block_until_ready(net.E.V.value)
    t1 = time.perf_counter(); r1 = resource.getrusage(resource.RUSAGE_SELF)
    wall.append(t1 - t0); cpu.append((r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime))
print(f"{sys.argv[2]}: wall median {statistics.median(wall):.3f} min {min(wall):.3f}  cpu median {statistics.median(cpu):.3f} min {min(cpu):.3f}")
