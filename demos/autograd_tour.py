"""A tour of the autograd engine: a 3-step RNN built by hand from primitive ops.

In the course notation, with one example as column vectors:

    a⟨t⟩ = tanh(W_aa a⟨t-1⟩ + W_ax x⟨t⟩ + b_a)        a⟨0⟩ = 0
    ŷ⟨t⟩ = softmax(W_ya a⟨t⟩ + b_y)
    L    = Σ_t -log ŷ⟨t⟩[y⟨t⟩]

The same weights are used at every time step, so backpropagation through time
adds up one gradient contribution per step. The tour runs the backward pass
one node at a time, prints every parameter's gradient and dL/da⟨t⟩ for each
step, and proves the gradients right with a float64 finite-difference check.

Run:  python demos/autograd_tour.py
"""
from __future__ import annotations

import common
import numpy as np

import tinygrad_seq as ts
from tinygrad_seq.engine import backward_iter

N_X, N_A, N_Y = 3, 4, 2  # input size, hidden size, number of classes


def make_parameters(dtype: str = "float32") -> dict[str, ts.Tensor]:
    """W_ax (n_a, n_x), W_aa (n_a, n_a), b_a (n_a, 1), W_ya (n_y, n_a), b_y (n_y, 1), drawn N(0, 0.5²)."""
    shapes = {"W_ax": (N_A, N_X), "W_aa": (N_A, N_A), "b_a": (N_A, 1), "W_ya": (N_Y, N_A), "b_y": (N_Y, 1)}
    return {name: ts.Tensor(ts.randn(*shape, dtype=dtype).data * 0.5, requires_grad=True, name=name) for name, shape in shapes.items()}


def rnn_loss(params: dict[str, ts.Tensor], xs: list[ts.Tensor], ys: list[int]) -> tuple[ts.Tensor, list[ts.Tensor]]:
    """Unroll the RNN over ``xs`` (each (n_x, 1)); returns the summed loss and the hidden states a⟨1..T⟩."""
    a = ts.zeros(N_A, 1, dtype=params["W_aa"].dtype)
    states, loss = [], 0.0
    for t, (x, y) in enumerate(zip(xs, ys), start=1):
        with ts.tags(t=t):
            a = (params["W_aa"] @ a + params["W_ax"] @ x + params["b_a"]).tanh()
            a.name = f"a⟨{t}⟩"
            log_y_hat = (params["W_ya"] @ a + params["b_y"]).log_softmax(axis=0)
            loss = loss - log_y_hat[y, 0]
        states.append(a)
    return loss, states


def main(argv: list[str] | None = None) -> None:
    parser = common.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_backend_option(parser)
    common.use_backend_option(parser.parse_args(argv))
    ts.manual_seed(0)
    params = make_parameters()
    xs = [ts.Tensor(np.array([[1.0], [0.0], [-1.0]]) * t, dtype="float32") for t in (1.0, 0.5, -0.5)]
    ys = [0, 1, 1]

    loss, states = rnn_loss(params, xs, ys)
    for a in states:
        a.retain_grad()
    print(f"loss L = {loss.item():.4f}\n")

    print("backward, one node at a time (the last time step first):")
    steps = list(backward_iter(loss))
    for step in steps[:12]:
        sent = ", ".join("-" if g is None else str(tuple(g.shape)) for g in step.input_grads)
        print(f"  t={step.tags.get('t', '-')}  {step.op:<10} grad {str(tuple(step.grad.shape)):<7} -> {sent}")
    print(f"  ... {len(steps)} steps in all\n")

    np.set_printoptions(precision=4, suppress=True)
    for name, p in params.items():
        print(f"dL/d{name} =\n{p.backend.to_host(p.grad)}\n")
    for t, a in enumerate(states, start=1):
        print(f"|dL/da⟨{t}⟩| = {np.linalg.norm(a.backend.to_host(a.grad)):.4f}")

    # The same function in float64, checked against central differences.
    params64 = {name: p.double().detach().requires_grad_() for name, p in params.items()}
    xs64 = [x.double() for x in xs]
    names = list(params64)
    ok = ts.grad_check(lambda *ps: rnn_loss(dict(zip(names, ps)), xs64, ys)[0], list(params64.values()))
    print(f"\nfinite-difference check of every gradient in float64: {'passed' if ok else 'FAILED'}")


if __name__ == "__main__":
    common.run(main)
