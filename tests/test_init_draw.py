"""Built-in initializers draw the values jax.random gives, with one compiled program for every shape."""

import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import neurodyn as nd
import neurodyn.nn as nn
from neurodyn.nn import _draw

SHAPES = [(1,), (7,), (3200,), (_draw.BLOCK,), (_draw.BLOCK + 1,), (2 * _draw.BLOCK + 5,), (3, 5), (17, 4001)]


@pytest.mark.parametrize("shape", SHAPES)
def test_standard_draws_equal_jax_random(shape):
    key = jax.random.PRNGKey(11)
    ref = {"normal": jax.random.normal(key, shape), "uniform": jax.random.uniform(key, shape),
           "truncated_normal": jax.random.truncated_normal(key, -0.4, 1.7, shape)}
    for kind, want in ref.items():
        got = _draw.standard(kind, key, shape, jnp.float32, -0.4, 1.7)
        assert got.shape == shape and got.dtype == np.float32
        np.testing.assert_array_equal(got, np.asarray(want), err_msg=kind)


def test_counter_offset_crosses_the_32_bit_word():
    # a block whose counters run past 2**32 - 1 carries into the high word, as jax.random's uint64 iota
    kd = np.array([5, 9, 0, 2**32 - 3], np.uint32)
    bits = np.asarray(_draw._offset_bits(jnp.asarray(kd), 32, (6,)))
    from jax.extend.random import threefry2x32_p
    hi = np.array([0, 0, 0, 1, 1, 1], np.uint32)
    lo = np.array([2**32 - 3, 2**32 - 2, 2**32 - 1, 0, 1, 2], np.uint32)
    b1, b2 = threefry2x32_p.bind(jnp.uint32(5), jnp.uint32(9), jnp.asarray(hi), jnp.asarray(lo))
    np.testing.assert_array_equal(bits, np.asarray(b1 ^ b2))


def test_typed_keys_and_fallbacks():
    k = jax.random.key(3)
    np.testing.assert_array_equal(_draw.standard("normal", k, (100,), jnp.float32),
                                  np.asarray(jax.random.normal(k, (100,))))
    # other generators and dtypes are drawn by jax.random itself
    assert _draw.standard("normal", jax.random.key(3, impl="rbg"), (10,), jnp.float32) is None
    assert _draw.standard("normal", jax.random.PRNGKey(0), (10,), jnp.float16) is None
    with pytest.raises(ValueError, match="unknown distribution 'gamma'"):
        _draw.standard("gamma", jax.random.PRNGKey(0), (10,), jnp.float32)


@pytest.mark.parametrize("init", [nn.Normal(-55., 2.), nn.Uniform(-70., -50.),
                                  nn.TruncatedNormal(1.5, 0.5, low=0.1, mode="clip"),
                                  nn.TruncatedNormal(0.5, 0.25, low=0.)])
def test_initializers_equal_the_jax_random_formula(init):
    key = jax.random.PRNGKey(4)
    for shape in [(5,), (3200,), (70000,)]:
        got = init(key, shape, jnp.float32)
        if isinstance(init, nn.Normal):
            want = init.mean + init.std * jax.random.normal(key, shape)
        elif isinstance(init, nn.Uniform):
            want = init.low + (init.high - init.low) * jax.random.uniform(key, shape)
        elif init.mode == "clip":
            want = jnp.clip(init.mean + init.std * jax.random.normal(key, shape), init.low, init.high)
        else:
            lo, hi = ((b - init.mean) / init.std for b in (init.low, init.high))
            want = jnp.clip(init.mean + init.std * jax.random.truncated_normal(key, lo, hi, shape), init.low, init.high)
        assert isinstance(got, jax.Array) and got.shape == shape and got.dtype == jnp.float32
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_initializers_inside_jit_draw_with_jax_random():
    init = nn.Normal(1., 3.)
    key = jax.random.PRNGKey(2)
    traced = jax.jit(lambda k: init(k, (50,), jnp.float32))(key)
    np.testing.assert_allclose(np.asarray(traced), np.asarray(init(key, (50,), jnp.float32)), rtol=1e-6)
    out = jax.jit(lambda: nn.init_value(2., (4,)) + nn.Constant(1.)(None, (4,)))()
    np.testing.assert_array_equal(np.asarray(out), [3., 3., 3., 3.])


def test_init_value_of_numbers_and_arrays_built_on_host():
    v = nn.init_value(-65., (3,))
    assert isinstance(v, jax.Array) and v.dtype == jnp.float32 and v.tolist() == [-65., -65., -65.]
    r = nn.init_value(0, (4,), jnp.int32)
    assert r.dtype == jnp.int32 and r.tolist() == [0, 0, 0, 0]
    a = nn.init_value(np.array([1., 2.]), (3, 2))
    assert a.shape == (3, 2) and a.tolist() == [[1., 2.]] * 3
    assert nn.Constant(-1.5)(None, (2, 2), jnp.float32).tolist() == [[-1.5, -1.5], [-1.5, -1.5]]
    with pytest.raises(ValueError, match=r"LIF V initializer produced shape \(2,\), which does not broadcast to \(3,\)"):
        nn.init_value(np.zeros(2), (3,), what="LIF V initializer")


def _count_compiles(fn):
    names = []

    class H(logging.Handler):
        def emit(self, rec):
            msg = rec.getMessage()
            if msg.startswith("Finished XLA compilation of"):
                names.append(msg.split()[4])

    logger = logging.getLogger("jax._src.dispatch")
    h = H(level=logging.DEBUG)
    old = logger.level
    logger.addHandler(h)
    logger.setLevel(logging.DEBUG)
    try:
        with jax.log_compiles(True):
            fn()
    finally:
        logger.removeHandler(h)
        logger.setLevel(old)
    return names


def test_groups_of_new_sizes_compile_no_initializer_program():
    # the counter sees eager compiles: a new shape of jax.random.normal compiles a program
    assert "jit(_normal)" in _count_compiles(lambda: jax.random.normal(jax.random.PRNGKey(0), (4321,)))
    nd.random.seed(0)
    nn.LIF(3, V_initializer=nn.Normal(-55., 2.))  # the draw program, compiled at most once per process
    sizes = [1234, 2345, 3456]
    names = _count_compiles(lambda: [nn.init_value(nn.Normal(-55., 2.), (n,)) for n in sizes]
                            + [nn.init_value(nn.TruncatedNormal(1., .5, low=.1, mode="clip"), (n,)) for n in sizes]
                            + [nn.init_value(7., (n,)) for n in sizes])
    assert names == []


@pytest.mark.parametrize("key", [(0, 0), (0, 42), (0, 2**31 - 1), (123456789, 4000000000)])
def test_host_split_equals_jax_random_split(key):
    from neurodyn._random import _host_split
    k = jnp.array(key, dtype=jnp.uint32)
    for n in (2, 3, 17):
        np.testing.assert_array_equal(_host_split(k, n), np.asarray(jax.random.split(k, n)))
    assert _host_split(jax.random.key(0), 2) is None  # typed keys are split by JAX


def test_seeding_and_eager_splits_give_jax_keys_and_compile_nothing():
    state = nd.RandomState(0)
    state.split_key()  # anything compiled once per process happens here
    names = _count_compiles(lambda: [state.seed(s) or state.split_key() for s in (1, 2, 3)] + [state.split_key(4)])
    assert names == []
    state.seed(7)
    np.testing.assert_array_equal(np.asarray(state.value), np.asarray(jax.random.PRNGKey(7)))
    k0, k1 = jax.random.split(jax.random.PRNGKey(7))
    sub = state.split_key()
    np.testing.assert_array_equal(np.asarray(sub), np.asarray(k1))
    np.testing.assert_array_equal(np.asarray(state.value), np.asarray(k0))
    many = state.split_key(3)
    ref = jax.random.split(k0, 4)
    np.testing.assert_array_equal(np.asarray(many), np.asarray(ref[1:]))
    np.testing.assert_array_equal(np.asarray(state.value), np.asarray(ref[0]))
    assert isinstance(sub, jax.Array) and sub.dtype == jnp.uint32


def test_building_groups_synapses_and_projections_of_new_sizes_compiles_nothing():
    # every state array and connectivity table goes to the device by device_put: an eager
    # jnp.zeros or jnp.asarray(numpy) would compile one program per new shape
    nd.random.seed(0)
    nn.LIF(3, V_initializer=nn.Normal(-55., 2.))  # the draw program, compiled at most once per process

    def build(n_e, n_i):
        E = nn.LIF(n_e, V_initializer=nn.Normal(-55., 2.))
        I = nn.LIF(n_i, V_initializer=nn.Normal(-55., 2.))
        syn = nn.Expon(n_i, tau=5.)
        p = nn.Projection(E, I, nn.FixedProb(0.1, seed=1), 0.5, nn.Expon(n_i, tau=5.), nn.CUBA(), mode="event")
        return E, I, syn, p

    names = _count_compiles(lambda: build(517, 131))
    assert names == []
    E, I, syn, p = build(61, 29)
    assert E.V.value.shape == (61,) and E.spike.value.dtype == jnp.bool_ and not bool(E.spike.value.any())
    assert I.input.value.shape == (29,) and float(jnp.abs(I.input.value).sum()) == 0.
    assert syn.g.value.shape == (29,) and p.targets.value.shape[0] == 61
