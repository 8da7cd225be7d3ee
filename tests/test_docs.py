"""The documentation site's pages: every ```python block of the guides runs, in order, in one
namespace per page, and the API reference documents every public name."""

import concurrent.futures
import importlib
import inspect
import os
import re
import subprocess
import sys

import pytest

import neurodyn as nd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")

RUNNER = r"""
import re, sys
text = open(sys.argv[1]).read()
blocks = re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)
ns = {"__name__": "__docs__"}
for i, code in enumerate(blocks):
    exec(compile(code, f"{sys.argv[1]} block {i + 1}", "exec"), ns)
print(f"ran {len(blocks)} blocks")
"""

# page -> the least number of python blocks it has (guards the regex and accidental deletions);
# the tutorial runs in tests/test_tutorial.py
PAGES = {"index.md": 1, "stateful.md": 10, "simulation.md": 7, "training.md": 6, "ml_snn.md": 1,
         "scaling.md": 5, "custom_models.md": 5, "conventions.md": 6, "migration.md": 11}
# pages that need several devices: 4 simulated CPU devices
ENV = {"scaling.md": {"XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}}


def python_blocks(page):
    return re.findall(r"^```python\n(.*?)^```", open(os.path.join(DOCS, page)).read(), flags=re.S | re.M)


def run_page(page, cwd):
    """Run the page's blocks in a fresh interpreter (pages set dt and seeds globally) in ``cwd``."""
    path = os.path.join(DOCS, page)
    env = {**os.environ, "MPLBACKEND": "Agg", **ENV.get(page, {}),
           "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", RUNNER, path], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def page_runs(tmp_path_factory):
    """Every page, run two at a time: most of a page's time is single-threaded compilation,
    so two interpreters keep both CI cores busy."""
    # the page directories are made before the threads start: a first concurrent use of the
    # factory can make two threads each create (and one wipe) the worker's base directory
    dirs = {page: tmp_path_factory.mktemp(page.replace(".", "_")) for page in sorted(PAGES)}

    def one(page):
        return run_page(page, dirs[page])

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(sorted(PAGES), pool.map(one, sorted(PAGES))))


@pytest.mark.parametrize("page", sorted(PAGES))
def test_page_code_blocks_run(page, page_runs):
    blocks = python_blocks(page)
    assert len(blocks) >= PAGES[page]
    proc = page_runs[page]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert f"ran {len(blocks)} blocks" in proc.stdout


def test_every_guide_is_run_and_in_the_site():
    # A new page must get its blocks run here (or in test_tutorial.py) and a place in the nav.
    pages = {f for f in os.listdir(DOCS) if f.endswith(".md")}
    assert pages == set(PAGES) | {"tutorial.md"}
    nav = open(os.path.join(ROOT, "mkdocs.yml")).read()
    for page in pages:
        assert f" {page}\n" in nav, page
    for page in os.listdir(os.path.join(DOCS, "api")):
        assert f" api/{page}\n" in nav, page


# -- the API reference -----------------------------------------------------------------------
SUBMODULES = ["nn", "optim", "models", "analysis", "encoders", "nir", "random", "surrogate", "distributed",
              "visualize", "graph", "integrators"]


def reference():
    """The ``::: identifier`` blocks and the text of every API reference page."""
    idents, text = set(), ""
    api = os.path.join(DOCS, "api")
    for page in sorted(os.listdir(api)):
        page_text = open(os.path.join(api, page)).read()
        text += page_text
        idents.update(re.findall(r"^::: (\S+)\s*$", page_text, flags=re.M))
    return idents, text


def public_names(module):
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n in dir(module) if not n.startswith("_") and not inspect.ismodule(getattr(module, n))]
    return list(names)


def expected_entries():
    """(identifier, object) for every public name of neurodyn and of its public subpackages."""
    out = [(f"neurodyn.{n}", getattr(nd, n)) for n in nd.__all__]
    for sub in SUBMODULES:
        module = getattr(nd, sub)
        out += [(f"neurodyn.{sub}.{n}", getattr(module, n)) for n in public_names(module)]
    return out


def test_api_reference_documents_every_public_name():
    idents, text = reference()
    missing = []
    for ident, obj in expected_entries():
        if getattr(obj, "__module__", "").split(".")[0] == "jax":
            # JAX's own classes, re-exported: the page names them and links to JAX's docs
            if f"`{ident}`" not in text:
                missing.append(ident)
        elif ident not in idents:
            missing.append(ident)
    assert not missing, f"public names without an entry in docs/api/*.md: {missing}"


def test_api_reference_entries_exist():
    # Every ``::: neurodyn.x.y`` resolves through public attributes (a removed or renamed name
    # also fails `mkdocs build --strict`, which CI runs; this says which one, faster).
    idents, _ = reference()
    assert len(idents) > 200
    for ident in sorted(idents):
        parts = ident.split(".")
        assert parts[0] == "neurodyn", ident
        obj = importlib.import_module("neurodyn")
        for p in parts[1:]:
            assert not p.startswith("_"), f"{ident}: the reference uses public paths only"
            assert hasattr(obj, p), f"{ident}: no attribute {p!r}"
            obj = getattr(obj, p)


def test_reference_check_sees_a_missing_name(monkeypatch):
    monkeypatch.setattr(nd.encoders, "__all__", [*nd.encoders.__all__, "brand_new"], raising=True)
    monkeypatch.setattr(nd.encoders, "brand_new", lambda: None, raising=False)
    with pytest.raises(AssertionError, match=r"neurodyn\.encoders\.brand_new"):
        test_api_reference_documents_every_public_name()
