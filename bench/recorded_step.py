"""A user's cell on the recorded path (one node per step) against the transparent path, forward + backward.

    python bench/recorded_step.py [--repeat 7] [--number 5]

The cell is a minimal gated unit written as docs/cells.md shows (an
``__init__`` and a ``forward``, no kernel): z = σ(·), a⟨t⟩ = (1 − z) a⟨t−1⟩ +
z tanh(·). B16, T64, H64 (input 64), float32. Each timing is the best of
--repeat runs of --number iterations of one forward and one backward of the
summed outputs, gradients reset. The BLAS variables that slow NumPy down on
some machines are dropped for this process (bench/common.py), and the BLAS
kernel in use is printed.
"""
from __future__ import annotations

import common  # noqa: F401  first: drops the slow-BLAS variables before NumPy loads

import argparse
import contextlib
import statistics
import timeit

import numpy as np

import tinygrad_seq as ts
from tinygrad_seq import nn


class MinimalGatedUnit(nn.RecurrentCell):
    """z = σ(W_z [x, a] + b_z), a⟨t⟩ = (1 − z) a⟨t−1⟩ + z tanh(W_c [x, a] + b_c)."""

    def __init__(self, input_size, hidden_size):
        super().__init__(input_size, hidden_size)
        self.gate_parameters(gates=2, bias=True)
        self.reset_parameters()

    def forward(self, x, state=None):
        a_prev = self.prepare(x, state)
        z, candidate = ts.chunk(self.input_projection(x) + self.hidden_projection(a_prev), 2, axis=-1)
        z = nn.gate(z.sigmoid(), "update")
        return (1 - z) * a_prev + z * candidate.tanh()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--number", type=int, default=5)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=64)
    args = parser.parse_args()
    common.print_header(None)
    ts.manual_seed(0)
    layer = nn.Recurrent(MinimalGatedUnit(args.hidden, args.hidden))
    x = ts.Tensor(np.random.default_rng(0).standard_normal((args.steps, args.batch, args.hidden)).astype(np.float32), requires_grad=True)

    def run(transparent: bool):
        def once():
            with ts.transparent() if transparent else contextlib.nullcontext():
                out, _ = layer(x)
            out.sum().backward()
            layer.zero_grad()
            x.grad = None
        once()
        once()  # the recorded path records and checks its tape on the first two calls
        return min(timeit.repeat(once, "gc.enable()", number=args.number, repeat=args.repeat)) / args.number * 1e3  # min: this 2-core machine is shared, noise only adds

    transparent = run(True)
    recorded = run(False)
    print(f"minimal gated unit, B{args.batch} T{args.steps} H{args.hidden} float32, forward + backward:")
    print(f"  transparent  {transparent:8.2f} ms")
    print(f"  recorded     {recorded:8.2f} ms   ({transparent / recorded:.2f}x)")


if __name__ == "__main__":
    main()
