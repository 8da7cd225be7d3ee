"""Module traversal and state dicts, nd.graph split/merge (seed 004), nd.random."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import neurodyn as nd


class Block(nd.Module):
    def __init__(self, n):
        self.weight = nd.TrainVar(jnp.ones((n, n)))
        self.stat = nd.Variable(jnp.zeros(n))

    def forward(self, x):
        return x @ self.weight


class Net(nd.Module):
    def __init__(self):
        self.blocks = [Block(2), Block(2)]
        self.extra = {"scale": nd.TrainVar(jnp.array(2.0))}
        self.shared = self.blocks[0].weight  # the same Variable twice
        self.rate = 0.5


def test_vars_paths_train_vars_modules_shared_once():
    net = Net()
    assert list(net.vars()) == ["blocks.0.weight", "blocks.0.stat", "blocks.1.weight",
                                "blocks.1.stat", "extra.scale"]
    assert list(net.train_vars()) == ["blocks.0.weight", "blocks.1.weight", "extra.scale"]
    assert list(net.modules()) == ["", "blocks.0", "blocks.1"]
    assert net.get("blocks.1.stat") is net.blocks[1].stat
    with pytest.raises(KeyError, match="no attribute path 'blocks.5'"):
        net.get("blocks.5")
    assert net.blocks[0].weight.name == "Block.weight"


def test_call_dispatches_to_update_or_forward():
    b = Block(2)
    np.testing.assert_array_equal(b(jnp.ones(2)), [2., 2.])

    class Nothing(nd.Module):
        pass

    with pytest.raises(NotImplementedError, match="neither update"):
        Nothing()()


def test_state_dict_roundtrip_and_errors():
    a, b = Net(), Net()
    a.blocks[1].stat.value = jnp.array([3., 4.])
    sd = a.state_dict()
    assert isinstance(sd["blocks.1.stat"], np.ndarray)
    b.load_state_dict(sd)
    np.testing.assert_array_equal(b.blocks[1].stat.value, [3., 4.])

    bad = dict(sd)
    del bad["extra.scale"]
    bad["nope"] = np.zeros(1)
    with pytest.raises(KeyError, match=r"missing keys \['extra.scale'\], unexpected keys \['nope'\]"):
        b.load_state_dict(bad)
    b.load_state_dict(bad, strict=False)  # fine without strict

    wrong = dict(sd)
    wrong["blocks.0.stat"] = np.zeros(5)
    before = np.asarray(b.blocks[1].stat.value)
    wrong["blocks.1.stat"] = np.full(2, 9.)
    with pytest.raises(ValueError, match=r"'blocks.0.stat' expects shape \(2,\), got \(5,\)"):
        b.load_state_dict(wrong)
    np.testing.assert_array_equal(b.blocks[1].stat.value, before)  # nothing half-loaded


def test_train_eval_flags():
    net = Net()
    assert net.training and net.blocks[0].training
    net.eval()
    assert not net.training and not net.blocks[1].training
    net.train()
    assert net.blocks[1].training


class RunningMean(nd.Module):
    def __init__(self):
        self.sum = nd.Variable(jnp.array(0.0))
        self.count = nd.Variable(jnp.array(0))

    def __call__(self, batch):
        self.sum.value += jnp.sum(batch)
        self.count.value += batch.size
        return self.sum.value / self.count.value


def test_seed_running_mean_with_nd_jit():
    tracker = RunningMean()

    @nd.jit
    def update_running_mean(batch):
        return tracker(batch)

    means = [float(update_running_mean(jnp.arange(4.0) + step)) for step in range(3)]
    assert means == [1.5, 2.0, 2.5]
    assert (float(tracker.sum.value), int(tracker.count.value)) == (30.0, 12)


def test_seed_running_mean_with_raw_jax_jit_and_graph():
    model = RunningMean()
    graph_def, state = nd.graph.split(model, nd.Variable)

    def running_mean_stateless(state, batch):
        module = nd.graph.merge(graph_def, state)
        out = module(batch)
        return out, nd.graph.states(module, nd.Variable)

    jax_jitted = jax.jit(running_mean_stateless)
    means = []
    for step in range(3):
        mean, state = jax_jitted(state, jnp.arange(4.0) + step)
        means.append(float(mean))
    assert means == [1.5, 2.0, 2.5]
    assert (int(state["count"]), float(state["sum"])) == (12, 30.0)
    assert float(model.sum.value) == 0.0  # the original module is untouched
    nd.graph.update(model, state)
    assert float(model.sum.value) == 30.0


class TinyLinear(nd.Module):
    def __init__(self):
        self.weight = nd.TrainVar(jnp.array([[1.0]]))
        self.bias = nd.TrainVar(jnp.array([0.0]))

    def __call__(self, x):
        return x @ self.weight.value + self.bias.value


def test_seed_tiny_linear_split_states_and_value_and_grad():
    lin = TinyLinear()
    lin_graph, param_tree, other_states = nd.graph.split(lin, nd.TrainVar, ...)
    assert sorted(param_tree) == ["bias", "weight"] and other_states == {}
    assert sorted(nd.graph.states(lin, nd.TrainVar)) == ["bias", "weight"]

    def mse_loss(params, others, x):
        pred = nd.graph.merge(lin_graph, params, others)(x)
        return jnp.mean((pred - (2.0 * x + 1.0)) ** 2)

    loss, grads = jax.value_and_grad(mse_loss)(param_tree, other_states, jnp.array([[0.0], [1.0]]))
    assert float(loss) == 2.5
    np.testing.assert_allclose(grads["bias"], [-3.])
    np.testing.assert_allclose(grads["weight"], [[-2.]])


def test_graph_split_errors_and_sharing():
    net = Net()
    with pytest.raises(ValueError, match="match no filter"):
        nd.graph.split(net, nd.TrainVar)
    gd, params, rest = nd.graph.split(net, nd.TrainVar, ...)
    new = nd.graph.merge(gd, params, rest)
    assert new is not net and new.shared is new.blocks[0].weight  # sharing kept
    assert new.rate == 0.5
    with pytest.raises(KeyError, match="no value for Variables"):
        nd.graph.merge(gd, params)
    with pytest.raises(KeyError, match="no Variable 'x'"):
        nd.graph.update(net, {"x": 1.})


def test_random_state_draws_and_reproducibility():
    rng = nd.RandomState(0)
    a = rng.normal(0., 1., size=(1000,))
    b = rng.normal(0., 1., size=(1000,))
    assert not np.allclose(a, b)
    assert abs(float(a.mean())) < 0.15 and abs(float(a.std()) - 1.) < 0.1
    rng.seed(0)
    np.testing.assert_array_equal(rng.normal(0., 1., size=(1000,)), a)
    u = rng.uniform(2., 3., size=(100,))
    assert float(u.min()) >= 2. and float(u.max()) < 3.
    assert rng.random((2, 3)).shape == (2, 3)
    r = rng.randint(0, 5, size=200)
    assert r.dtype == jnp.int32 and set(np.asarray(r).tolist()) <= set(range(5))
    assert rng.bernoulli(0.3, size=(10000,)).mean() == pytest.approx(0.3, abs=0.03)
    c = rng.choice(5, size=(3,), replace=False)
    assert len(set(np.asarray(c).tolist())) == 3
    assert sorted(np.asarray(rng.permutation(6)).tolist()) == list(range(6))
    t = rng.truncated_normal(-1., 1., size=(1000,))
    assert float(t.min()) >= -1. and float(t.max()) <= 1.
    k1, k2 = rng.split_key(), rng.split_key()
    assert k1.shape == (2,) and not np.array_equal(k1, k2)


def test_module_level_random_uses_default_state():
    nd.random.seed(7)
    x = nd.random.normal(size=(5,))
    nd.random.seed(7)
    np.testing.assert_array_equal(nd.random.normal(size=(5,)), x)
    assert nd.random.randint(0, 2, 10).shape == (10,)
    assert nd.random.uniform(size=3).shape == (3,)
    assert nd.random.random((2,)).shape == (2,)
    assert isinstance(nd.random.DEFAULT, nd.RandomState)


def test_repr_shows_the_tree_with_variable_kinds_shapes_and_dtypes():
    class Leaky(nd.Module):
        def __init__(self):
            self.tau = 10.0
            self.v = nd.Variable(jnp.zeros(4))
            self.rng = nd.RandomState(0)

        def _repr_extra(self):
            return f"tau={self.tau}"

    class Wrapper(nd.Module):
        def __init__(self):
            self.net = Net()
            self.cells = (Leaky(),)
            self.same = self.cells[0]
            self.nothing = [1, 2]  # plain values are not part of the tree

    assert repr(Wrapper()) == """Wrapper(
  (net): Net(
    (blocks): [
      (0): Block(
        (weight): TrainVar(shape=(2, 2), dtype=float32)
        (stat): Variable(shape=(2,), dtype=float32)
      )
      (1): Block(
        (weight): TrainVar(shape=(2, 2), dtype=float32)
        (stat): Variable(shape=(2,), dtype=float32)
      )
    ]
    (extra): {
      (scale): TrainVar(shape=(), dtype=float32)
    }
    (shared): TrainVar  # shared with net.blocks.0.weight
  )
  (cells): (
    (0): Leaky(
      tau=10.0
      (v): Variable(shape=(4,), dtype=float32)
      (rng): RandomState(shape=(2,), dtype=uint32)
    )
  )
  (same): Leaky  # shared with cells.0
)"""
    seq = nd.nn.Sequential(nd.nn.Linear(3, 4), nd.nn.Dropout(0.5))
    assert str(seq).startswith("Sequential(\n  (layers): [\n    (0): Linear(\n")
    assert "(weight): TrainVar(shape=(3, 4), dtype=float32)" in str(seq)
    assert repr(nd.Module()) == "Module()"
