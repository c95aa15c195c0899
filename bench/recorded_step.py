"""A cell's three paths (kernel, recorded, transparent), forward + backward, in one run.

    python bench/recorded_step.py [--repeat 7] [--number 5] [--hidden 64]
    python bench/recorded_step.py --cpu-time [--rounds 25]

1. A user's cell, a minimal gated unit written as docs/cells.md shows (an
   ``__init__`` and a ``forward``, no kernel): z = σ(·), a⟨t⟩ = (1 − z)
   a⟨t−1⟩ + z tanh(·): the recorded path (its default) against transparent.
2. The built-in SimplifiedGRUCell, the same shape of work with a
   hand-written kernel, and the built-in LSTMCell: kernel, recorded
   (``ts.without_kernels()``) and transparent.
3. Your cell's recorded path against SimplifiedGRUCell's kernel, the two
   timed in one alternating group (wall clock: one after the other): the
   ratio issue 21 asks to be within 1.5.

B16, T64, H64 (input H), float32. By default each timing is the best of
--repeat runs of --number iterations of one forward and one backward of the
summed outputs, gradients reset (wall clock). On a shared machine wall-clock
ratios swing by tens of percent; ``--cpu-time`` measures the process's CPU
time instead, on one BLAS thread, with the paths alternating --rounds times
and the best of each kept, and adds an "interpreted" column: the same
recorded step replayed by the tape's interpreter instead of its generated
code (nn/tape_code.py), which is what that code buys; for the LSTM, also
its kernel without the compiled loops of ops/loops.py (``ts.without_numba``),
the kernel issue 18's ratio was first measured against. The BLAS variables
that slow NumPy down on some machines are dropped for this process
(bench/common.py), and the BLAS kernel in use is printed.
"""
from __future__ import annotations

import common  # noqa: F401  first: drops the slow-BLAS variables before NumPy loads

import argparse
import contextlib
import copy
import time
import timeit

import numpy as np
from threadpoolctl import threadpool_limits

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


NUMPY_KERNEL = "kernel without numba"  # the kernel's NumPy equations (ts.without_numba): what the loops of ops/loops.py replace
CELLS_WITH_LOOPS = (nn.LSTMCell, nn.GRUCell)


def strip_generated_code(cell) -> None:
    """Make ``cell``'s tapes replay through the interpreter (the reference) instead of their generated code."""
    from tinygrad_seq.nn.recorded import _tapes, recorded_tapes
    from tinygrad_seq.nn.tape import Tape

    whole = [tape for tape in _tapes.get(cell, {}).values() if isinstance(tape, Tape)]
    for tape in whole + recorded_tapes(cell):  # recorded_tapes makes every loop tape now: none gets code after this
        tape.code = None


def wall_clock(layers: dict, x, args) -> dict:
    """Best wall-clock ms of each (layer, path), one after the other."""
    def timed(layer, path):
        def once():
            with ts.testing.on_path(path):
                out, _ = layer(x)
            out.sum().backward()
            layer.zero_grad()
            x.grad = None
        once()
        once()  # the recorded path records and checks its tape on the first two calls
        return min(timeit.repeat(once, "gc.enable()", number=args.number, repeat=args.repeat)) / args.number * 1e3  # min: this 2-core machine is shared, noise only adds

    return {name: timed(layer, path) for name, (layer, path) in layers.items()}


def cpu_time(layers: dict, x, args) -> dict:
    """Best CPU-time ms of each (layer, path), alternating, on one BLAS thread."""
    def once(layer, path):
        numpy_passes = path == NUMPY_KERNEL
        with ts.testing.on_path("kernel" if numpy_passes else path), ts.without_numba() if numpy_passes else contextlib.nullcontext():
            layer(x)[0].sum().backward()  # the graph is released inside the timing, as in a training loop
        layer.zero_grad()
        x.grad = None

    with threadpool_limits(1, user_api="blas"):
        for name, (layer, path) in layers.items():
            once(layer, path)
            once(layer, path)  # recorded and checked
            if name == "interpreted":
                strip_generated_code(layer.cell)
        times = common.time_alternating([lambda layer=layer, path=path: once(layer, path) for layer, path in layers.values()],
                                        args.rounds, clock=time.process_time, pick=min, warm_up=0)
    return dict(zip(layers, times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--number", type=int, default=5)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--cpu-time", action="store_true", help="CPU time, one BLAS thread, paths alternating")
    parser.add_argument("--rounds", type=int, default=25, help="with --cpu-time: how many times each path runs")
    args = parser.parse_args()
    common.print_header(None)
    ts.manual_seed(0)
    x = ts.Tensor(np.random.default_rng(0).standard_normal((args.steps, args.batch, args.hidden)).astype(np.float32), requires_grad=True)
    measure = cpu_time if args.cpu_time else wall_clock
    how = "CPU time, 1 BLAS thread, alternating" if args.cpu_time else "wall clock"
    print(f"B{args.batch} T{args.steps} H{args.hidden} float32, forward + backward, ms ({how}):")
    cells = [("minimal gated unit (yours)", MinimalGatedUnit), ("SimplifiedGRUCell", nn.SimplifiedGRUCell), ("LSTMCell", nn.LSTMCell)]
    for name, make in cells:
        layer = nn.Recurrent(make(args.hidden, args.hidden))
        layers = {"interpreted": (copy.deepcopy(layer), "recorded")} if args.cpu_time else {}
        layers.update((path, (layer, path)) for path in ts.testing.paths(layer.cell) + ["transparent"])
        if args.cpu_time and make in CELLS_WITH_LOOPS:
            layers[NUMPY_KERNEL] = (layer, NUMPY_KERNEL)
        times = measure(layers, x, args)
        kernel = f"kernel {times['kernel']:7.2f}   " if "kernel" in times else " " * 18
        ratio = f"  recorded/kernel {times['recorded'] / times['kernel']:.2f}" if "kernel" in times else ""
        if NUMPY_KERNEL in times:
            ratio += f" (kernel without numba {times[NUMPY_KERNEL]:.2f}: recorded/that {times['recorded'] / times[NUMPY_KERNEL]:.2f})"
        interpreted = f"   interpreted {times['interpreted']:7.2f}" if "interpreted" in times else ""
        print(f"  {name:28s} {kernel}recorded {times['recorded']:7.2f}{interpreted}   transparent {times['transparent']:7.2f}   "
              f"transparent/recorded {times['transparent'] / times['recorded']:.2f}{ratio}")
    # The target of issue 21: a user's cell on the recorded path within 1.5x of a built-in kernel of the same shape of
    # work. Timed in one alternating group, so that the machine's load is the same for both.
    pair = {"yours": (nn.Recurrent(MinimalGatedUnit(args.hidden, args.hidden)), "recorded"),
            "kernel": (nn.Recurrent(nn.SimplifiedGRUCell(args.hidden, args.hidden)), "kernel")}
    times = measure(pair, x, args)
    print(f"  the minimal gated unit, recorded / SimplifiedGRUCell's kernel, timed alternating: {times['yours'] / times['kernel']:.2f}")


if __name__ == "__main__":
    main()
