"""Every ```python block of docs/tutorial.md runs, in order, in one namespace."""

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TUTORIAL = os.path.join(ROOT, "docs", "tutorial.md")

# Runs in a fresh interpreter (the tutorial sets dt and seeds globally) whose working
# directory is a temporary folder, so raster.png and snn.npz land there.
RUNNER = r"""
import re, sys
text = open(sys.argv[1]).read()
blocks = re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)
ns = {"__name__": "__tutorial__"}
for i, code in enumerate(blocks):
    exec(compile(code, f"tutorial block {i + 1}", "exec"), ns)
print(f"ran {len(blocks)} blocks")
"""


def test_tutorial_code_blocks_run(tmp_path):
    blocks = re.findall(r"^```python\n(.*?)^```", open(TUTORIAL).read(), flags=re.S | re.M)
    assert len(blocks) >= 10
    env = {**os.environ, "MPLBACKEND": "Agg",
           "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", RUNNER, TUTORIAL], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert f"ran {len(blocks)} blocks" in proc.stdout
    assert (tmp_path / "raster.png").stat().st_size > 1000
    assert (tmp_path / "snn.npz").exists()
    accs = [float(a) for a in re.findall(r"test accuracy ([0-9.]+)", proc.stdout)]
    assert len(accs) == 4 and accs[-1] > 0.5


README = os.path.join(ROOT, "README.md")


def test_readme_code_blocks_run_and_print_what_they_say():
    blocks = re.findall(r"^```python\n(.*?)^```", open(README).read(), flags=re.S | re.M)
    assert len(blocks) == 3
    proc = subprocess.run([sys.executable, "-c", RUNNER.replace("tutorial block", "README block"), README],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    lines = proc.stdout.splitlines()
    assert lines[:4] == ["1.5", "2.0", "2.5", "30.0 12"]
    rate = float(re.search(r"E rate ([0-9.]+) Hz", proc.stdout).group(1))
    assert 5. < rate < 60.
