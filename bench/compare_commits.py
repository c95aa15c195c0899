"""What a change bought: bench/lm_step.py's training step at two or more commits of this library, in one process.

    python bench/compare_commits.py BEFORE AFTER [MORE ...] [--cells lstm] [--configs all] [--steps 12] [--cpu-time]

Each commit's ``tinygrad_seq/`` is extracted (``git archive``) into a
temporary folder under a package name of its own, so the versions load side
by side in this process. Their training steps (lm_step.py's model, seed and
data) then run in turn, the order reversed every round so that none always
follows another, and the median of --steps rounds is printed with each
version's ratio to the one before it. Only the library differs between the
columns: same process, same data, same machine load, which on a shared
machine is what makes a few percent visible. Wall clock on every BLAS thread
by default (what a training loop sees); ``--cpu-time`` measures CPU time on
one BLAS thread instead, steadier but blind to changes in threading.
``ts.keep_freed_memory()`` is on, so page faults do not blur the difference.
The package must import only relatively inside itself (it does).
"""
from __future__ import annotations

import common  # noqa: F401  first: drops the slow-BLAS variables before NumPy loads

import argparse
import importlib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from threadpoolctl import threadpool_limits

from lm_step import CONFIGS, our_step

REPOSITORY = Path(__file__).resolve().parent.parent


def load_commit(commit: str, folder: Path):
    """The package ``tinygrad_seq`` as it was at ``commit``, imported under the name ``at_<commit>``."""
    name = "at_" + subprocess.run(["git", "rev-parse", "--short", commit], cwd=REPOSITORY, capture_output=True, text=True, check=True).stdout.strip()
    archive = subprocess.run(["git", "archive", commit, "tinygrad_seq"], cwd=REPOSITORY, capture_output=True, check=True).stdout
    target = folder / name
    target.mkdir()
    subprocess.run(["tar", "-x", "--strip-components=1", "-C", str(target)], input=archive, check=True)
    return importlib.import_module(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("commits", nargs="+", help="two or more commits (any git revision), oldest first")
    parser.add_argument("--cells", nargs="+", default=["rnn", "gru", "lstm"], choices=["rnn", "gru", "lstm"])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--steps", type=int, default=12, help="rounds per configuration (median)")
    parser.add_argument("--cpu-time", action="store_true", help="CPU time on one BLAS thread instead of wall clock")
    args = parser.parse_args()
    if len(args.commits) < 2:
        parser.error("give two or more commits to compare")
    print(common.describe_machine())
    clock_name = "CPU time, one BLAS thread" if args.cpu_time else "wall clock, every BLAS thread"
    print(f"{clock_name}; the median of {args.steps} rounds, the versions alternating\n")
    with tempfile.TemporaryDirectory() as folder:
        sys.path.insert(0, folder)
        libraries = [load_commit(commit, Path(folder)) for commit in args.commits]
        libraries[-1].keep_freed_memory()  # process-wide: one call serves every version
        clock = time.process_time if args.cpu_time else time.perf_counter
        names = [library.__name__[3:] for library in libraries]
        print("| cell | config | " + " | ".join(f"{n} ms" for n in names) + " | " + " | ".join(f"{b} → {a}" for b, a in zip(names, names[1:])) + " |")
        print("|---|---|" + "---:|" * (2 * len(names) - 1))
        with threadpool_limits(1 if args.cpu_time else None, user_api="blas"):
            for cell in args.cells:
                for config in args.configs:
                    steps = [our_step(cell, *CONFIGS[config], library=library) for library in libraries]
                    for step in steps:
                        for _ in range(3):
                            step()
                    times = [[] for _ in steps]
                    for round_ in range(args.steps):
                        order = range(len(steps)) if round_ % 2 else reversed(range(len(steps)))
                        for i in order:
                            start = clock()
                            steps[i]()
                            times[i].append(clock() - start)
                    ms = [statistics.median(t) * 1e3 for t in times]
                    ratios = " | ".join(f"{after / before:.3f}" for before, after in zip(ms, ms[1:]))
                    print(f"| {cell} | {config} | " + " | ".join(f"{m:.2f}" for m in ms) + f" | {ratios} |", flush=True)


if __name__ == "__main__":
    main()
