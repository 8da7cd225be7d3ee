"""nd.jit: the seed examples, state tracking, re-tracing rules, errors."""

import threading
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import neurodyn as nd


class LogisticRegression(nd.Module):
    def __init__(self, dimension):
        self.dimension = dimension
        self.w = nd.Variable(2.0 * jnp.ones(dimension) - 1.3)

    def __call__(self, X, Y):
        u = jnp.dot(((1.0 / (1.0 + jnp.exp(-Y * jnp.dot(X, self.w))) - 1.0) * Y), X)
        self.w.value = self.w - u


def _logreg_reference(w, X, Y):
    u = jnp.dot(((1.0 / (1.0 + jnp.exp(-Y * jnp.dot(X, w))) - 1.0) * Y), X)
    return w - u


def test_logistic_regression_weight_changes_like_pure_jax():
    nd.random.seed(0)
    X = nd.random.random((500, 10))
    Y = nd.random.random(500)
    model = LogisticRegression(10)
    step = nd.jit(model)
    w = 2.0 * jnp.ones(10) - 1.3
    for _ in range(3):
        step(X, Y)
        w = _logreg_reference(w, X, Y)
    np.testing.assert_allclose(model.w.value, w, rtol=1e-5)
    assert step.trace_count == 1  # traced once, never again


class Linear(nd.Module):
    def __init__(self, n_in, n_out):
        self.w = nd.TrainVar(nd.random.random((n_in, n_out)))
        self.b = nd.TrainVar(jnp.zeros(n_out))

    def update(self, x):
        return x @ self.w + self.b


@pytest.mark.parametrize("dyn_vars", ["all", "only_w", None])
def test_variable_changed_outside_is_seen(dyn_vars):
    layer = Linear(10, 3)
    kw = {"all": dict(dyn_vars=[layer.w, layer.b]), "only_w": dict(dyn_vars=[layer.w]), None: {}}[dyn_vars]
    update = nd.jit(layer.update, **kw)
    x = jnp.zeros(10)
    np.testing.assert_array_equal(update(x), [0., 0., 0.])
    layer.b[:] = 1.
    np.testing.assert_array_equal(update(x), [1., 1., 1.])
    layer.b[:] = 2.  # BrainPy froze b as a constant without dyn_vars; neurodyn never does
    np.testing.assert_array_equal(update(x), [2., 2., 2.])


def test_function_closing_over_global_variables():
    w = nd.TrainVar(nd.random.random((10, 3)))
    b = nd.TrainVar(jnp.zeros(3))

    def update(x):
        return x @ w + b

    f = nd.jit(update)
    np.testing.assert_array_equal(f(jnp.zeros(10)), [0., 0., 0.])
    b[:] = 1.
    np.testing.assert_array_equal(f(jnp.zeros(10)), [1., 1., 1.])


def test_random_numbers_fresh_each_call_and_reproducible():
    def function():
        return nd.random.normal(0, 1, size=(10,))

    f = nd.jit(function)
    a, b = f(), f()
    assert not np.any(np.asarray(a == b))
    nd.random.seed(123)
    c = f()
    nd.random.seed(123)
    d = f()
    np.testing.assert_array_equal(c, d)
    # the same draws as without jit
    nd.random.seed(123)
    np.testing.assert_array_equal(function(), c)


def test_static_argnames_and_argnums():
    def f(a, b, c=1.):
        if c > 0.:
            return a + b
        return a * b

    with pytest.raises(jax.errors.ConcretizationTypeError):
        nd.jit(f)(1., 2., 0.)
    assert float(nd.jit(f, static_argnames='c')(1., 2., c=0.)) == 2.0
    assert float(nd.jit(f, static_argnames='c')(1., 2., 0.)) == 2.0  # by position too
    assert float(nd.jit(f, static_argnums=2)(1., 2., c=3.)) == 3.0

    @nd.jit(static_argnames=('x',))
    def g(x):
        if x < 3:
            return 3. * x ** 2
        return -4 * x

    assert float(g(x=1.)) == 3.0 and float(g(x=5.)) == -20.0


def test_polynomial_series_recompiles_only_for_new_static_value():
    @nd.jit(static_argnums=1)
    def polynomial_series(x, degree):
        powers = [x ** (i + 1) for i in range(degree)]
        coeffs = jnp.arange(1, degree + 1, dtype=x.dtype)
        return jnp.tensordot(coeffs, jnp.stack(powers, axis=0), axes=1)

    x = jnp.array([1.0, 2.0])
    np.testing.assert_allclose(polynomial_series(x, 3), [6., 34.])
    np.testing.assert_allclose(polynomial_series(x, 3), [6., 34.])
    assert polynomial_series.trace_count == 1
    np.testing.assert_allclose(polynomial_series(x, 4), [10., 98.])
    assert polynomial_series.trace_count == 2


def test_unhashable_static_argument_error():
    f = nd.jit(lambda x, opts: x, static_argnums=1)
    with pytest.raises(TypeError, match=r"static argument position 1 must be hashable, got list"):
        f(1., [1, 2])


def test_selu_and_softplus_pure_functions():
    @nd.jit
    def selu(x, alpha=1.67, lmbda=1.05):
        return lmbda * jnp.where(x > 0, x, alpha * jnp.exp(x) - alpha)

    x = jnp.linspace(-2, 2, 9)
    np.testing.assert_allclose(selu(x), 1.05 * np.where(x > 0, x, 1.67 * np.exp(x) - 1.67), rtol=1e-6)

    @nd.jit
    def softplus(x):
        return jnp.log1p(jnp.exp(-jnp.abs(x))) + jnp.maximum(x, 0)

    xs = jnp.linspace(-5.0, 5.0, 7)
    np.testing.assert_allclose(softplus(xs), np.log1p(np.exp(xs)), rtol=1e-5)
    softplus.compile(jnp.ones((4,)))
    np.testing.assert_allclose(softplus(jnp.ones((4,))), np.full(4, 1.3132617), rtol=1e-6)
    softplus.clear_cache()
    np.testing.assert_allclose(softplus(jnp.zeros(5)), np.full(5, np.log(2.)), rtol=1e-6)
    with jax.disable_jit():
        np.testing.assert_allclose(softplus(xs * 2.0), np.log1p(np.exp(xs * 2)), rtol=1e-5)


def test_jit_of_bound_method_and_module_and_callable_object():
    class Hello(nd.Module):
        def __init__(self):
            self.a = nd.Variable(jnp.array(10.))
            self.b = nd.Variable(jnp.array(2.))

        def transform(self):
            return self.a ** self.b

    test = Hello()
    t = nd.jit(test.transform)
    assert float(t()) == 100.0
    test.b.value = 3.
    assert float(t()) == 1000.0
    assert t.origin_fun == test.transform

    class Plain:  # any object with __call__
        def __init__(self):
            self.count = nd.Variable(0)

        def __call__(self, n):
            self.count.value += n

    p = Plain()
    jp = nd.jit(p)
    jp(2)
    jp(3)
    assert int(p.count) == 5
    assert jp.count is p.count  # attribute access reaches the wrapped object


def test_jit_as_method_decorator_binds_per_instance():
    class Acc(nd.Module):
        def __init__(self):
            self.total = nd.Variable(0.)

        @nd.jit
        def add(self, x):
            self.total.value += x
            return self.total.value

    a, b = Acc(), Acc()
    a.add(1.)
    a.add(2.)
    b.add(10.)
    assert float(a.total) == 3.0 and float(b.total) == 10.0


def test_no_retrace_on_repeated_calls():
    m = LogisticRegression(4)
    f = nd.jit(m)
    X, Y = jnp.ones((8, 4)), jnp.ones(8)
    for _ in range(5):
        f(X, Y)
    n = f.trace_count
    for _ in range(5):
        f(X, Y)
    assert f.trace_count == n
    f(jnp.ones((16, 4)), jnp.ones(16))  # new input shape: one new trace
    assert f.trace_count == n + 1


def test_retrace_after_structure_change():
    class Net(nd.Module):
        def __init__(self):
            self.w = nd.Variable(jnp.ones(3))

        def __call__(self):
            return self.w.value * 2

    net = Net()
    f = nd.jit(net)
    np.testing.assert_array_equal(f(), [2, 2, 2])
    n = f.trace_count
    f()
    assert f.trace_count == n
    del net.w
    net.w = nd.Variable(jnp.full(3, 5.))  # a new Variable object
    np.testing.assert_array_equal(f(), [10, 10, 10])
    assert f.trace_count > n


def test_plain_attribute_change_retraces_and_flipping_back_reuses():
    class Scaled(nd.Module):
        def __init__(self):
            self.scale = 1.0
            self.x = nd.Variable(jnp.ones(2))

        def __call__(self):
            y = self.x * self.scale
            return y * 10 if self.training else y

    m = Scaled()
    f = nd.jit(m)
    np.testing.assert_array_equal(f(), [10, 10])
    m.scale = 2.0  # BrainPy/BrainState keep the stale 1.0 here
    np.testing.assert_array_equal(f(), [20, 20])
    m.eval()
    np.testing.assert_array_equal(f(), [2, 2])
    n = f.trace_count
    m.train()  # back to a layout compiled before: no new trace
    np.testing.assert_array_equal(f(), [20, 20])
    m.eval()
    np.testing.assert_array_equal(f(), [2, 2])
    assert f.trace_count == n
    # an unrelated module changing does not invalidate anything
    other = Scaled()
    other.scale = 5.0
    f()
    assert f.trace_count == n


def test_first_eval_train_round_trip_does_not_retrace():
    model = nd.nn.Sequential(nd.nn.Linear(3, 4), nd.nn.Dropout(0.5))
    f = nd.jit(model)
    x = jnp.ones((2, 3))
    f(x)
    n = f.trace_count
    model.eval()
    f(x)
    model.train()  # ``training`` now lives in each instance dict
    f(x)
    assert f.trace_count == n + 1


def test_exception_inside_trace_restores_state_and_next_call_works():
    v = nd.Variable(jnp.zeros(3))
    fail = {"on": True}

    def step(x):
        v.value = v.value + x
        nd.random.normal(size=(2,))
        if fail["on"]:
            raise ValueError("boom")
        return v.value

    key_before = np.asarray(nd.random.DEFAULT.value)
    f = nd.jit(step)
    with pytest.raises(ValueError, match="boom"):
        f(jnp.ones(3))
    np.testing.assert_array_equal(v.value, np.zeros(3))
    assert not isinstance(v._value, jax.core.Tracer)
    np.testing.assert_array_equal(nd.random.DEFAULT.value, key_before)
    fail["on"] = False
    np.testing.assert_array_equal(f(jnp.ones(3)), np.ones(3))
    np.testing.assert_array_equal(v.value, np.ones(3))


def test_exception_eagerly_under_disable_jit_restores_state():
    v = nd.Variable(jnp.zeros(2))

    def step():
        v.value += 1.
        raise RuntimeError("fail")

    with jax.disable_jit():
        with pytest.raises(RuntimeError):
            nd.jit(step)()
    np.testing.assert_array_equal(v.value, np.zeros(2))


def test_disable_jit_runs_eagerly_with_same_semantics():
    m = LogisticRegression(3)
    f = nd.jit(m)
    X, Y = jnp.ones((4, 3)), jnp.ones(4)
    w = m.w.value
    with jax.disable_jit():
        f(X, Y)
    np.testing.assert_allclose(m.w.value, _logreg_reference(w, X, Y), rtol=1e-6)
    assert f.trace_count == 0


def test_rebinding_variable_attribute_with_array_is_a_clear_error():
    class Bad(nd.Module):
        def __init__(self):
            self.w = nd.Variable(jnp.zeros(2))

        def __call__(self, x):
            self.w = x  # should be self.w.value = x

    b = Bad()
    with pytest.raises(TypeError, match=r"Bad\.w holds a Variable.*self\.w\.value = x"):
        nd.jit(b)(jnp.ones(2))
    np.testing.assert_array_equal(b.w.value, np.zeros(2))
    with pytest.raises(TypeError, match="self.w.value"):
        b.w = jnp.ones(2)  # outside compiled code too


def test_traced_value_to_plain_attribute_is_a_clear_error():
    class Leaky(nd.Module):
        def __init__(self):
            self.cache = None

        def __call__(self, x):
            self.cache = x * 2  # would leak a tracer in BrainPy / BrainState

    m = Leaky()
    with pytest.raises(RuntimeError, match=r"Leaky\.cache.*leak the tracer.*nd\.Variable"):
        nd.jit(m)(jnp.ones(2))
    assert m.cache is None


def test_lazy_variable_creation_inside_jit_is_a_clear_error():
    class Lazy(nd.Module):
        def __call__(self, x):
            if not hasattr(self, "h"):
                self.h = nd.Variable(jnp.zeros_like(x))
            self.h.value += x

    m = Lazy()
    with pytest.raises(RuntimeError, match=r"created inside compiled code was assigned to Lazy\.h"):
        nd.jit(m)(jnp.ones(2))
    assert not hasattr(m, "h")


def test_local_variables_and_modules_inside_jit_are_fine():
    def f(x):
        tmp = nd.Variable(jnp.zeros_like(x))
        tmp += x
        tmp *= 3
        return tmp.value

    np.testing.assert_array_equal(nd.jit(f)(jnp.ones(2)), [3., 3.])


def test_nested_jit():
    v = nd.Variable(jnp.zeros(2))
    inner = nd.jit(lambda x: v.__setitem__(..., v.value + x))

    @nd.jit
    def outer(x):
        inner(x)
        inner(x)
        return v.value * 10

    np.testing.assert_array_equal(outer(jnp.ones(2)), [20., 20.])
    np.testing.assert_array_equal(v.value, [2., 2.])
    outer(jnp.ones(2))
    np.testing.assert_array_equal(v.value, [4., 4.])


def test_variable_and_module_arguments():
    a, b = nd.Variable(jnp.ones(2)), nd.Variable(jnp.full(2, 5.))

    @nd.jit
    def add_to(var, x):
        var.value += x

    add_to(a, 1.)
    add_to(b, 1.)
    np.testing.assert_array_equal(a.value, [2, 2])
    np.testing.assert_array_equal(b.value, [6, 6])

    m1, m2 = LogisticRegression(3), LogisticRegression(3)
    m2.w.value = jnp.zeros(3)

    @nd.jit
    def dot(model, x):
        return x @ model.w

    assert float(dot(m1, jnp.ones(3))) == pytest.approx(2.1, rel=1e-5)
    assert float(dot(m2, jnp.ones(3))) == 0.0


def test_read_only_variables_are_inputs_written_are_outputs():
    r = nd.Variable(jnp.ones(2))
    w = nd.Variable(jnp.zeros(2))

    def f():
        w.value = r.value + w.value

    jf = nd.jit(f)
    jf()
    reads, writes = jf.variables["reads"], jf.variables["writes"]
    assert any(v is r for v in reads) and not any(v is r for v in writes)
    assert any(v is w for v in writes)


def test_donate_updates_state():
    v = nd.Variable(jnp.zeros(4))
    def inc():
        v.value += 1.

    f = nd.jit(inc, donate=True)
    for _ in range(3):
        f()
    np.testing.assert_array_equal(v.value, np.full(4, 3.))


def test_threads_on_separate_modules():
    models = [LogisticRegression(5) for _ in range(4)]
    fns = [nd.jit(m) for m in models]
    X = jnp.linspace(0, 1, 40).reshape(8, 5)
    Y = jnp.linspace(-1, 1, 8)
    errors = []

    def run(k):
        try:
            for _ in range(20):
                fns[k](X * (k + 1), Y)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for k, m in enumerate(models):
        w = 2.0 * jnp.ones(5) - 1.3
        for _ in range(20):
            w = _logreg_reference(w, X * (k + 1), Y)
        np.testing.assert_allclose(m.w.value, w, rtol=1e-4)


# -- tracing once, donation ------------------------------------------------------------------
def test_first_call_traces_once_for_module_closure_and_method():
    m = LogisticRegression(3)
    X, Y = jnp.ones((4, 3)), jnp.ones(4)
    v = nd.Variable(jnp.zeros(3))

    def closure(x):
        v.value = v.value + x
        return m.w.value.sum()

    for f, a in ((nd.jit(m), (X, Y)), (nd.jit(closure), (jnp.ones(3),)), (nd.jit(m.__call__), (X, Y))):
        f(*a)
        f(*a)
        assert f.trace_count == 1
    np.testing.assert_array_equal(v.value, [2., 2., 2.])
    draw = nd.jit(lambda: nd.random.normal(size=(2,)))  # the global key is guessed too
    assert not np.array_equal(draw(), draw()) and draw.trace_count == 1
    # a Variable the guess missed (held by a plain object) costs one more trace
    holder = types.SimpleNamespace(v=nd.Variable(0.))
    g = nd.jit(lambda: holder.v.__setitem__(..., holder.v.value + 1.))
    g()
    g()
    assert float(holder.v.value) == 2.0 and g.trace_count == 2


def _donates() -> tuple[nd.Variable, nd.JittedFunction]:
    v = nd.Variable(jnp.zeros(64))

    def inc(x=0.):
        v.value = v.value + 1. + x

    f = nd.jit(inc)
    f()
    return v, f


def test_written_variables_are_donated():
    v, f = _donates()
    before = v.value.unsafe_buffer_pointer()
    f()
    assert v.value.unsafe_buffer_pointer() == before  # updated in place
    assert float(v.value[0]) == 2.0
    v2 = nd.Variable(jnp.zeros(64))
    g = nd.jit(lambda: v2.__setitem__(..., v2.value + 1.), donate=False)
    g()
    before = v2.value.unsafe_buffer_pointer()
    g()
    assert v2.value.unsafe_buffer_pointer() != before


def test_donation_never_invalidates_an_array_held_elsewhere():
    # the user keeps the old value in a name
    v, f = _donates()
    held = v.value
    f()
    assert not held.is_deleted() and float(held[0]) == 1.0 and float(v.value[0]) == 2.0
    # the same array is the value of two Variables
    arr = jnp.ones(4)
    a, b = nd.Variable(arr), nd.Variable(arr)
    g = nd.jit(lambda: a.__setitem__(..., a.value * 2))
    g()
    g()
    assert not arr.is_deleted()
    np.testing.assert_array_equal(b.value, np.ones(4))
    np.testing.assert_array_equal(a.value, np.full(4, 4.))
    # the Variable's array is also an argument of the call
    v, f = _donates()
    f(v.value)
    np.testing.assert_array_equal(v.value, np.full(64, 3.))
    # the returned array is not the Variable's buffer
    w = nd.Variable(jnp.zeros(8))

    def step():
        w.value = w.value + 1.
        return w.value

    h = nd.jit(step)
    y = h()
    h()
    assert not y.is_deleted() and float(y[0]) == 1.0 and float(w.value[0]) == 2.0


def test_donation_does_not_warn(recwarn):
    v, f = _donates()
    for _ in range(3):
        f()
    key = nd.RandomState(0)
    g = nd.jit(lambda: key.normal(size=(3,)))
    g()
    g()
    assert not [w for w in recwarn if "donat" in str(w.message).lower()]


def test_the_copy_that_protects_a_held_array_compiles_nothing():
    import logging
    v = nd.Variable(jnp.zeros(77))  # a shape no other test copies: a compiled copy would show here
    f = nd.jit(lambda: v.__setitem__(..., v.value + 1.))
    f()
    held = v.value
    names = []

    class H(logging.Handler):
        def emit(self, rec):
            if rec.getMessage().startswith("Finished XLA compilation of"):
                names.append(rec.getMessage().split()[4])

    logger = logging.getLogger("jax._src.dispatch")
    h, old = H(level=logging.DEBUG), logger.level
    logger.addHandler(h)
    logger.setLevel(logging.DEBUG)
    try:
        with jax.log_compiles(True):
            f()  # v's array is also `held`: a fresh copy is donated in its place
    finally:
        logger.removeHandler(h)
        logger.setLevel(old)
    assert names == []
    assert not held.is_deleted() and float(held[0]) == 1.0 and float(v.value[0]) == 2.0
