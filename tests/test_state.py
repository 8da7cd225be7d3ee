"""Variable: values, in-place updates, array protocols, and errors."""

import copy
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import neurodyn as nd


def test_scalar_variable_just_works():
    a = nd.Variable(1.)
    assert a.shape == () and a.dtype == jnp.float32 and a.ndim == 0
    a += 1.
    assert float(a) == 2.0
    def inc():
        nonlocal a
        a += 1.

    f = nd.jit(inc)
    f()
    f()
    assert float(a) == 4.0


def test_value_is_strongly_typed():
    a = nd.Variable(1.)
    assert not a.value.weak_type
    a.value = 3  # a Python int is cast to float32
    assert a.dtype == jnp.float32 and float(a) == 3.0
    assert not a.value.weak_type


def test_dtype_argument():
    v = nd.Variable([1, 2, 3], dtype=jnp.float32)
    assert v.dtype == jnp.float32
    np.testing.assert_array_equal(v.value, [1., 2., 3.])


@pytest.mark.parametrize("jitted", [False, True])
def test_every_in_place_indexing(jitted):
    v = nd.Variable(jnp.arange(10))

    def ops():
        v[0] = 1
        v[1:2] = 1
        v[[1, 3]] = 2
        v[jnp.array([5])] = 7
        return None

    (nd.jit(ops) if jitted else ops)()
    np.testing.assert_array_equal(v.value, [1, 2, 2, 2, 4, 7, 6, 7, 8, 9])

    def all_ops():
        v[:] = 0
        v[...] = jnp.arange(10)
    (nd.jit(all_ops) if jitted else all_ops)()
    np.testing.assert_array_equal(v.value, np.arange(10))


@pytest.mark.parametrize("jitted", [False, True])
def test_every_augmented_assignment(jitted):
    iv = nd.Variable(jnp.arange(1, 11))
    fv = nd.Variable(jnp.linspace(1., 2., 5))
    ref_i = np.arange(1, 11)
    ref_f = np.linspace(1., 2., 5).astype(np.float32)

    def ops():
        nonlocal_i = iv
        nonlocal_i += 3
        nonlocal_i -= 1
        nonlocal_i *= 2
        nonlocal_i //= 3
        nonlocal_i %= 5
        nonlocal_i **= 2
        nonlocal_i &= 7
        nonlocal_i |= 8
        nonlocal_i ^= 3
        nonlocal_i <<= 2
        nonlocal_i >>= 1
        f = fv
        f /= 2.
        f += 1.
        f **= 2.

    (nd.jit(ops) if jitted else ops)()
    r = ref_i + 3
    r = r - 1
    r = r * 2
    r = r // 3
    r = r % 5
    r = r ** 2
    r = r & 7
    r = r | 8
    r = r ^ 3
    r = r << 2
    r = r >> 1
    np.testing.assert_array_equal(iv.value, r)
    np.testing.assert_allclose(fv.value, (ref_f / 2 + 1) ** 2, rtol=1e-6)


def test_value_update_and_update_method():
    v = nd.Variable(jnp.zeros(3))
    v.value = jnp.arange(3.)
    np.testing.assert_array_equal(v.value, [0, 1, 2])
    v.update(jnp.ones_like(v))
    np.testing.assert_array_equal(v.value, [1, 1, 1])


def test_array_protocols_return_plain_arrays():
    v = nd.Variable(jnp.arange(4.))
    for out in (v + 1, 1 + v, v * v, jnp.exp(v), jnp.sum(v), v @ v, -v, abs(v), v > 1):
        assert isinstance(out, jax.Array)
    np.testing.assert_array_equal(np.asarray(v), [0, 1, 2, 3])
    assert len(v) == 4
    assert [float(x) for x in v] == [0, 1, 2, 3]
    assert v.sum() == 6.0 and v.reshape(2, 2).shape == (2, 2)
    assert f"{nd.Variable(3.14159):.2f}" == "3.14"
    assert "Variable(" in repr(v)
    np.testing.assert_array_equal(v[1:3], [1, 2])


def test_shape_mismatch_error_names_variable_and_shapes():
    class M(nd.Module):
        def __init__(self):
            self.w = nd.Variable(jnp.zeros(10))

    m = M()
    with pytest.raises(ValueError, match=r"M\.w.*shape \(10,\).*got shape \(3,\)"):
        m.w.value = jnp.zeros(3)
    np.testing.assert_array_equal(m.w.value, np.zeros(10))


def test_dtype_mismatch_error():
    v = nd.Variable(jnp.zeros(3, jnp.int32), name="counts")
    with pytest.raises(TypeError, match=r"'counts' expects dtype int32.*float32"):
        v.value = jnp.ones(3, jnp.float32)
    n = nd.Variable(0)
    with pytest.raises(TypeError, match="int32"):
        n.value = 1.5  # a float does not silently truncate into an int Variable
    assert int(n) == 0


def test_reset_value_changes_shape_outside_compiled_code():
    v = nd.Variable(jnp.zeros(3))
    f = nd.jit(lambda: v.value * 2)
    assert f().shape == (3,)
    v.reset_value(jnp.ones((2, 4)))
    assert f().shape == (2, 4)

    def inside():
        v.reset_value(jnp.zeros(1))
    with pytest.raises(RuntimeError, match="not allowed inside compiled code"):
        nd.jit(inside)()


def test_trainvar_is_variable_and_copy_pickle():
    w = nd.TrainVar(jnp.ones((2, 2)))
    assert isinstance(w, nd.Variable)
    w2 = copy.deepcopy(w)
    w2 += 1
    assert float(w.sum()) == 4.0 and float(w2.sum()) == 8.0
    w3 = pickle.loads(pickle.dumps(w))
    assert isinstance(w3, nd.TrainVar)
    np.testing.assert_array_equal(w3.value, w.value)


def test_variable_written_with_tracer_in_raw_jax_jit_is_an_error():
    v = nd.Variable(jnp.zeros(2))

    @jax.jit
    def bad(x):
        v.value = x
        return x

    with pytest.raises(RuntimeError, match="leak"):
        bad(jnp.ones(2))
    np.testing.assert_array_equal(v.value, np.zeros(2))
