"""When compiled code is stale: every plain value a trace read through a Module is checked."""

import types

import jax

import jax.numpy as jnp
import numpy as np
import pytest

import neurodyn as nd
from neurodyn._staleness import EPOCH, ObservedDict, ObservedList


class Gain(nd.Module):
    """No Variables at all: nothing but the attribute read ties it to the trace."""

    def __init__(self):
        self.k = 2.0

    def update(self, x):
        return x * self.k


class Config:
    def __init__(self):
        self.gain = 2.0
        self.taus = [1.0, 2.0]


class WithConfig(nd.Module):
    def __init__(self):
        self.cfg = Config()
        self.table = {"a": {"b": {"c": {"d": [1.0]}}}}
        self.sizes = [1.0, 2.0]
        self.v = nd.Variable(jnp.ones(2))

    def update(self):
        return (self.v.value * self.cfg.gain * sum(self.cfg.taus) + sum(self.sizes)
                + self.table["a"]["b"]["c"]["d"][0])


def _check(f, expected, traces):
    np.testing.assert_allclose(f(), expected)
    assert f.trace_count == traces


def test_module_without_variables_behind_a_plain_object_retraces():
    ns = types.SimpleNamespace(m=Gain())
    f = nd.jit(lambda x: ns.m(x))
    np.testing.assert_allclose(f(1.0), 2.0)
    ns.m.k = 3.0  # the old design found no Module here and returned 2.0
    np.testing.assert_allclose(f(1.0), 3.0)
    n = f.trace_count
    np.testing.assert_allclose(f(1.0), 3.0)
    assert f.trace_count == n


def test_plain_object_and_containers_held_by_a_module_are_never_stale():
    m = WithConfig()
    f = nd.jit(m)
    # 1*2*3 + 3 + 1
    _check(f, [10., 10.], 1)
    _check(f, [10., 10.], 1)
    m.cfg.gain = 3.0  # an attribute of a plain object: no Module assignment anywhere
    _check(f, [13., 13.], 2)
    m.cfg.taus.append(1.0)  # a plain list inside the plain object
    _check(f, [16., 16.], 3)
    m.sizes[0] = 5.0  # a list held by the Module, changed in place
    _check(f, [20., 20.], 4)
    m.table["a"]["b"]["c"]["d"][0] = 4.0  # four containers deep
    _check(f, [23., 23.], 5)
    _check(f, [23., 23.], 5)


def test_module_containers_are_observed():
    m = WithConfig()
    assert isinstance(m.sizes, ObservedList) and isinstance(m.table["a"], ObservedDict)
    assert m.sizes == [1.0, 2.0] and m.table == {"a": {"b": {"c": {"d": [1.0]}}}}
    before = EPOCH[0]
    m.sizes.append(3.0)
    m.table["x"] = 1
    assert EPOCH[0] == before + 2
    import jax
    assert jax.tree.leaves(m.sizes) == [1.0, 2.0, 3.0]
    import copy
    import pickle
    assert pickle.loads(pickle.dumps(m.sizes)) == [1.0, 2.0, 3.0]
    assert isinstance(copy.deepcopy(m).sizes, ObservedList)


def test_unread_changes_do_not_retrace():
    m = WithConfig()
    m.unused = Config()
    f = nd.jit(m)
    f()
    m.unused.gain = 10.0  # never read by the trace
    m.other = 1.0
    f()
    assert f.trace_count == 1


def test_closure_constants_are_those_of_the_trace_like_jax_jit():
    cfg = Config()  # a plain object read directly, not through a Module: a trace constant
    f = nd.jit(lambda x: x * cfg.gain)
    np.testing.assert_allclose(f(1.0), 2.0)
    cfg.gain = 5.0
    np.testing.assert_allclose(f(1.0), 2.0)


def test_jax_function_wrappers_are_compared_by_identity_and_not_rechecked_per_call():
    import functools

    from neurodyn._staleness import token

    for fn in (jax.nn.relu, jax.nn.gelu, functools.partial(jnp.add, 1.0)):
        volatile: list = []
        assert token(fn, volatile) == token(fn)
        assert volatile == []  # not walked on every call
    assert token(jax.nn.relu) != token(jax.nn.silu)

    model = nd.nn.Sequential(nd.nn.Linear(2, 2), jax.nn.relu)
    f = nd.jit(lambda x: model(x))
    x = -jnp.ones((1, 2)) * 10.0
    before = f(x)
    model.layers[1] = jax.nn.tanh  # the swapped activation must be seen
    after = f(x)
    np.testing.assert_allclose(after, jnp.tanh(model.layers[0](x)), rtol=1e-6)
    assert not np.allclose(before, after)
