"""Every docstring example of every neurodyn module runs as a doctest, one test per module.

Examples must be self-contained: they run in a namespace holding nothing but ``__name__``
(not the module's globals), so an example that forgets ``import neurodyn as nd`` fails here
as it would for a reader pasting it into a fresh interpreter.
"""

import doctest
import importlib
import inspect
import pkgutil

import jax
import matplotlib
import pytest

import neurodyn as nd

matplotlib.use("Agg")

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _module_names():
    names = ["neurodyn"]
    for info in pkgutil.walk_packages(nd.__path__, "neurodyn."):
        names.append(info.name)
    return sorted(names)


def _examples(module):
    finder = doctest.DocTestFinder(exclude_empty=True)
    return [t for t in finder.find(module, module.__name__, globs={}) if t.examples]


MODULES = [name for name in _module_names() if _examples(importlib.import_module(name))]


@pytest.fixture
def restored_globals():
    """dt, precision (and JAX's x64 flag), the default random state and open figures are as
    they were after every module, so an example that changes them leaks into no other test."""
    import matplotlib.pyplot as plt

    dt, bits, x64 = nd.get_dt(), nd.get_precision(), jax.config.jax_enable_x64
    key = nd.random.DEFAULT.value
    try:
        yield
    finally:
        nd.set_precision(bits)
        jax.config.update("jax_enable_x64", x64)
        nd.set_dt(dt)
        nd.random.DEFAULT.value = key
        plt.close("all")


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, restored_globals):
    if name.endswith("nir"):
        pytest.importorskip("nir")
    module = importlib.import_module(name)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    failures = []
    for test in _examples(module):
        test.globs = {"__name__": f"__doctest_{name}__"}
        runner.run(test, out=failures.append)
        test.globs.clear()
    assert runner.failures == 0, "".join(failures)
    assert runner.tries > 0


def test_walk_finds_the_modules_with_examples():
    # Guards the walk itself: the public modules that certainly have examples are collected.
    for name in ["neurodyn._environ", "neurodyn._integrators", "neurodyn._surrogate",
                 "neurodyn._encoders", "neurodyn.analysis", "neurodyn._nir", "neurodyn.visualize"]:
        assert name in MODULES


OWN = ["neurodyn._encoders", "neurodyn.encoders", "neurodyn.analysis", "neurodyn.surrogate",
       "neurodyn._surrogate", "neurodyn._nir", "neurodyn.nir", "neurodyn._environ",
       "neurodyn._integrators", "neurodyn.visualize"]


def _public_callables(module):
    for name in getattr(module, "__all__", []):
        obj = getattr(module, name)
        if (inspect.isclass(obj) or inspect.isfunction(obj)) and obj.__module__ == module.__name__:
            yield name, obj


@pytest.mark.parametrize("name", OWN)
def test_every_public_class_and_function_has_an_example(name):
    module = importlib.import_module(name)
    missing = [n for n, obj in _public_callables(module) if ">>>" not in (obj.__doc__ or "")]
    assert not missing, f"{name}: no docstring example for {missing}"
