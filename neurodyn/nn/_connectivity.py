"""Connectivity rules built on the host with NumPy.

A connector describes *which* presynaptic neurons connect to which
postsynaptic ones; :meth:`Connector.csr` builds the connections for given
group sizes (vectorized, never an ``n_pre x n_post`` matrix unless you ask for
:meth:`Connector.dense`). All formats are derived from one CSR structure, so
they always agree:

* ``csr(n_pre, n_post) -> (indptr, indices)``: row ``i`` (a presynaptic
  neuron) targets ``indices[indptr[i]:indptr[i+1]]`` (sorted, no duplicates;
  only :class:`FixedTotalNum` with multapses repeats a target, once per connection);
* ``padded(n_pre, n_post) -> (n_pre, k_max) int32``: the same rows padded to a
  fixed width with the fill value ``n_post`` (for event-driven propagation);
* ``dense(n_pre, n_post) -> (n_pre, n_post) bool``, for small sizes only.

Random connectors are reproducible: with ``seed=None`` a seed is drawn once
from ``nd.random`` at construction, so ``nd.random.seed(s)`` fixes them too.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import random as _nd_random

__all__ = ["Connector", "FixedProb", "FixedPostNum", "FixedPreNum", "FixedTotalNum", "AllToAll",
           "OneToOne", "sample_without_replacement"]

# Elements (rows x draws) handled per block by the samplers: bounds peak memory.
_BLOCK_ELEMS = 1 << 22


def _check_size(cls: str, name: str, n: Any) -> int:
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
        raise ValueError(f"{cls}: {name} must be a non-negative int, got {n!r}")
    return int(n)


def _index_dtype(n: int) -> Any:
    return np.int32 if n < 2**31 - 1 else np.int64


def sample_without_replacement(rng: np.random.Generator, n: int, k: np.ndarray,
                               exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per row ``r``, ``k[r]`` distinct integers from ``range(n)``, uniformly, as CSR.

    Vectorized over rows: draws ``m >= k`` integers per row with replacement
    and keeps the first ``k`` distinct ones in draw order (by exchangeability
    a uniform ``k``-subset); the rare rows with too few distinct draws are
    redrawn with more. Rows with ``k`` close to ``n`` use a random permutation
    of keys instead. ``exclude[r]`` (optional) is a value row ``r`` must not
    get (self-connections); it is excluded by sampling from ``n - 1`` values
    and shifting those ``>= exclude[r]`` up by one.

    Returns ``(indptr, indices)`` with each row's values sorted.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> from neurodyn.nn._connectivity import sample_without_replacement
        >>> indptr, idx = sample_without_replacement(rng, 100, np.array([3, 5]))
    """
    k = np.asarray(k, dtype=np.int64)
    rows = k.shape[0]
    n_eff = n - 1 if exclude is not None else n
    if rows and (k.min(initial=0) < 0 or k.max(initial=0) > n_eff):
        raise ValueError(f"cannot draw {k.max()} distinct values out of {n_eff}")
    indptr = np.zeros(rows + 1, dtype=np.int64)
    np.cumsum(k, out=indptr[1:])
    idt = _index_dtype(n)
    out = np.empty(int(indptr[-1]), dtype=idt)
    if rows == 0 or indptr[-1] == 0:
        return indptr, out
    dense_rows = k * 4 > n_eff  # drawing with replacement would repeat too often
    for r_idx in (np.flatnonzero(~dense_rows), np.flatnonzero(dense_rows)):
        if r_idx.size == 0:
            continue
        dense = bool(dense_rows[r_idx[0]])
        if dense:
            step = max(1, _BLOCK_ELEMS // max(1, n_eff))
        else:
            step = max(1, _BLOCK_ELEMS // (int(k[r_idx].max()) + 16))
        start = 0
        while start < r_idx.size:
            block = r_idx[start:start + step]
            kb = k[block]
            if dense:
                vals = _sample_dense(rng, n_eff, kb)
            else:
                vals = _sample_sparse(rng, n_eff, kb)
            if exclude is not None:
                ex = np.repeat(np.asarray(exclude)[block], kb)
                vals = vals + (vals >= ex)
            # Rows of ``block`` are increasing, so their CSR slots are too; write row by
            # row segments in one vectorized scatter.
            offsets = np.cumsum(kb) - kb
            pos = np.repeat(indptr[block] - offsets, kb) + np.arange(vals.size)
            out[pos] = vals
            start += step
    return indptr, out


def _sort_key(a: np.ndarray, n: int) -> np.ndarray:
    """``a`` (integers in ``range(n)``) as a key for a stable argsort: uint16 where the values fit,
    which NumPy sorts by radix sort (4x faster than int32, the same order)."""
    return a.astype(np.uint16) if n <= 1 << 16 else a


def _first_distinct(draws: np.ndarray, kb: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows sorted, the mask (in sorted order) of each row's first ``kb`` distinct
    draws (integers in ``range(n)``), and whether each row had enough distinct draws."""
    order = np.argsort(_sort_key(draws, n), axis=1, kind="stable")
    s = np.take_along_axis(draws, order, axis=1)
    first_sorted = np.ones(s.shape, dtype=bool)
    first_sorted[:, 1:] = s[:, 1:] != s[:, :-1]
    first = np.empty_like(first_sorted)
    np.put_along_axis(first, order, first_sorted, axis=1)
    # the narrowest integer that holds a row's count: the cumulative sum is memory-bound
    rank = np.cumsum(first, axis=1, dtype=np.int16 if draws.shape[1] < 1 << 15 else np.int64)
    keep = first & (rank <= kb[:, None])
    ok = rank[:, -1] >= kb
    return s, np.take_along_axis(keep, order, axis=1), ok


def _sample_sparse(rng: np.random.Generator, n: int, kb: np.ndarray) -> np.ndarray:
    rows = kb.shape[0]
    result: list[np.ndarray | None] = [None] * rows
    todo = np.arange(rows)
    extra = 1.25
    while todo.size:
        kt = kb[todo]
        m = int(np.ceil(kt.max() * extra)) + 8
        draws = rng.integers(0, n, size=(todo.size, m), dtype=_index_dtype(n))
        s, keep_sorted, ok = _first_distinct(draws, kt, n)
        good = np.flatnonzero(ok)
        if good.size == todo.size:
            return s[keep_sorted]
        vals = s[good][keep_sorted[good]]
        splits = np.cumsum(kt[good])[:-1]
        for r, chunk in zip(todo[good], np.split(vals, splits)):
            result[r] = chunk
        todo = todo[~ok]
        extra *= 2
    return np.concatenate([r for r in result if r is not None] or [np.empty(0, np.int64)])


def _sample_dense(rng: np.random.Generator, n: int, kb: np.ndarray) -> np.ndarray:
    # The k smallest of n iid uniform keys form a uniform k-subset.
    keys = rng.random((kb.shape[0], n), dtype=np.float32)
    ranks = np.argsort(keys, axis=1)
    keep = np.arange(n)[None, :] < kb[:, None]
    chosen = np.where(keep, ranks, n)
    chosen.sort(axis=1)
    return chosen[chosen < n].astype(_index_dtype(n))


class Connector:
    """Base class of connectivity rules; subclasses implement :meth:`build`.

    Results are cached per ``(n_pre, n_post)``, so every format of one
    connector describes the same connections.

    Example:
        >>> import neurodyn.nn as nn
        >>> conn = nn.FixedProb(0.1, seed=0)
        >>> indptr, indices = conn.csr(100, 200)
        >>> targets = conn.padded(100, 200)       # (100, k_max), fill 200
    """

    allow_self: bool = True

    def __init__(self) -> None:
        self._cache: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def build(self, n_pre: int, n_post: int) -> tuple[np.ndarray, np.ndarray]:
        """Build ``(indptr, indices)`` (override in subclasses)."""
        raise NotImplementedError

    def _check_self(self, n_pre: int, n_post: int) -> None:
        if not self.allow_self and n_pre != n_post:
            raise ValueError(
                f"{type(self).__name__}(allow_self=False) needs n_pre == n_post (a group onto "
                f"itself), got n_pre={n_pre}, n_post={n_post}")

    def csr(self, n_pre: int, n_post: int) -> tuple[np.ndarray, np.ndarray]:
        """``(indptr (n_pre+1,) int64, indices (nnz,) int32)``: the targets of each presynaptic neuron."""
        name = type(self).__name__
        key = (_check_size(name, "n_pre", n_pre), _check_size(name, "n_post", n_post))
        if key not in self._cache:
            indptr, indices = self.build(*key)
            indptr.setflags(write=False)
            indices.setflags(write=False)
            self._cache[key] = (indptr, indices)
        return self._cache[key]

    def pre_ids(self, n_pre: int, n_post: int) -> np.ndarray:
        """The presynaptic neuron of every connection, in CSR order."""
        indptr, _ = self.csr(n_pre, n_post)
        return np.repeat(np.arange(n_pre, dtype=np.int32), np.diff(indptr))

    def num_connections(self, n_pre: int, n_post: int) -> int:
        """The total number of connections."""
        return int(self.csr(n_pre, n_post)[0][-1])

    def padded(self, n_pre: int, n_post: int, width: int | None = None) -> np.ndarray:
        """Targets as an ``(n_pre, k_max)`` int32 array padded with ``n_post``.

        ``width`` (at least ``k_max``) forces the number of columns.
        """
        indptr, indices = self.csr(n_pre, n_post)
        deg = np.diff(indptr)
        k_max = int(deg.max(initial=0))
        width = k_max if width is None else int(width)
        if width < k_max:
            raise ValueError(f"{type(self).__name__}.padded: width {width} < largest out-degree {k_max}")
        out = np.full((n_pre, width), n_post, dtype=np.int32)
        col = np.arange(indices.size) - np.repeat(indptr[:-1], deg)
        out[np.repeat(np.arange(n_pre), deg), col] = indices
        return out

    def dense(self, n_pre: int, n_post: int, max_elems: int = 1 << 26) -> np.ndarray:
        """A boolean ``(n_pre, n_post)`` connection matrix (small sizes only)."""
        if n_pre * n_post > max_elems:
            raise ValueError(
                f"{type(self).__name__}.dense: a {n_pre} x {n_post} matrix has more than "
                f"max_elems={max_elems} entries; use csr() or padded(), or raise max_elems")
        indptr, indices = self.csr(n_pre, n_post)
        mat = np.zeros((n_pre, n_post), dtype=bool)
        mat[self.pre_ids(n_pre, n_post), indices] = True
        return mat

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items() if not k.startswith("_"))
        return f"{type(self).__name__}({params})"


class _RandomConnector(Connector):
    def __init__(self, allow_self: bool, seed: int | None) -> None:
        super().__init__()
        self.allow_self = bool(allow_self)
        if seed is None:
            # Drawn once so that every format (and every later call) agrees.
            seed = int(np.asarray(_nd_random.randint(0, 2**31 - 1)))
        self.seed = int(seed)

    def _rng(self, n_pre: int, n_post: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, n_pre, n_post])


class FixedProb(_RandomConnector):
    """Each pair ``(pre, post)`` is connected independently with probability ``p``.

    Out-degrees are drawn Binomial(``n_post``, ``p``) per presynaptic neuron,
    then that many distinct targets are sampled per row (vectorized).

    Args:
        p: connection probability in [0, 1].
        allow_self: allow ``i -> i`` (only meaningful for a group onto itself).
        seed: integer seed; ``None`` draws one from ``nd.random``.

    Example:
        >>> import neurodyn.nn as nn
        >>> conn = nn.FixedProb(0.02, allow_self=False, seed=42)
        >>> indptr, indices = conn.csr(4000, 4000)
    """

    def __init__(self, p: float, allow_self: bool = True, seed: int | None = None) -> None:
        p = float(p)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"FixedProb: p must be in [0, 1], got {p}")
        self.p = p
        super().__init__(allow_self, seed)

    def build(self, n_pre: int, n_post: int) -> tuple[np.ndarray, np.ndarray]:
        self._check_self(n_pre, n_post)
        rng = self._rng(n_pre, n_post)
        n_eff = n_post if self.allow_self else n_post - 1
        deg = rng.binomial(max(n_eff, 0), self.p, size=n_pre)
        exclude = None if self.allow_self else np.arange(n_pre)
        indptr, indices = sample_without_replacement(rng, n_post, deg, exclude)
        return indptr, indices.astype(np.int32)


class FixedPostNum(_RandomConnector):
    """Each presynaptic neuron connects to exactly ``num`` distinct random targets.

    Example:
        >>> import neurodyn.nn as nn
        >>> conn = nn.FixedPostNum(10, seed=0)
    """

    def __init__(self, num: int, allow_self: bool = True, seed: int | None = None) -> None:
        self.num = _check_size("FixedPostNum", "num", num)
        super().__init__(allow_self, seed)

    def build(self, n_pre: int, n_post: int) -> tuple[np.ndarray, np.ndarray]:
        self._check_self(n_pre, n_post)
        n_eff = n_post if self.allow_self else n_post - 1
        if self.num > n_eff:
            raise ValueError(f"FixedPostNum: num={self.num} exceeds the {n_eff} possible targets")
        exclude = None if self.allow_self else np.arange(n_pre)
        indptr, indices = sample_without_replacement(
            self._rng(n_pre, n_post), n_post, np.full(n_pre, self.num), exclude)
        return indptr, indices.astype(np.int32)


class FixedPreNum(_RandomConnector):
    """Each postsynaptic neuron receives from exactly ``num`` distinct random sources.

    Example:
        >>> import neurodyn.nn as nn
        >>> conn = nn.FixedPreNum(10, seed=0)
    """

    def __init__(self, num: int, allow_self: bool = True, seed: int | None = None) -> None:
        self.num = _check_size("FixedPreNum", "num", num)
        super().__init__(allow_self, seed)

    def build(self, n_pre: int, n_post: int) -> tuple[np.ndarray, np.ndarray]:
        self._check_self(n_pre, n_post)
        n_eff = n_pre if self.allow_self else n_pre - 1
        if self.num > n_eff:
            raise ValueError(f"FixedPreNum: num={self.num} exceeds the {n_eff} possible sources")
        exclude = None if self.allow_self else np.arange(n_post)
        _, pres = sample_without_replacement(
            self._rng(n_pre, n_post), n_pre, np.full(n_post, self.num), exclude)
        posts = np.repeat(np.arange(n_post, dtype=np.int32), self.num)
        # Transpose to presynaptic rows; the stable sort keeps targets ascending.
        order = np.argsort(_sort_key(pres, n_pre), kind="stable")
        indptr = np.zeros(n_pre + 1, dtype=np.int64)
        np.cumsum(np.bincount(pres, minlength=n_pre), out=indptr[1:])
        return indptr, posts[order]


class AllToAll(Connector):
    """Every presynaptic neuron connects to every postsynaptic one.

    Example:
        >>> import neurodyn.nn as nn
        >>> conn = nn.AllToAll(allow_self=False)
    """

    def __init__(self, allow_self: bool = True) -> None:
        super().__init__()
        self.allow_self = bool(allow_self)

    def build(self, n_pre: int, n_post: int) -> tuple[np.ndarray, np.ndarray]:
        self._check_self(n_pre, n_post)
        if self.allow_self:
            indices = np.tile(np.arange(n_post, dtype=np.int32), n_pre)
            indptr = np.arange(n_pre + 1, dtype=np.int64) * n_post
        else:
            base = np.tile(np.arange(n_post - 1, dtype=np.int32), n_pre)
            rows = np.repeat(np.arange(n_pre, dtype=np.int32), n_post - 1)
            indices = base + (base >= rows)
            indptr = np.arange(n_pre + 1, dtype=np.int64) * (n_post - 1)
        return indptr, indices


class OneToOne(Connector):
    """Neuron ``i`` connects to neuron ``i`` (groups of equal size).

    Example:
        >>> import neurodyn.nn as nn
        >>> conn = nn.OneToOne()
    """

    def build(self, n_pre: int, n_post: int) -> tuple[np.ndarray, np.ndarray]:
        if n_pre != n_post:
            raise ValueError(f"OneToOne needs n_pre == n_post, got n_pre={n_pre}, n_post={n_post}")
        return np.arange(n_pre + 1, dtype=np.int64), np.arange(n_pre, dtype=np.int32)


class FixedTotalNum(_RandomConnector):
    """Exactly ``num`` connections in total, between uniformly drawn ``(pre, post)`` pairs.

    With ``allow_multapses=True`` (the default, as NEST's ``fixed_total_number``
    rule used by the Potjans & Diesmann microcircuit) every connection draws
    its presynaptic and its postsynaptic neuron independently and uniformly, so
    a pair may be connected several times; a row of :meth:`csr` then repeats
    that target, and a projection adds the repeated connections up. With
    ``allow_multapses=False`` the ``num`` pairs are distinct (a uniform
    ``num``-subset of all pairs). Rows of :meth:`csr` are sorted either way.

    Args:
        num: the total number of connections.
        allow_multapses: allow a pair to be connected more than once.
        allow_self: allow ``i -> i`` (only meaningful for a group onto itself).
        seed: integer seed; ``None`` draws one from ``nd.random``.

    Example:
        >>> import neurodyn.nn as nn
        >>> conn = nn.FixedTotalNum(5000, seed=0)
        >>> conn.num_connections(200, 300)
        5000
    """

    def __init__(self, num: int, allow_multapses: bool = True, allow_self: bool = True,
                 seed: int | None = None) -> None:
        self.num = _check_size("FixedTotalNum", "num", num)
        self.allow_multapses = bool(allow_multapses)
        super().__init__(allow_self, seed)

    def build(self, n_pre: int, n_post: int) -> tuple[np.ndarray, np.ndarray]:
        self._check_self(n_pre, n_post)
        rng = self._rng(n_pre, n_post)
        n_cols = n_post if self.allow_self else n_post - 1
        pairs = n_pre * max(n_cols, 0)
        num = self.num
        if num and n_cols <= 0:
            raise ValueError(f"FixedTotalNum: num={num} connections but no possible pair for "
                             f"n_pre={n_pre}, n_post={n_post}")
        if self.allow_multapses:
            # Pairs as keys pre * n_cols + col, sorted: rows come out grouped and ascending.
            keys = rng.integers(0, n_pre, size=num, dtype=np.int64) * n_cols
            keys += rng.integers(0, max(n_cols, 1), size=num, dtype=np.int64)
            keys.sort()
        else:
            if num > pairs:
                raise ValueError(f"FixedTotalNum: num={num} exceeds the {pairs} distinct pairs of "
                                 f"n_pre={n_pre} x n_post={n_post}"
                                 + ("" if self.allow_self else " without self-connections")
                                 + "; pass allow_multapses=True or lower num")
            keys = _distinct_keys(rng, pairs, num)
        pre = keys // max(n_cols, 1)
        post = keys - pre * n_cols
        if not self.allow_self:
            post += post >= pre
        indptr = np.zeros(n_pre + 1, dtype=np.int64)
        np.cumsum(np.bincount(pre, minlength=n_pre), out=indptr[1:])
        return indptr, post.astype(np.int32)


def _distinct_keys(rng: np.random.Generator, m: int, k: int) -> np.ndarray:
    """``k`` distinct integers of ``range(m)``, uniformly, sorted."""
    if k * 2 > m:
        return np.sort(rng.permutation(m)[:k]).astype(np.int64)
    keys = np.zeros(0, np.int64)
    while keys.size < k:
        # The distinct values of draws with replacement form a uniform random subset...
        more = rng.integers(0, m, size=int((k - keys.size) * 1.1) + 16, dtype=np.int64)
        keys = np.unique(np.concatenate([keys, more]))
    if keys.size > k:
        # ...and a uniform k-subset of it is a uniform k-subset of range(m).
        keys = np.sort(rng.choice(keys, size=k, replace=False))
    return keys
