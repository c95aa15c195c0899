"""What a change bought: bench/lm_step.py's training step at two or more commits of this library, in one process.

    python bench/compare_commits.py BEFORE AFTER [MORE ...] [--cells rnn gru lstm] [--configs "B32 T64 H128" ...]
        [--steps 12] [--percentile 50] [--cpu-time] [--glibc-defaults] [--recorded]

BEFORE, AFTER, ...: git revisions of this repository (hashes, HEAD~2, ...),
oldest first. --configs takes lm_step.py's configuration names, quoted (they
hold spaces); by default every cell and configuration runs.

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
``ts.keep_freed_memory()`` is on, so page faults do not blur the difference;
``--glibc-defaults`` leaves malloc as a script that never calls it has it,
faults and all.
``--recorded`` times bench/recorded_step.py's sizes instead (B16 T64 H64, one
forward and one backward of a layer): the built-in LSTM and simplified GRU
cells on the recorded path (``ts.without_kernels()``), which lm_step.py's
kernels never take, and the simplified GRU's kernel beside them. The
package must import only relatively inside itself (it does).
"""
from __future__ import annotations

import common  # noqa: F401  first: drops the slow-BLAS variables before NumPy loads

import argparse
import contextlib
import importlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from lm_step import CONFIGS, our_step

REPOSITORY = Path(__file__).resolve().parent.parent


def short_hash(commit: str) -> str:
    return subprocess.run(["git", "rev-parse", "--short", commit], cwd=REPOSITORY, capture_output=True, text=True, check=True).stdout.strip()


def load_commit(commit: str, folder: Path):
    """The package ``tinygrad_seq`` as it was at ``commit`` (a short hash), imported under the name ``at_<commit>``."""
    name = "at_" + commit
    archive = subprocess.run(["git", "archive", commit, "tinygrad_seq"], cwd=REPOSITORY, capture_output=True, check=True).stdout
    target = folder / name
    target.mkdir()
    subprocess.run(["tar", "-x", "--strip-components=1", "-C", str(target)], input=archive, check=True)
    return importlib.import_module(name)


RECORDED_SIZES = (64, 16, 64)  # T, B, H (the input has H features too), as bench/recorded_step.py


def layer_step(library, cell_name: str, recorded: bool):
    """One forward and backward of ``Recurrent(cell)`` in ``library`` at RECORDED_SIZES, on the recorded path
    or the cell's kernel."""
    steps, batch, hidden = RECORDED_SIZES
    library.manual_seed(0)
    layer = library.nn.Recurrent(getattr(library.nn, cell_name)(hidden, hidden))
    x = library.Tensor(np.random.default_rng(0).standard_normal((steps, batch, hidden)).astype(np.float32), requires_grad=True)

    def step():
        with library.without_kernels() if recorded else contextlib.nullcontext():
            outputs, _ = layer(x)
        outputs.sum().backward()
        layer.zero_grad()
        x.grad = None

    return step


def workloads(args, libraries):
    """(row label, one step per library) for each row of the table."""
    if args.recorded:
        for cell_name, recorded in (("LSTMCell", True), ("SimplifiedGRUCell", True), ("SimplifiedGRUCell", False)):
            yield f"{cell_name} | {'recorded' if recorded else 'kernel'}", [layer_step(library, cell_name, recorded) for library in libraries]
        return
    for cell in args.cells:
        for config in args.configs:
            yield f"{cell} | {config}", [our_step(cell, *CONFIGS[config], library=library) for library in libraries]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("commits", nargs="+", help="two or more commits (any git revision), oldest first")
    parser.add_argument("--cells", nargs="+", default=["rnn", "gru", "lstm"], choices=["rnn", "gru", "lstm"], help="the layers to time")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS),
                        help="lm_step.py's configurations, each quoted (the names hold spaces)")
    parser.add_argument("--steps", type=int, default=12, help="rounds per configuration")
    parser.add_argument("--percentile", type=float, default=50.0,
                        help="the percentile of each version's times to report (50: the median; 10 is steadier on a shared "
                             "machine whose slow spells land on some rounds and not others)")
    parser.add_argument("--cpu-time", action="store_true", help="CPU time on one BLAS thread instead of wall clock")
    parser.add_argument("--recorded", action="store_true", help="the recorded path at bench/recorded_step.py's sizes instead")
    parser.add_argument("--glibc-defaults", action="store_true", help="leave malloc's thresholds alone (no ts.keep_freed_memory())")
    args = parser.parse_args()
    if not 0 <= args.percentile <= 100:
        parser.error(f"--percentile must be between 0 and 100; got {args.percentile:g}")
    commits = [short_hash(commit) for commit in args.commits]
    if len(set(commits)) != len(commits) or len(commits) < 2:
        parser.error(f"give two or more different commits to compare; got {' '.join(args.commits)} ({' '.join(commits)})")
    print(common.describe_machine())
    clock_name = "CPU time, one BLAS thread" if args.cpu_time else "wall clock, every BLAS thread"
    statistic = "the median" if args.percentile == 50 else f"the {args.percentile:g}th percentile"
    print(f"{clock_name}; {statistic} of {args.steps} rounds, the versions alternating\n")
    with tempfile.TemporaryDirectory() as folder:
        sys.path.insert(0, folder)
        libraries = [load_commit(commit, Path(folder)) for commit in commits]
        if not args.glibc_defaults:
            libraries[-1].keep_freed_memory()  # process-wide: one call serves every version
        clock = time.process_time if args.cpu_time else time.perf_counter
        names = [library.__name__[3:] for library in libraries]
        first_columns = "| cell | path |" if args.recorded else "| cell | config |"
        print(first_columns + " " + " | ".join(f"{n} ms" for n in names) + " | " + " | ".join(f"{b} → {a}" for b, a in zip(names, names[1:])) + " |")
        print("|---|---|" + "---:|" * (2 * len(names) - 1))
        with threadpool_limits(1 if args.cpu_time else None, user_api="blas"):
            for label, steps in workloads(args, libraries):
                # warm_up=3: the recorded path records and checks its tape on the first two calls
                ms = common.time_alternating(steps, args.steps, clock=clock, warm_up=3, reverse_every_other=True,
                                             pick=lambda times: float(np.percentile(times, args.percentile)))
                ratios = " | ".join(f"{after / before:.3f}" for before, after in zip(ms, ms[1:]))
                print(f"| {label} | " + " | ".join(f"{m:.2f}" for m in ms) + f" | {ratios} |", flush=True)


if __name__ == "__main__":
    main()
