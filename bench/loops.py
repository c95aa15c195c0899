"""What the compiled loops of ops/loops.py buy: the LSTM and GRU kernels with and without them, in one run.

    python bench/loops.py [--rounds 15] [--cells lstm gru] [--configs "B32 T64 H128" ...]

1. One step op of ops/cell_steps.py (its matmul included), µs: with its
   NumPy equations (``ts.without_numba``) and with the loops, forward and
   backward, at the batch and hidden sizes of the --configs chosen.
2. The training step of bench/lm_step.py (float32, Adam, clipping), ms:
   without the loops, with them (the default) and PyTorch, the three
   alternating step by step; the median of --rounds steps each.
"""
from __future__ import annotations

import common  # noqa: F401  first: drops the slow-BLAS variables before NumPy loads
from common import time_alternating

import argparse
import time

import numpy as np

import tinygrad_seq as ts
from tinygrad_seq.ops import cell_steps

import lm_step


def step_us(cell: str, batch: int, hidden: int, repeats: int = 1000) -> tuple[float, float, float, float]:
    """(NumPy forward, loops forward, NumPy backward, loops backward) µs of one step op."""
    rng = np.random.default_rng(0)
    gates = 4 if cell == "lstm" else 3
    state = rng.standard_normal((2, batch, hidden) if cell == "lstm" else (batch, hidden)).astype(np.float32)
    projected = rng.standard_normal((batch, gates * hidden)).astype(np.float32)
    w_hh = (rng.standard_normal((gates * hidden, hidden)) / hidden**0.5).astype(np.float32)
    op = cell_steps.LSTMStep if cell == "lstm" else cell_steps.GRUStep
    extra = (None, None, None) if cell == "lstm" else ()

    def run(backward: bool) -> float:
        node = op()
        node.needs_input_grad = (True,) * (4 + len(extra))
        out = node.forward(projected, state, w_hh, None, *extra, running=None, t=None)
        grad = np.ones_like(out)
        node.backward(grad)  # the first call of each loop compiles it (or loads numba's cache): not timed
        start = time.perf_counter()
        for _ in range(repeats):
            if backward:
                node.backward(grad)
            else:
                node.forward(projected, state, w_hh, None, *extra, running=None, t=None)
        return (time.perf_counter() - start) / repeats * 1e6

    times = []
    for backward in (False, True):
        with ts.without_numba():
            times.append(run(backward))
        times.append(run(backward))
    return tuple(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--cells", nargs="+", default=["lstm", "gru"], choices=["lstm", "gru"])
    parser.add_argument("--configs", nargs="+", default=list(lm_step.CONFIGS), choices=list(lm_step.CONFIGS))
    args = parser.parse_args()
    torch = common.reference_torch()
    common.print_header(torch)
    print("One step op, forward and backward, µs (NumPy equations -> loops):\n")
    print("| cell | B | H | forward | backward |\n|---|---:|---:|---|---|")
    sizes = dict.fromkeys((lm_step.CONFIGS[config][0], lm_step.CONFIGS[config][2]) for config in args.configs)  # (B, H), in order
    for cell in args.cells:
        for batch, hidden in sizes:
            numpy_forward, loops_forward, numpy_backward, loops_backward = step_us(cell, batch, hidden)
            print(f"| {cell} | {batch} | {hidden} | {numpy_forward:.1f} -> {loops_forward:.1f} | {numpy_backward:.1f} -> {loops_backward:.1f} |")
    print("\nA training step (bench/lm_step.py), ms, median of the three alternating:\n")
    print("| cell | config | without numba | with | torch | ratio without | ratio with |\n|---|---|---:|---:|---:|---:|---:|")
    for cell in args.cells:
        for config in args.configs:
            batch, steps, hidden, layers, bidirectional = lm_step.CONFIGS[config]
            numpy_step = lm_step.our_step(cell, batch, steps, hidden, layers, bidirectional)
            loops_step = lm_step.our_step(cell, batch, steps, hidden, layers, bidirectional)
            functions = [ts.without_numba()(numpy_step), loops_step]
            if torch is not None:
                functions.append(lm_step.their_step(torch, cell, batch, steps, hidden, layers, bidirectional))
            times = time_alternating(functions, args.rounds)
            theirs = f"{times[2]:.1f} | {times[0] / times[2]:.2f} | {times[1] / times[2]:.2f}" if torch else "- | - | -"
            print(f"| {cell} | {config} | {times[0]:.1f} | {times[1]:.1f} | {theirs} |", flush=True)


if __name__ == "__main__":
    main()
