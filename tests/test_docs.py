"""Every ```python block of the reference pages runs, in order, in one namespace per page."""

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

RUNNER = r"""
import re, sys
text = open(sys.argv[1]).read()
blocks = re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)
ns = {"__name__": "__docs__"}
for i, code in enumerate(blocks):
    exec(compile(code, f"{sys.argv[1]} block {i + 1}", "exec"), ns)
print(f"ran {len(blocks)} blocks")
"""

PAGES = {"custom_models.md": 5, "conventions.md": 6, "migration.md": 9}


def run_page(page, tmp_path):
    path = os.path.join(ROOT, "docs", page)
    blocks = re.findall(r"^```python\n(.*?)^```", open(path).read(), flags=re.S | re.M)
    env = {**os.environ, "MPLBACKEND": "Agg",
           "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", RUNNER, path], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert f"ran {len(blocks)} blocks" in proc.stdout
    return blocks, proc.stdout


@pytest.mark.parametrize("page", sorted(PAGES))
def test_page_code_blocks_run(page, tmp_path):
    blocks, out = run_page(page, tmp_path)
    assert len(blocks) >= PAGES[page]
