"""How far a training step is from the time its matmuls alone take, for tinygrad_seq and for PyTorch.

    python bench/roofline.py [--steps 10] [--cells rnn gru lstm] [--configs "B32 T64 H128" ...]

For each configuration of bench/lm_step.py it lists every matrix product a
training step must compute (forward and backward: the input projection of
all T steps at once, the T per-step hidden products, the output layer; each
forward product brings two in backward), times each distinct shape with
NumPy's BLAS on this machine, and adds them up: the **matmul bound**, the
step's time if everything else were free. Beside it, the measured step of
each library (the median of --steps, the two alternating, as lm_step.py
does) and its ratio to the bound. The FLOPs and the GEMM rate reached on the
step's shapes are printed too.
"""
from __future__ import annotations

import common  # noqa: F401  first: drops the slow-BLAS variables before NumPy loads

import argparse
import functools
import timeit
from dataclasses import dataclass

import numpy as np

from common import time_alternating
from lm_step import CONFIGS, EMBEDDING, LAYERS, VOCABULARY, our_step, their_step

GATES = {"rnn": 1, "gru": 3, "lstm": 4}


@dataclass(frozen=True)
class Product:
    """One (m, k) @ (k, n) product, done ``count`` times per step."""

    m: int
    k: int
    n: int
    count: int

    @property
    def flops(self) -> int:
        return 2 * self.m * self.k * self.n * self.count


def step_products(cell: str, batch: int, steps: int, hidden: int, layers: int, bidirectional: bool) -> list[Product]:
    """The matrix products of one training step, forward and backward.

    Every forward product A (m, k) @ B (k, n) has two in backward: dA = dC @ B.T
    (m, n) @ (n, k) and dB = A.T @ dC (k, m) @ (m, n).
    """
    gates, directions = GATES[cell], 2 if bidirectional else 1
    forward = []
    for layer in range(layers):
        inputs = EMBEDDING if layer == 0 else hidden * directions
        for _ in range(directions):
            forward.append(Product(steps * batch, inputs, gates * hidden, 1))  # x W_ih^T, all steps at once
            forward.append(Product(batch, hidden, gates * hidden, steps))  # a⟨t−1⟩ W_hh^T, step by step
    forward.append(Product(steps * batch, hidden * directions, VOCABULARY, 1))  # the output layer
    backward = []
    for p in forward:
        backward.append(Product(p.m, p.n, p.k, p.count))  # dA = dC @ B.T
        backward.append(Product(p.k, p.m, p.n, p.count))  # dB = A.T @ dC
    return forward + backward


@functools.cache
def seconds_per_product(m: int, k: int, n: int) -> float:
    """One (m, k) @ (k, n) product with NumPy's BLAS, float32, best of 5 (timed once per shape)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    number = max(1, int(2e8 // (2 * m * k * n + 1e5)))  # about 0.1 s of work per repeat, whatever the size
    return min(timeit.repeat(lambda: a @ b, number=number, repeat=5)) / number


def matmul_seconds(product: Product) -> float:
    """The time of ``product.count`` products of its shape."""
    return seconds_per_product(product.m, product.k, product.n) * product.count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="timed training steps per configuration (median)")
    parser.add_argument("--cells", nargs="+", default=list(LAYERS), choices=list(LAYERS))
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    args = parser.parse_args()
    torch = common.reference_torch()
    common.print_header(torch)
    print("| cell | config | GFLOP | matmul bound ms | GFLOP/s in the bound | tinygrad_seq ms | × bound | torch ms | × bound |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for cell in args.cells:
        for name in args.configs:
            shape = CONFIGS[name]
            products = step_products(cell, *shape)
            flops = sum(p.flops for p in products)
            bound = sum(matmul_seconds(p) for p in products) * 1e3
            functions = [our_step(cell, *shape)] + ([their_step(torch, cell, *shape)] if torch is not None else [])
            times = time_alternating(functions, args.steps)
            ours, theirs = times[0], (times[1] if torch is not None else float("nan"))
            print(f"| {cell} | {name} | {flops / 1e9:.2f} | {bound:.1f} | {flops / bound / 1e6:.0f} | {ours:.1f} | "
                  f"{ours / bound:.1f} | {theirs:.1f} | {theirs / bound:.1f} |", flush=True)
    print(f"\nmatmul bound: each product of the step timed alone at its shape (best of 5), summed; "
          f"the steps: median of {args.steps}, the libraries alternating.")


if __name__ == "__main__":
    main()
