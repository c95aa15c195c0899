"""A sequence times a matrix: NumPy's stacked matmul against one 2-D product over all rows (ops.arithmetic.rows_times).

    python bench/sequence_matmul.py [--repeat 5] [--number 50] [--threads 1 2]

For a (T, B, K) operand and a (K, N) matrix, ``a @ w`` in NumPy runs one
(B, K) × (K, N) product per time step; ``a.reshape(-1, K) @ w`` runs one
(T·B, K) × (K, N) product. The shapes are those of bench/lm_step.py's
training steps, as ``Linear`` multiplies them: going forward by W^T, a
transposed view of the (N, K) weight (every step's input projection, the
output layer), and going back by the weight itself (their gradients to the
input). Best of --repeat runs of --number products, µs, on each BLAS thread
count of --threads.
"""
from __future__ import annotations

import common  # noqa: F401  first: drops the slow-BLAS variables before NumPy loads

import argparse
import timeit

import numpy as np
from threadpoolctl import threadpool_limits

# (what, T, B, K, N, by W^T: the right operand is the transposed view of an (N, K) weight)
SHAPES = [
    ("input projection, LSTM H128", 64, 32, 64, 512, True),
    ("its gradient to the input", 64, 32, 512, 64, False),
    ("output layer, H128", 64, 32, 128, 65, True),
    ("its gradient to the input", 64, 32, 65, 128, False),
    ("input projection, LSTM H512", 64, 32, 64, 2048, True),
    ("input projection, LSTM B1 H100", 25, 1, 64, 400, True),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs of each timing (the best kept)")
    parser.add_argument("--number", type=int, default=50, help="products per run")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="BLAS thread counts to time on")
    args = parser.parse_args()
    print(common.describe_machine(), "\n")
    print("| product | shapes | BLAS threads | stacked µs | one 2-D product µs | 2-D / stacked |")
    print("|---|---|---:|---:|---:|---:|")
    rng = np.random.default_rng(0)
    for what, steps, batch, inner, outer, transposed in SHAPES:
        sequence = rng.standard_normal((steps, batch, inner)).astype(np.float32)
        weight = rng.standard_normal((outer, inner)).astype(np.float32).T if transposed else rng.standard_normal((inner, outer)).astype(np.float32)
        for threads in args.threads:
            with threadpool_limits(threads, user_api="blas"):
                def best(product):
                    product()
                    return min(timeit.repeat(product, number=args.number, repeat=args.repeat)) / args.number * 1e6

                stacked = best(lambda: sequence @ weight)
                rows = best(lambda: (sequence.reshape(-1, inner) @ weight).reshape(steps, batch, outer))
            right = f"({outer}, {inner})^T" if transposed else f"({inner}, {outer})"
            print(f"| {what} | ({steps}, {batch}, {inner}) × {right} | {threads} | {stacked:.0f} | {rows:.0f} | {rows / stacked:.2f} |", flush=True)


if __name__ == "__main__":
    main()
