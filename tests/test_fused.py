"""The fused path (default) against the transparent one (the reference): equal to 1e-10 in float64."""
import contextlib
import copy

import numpy as np
import pytest

import tinygrad_seq as ts
from tinygrad_seq import nn
from tinygrad_seq.engine import topological_order

from .cell_variants import CELLS

from .conftest import to_host

pytestmark = pytest.mark.usefixtures("backend")  # every test on NumPy and on the strict device backend (conftest)


WRAPPERS = {
    "recurrent": lambda cell: nn.Recurrent(cell),
    "reverse_batch_first": lambda cell: nn.Recurrent(cell, reverse=True, batch_first=True),
    "bidirectional": lambda cell: nn.Bidirectional(nn.Recurrent(cell)),
    "stacked": lambda cell: nn.Stacked([nn.Bidirectional(nn.Recurrent(cell)), nn.Recurrent(nn.LSTMCell(8, 4))]),
}


def run(model, x, state, lengths, transparent):
    inputs = ts.Tensor(x, requires_grad=True)
    parts = [ts.Tensor(p, requires_grad=True) for p in state] if state is not None else None
    with ts.transparent() if transparent else contextlib.nullcontext():
        initial = None if parts is None else model.cell.from_parts(tuple(parts))  # only plain Recurrent models get one
        out, final = model(inputs, initial, lengths=lengths)
    finals = _flatten(final)
    weights = np.random.default_rng(9)
    loss = (out * ts.Tensor(weights.standard_normal(out.shape))).sum()
    for f in finals:
        loss = loss + (f * ts.Tensor(weights.standard_normal(f.shape))).sum()
    loss.backward()
    grads = to_host([inputs.grad] + [p.grad for p in parts or []] + [p.grad for p in model.parameters()])
    return [out.numpy()] + [f.numpy() for f in finals], grads


def _flatten(state):
    if isinstance(state, ts.Tensor):
        return [state]
    return [t for part in state for t in _flatten(part)]


@pytest.mark.parametrize("wrapper", WRAPPERS)
@pytest.mark.parametrize("make_cell", CELLS.values(), ids=list(CELLS))
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
def test_fused_equals_transparent(make_cell, wrapper, with_lengths):
    ts.manual_seed(0)
    ts.set_default_dtype("float64")
    model = WRAPPERS[wrapper](make_cell())
    twin = copy.deepcopy(model)
    rng = np.random.default_rng(1)
    batch_first = wrapper == "reverse_batch_first"
    x = rng.standard_normal((3, 5, 3) if batch_first else (5, 3, 3))
    lengths = [5, 2, 4] if with_lengths else None
    state = None
    if wrapper in ("recurrent", "reverse_batch_first"):
        state = [rng.standard_normal((3, 4)) for _ in model.cell.state_names]
    fused_values, fused_grads = run(model, x, state, lengths, transparent=False)
    plain_values, plain_grads = run(twin, x, state, lengths, transparent=True)
    for a, b in zip(fused_values, plain_values):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    assert len(fused_grads) == len(plain_grads)
    for i, (a, b) in enumerate(zip(fused_grads, plain_grads)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=f"gradient {i}")


def test_fused_is_one_node_per_step_and_can_be_turned_off():
    x = ts.randn(6, 2, 3)
    out, _ = nn.Recurrent(nn.GRUCell(3, 4))(x)
    ops = [t.grad_fn.name for t in topological_order(out.sum())[0]]
    assert ops.count("GRUStep") == 6 and "Sigmoid" not in ops
    out, _ = nn.Recurrent(nn.GRUCell(3, 4, fused=False))(x)
    ops = [t.grad_fn.name for t in topological_order(out.sum())[0]]
    assert "GRUStep" not in ops and ops.count("Sigmoid") == 12
    assert "fused=False" in repr(nn.LSTMCell(2, 2, fused=False))


@pytest.mark.parametrize("kernels", [True, False], ids=["kernel", "recorded"])
def test_a_packed_states_outputs_are_gathered_in_one_node(kernels):
    """An LSTM's a⟨t⟩ is part 0 of each packed (a, c)⟨t⟩: one StackPart reads every step's state, with no
    slice per step, and the ended sequences' outputs are zeros there as on the transparent path."""
    ts.set_default_dtype("float64")
    layer = nn.Recurrent(nn.LSTMCell(3, 4))
    x, lengths = ts.randn(5, 3, 3), [5, 2, 4]
    with contextlib.nullcontext() if kernels else ts.without_kernels():
        for _ in range(3):  # on the recorded path: record, check, then replay a trusted tape
            out, _ = layer(x, lengths=lengths)
    step_op = "LSTMStep" if kernels else "RecordedStep"
    assert out.grad_fn.name == "StackPart" and [t.grad_fn.name for t in out.grad_fn.inputs] == [step_op] * 5
    ops = [t.grad_fn.name for t in topological_order(out.sum())[0]]
    assert "GetItem" not in ops and "Where" not in ops
    assert not to_host(out.data)[2:, 1].any()  # the second sequence ended after 2 steps
    with ts.transparent():
        expected, _ = layer(x, lengths=lengths)
    np.testing.assert_allclose(to_host(out.data), to_host(expected.data), rtol=1e-12, atol=1e-14)


