"""Time to first result, before/after: another checkout's neurodyn against this one, and Brian2.

Each (workload, tree, thread setting) runs in its own cold process through ``bench/suite.py``'s
worker (the same measurement for both trees: from before ``import neurodyn`` to the records on
the host, and the worker's CPU seconds), alternating the trees; Brian2 runs once per workload and
round. Prints the medians: build / compile / run, first result and CPU seconds, and their ratios
to Brian2's.

Run:  git worktree add /tmp/old main
      python bench/first_result_ab.py --old /tmp/old --only coba,scale,hetdelay --rounds 2 \
          --brian2-python <a Python with brian2>
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import pathlib
import statistics

HERE = pathlib.Path(__file__).resolve().parent
CASES = {"coba": [None], "scale": [4000, 16000, 64000], "hetdelay": [None], "brunel": [None]}
DURATION = {"coba": 1000.0, "scale": 200.0, "hetdelay": 1000.0, "brunel": 600.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", required=True, help="the other checkout (its neurodyn is imported)")
    ap.add_argument("--only", default="coba,scale,hetdelay")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--brian2-python", default=None, help="leave out to skip Brian2")
    a = ap.parse_args()
    spec = importlib.util.spec_from_file_location("bench_suite", HERE / "suite.py")
    suite = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(suite)
    new_root = suite.ROOT
    rows = []
    for rnd in range(a.rounds):
        for w in a.only.split(","):
            for N in CASES[w]:
                # "xla": XLA's own pool (one thread per core)
                order = [(t, th) for th in ("xla", "1") for t in ("old", "new")]
                for tree, threads in order[::-1] if rnd % 2 else order:
                    # the worker imports neurodyn from ROOT (PYTHONPATH); the examples are read from this tree
                    suite.ROOT = pathlib.Path(a.old).resolve() if tree == "old" else new_root
                    env = dict(os.environ)
                    os.environ["NEURODYN_CPU_THREADS"] = threads
                    if threads == "xla" and "'xla'" not in (suite.ROOT / "neurodyn" / "_cpu.py").read_text():
                        os.environ.pop("NEURODYN_CPU_THREADS")  # a tree from before the value (XLA's pool by default)
                    try:
                        r = suite._run_worker(w, "neurodyn", 1.0, DURATION[w], 42, N, 1800, suite.sys.executable)
                    finally:
                        os.environ.clear()
                        os.environ.update(env)
                    rows.append(dict(r, case=f"{w} {N or ''}".strip(), tree=tree, threads=threads))
                    print(rows[-1], flush=True)
                suite.ROOT = new_root
                if a.brian2_python:
                    r = suite._run_worker(w, "brian2", 1.0, DURATION[w], 42, N, 1800, a.brian2_python)
                    rows.append(dict(r, case=f"{w} {N or ''}".strip(), tree="brian2", threads="-"))
                    print(rows[-1], flush=True)
    _summary([r for r in rows if "error" not in r])


def _summary(rows: list[dict]) -> None:
    med = statistics.median
    print(f"\n{'case':<12} {'tree':<6} {'threads':<7} {'build':>6} {'compile':>7} {'run':>7} {'first':>6} "
          f"{'/brian2':>7} {'CPU s':>6} {'/brian2':>7}")
    for case in dict.fromkeys(r["case"] for r in rows):
        b2 = [r for r in rows if r["case"] == case and r["tree"] == "brian2"]
        for tree, threads in (("old", "xla"), ("new", "xla"), ("old", "1"), ("new", "1"), ("brian2", "-")):
            rs = [r for r in rows if r["case"] == case and r["tree"] == tree and r["threads"] == threads]
            if not rs:
                continue
            first, cpu = med(r["first_s"] for r in rs), med(r["cpu_s"] for r in rs)
            fb = f"{first / med(r['first_s'] for r in b2):7.2f}" if b2 else f"{'-':>7}"
            cb = f"{cpu / med(r['cpu_s'] for r in b2):7.2f}" if b2 else f"{'-':>7}"
            print(f"{case:<12} {tree:<6} {threads:<7} {med(r['build_s'] for r in rs):6.2f} "
                  f"{med(r['compile_s'] for r in rs):7.2f} {med(r['run_s'] for r in rs):7.3f} {first:6.2f} {fb} "
                  f"{cpu:6.2f} {cb}")


if __name__ == "__main__":
    main()
