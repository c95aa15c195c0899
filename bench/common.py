"""What every benchmark does first: a fair BLAS, and a record of the machine it ran on.

Import this module before NumPy. OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE (set on
some machines to work around old OpenBLAS builds) halve NumPy's large-matmul
speed, so a benchmark restarts itself once without them; tests and CI keep them.
"""
from __future__ import annotations

import os
import platform
import sys

_SLOW_BLAS_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")

if any(v in os.environ for v in _SLOW_BLAS_VARIABLES):
    if "numpy" in sys.modules:
        raise RuntimeError("bench/common.py must be imported before NumPy, or the BLAS settings cannot be dropped")
    env = {k: v for k, v in os.environ.items() if k not in _SLOW_BLAS_VARIABLES}
    os.execve(sys.executable, [sys.executable, *sys.argv], env)


def blas_kernel() -> str:
    """The BLAS library, version, kernel and threads NumPy really uses (via threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown (pip install -e '.[bench]' to see it)"
    infos = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    return "; ".join(f"{i['internal_api']} {i.get('version')} {i.get('architecture')} x{i['num_threads']}" for i in infos) or "none found"


def describe_machine() -> str:
    import numpy as np

    return (
        f"machine: {platform.machine()}, {os.cpu_count()} cores; Python {platform.python_version()}\n"
        f"numpy {np.__version__}, BLAS: {blas_kernel()}"
    )


def batch_by_hidden(text: str) -> tuple[int, int]:
    """An argparse type for a step's size written BATCHxHIDDEN ("32x512"): (32, 512)."""
    import argparse

    try:
        batch, hidden = (int(n) for n in text.split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a size is BATCHxHIDDEN, such as 32x512; got {text!r}") from None
    return batch, hidden


def time_alternating(functions, repeats, synchronize=lambda: None, clock=None, pick=None, warm_up=2, reverse_every_other=False):
    """ms of each function, run in turn ``repeats`` times after ``warm_up`` calls each: the median of its
    times (``pick``), by wall clock (``clock``: time.process_time for CPU time). ``synchronize`` waits for a
    device before and after each call, so a step's time is the time until its device work is done.
    ``reverse_every_other``: every other round runs the functions in reverse order, so that none always
    follows the same one (versions of one library, which share the machine's caches and allocator)."""
    import statistics
    import time

    clock = clock or time.perf_counter
    pick = pick or statistics.median
    for f in functions:
        for _ in range(warm_up):
            f()
    times = [[] for _ in functions]
    for round_ in range(repeats):
        order = reversed(range(len(functions))) if reverse_every_other and round_ % 2 == 0 else range(len(functions))
        for i in order:
            f = functions[i]
            synchronize()
            start = clock()
            f()
            synchronize()
            times[i].append(clock() - start)
    return [pick(t) * 1e3 for t in times]


def reference_torch():
    """PyTorch for the same-run comparison, or None when it is not installed."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def print_header(torch) -> None:
    """The machine, the BLAS and the PyTorch the figures below came from."""
    print(describe_machine())
    print(f"torch: {torch.__version__ + f' ({torch.get_num_threads()} threads)' if torch else 'not installed'}")
    print()
