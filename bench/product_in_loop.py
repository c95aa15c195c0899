"""Where a small step's hidden product belongs: in BLAS or inside the step's compiled loop (ops/loops.py).

    python bench/product_in_loop.py [--rounds 15] [--cells lstm gru] [--sizes 1x100 2x128 ...]

For each cell and batch × hidden size, one float32 LSTMStep or GRUStep op
(ops/cell_steps.py), µs per call, forward and backward: with its product
a⟨t−1⟩ W_hh^T (and going back d_gates W_hh) left to NumPy's matmul, and
computed by the loop itself (``lstm_step_forward``, ``gru_step_forward``,
...), the two alternating
round by round, the median of --rounds rounds of 200 calls. The last column
is the W_hh^T copy the forward needs (nn/fused.py makes it once per layer
call), in µs: the steps a call must have before the copy pays. What these
figures set: ``cell_steps.PRODUCT_IN_LOOP_MACS`` and
``steps.PRODUCT_IN_LOOP_FROM_STEPS`` (docs/performance.md, "The product in
the loop").
"""
from __future__ import annotations

import common  # noqa: F401  first: drops the slow-BLAS variables before NumPy loads
from common import batch_by_hidden, describe_machine, time_alternating

import argparse
import time

import numpy as np

from tinygrad_seq.nn.steps import transposed_copy
from tinygrad_seq.ops import cell_steps

SIZES = [(1, 64), (1, 100), (1, 128), (1, 200), (2, 100), (2, 128), (4, 64), (4, 128), (8, 64), (16, 64)]  # (B, H)
CALLS = 200


def step_calls(cell: str, batch: int, hidden: int, in_loop: bool):
    """(forward, backward): each runs CALLS calls of one LSTMStep or GRUStep op's forward or backward."""
    rng = np.random.default_rng(0)
    gates = 4 if cell == "lstm" else 3
    state = rng.standard_normal((2, batch, hidden) if cell == "lstm" else (batch, hidden)).astype(np.float32)
    projected = rng.standard_normal((batch, gates * hidden)).astype(np.float32)
    w_hh = (rng.standard_normal((gates * hidden, hidden)) / hidden**0.5).astype(np.float32)
    b_hh = rng.standard_normal(gates * hidden).astype(np.float32)
    w_hh_t = np.ascontiguousarray(w_hh.T)
    node = cell_steps.LSTMStep() if cell == "lstm" else cell_steps.GRUStep()
    peepholes = (None, None, None) if cell == "lstm" else ()
    node.needs_input_grad = (True,) * (4 + len(peepholes))
    grad = np.ones_like(state)

    def limit():
        cell_steps.PRODUCT_IN_LOOP_MACS = 1 << 62 if in_loop else 0

    def forward():
        limit()
        for _ in range(CALLS):
            node.forward(projected, state, w_hh, b_hh, *peepholes, running=None, t=None, w_hh_t=w_hh_t)

    def backward():
        limit()
        for _ in range(CALLS):
            node.backward(grad)

    forward()  # leaves the node's saved arrays for backward
    return forward, backward


def copy_us(gates: int, hidden: int, repeats: int = 200) -> float:
    w_hh = np.zeros((gates * hidden, hidden), np.float32)
    start = time.perf_counter()
    for _ in range(repeats):
        transposed_copy(w_hh)
    return (time.perf_counter() - start) / repeats * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--cells", nargs="+", default=["lstm", "gru"], choices=["lstm", "gru"])
    parser.add_argument("--sizes", nargs="+", type=batch_by_hidden, default=SIZES, help="BATCHxHIDDEN, e.g. 32x512")
    args = parser.parse_args()
    print(describe_machine())
    print(f"\nµs per call, the median of {args.rounds} rounds of {CALLS} calls; PRODUCT_IN_LOOP_MACS = {cell_steps.PRODUCT_IN_LOOP_MACS:,}\n")
    print("| cell | B | H | multiply-adds | forward BLAS | forward loop | ratio | backward BLAS | backward loop | ratio | W^T copy |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    limit = cell_steps.PRODUCT_IN_LOOP_MACS
    try:
        for cell in args.cells:
            gates = 4 if cell == "lstm" else 3
            for batch, hidden in args.sizes:
                blas_forward, blas_backward = step_calls(cell, batch, hidden, in_loop=False)
                loop_forward, loop_backward = step_calls(cell, batch, hidden, in_loop=True)
                ms = time_alternating([blas_forward, loop_forward, blas_backward, loop_backward], args.rounds, reverse_every_other=True)
                fb, fl, bb, bl = (m * 1000 / CALLS for m in ms)
                print(f"| {cell} | {batch} | {hidden} | {batch * gates * hidden * hidden:,} | {fb:.1f} | {fl:.1f} | {fl / fb:.2f} "
                      f"| {bb:.1f} | {bl:.1f} | {bl / bb:.2f} | {copy_us(gates, hidden):.0f} |")
    finally:
        cell_steps.PRODUCT_IN_LOOP_MACS = limit


if __name__ == "__main__":
    main()
