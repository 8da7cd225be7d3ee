"""The fused propagation's common step: compaction that detects overflow by itself."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import neurodyn as nd
import neurodyn.nn as nn
from neurodyn.nn._kernels import compact_fit


class Source(nn.Group):
    """A presynaptic group whose spikes the test sets by hand."""

    def update(self):
        return self.spike.value


def _spikes(n, blocks, per_block, rng):
    """``n`` booleans with ``per_block`` spikes in each of the 32-wide ``blocks``."""
    s = np.zeros(n, bool)
    for b in blocks:
        lo, hi = 32 * b, min(32 * b + 32, n)
        s[rng.choice(np.arange(lo, hi), min(per_block, hi - lo), replace=False)] = True
    return s


def _cases(n, rng):
    nb = -(-n // 32)
    out = [np.zeros(n, bool), np.ones(n, bool)]
    for total in (1, 15, 16, 17, 40):
        if total <= n:
            s = np.zeros(n, bool)
            s[rng.choice(n, total, replace=False)] = True
            out.append(s)
    # one spike in each of 16 or 17 blocks (the first stage decides), 17 in one block (the second)
    for m in (16, 17):
        if m <= nb:
            out.append(_spikes(n, rng.choice(nb, m, replace=False), 1, rng))
    if n >= 32:
        out.append(_spikes(n, [nb - 1 if n % 32 == 0 else 0], 17, rng))
        out.append(_spikes(n, [0], 16, rng))
    return out


@pytest.mark.parametrize("n", [5, 16, 17, 31, 32, 100, 240, 544, 545, 1000])
@pytest.mark.parametrize("width", [16, 32])
def test_compact_fit_lists_the_first_16_spikes_and_tells_whether_all_fit(n, width):
    rng = np.random.default_rng(n)
    f = jax.jit(lambda s: compact_fit(s, 16, width))
    for s in _cases(n, rng):
        idx, fits = f(jnp.asarray(s))
        want = np.flatnonzero(s)[:16]
        want = np.concatenate([want, np.full(16 - want.size, n)])
        np.testing.assert_array_equal(np.asarray(idx), want)
        assert bool(fits) == (s.sum() <= 16), (n, int(s.sum()))


def _net(fuse, max_spikes):
    # 22 blocks of 32 presynaptic neurons: more blocks than the 17 the first stage keeps
    A, B = Source(400), Source(300)
    X, Y = nn.LIF(120, V_th=1e9), nn.LIF(70, V_th=1e9)
    net = nn.Network(A=A, B=B, X=X, Y=Y)
    net.fuse = fuse
    P = lambda pre, post, seed, w: nn.Projection(pre, post, nn.FixedProb(0.1, seed=seed), w,
                                                 nn.Expon(post.size, 5.0), nn.CUBA(), mode="event",
                                                 max_spikes=max_spikes)
    net.AX = P(A, X, 1, 0.6)
    net.BY = P(B, Y, 2, -1.3)
    nnz = nn.FixedProb(0.1, seed=3).num_connections(400, 70)
    net.AYw = P(A, Y, 3, np.linspace(0.1, 1.0, nnz, dtype=np.float32))
    return net


@pytest.mark.parametrize("max_spikes, k1", [(16, 16), (60, 40)])
def test_fused_common_step_equals_unfused_around_16_spikes(max_spikes, k1):
    # k1 = 16: typical steps fit one scatter, found by the compaction itself; k1 = 40: the
    # spikes are counted first
    rng = np.random.default_rng(0)
    n = 700
    steps = [np.zeros(n, bool)]
    for m in (16, 17, 18):  # spikes spread over m blocks, one each (first-stage overflow at 17)
        steps.append(_spikes(n, rng.choice(22, m, replace=False), 1, rng))
    for k in (16, 17, 20):  # all in one block (second-stage overflow at 17)
        steps.append(_spikes(n, [3], k, rng))
    s = np.zeros(n, bool)
    s[rng.choice(n, 60, replace=False)] = True
    steps += [s, _spikes(n, [0, 21], 8, rng)]
    out = {}
    for fuse in (True, False):
        net = _net(fuse, max_spikes)
        assert net._fusion is None if not fuse else net._fusion.k1 == k1

        def step(spikes):
            net.A.spike.value = spikes[:400]
            net.B.spike.value = spikes[400:]
            net.update()
            return [net.get(k).syn.g.value for k in ("AX", "BY", "AYw")]

        f = nd.jit(step)
        out[fuse] = [np.stack(x) for x in zip(*[f(jnp.asarray(s)) for s in steps])]
    for a, b in zip(out[True], out[False]):
        np.testing.assert_array_equal(a, b)
    assert all(np.abs(a).sum() > 0 for a in out[True])


def test_an_error_in_a_step_leaves_no_traced_spikes_on_the_fused_table_nor_in_variables():
    class Failing(nn.Projection):
        def update(self):
            raise RuntimeError("boom in a projection")

    E, I = nn.LIF(200), nn.LIF(50)
    net = nn.Network(E=E, I=I,
                     EI=nn.Projection(E, I, nn.FixedProb(0.1, seed=1), 1.0, nn.Expon(50, 5.0), nn.CUBA(), mode="event"),
                     IE=nn.Projection(I, E, nn.FixedProb(0.1, seed=2), 1.0, nn.Expon(200, 5.0), nn.CUBA(), mode="event"),
                     bad=Failing(E, E, nn.FixedProb(0.1, seed=3), 1.0, nn.Expon(200, 5.0), nn.CUBA(), mode="event"))
    assert net._fusion is not None and len(net._fusion.projs) == 2
    before = {k: np.asarray(v.value) for k, v in net.vars().items()}
    with pytest.raises(RuntimeError, match="boom in a projection"):
        nd.jit(net)()
    assert getattr(net._fusion, "_arrived", None) is None
    for k, v in net.vars().items():
        assert not isinstance(v.value, jax.core.Tracer), k
        np.testing.assert_array_equal(np.asarray(v.value), before[k])
