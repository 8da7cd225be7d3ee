"""dt and per-step shared values."""

import jax.numpy as jnp
import pytest

import neurodyn as nd


def test_set_dt_get_dt_and_context():
    assert nd.get_dt() == pytest.approx(0.1)
    with nd.context(dt=0.05):
        assert nd.get_dt() == 0.05 and nd.share.dt == 0.05
        with nd.context(dt=0.01):
            assert nd.get_dt() == 0.01
        assert nd.get_dt() == 0.05
    assert nd.get_dt() == pytest.approx(0.1)
    nd.set_dt(0.2)
    try:
        assert nd.get_dt() == 0.2
    finally:
        nd.set_dt(0.1)
    with pytest.raises(ValueError, match="positive"):
        nd.set_dt(0.)


def test_shared_values_and_missing_error():
    with nd.context(t=5.0, i=50):
        assert nd.share.t == 5.0 and nd.share.i == 50
    with pytest.raises(KeyError, match="nd.share.t is not set"):
        nd.share.t


def test_compiled_code_retraces_when_dt_changes():
    f = nd.jit(lambda x: x * nd.get_dt())
    assert float(f(1.)) == pytest.approx(0.1)
    with nd.context(dt=0.5):
        assert float(f(1.)) == pytest.approx(0.5)
    assert float(f(1.)) == pytest.approx(0.1)


def test_in_trace():
    assert not nd.in_trace()
    seen = []

    @nd.jit
    def f(x):
        seen.append(nd.in_trace())
        return x

    f(jnp.ones(1))
    assert seen and all(seen)
