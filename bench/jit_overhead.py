"""Per-call overhead of ``nd.jit`` against a raw ``jax.jit`` of the same pure function.

Run:  python bench/jit_overhead.py            (~2-3 minutes on a 2-core CPU)

Part 1: a module with K state Variables of shape (10,); each call adds 1 to all.
  * raw       jax.jit(f)(state) -> state, K arrays as a list
  * raw+don   the same with donate_argnums=0
  * nd        nd.jit(module)()                 (the default: written buffers donated)
  * nd-don    nd.jit(module, donate=False)()
Part 2: the first call (trace + compile) of nd.jit(module)() against a raw
  jax.jit of the same step, for fresh functions and modules each round.
Part 3: the seed examples (selu, gelu, LogisticRegression) jitted vs not.

All variants are timed in alternating rounds (the clock on this machine drifts
by up to 1.5x); each figure is the median over rounds of the mean per-call time
of a block of calls, always blocking on the result before reading the clock.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

import neurodyn as nd


def _block(x):
    return jax.block_until_ready(x)


def interleaved(variants: dict, rounds: int, calls: int, warmup: int = 3) -> dict:
    """Median µs per call of each variant; ``variants[name]`` runs ``calls`` calls
    (and blocks) when given ``calls``; rounds alternate the variants' order."""
    for fn in variants.values():
        fn(warmup)
    times = {k: [] for k in variants}
    names = list(variants)
    for r in range(rounds):
        order = names if r % 2 == 0 else names[::-1]
        for k in order:
            t0 = time.perf_counter()
            variants[k](calls)
            times[k].append((time.perf_counter() - t0) / calls * 1e6)
    return {k: statistics.median(v) for k, v in times.items()}


# ---------------------------------------------------------------------------
# Part 1: K state Variables
# ---------------------------------------------------------------------------
class Counters(nd.Module):
    def __init__(self, k: int):
        self.vs = [nd.Variable(jnp.zeros(10)) for _ in range(k)]

    def update(self):
        for v in self.vs:
            v.value = v.value + 1


def _pure_step(state):
    return [s + 1 for s in state]


def make_state_variants(k: int) -> dict:
    raw = jax.jit(_pure_step)
    raw_don = jax.jit(_pure_step, donate_argnums=0)
    m_nd, m_nd_don = Counters(k), Counters(k)
    f_nd = nd.jit(m_nd)
    f_nd_don = nd.jit(m_nd_don, donate=False)
    box = {"raw": [jnp.zeros(10) for _ in range(k)], "raw_don": [jnp.zeros(10) for _ in range(k)]}

    def run_raw(n):
        s = box["raw"]
        for _ in range(n):
            s = raw(s)
        box["raw"] = _block(s)

    def run_raw_don(n):
        s = box["raw_don"]
        for _ in range(n):
            s = raw_don(s)
        box["raw_don"] = _block(s)

    def run_nd(n):
        for _ in range(n):
            f_nd()
        _block(m_nd.vs[-1].value)

    def run_nd_don(n):
        for _ in range(n):
            f_nd_don()
        _block(m_nd_don.vs[-1].value)

    variants = {"raw": run_raw, "raw+donate": run_raw_don, "nd.jit": run_nd, "nd.jit-donate": run_nd_don}
    checks = (box, m_nd, m_nd_don)
    return variants, checks


def part1(rounds: int, calls: int) -> list[tuple]:
    rows = []
    for k in (1, 10, 100):
        variants, (box, m_nd, m_nd_don) = make_state_variants(k)
        med = interleaved(variants, rounds, calls if k < 100 else max(calls // 4, 50))
        # sanity: every variant did the same number of updates per state (incl. warmup)
        a = float(box["raw"][0][0]); b = float(m_nd.vs[0].value[0]); c = float(m_nd_don.vs[0].value[0])
        assert a == b == c == float(box["raw_don"][0][0]), (a, b, c)
        rows.append((k, med))
    return rows


# ---------------------------------------------------------------------------
# Part 2: first call
# ---------------------------------------------------------------------------
def first_calls(rounds: int) -> list[tuple]:
    """Median seconds of the first call (trace + compile + run) of fresh functions."""
    rows = []
    for k in (1, 10, 100):
        times: dict[str, list[float]] = {"raw": [], "nd.jit": []}
        for r in range(rounds):
            def raw_step(state):  # a new function object: nothing cached by jax
                return [s + 1 for s in state]

            state = [jnp.zeros(10) for _ in range(k)]
            m = Counters(k)
            _block(m.vs[-1].value)
            order = ("raw", "nd.jit") if r % 2 == 0 else ("nd.jit", "raw")
            for name in order:
                t0 = time.perf_counter()
                if name == "raw":
                    _block(jax.jit(raw_step)(state))
                else:
                    nd.jit(m)()
                    _block(m.vs[-1].value)
                times[name].append(time.perf_counter() - t0)
        rows.append((k, {n: statistics.median(v) for n, v in times.items()}))
    return rows


# ---------------------------------------------------------------------------
# Part 3: seed examples
# ---------------------------------------------------------------------------
def selu(x, alpha=1.67, lmbda=1.05):
    return lmbda * jnp.where(x > 0, x, alpha * jnp.exp(x) - alpha)


def gelu(x):
    sqrt = jnp.sqrt(2 / jnp.pi)
    cdf = 0.5 * (1.0 + jnp.tanh(sqrt * (x + 0.044715 * (x ** 3))))
    return x * cdf


class LogisticRegression(nd.Module):
    def __init__(self, dim):
        self.w = nd.Variable(2.0 * jnp.ones(dim) - 1.3)

    def __call__(self, X, Y):
        u = jnp.dot(((1.0 / (1.0 + jnp.exp(-Y * jnp.dot(X, self.w)))) - 1.0) * Y, X)
        self.w.value = self.w - u


def _lr_pure(w, X, Y):
    u = jnp.dot(((1.0 / (1.0 + jnp.exp(-Y * jnp.dot(X, w)))) - 1.0) * Y, X)
    return w - u


def part3(rounds: int) -> list[tuple]:
    rows = []
    key = jax.random.PRNGKey(0)
    x = jax.random.normal(key, (1_000_000,))
    selu_nd, selu_raw = nd.jit(selu), jax.jit(selu)
    med = interleaved({
        "eager": lambda n: [_block(selu(x)) for _ in range(n)],
        "nd.jit": lambda n: [_block(selu_nd(x)) for _ in range(n)],
        "jax.jit": lambda n: [_block(selu_raw(x)) for _ in range(n)],
    }, rounds, 10)
    rows.append(("selu 1e6 normals", med))

    x = jax.random.uniform(key, (100_000,))
    gelu_nd, gelu_raw = nd.jit(gelu), jax.jit(gelu)
    med = interleaved({
        "eager": lambda n: [_block(gelu(x)) for _ in range(n)],
        "nd.jit": lambda n: [_block(gelu_nd(x)) for _ in range(n)],
        "jax.jit": lambda n: [_block(gelu_raw(x)) for _ in range(n)],
    }, rounds, 20)
    rows.append(("gelu 1e5 uniforms", med))

    dim, n_points = 10, 200_000
    k1, k2 = jax.random.split(key)
    X = jax.random.normal(k1, (n_points, dim))
    Y = jax.random.normal(k2, (n_points,))
    m_eager, m_nd = LogisticRegression(dim), LogisticRegression(dim)
    f_nd = nd.jit(m_nd)
    f_raw = jax.jit(_lr_pure)
    box = {"w": 2.0 * jnp.ones(dim) - 1.3}

    def run_raw(n):
        w = box["w"]
        for _ in range(n):
            w = f_raw(w, X, Y)
        box["w"] = _block(w)

    def run_eager(n):
        for _ in range(n):
            m_eager(X, Y)
        _block(m_eager.w.value)

    def run_nd(n):
        for _ in range(n):
            f_nd(X, Y)
        _block(m_nd.w.value)

    med = interleaved({"eager": run_eager, "nd.jit": run_nd, "jax.jit": run_raw}, rounds, 10)
    np.testing.assert_allclose(np.asarray(m_nd.w.value), np.asarray(box["w"]), rtol=1e-4)
    rows.append(("LogisticRegression d=10 n=2e5", med))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--calls", type=int, default=400)
    ap.add_argument("--no-examples", action="store_true", help="skip part 3")
    args = ap.parse_args()
    t_start = time.perf_counter()
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}; "
          f"median over {args.rounds} interleaved rounds, µs per call")
    print()
    print("Part 1: K Variables of shape (10,), each call adds 1 to all")
    hdr = (f"{'K':>4} {'raw jit':>9} {'raw+don':>9} {'nd.jit':>9} {'nd-don':>9} {'nd/raw':>7} "
           f"{'nd/raw+don':>12} {'target':>9}")
    print(hdr)
    print("-" * len(hdr))
    targets = {1: None, 10: 1.0, 100: 1.0}
    for k, med in part1(args.rounds, args.calls):
        r = med["nd.jit"] / med["raw"]
        rd = med["nd.jit"] / med["raw+donate"]
        t = targets[k]
        tgt = "-" if t is None else (f"<={t} " + ("ok" if r <= t else "MISS"))
        print(f"{k:>4} {med['raw']:>9.1f} {med['raw+donate']:>9.1f} {med['nd.jit']:>9.1f} "
              f"{med['nd.jit-donate']:>9.1f} {r:>7.2f} {rd:>12.2f} {tgt:>9}")
    print()
    print("Part 2: first call (trace + compile + run), ms, fresh function and module each round")
    hdr = f"{'K':>4} {'raw jit':>9} {'nd.jit':>9} {'nd/raw':>7} {'target':>9}"
    print(hdr)
    print("-" * len(hdr))
    for k, med in first_calls(max(args.rounds // 2, 5)):
        r = med["nd.jit"] / med["raw"]
        print(f"{k:>4} {med['raw'] * 1e3:>9.1f} {med['nd.jit'] * 1e3:>9.1f} {r:>7.2f} "
              f"{'<=1.1 ' + ('ok' if r <= 1.1 else 'MISS'):>9}")
    print()
    if args.no_examples:
        return
    print("Part 3: seed examples (µs per call, result blocked)")
    hdr = f"{'example':<31} {'eager':>10} {'nd.jit':>10} {'jax.jit':>10} {'eager/nd':>9} {'nd/jax':>7}"
    print(hdr)
    print("-" * len(hdr))
    for name, med in part3(max(args.rounds // 2, 5)):
        print(f"{name:<31} {med['eager']:>10.1f} {med['nd.jit']:>10.1f} {med['jax.jit']:>10.1f} "
              f"{med['eager'] / med['nd.jit']:>9.2f} {med['nd.jit'] / med['jax.jit']:>7.2f}")
    print()
    print(f"total bench time {time.perf_counter() - t_start:.1f} s")


if __name__ == "__main__":
    main()
