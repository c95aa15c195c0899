"""Microseconds per op, forward + backward, against PyTorch's eager mode in the same run.

    pip install -e ".[bench]" torch==2.13.0
    python bench/op_overhead.py [--repeat 7] [--number 200]

Small arrays (16 x 16) measure the per-op overhead of the Python engine;
medium ones (256 x 256) add the arithmetic. Each timing is the median over
--repeat runs of --number iterations, each iteration one forward, one
backward with a given upstream gradient, and the gradient reset. The figures
go into docs/performance.md.

The BLAS variables that slow NumPy down on some machines are dropped for this
process (bench/common.py), and the BLAS kernel in use is printed.
"""
from __future__ import annotations

import common  # noqa: F401  first: drops the slow-BLAS variables before NumPy loads

import argparse
import statistics
import timeit

import numpy as np

import tinygrad_seq as ts


# name -> (function on tensors of the first library, same on torch, number of inputs)
def cases(torch):
    return {
        "add": (lambda a, b: a + b, lambda a, b: a + b, 2),
        "mul": (lambda a, b: a * b, lambda a, b: a * b, 2),
        "matmul": (lambda a, b: a @ b, lambda a, b: a @ b, 2),
        "tanh": (lambda a: a.tanh(), lambda a: a.tanh(), 1),
        "sigmoid": (lambda a: a.sigmoid(), lambda a: a.sigmoid(), 1),
        "sum(axis=1)": (lambda a: a.sum(1), lambda a: a.sum(1), 1),
        "softmax": (lambda a: a.softmax(-1), lambda a: a.softmax(-1), 1),
        "log_softmax": (lambda a: a.log_softmax(-1), lambda a: a.log_softmax(-1), 1),
        "transpose": (lambda a: a.T, lambda a: a.T, 1),
        "rows[ids]": (lambda a: a[IDS[: a.shape[0]]], lambda a: a[torch.as_tensor(IDS[: a.shape[0]])] if torch else None, 1),
        "concat": (lambda a, b: ts.concat([a, b], 1), lambda a, b: torch.cat([a, b], 1) if torch else None, 2),
    }


IDS = np.random.default_rng(0).integers(0, 16, 256)


def time_it(step, number: int, repeat: int) -> float:
    step()  # warm up
    return statistics.median(timeit.repeat(step, number=number, repeat=repeat)) / number * 1e6


def ours(fn, arity: int, n: int, number: int, repeat: int) -> float:
    rng = np.random.default_rng(0)
    inputs = [ts.Tensor(rng.standard_normal((n, n)).astype(np.float32), requires_grad=True) for _ in range(arity)]
    upstream = fn(*inputs).data.copy()

    def step():
        fn(*inputs).backward(upstream)
        for x in inputs:
            x.grad = None

    return time_it(step, number, repeat)


def theirs(torch, fn, arity: int, n: int, number: int, repeat: int) -> float:
    rng = np.random.default_rng(0)
    inputs = [torch.tensor(rng.standard_normal((n, n)).astype(np.float32), requires_grad=True) for _ in range(arity)]
    upstream = torch.ones_like(fn(*inputs))

    def step():
        fn(*inputs).backward(upstream)
        for x in inputs:
            x.grad = None

    return time_it(step, number, repeat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--number", type=int, default=200)
    args = parser.parse_args()
    torch = common.reference_torch()
    common.print_header(torch)
    print("| op | shape | tinygrad_seq µs | torch µs | ratio |")
    print("|---|---|---:|---:|---:|")
    for name, (fn, torch_fn, arity) in cases(torch).items():
        for n in (16, 256):
            number = args.number if n == 16 else max(10, args.number // 10)
            mine = ours(fn, arity, n, number, args.repeat)
            if torch is not None:
                reference = theirs(torch, torch_fn, arity, n, number, args.repeat)
                print(f"| {name} | {n}x{n} | {mine:.1f} | {reference:.1f} | {mine / reference:.2f} |")
            else:
                print(f"| {name} | {n}x{n} | {mine:.1f} | - | - |")


if __name__ == "__main__":
    main()
