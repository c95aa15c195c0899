"""How many BLAS threads the small matrix products of a time step get (measured: docs/performance.md, "BLAS threads per size").

A recurrent layer multiplies by its hidden weight once per time step, forward
and backward. At small sizes (B × G·H × H below :data:`SMALL_STEP_MACS`: an
LSTM with H ≤ 128 at B = 32) a second OpenBLAS thread buys nothing on a quiet
machine, and on a busy one the two threads wait on each other: a step gets
up to 3× slower. So the steps of a small layer run on one thread; the
batched products around them (every step's input projection, the output
layer, the weight gradients summed over all steps) keep every thread, and so
do large layers, where two threads are 20–30 % faster. A batched product
too small to gain from a second thread (:data:`SMALL_PRODUCT_MACS`: a whole
layer call at B1) runs on one as well (:func:`product`), so that a small
model never wakes the second thread at all.

Only NumPy's BLAS is limited (through ``threadpoolctl``); a GPU backend is
untouched, and without ``threadpoolctl`` nothing changes. The limit is the
BLAS library's, so process-wide: NumPy work in another Python thread during
a small step's node runs on one thread too.

>>> from tinygrad_seq import blas
>>> blas.threads_for_step(32, 512 * 128), blas.threads_for_step(16, 1024 * 256), blas.threads_for_step(1, 400 * 100)
(1, None, None)
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

SMALL_STEP_MACS = 3_000_000
"""Multiply-adds of one step's hidden product (B × weight size) below which the step runs on one BLAS thread:
between LSTM B32 H128 (2.1 M, as fast or faster on one thread) and LSTM B16 H256 (4.2 M: generating a token
takes 0.70 of its one-thread time on two)."""

TINY_STEP_MACS = 4 * 65_536
"""At or below this, OpenBLAS runs a product on one thread by itself (its GEMM_MULTITHREAD_THRESHOLD of 4
times SMP_THRESHOLD_MIN, 65,536 multiply-adds): limiting it would only cost the switch. Leaving these alone
(an LSTM step at B16 H64 is 262,144) took 0.90–0.96 of the step's time on a quiet machine and 0.84–0.98 with
one core busy (docs/performance.md, "Cheaper steps")."""


def threads_for_step(batch: int, weight_size: int) -> int | None:
    """1 when a step's product (batch rows by a weight of ``weight_size``) is small, else None (leave it alone)."""
    return 1 if TINY_STEP_MACS < batch * weight_size < SMALL_STEP_MACS else None


SMALL_PRODUCT_MACS = 1_000_000
"""Multiply-adds of a product by a matrix (``ops.rows_times``: a Linear's or a ``@``'s, as every step's input
projection before the loop, an output layer over all T·B rows, or a product inside a user's cell step) below
which it runs on one BLAS thread, where OpenBLAS would wake its second thread for it (above TINY_STEP_MACS).
Up to here OpenBLAS keeps most products on one thread itself, but not one by a transposed weight (x W^T): an
LSTM's projection at B1 T25 H100 woke the second thread, which then spins for about 0.1 s. With one core busy
that training step took 1.35 times as long as with the product on one thread, and beside PyTorch about twice
as long (docs/performance.md, "Small products on one thread")."""


def threads_for_product(macs: int) -> int | None:
    """1 for a product of ``macs`` multiply-adds that OpenBLAS would spread over threads for little gain, else None."""
    return 1 if TINY_STEP_MACS < macs < SMALL_PRODUCT_MACS else None


def product(rows: Any, matrix: Any, out: Any = None) -> Any:
    """rows (M, K) @ matrix (K, N) (into ``out`` when given, a NumPy array), on one BLAS thread when NumPy's and
    small (:func:`threads_for_product`): about 2 µs to set the thread count and restore it, paid only by the
    products it limits."""
    if type(rows) is np.ndarray and threads_for_product(rows.shape[0] * rows.shape[1] * matrix.shape[1]):
        with limited(1):
            return np.matmul(rows, matrix, out=out)
    return rows @ matrix if out is None else np.matmul(rows, matrix, out=out)


def step_threads(batch: int, weights: Sequence[Any]) -> int | None:
    """:func:`threads_for_step` for a step multiplying ``batch`` rows by ``weights`` (arrays): None off NumPy,
    where there is no CPU BLAS to limit. The kernels, the recorded steps and the time loop all decide here."""
    if not weights or type(weights[0]) is not np.ndarray:
        return None
    # One weight (every kernel step, once per backward node) without a generator: without this line an LSTM training
    # step at B1 took 1.02-1.05 of its time (bench/compare_commits.py --cpu-time, four runs)
    return threads_for_step(batch, weights[0].size if len(weights) == 1 else sum(weight.size for weight in weights))


_libraries: list[Any] | None = None  # NumPy's BLAS libraries, found once


def _blas_libraries() -> list[Any]:
    global _libraries
    if _libraries is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # an install without it: nothing to limit
            _libraries = []
        else:
            _libraries = list(ThreadpoolController().select(user_api="blas").lib_controllers)
    return _libraries


class limited:
    """Inside the block, NumPy's BLAS runs on at most ``threads`` threads (None: unchanged); restored after it.

    About 3 µs in and out (threadpoolctl's per-library setters, not its
    whole-process scan): cheap enough around each step node's backward. The
    engine scopes it to the node, so that nothing else (the deferred weight
    gradients summed between nodes, a stepper's caller between two steps) runs
    limited.
    """

    __slots__ = ("threads", "changed")

    def __init__(self, threads: int | None) -> None:
        self.threads = threads
        self.changed: list[tuple[Any, int]] = []  # (library, its count before the block), for those set here

    def __enter__(self) -> limited:
        if self.threads is not None:
            for library in _blas_libraries():
                count = library.num_threads
                if count > self.threads:
                    library.set_num_threads(self.threads)
                    self.changed.append((library, count))
        return self

    def __exit__(self, *exc: Any) -> None:
        for library, count in self.changed:
            library.set_num_threads(count)
        self.changed = []
