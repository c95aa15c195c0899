"""Which way round a step's hidden product runs faster in NumPy's BLAS: the (B, G·H) rows, or their transpose.

    python bench/product_orientation.py [--rounds 20] [--gates 4] [--sizes 32x512 16x512 ...]

A recurrent step multiplies a⟨t−1⟩ (B, H) by W_hh^T into a (B, G·H) block,
and going back the gate gradients (B, G·H) by W_hh into (B, H). The same
numbers come out transposed from W_hh a⟨t−1⟩^T (G·H, B) and W_hh^T d^T
(H, B): the same work, but OpenBLAS splits it between its threads by the
output's shape, so the two orders can differ in speed. For each batch ×
hidden size, ms per product, the orders alternating round by round (the
median of --rounds rounds of 10 calls). The transposed forward's block is
not yet in the rows the step's loop reads: the "+ back" column adds turning
it back (NumPy, with the input's projection added in the same pass, as the
step adds it). docs/performance.md ("A Zen 3 host") says what the figures
decided: the step keeps the row order.
"""
from __future__ import annotations

import common  # noqa: F401  first: drops the slow-BLAS variables before NumPy loads
from common import batch_by_hidden, describe_machine, time_alternating

import argparse

import numpy as np

SIZES = [(8, 512), (16, 512), (32, 512), (48, 512), (64, 512), (32, 128), (32, 256), (32, 1024)]  # (B, H)
CALLS = 10


def products(batch: int, hidden: int, gates: int):
    """The five timed functions: forward in rows, transposed, transposed and turned back; backward both ways."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((gates * hidden, hidden), dtype=np.float32)
    w_t = np.ascontiguousarray(w.T)
    h = rng.standard_normal((batch, hidden), dtype=np.float32)
    x_t = rng.standard_normal((batch, gates * hidden), dtype=np.float32)
    d_gates = rng.standard_normal((batch, gates * hidden), dtype=np.float32)
    rows, block_t, block = np.empty_like(x_t), np.empty((gates * hidden, batch), np.float32), np.empty_like(x_t)
    d_h, d_h_t = np.empty((batch, hidden), np.float32), np.empty((hidden, batch), np.float32)

    def repeat(product):
        def calls():
            for _ in range(CALLS):
                product()
        return calls

    def forward_rows():
        np.matmul(h, w_t, out=rows)

    def forward_transposed():
        np.matmul(w, h.T, out=block_t)

    def forward_turned_back():
        np.matmul(w, h.T, out=block_t)
        np.add(block_t.T, x_t, out=block)

    def backward_rows():
        np.matmul(d_gates, w, out=d_h)

    def backward_transposed():
        np.matmul(w_t, d_gates.T, out=d_h_t)
        d_h[...] = d_h_t.T

    forward_turned_back()
    backward_transposed()
    assert np.allclose(block - x_t, h @ w_t, rtol=1e-4, atol=1e-2) and np.allclose(d_h, d_gates @ w, rtol=1e-4, atol=1e-2)
    return [repeat(f) for f in (forward_rows, forward_transposed, forward_turned_back, backward_rows, backward_transposed)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--gates", type=int, default=4, help="G: 4 for an LSTM, 3 for a GRU, 1 for an RNN")
    parser.add_argument("--sizes", nargs="+", type=batch_by_hidden, default=SIZES, help="BATCHxHIDDEN, e.g. 32x512")
    args = parser.parse_args()
    print(describe_machine())
    print(f"\nms per product, G = {args.gates}, the median of {args.rounds} rounds of {CALLS} calls, the orders alternating\n")
    print("| B | H | forward rows | transposed | ratio | + back | ratio | backward rows | transposed | ratio |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for batch, hidden in args.sizes:
        ms = time_alternating(products(batch, hidden, args.gates), args.rounds, reverse_every_other=True)
        rows, transposed, back, backward_rows, backward_transposed = (m / CALLS for m in ms)
        print(f"| {batch} | {hidden} | {rows:.3f} | {transposed:.3f} | {transposed / rows:.2f} | {back:.3f} | {back / rows:.2f} "
              f"| {backward_rows:.3f} | {backward_transposed:.3f} | {backward_transposed / backward_rows:.2f} |")


if __name__ == "__main__":
    main()
