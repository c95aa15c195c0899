"""How fast an LSTM training step could be while keeping one graph node per cell step: the floor of the design.

    python bench/step_floor.py [--steps 400] [--config "B1 T25 H100"]

The step is bench/lm_step.py's (Embedding -> LSTM -> Linear, cross-entropy,
backward, clipping, Adam; float32). It is split in two:

- **the recurrence as run**: the T LSTMStep nodes, forward (each kernel
  ``step`` call, node made) and backward (each node's turn in the engine,
  from one yielded BackwardStep to the next, W_hh's and b_hh's deferred
  products included);
- **the rest**: everything else in the step (the embedding, the input
  projection, the loop's tags, the output layer, the loss, the engine's
  topological order, clipping, Adam).

It then times what a step node cannot do without: T nodes that do nothing
(the same inputs, forward and backward through ``Function.apply`` and the
engine: the cost of having a node at all), and the compiled kernels alone
on raw arrays (ops/loops.py's forward and backward of every step, with the
arrays they write, and the W_hh and b_hh gradient products). **The floor**
is the rest + the nodes that do nothing + the kernels alone: the step if the
step op's own Python (its checks, lazy gradients, buffers) cost nothing.
PyTorch's step, timed alternating with ours in the same run, is the
yardstick; the ratio of the floor to it is as low as the design can go
without making the rest cheaper as well.
"""
from __future__ import annotations

import common  # noqa: F401  first: drops the slow-BLAS variables before NumPy loads

import argparse
import statistics
import time

import numpy as np

import tinygrad_seq as ts
from common import describe_machine, reference_torch
from lm_step import CONFIGS, TURN_PAUSE_S, VOCABULARY, our_model, their_step
from tinygrad_seq import blas, engine
from tinygrad_seq.function import Function
from tinygrad_seq.nn import fused
from tinygrad_seq.ops import loops
from tinygrad_seq.ops.cell_steps import product_in_loop


class DoNothing(Function):
    """A step node that computes nothing: the LSTMStep's inputs in, the state out, its gradient passed back."""

    __slots__ = ()

    def forward(self, projected, state_prev, w_hh, b_hh, w_ci, w_cf, w_co, *, running, t):
        return state_prev

    def backward(self, grad):
        return None, grad, None, None, None, None, None


def median_us(times: list[float]) -> float:
    return statistics.median(times) * 1e6


class OurSteps:
    """Our training step, each split as it runs: (whole step, the LSTMStep nodes forward, the same nodes backward) µs."""

    def __init__(self, batch: int, steps: int, hidden: int, layers: int, bidirectional: bool) -> None:
        ts.manual_seed(0)
        self.model = our_model(ts, "lstm", hidden, layers, bidirectional)
        self.opt = ts.optim.Adam(self.model.parameters(), lr=1e-3)
        self.ids, self.targets = np.random.default_rng(0).integers(0, VOCABULARY, (2, steps, batch))

    def __call__(self) -> tuple[float, float, float]:
        forward_spent = [0.0]
        step_op = fused.LSTMKernel.step

        def timed_step(kernel, *args):
            start = time.perf_counter()
            out = step_op(kernel, *args)
            forward_spent[0] += time.perf_counter() - start
            return out

        fused.LSTMKernel.step = timed_step
        try:
            begin = time.perf_counter()
            self.opt.zero_grad()
            loss = ts.nn.functional.cross_entropy(self.model(self.ids), self.targets)
            backward_spent, mark = 0.0, time.perf_counter()
            for visited in engine.backward_iter(loss):  # what loss.backward() runs, one node at a time
                now = time.perf_counter()
                if visited.op == "LSTMStep":
                    backward_spent += now - mark
                mark = now
            ts.optim.clip_grad_norm_(self.model.parameters(), 5.0)
            self.opt.step()
            whole = time.perf_counter() - begin
        finally:
            fused.LSTMKernel.step = step_op
        return whole * 1e6, forward_spent[0] * 1e6, backward_spent * 1e6


def by_turns(ours: OurSteps, theirs, repeats: int, turn: int = 20) -> tuple[list[tuple[float, float, float]], list[float]]:
    """``repeats`` steps of each library, taking turns of ``turn`` steps back to back after a pause (the other's
    threads asleep by then), the first step of each turn not counted: each alone, both under the same load."""
    our_times, their_times = [], []
    while len(our_times) < repeats:
        time.sleep(TURN_PAUSE_S)
        our_times += [ours() for _ in range(turn + 1)][1:]
        time.sleep(TURN_PAUSE_S)
        for i in range(turn + 1):
            start = time.perf_counter()
            theirs()
            if i:
                their_times.append((time.perf_counter() - start) * 1e6)
    return our_times, their_times


def nodes_doing_nothing(batch: int, steps: int, hidden: int, chains: int, repeats: int) -> float:
    """µs of ``chains`` × ``steps`` DoNothing nodes in one chain, forward and backward."""
    rng = np.random.default_rng(0)

    def leaf(*shape):
        return ts.Tensor(rng.standard_normal(shape).astype(np.float32), requires_grad=True)

    projected, state, w_hh, b_hh = leaf(steps, batch, 4 * hidden), leaf(2, batch, hidden), leaf(4 * hidden, hidden), leaf(4 * hidden)
    seed = np.ones((2, batch, hidden), np.float32)
    times = []
    for repeat in range(repeats + 20):
        start = time.perf_counter()
        carried = state
        for t in range(chains * steps):
            carried = DoNothing.apply(projected, carried, w_hh, b_hh, None, None, None, running=None, t=t % steps)
        carried.backward(seed)
        if repeat >= 20:
            times.append(time.perf_counter() - start)
    return median_us(times)


def kernel_steps(batch: int, steps: int, hidden: int, rng: np.random.Generator):
    """One layer direction's T steps, forward and backward, as the kernels run them on raw arrays: ops/loops.py's
    loops, the hidden product inside them where ops/cell_steps.product_in_loop says so, else by BLAS on the threads
    a layer's loop uses; then W_hh's and b_hh's gradient products over all steps."""
    projected = rng.standard_normal((steps, batch, 4 * hidden)).astype(np.float32)
    w_hh = (rng.standard_normal((4 * hidden, hidden)) * 0.1).astype(np.float32)
    w_hh_t, b_hh = np.ascontiguousarray(w_hh.T), np.zeros(4 * hidden, np.float32)
    start_state = np.zeros((2, batch, hidden), np.float32)
    d_out = np.ones((steps, batch, hidden), np.float32)
    in_loop = product_in_loop(batch, w_hh)

    def run():
        states, blocks = [start_state], []
        for t in range(steps):
            block, state = np.empty((batch, 4 * hidden), np.float32), np.empty_like(start_state)
            if in_loop:
                loops.lstm_step_forward(projected[t], b_hh, states[-1][0], w_hh_t, states[-1][1], block, state)
            else:
                gates = states[-1][0] @ w_hh_t
                gates += projected[t]
                gates += b_hh
                loops.lstm_forward(gates, states[-1][1], block, state)
            states.append(state)
            blocks.append(block)
        d_gates_all = np.empty((steps, batch, 4 * hidden), np.float32)  # as GradientRows: the rows, in one array
        d_state = np.zeros_like(start_state)
        for t in reversed(range(steps)):
            d_h = d_state[0] + d_out[t]
            d_state_prev = np.empty_like(start_state)
            if in_loop:
                loops.lstm_step_backward(d_h, d_state[1], blocks[t], states[t + 1][1], states[t][1], w_hh, d_gates_all[t], d_state_prev)
            else:
                loops.lstm_backward(d_h, d_state[1], blocks[t], states[t + 1][1], states[t][1], d_gates_all[t], d_state_prev[1])
                np.matmul(d_gates_all[t], w_hh, out=d_state_prev[0])
            d_state = d_state_prev
        rows = d_gates_all.reshape(-1, 4 * hidden)
        d_w_hh = rows.T @ np.stack([s[0] for s in states[:-1]]).reshape(-1, hidden)
        d_b_hh = rows.sum(axis=0)
        assert d_w_hh.shape == w_hh.shape and d_b_hh.shape == b_hh.shape

    return run, blas.step_threads(batch, [w_hh])


def kernels_alone(batch: int, steps: int, hidden: int, chains: int, repeats: int) -> float:
    """µs of ``chains`` layer directions' kernel_steps."""
    rng = np.random.default_rng(0)
    runs = [kernel_steps(batch, steps, hidden, rng) for _ in range(chains)]
    times = []
    for repeat in range(repeats + 20):
        start = time.perf_counter()
        for run, threads in runs:
            with blas.limited(threads):
                run()
        if repeat >= 20:
            times.append(time.perf_counter() - start)
    return median_us(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400, help="timed training steps (median)")
    parser.add_argument("--config", default="B1 T25 H100", choices=list(CONFIGS), help="a configuration of bench/lm_step.py")
    args = parser.parse_args()
    torch = reference_torch()
    if torch is None:
        raise SystemExit("step_floor.py: PyTorch is the yardstick; pip install torch==2.13.0")
    batch, steps, hidden, layers, bidirectional = CONFIGS[args.config]
    chains = layers * (2 if bidirectional else 1)  # layer directions, each a chain of T step nodes
    print(describe_machine())
    print(f"torch: {torch.__version__} ({torch.get_num_threads()} threads)\n")
    our_times, their_times = by_turns(OurSteps(batch, steps, hidden, layers, bidirectional), their_step(torch, "lstm", batch, steps, hidden, layers, bidirectional),
                                      args.steps)
    ours_us, forward_us, backward_us = (statistics.median(column) for column in zip(*our_times))
    theirs_us = statistics.median(their_times)
    rest_us = statistics.median(whole - forward - backward for whole, forward, backward in our_times)
    nothing_us = nodes_doing_nothing(batch, steps, hidden, chains, args.steps)
    kernels_us = kernels_alone(batch, steps, hidden, chains, args.steps)
    floor_us = rest_us + nothing_us + kernels_us
    rows = [
        ("tinygrad_seq's step", ours_us),
        ("PyTorch's step", theirs_us),
        (f"the recurrence as run: {chains * steps} LSTMStep nodes, forward", forward_us),
        (f"the recurrence as run: {chains * steps} LSTMStep nodes, backward", backward_us),
        ("the rest of the step", rest_us),
        (f"{chains * steps} nodes that do nothing, forward and backward", nothing_us),
        ("the compiled kernels alone, forward and backward", kernels_us),
        ("the floor: the rest + nodes doing nothing + kernels", floor_us),
    ]
    print(f"LSTM {args.config}, median of {args.steps} steps\n")
    print("| part | µs | / PyTorch's step |\n|---|---:|---:|")
    for label, us in rows:
        print(f"| {label} | {us:.0f} | {us / theirs_us:.2f} |")


if __name__ == "__main__":
    main()
