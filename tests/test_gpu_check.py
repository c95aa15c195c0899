"""bench/gpu_check.sh, the run prepared for a GPU machine, dry-runs here on the strict device backend."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_gpu_check_dry_runs_every_stage(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable}
    result = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh"), "--dry-run"], capture_output=True, text=True,
                            timeout=240, env=env, cwd=tmp_path)
    summary = (tmp_path / "summary.md").read_text(encoding="utf-8")
    assert result.returncode == 0, summary
    for stage in ("install", "tests", "demos", "timing"):
        assert f"- {stage}: passed" in summary
    assert "failed stages: 0" in summary and "dry run: tests/strict_device.py stands in for CuPy" in summary
    timing = (tmp_path / "lm_step.md").read_text(encoding="utf-8")
    assert "tinygrad_seq on cupy, torch on cpu" in timing and "| rnn | B1 T25 H100 |" in timing.split("## CuPy")[1]
    assert "  pytest: " in summary and " passed" in summary.split("  pytest: ")[1].splitlines()[0]
    assert summary in result.stdout and timing in result.stdout  # what a device run sends back, even without its files
    demos = (tmp_path / "demos.txt").read_text(encoding="utf-8")
    assert "sentiment: passed" in demos and "autograd_tour: passed" in demos


def test_the_gpu_check_refuses_an_unknown_option():
    result = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh"), "--fast"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "usage: bash bench/gpu_check.sh" in result.stderr


def test_the_gpu_check_installs_every_core_dependency():
    """The GPU machine has no index to install from: each core dependency is a wheel fetched here, but NumPy (there
    already) and numba (its wheels pass the 64 MiB a device run carries; without it the CPU loops' NumPy twins run,
    compiled.py, and the GPU path never used them)."""
    import re

    setup = (ROOT / "setup.py").read_text(encoding="utf-8")
    required = re.search(r"install_requires=\[(.*?)\]", setup, re.S).group(1)
    core = {re.match(r"[\w.-]+(\[\w+\])?", name).group(0) for name in re.findall(r'"([^"]+)"', required)}
    tools = re.search(r"^TOOLS=\((.*)\)$", (ROOT / "bench" / "gpu_check.sh").read_text(encoding="utf-8"), re.M).group(1)
    fetched = {name.strip('"') for name in tools.split()}
    missing = core - {"numpy", "numba"} - fetched
    assert not missing, f"add {sorted(missing)} to TOOLS in bench/gpu_check.sh"
