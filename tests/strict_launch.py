"""Run a script with the strict device backend installed as "cupy", as on a GPU without one.

    python tests/strict_launch.py demos/sentiment.py --smoke --backend cupy

The real ``CupyBackend`` runs on tests/strict_device.py (a CPU stand-in that
refuses what CuPy refuses); the script then sees "cupy" as any loaded
backend. bench/gpu_check.sh --dry-run and the demo tests use it.
"""
import atexit
import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the repository root: tests.strict_device

from tests import strict_device  # noqa: E402
from tinygrad_seq.backend import CupyBackend, register  # noqa: E402

if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python tests/strict_launch.py SCRIPT [ARGS...]")
    register(CupyBackend(strict_device))
    atexit.register(lambda: print(f"strict_launch: 'cupy' was tests/strict_device.py, a CPU stand-in for CuPy; the script read "
                                  f"the device back {strict_device.syncs.count} times", file=sys.stderr))
    script = Path(sys.argv[1]).resolve()
    sys.argv = [str(script), *sys.argv[2:]]
    sys.path.insert(0, str(script.parent))  # as `python SCRIPT` would: the script's folder first (demos/common.py)
    runpy.run_path(str(script), run_name="__main__")
