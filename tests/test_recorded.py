"""The recorded path (a user's cell as one node per step, replayed from a tape) against the transparent one."""
import contextlib
import copy

import numpy as np
import pytest

import tinygrad_seq as ts
from tinygrad_seq import nn, viz
from tinygrad_seq.nn.recorded import RecordingWarning


class GatedUnit(nn.RecurrentCell):
    """A minimal gated unit: z = σ(·), a⟨t⟩ = (1 − z) a⟨t−1⟩ + z tanh(·)."""

    def __init__(self, input_size, hidden_size):
        super().__init__(input_size, hidden_size)
        self.gate_parameters(gates=2, bias=True)
        self.reset_parameters()

    def forward(self, x, state=None):
        a_prev = self.prepare(x, state)
        z, candidate = ts.chunk(self.input_projection(x) + self.hidden_projection(a_prev), 2, axis=-1)
        z = nn.gate(z.sigmoid(), "update")
        return (1 - z) * a_prev + z * candidate.tanh()


class MinGRUCell(nn.RecurrentCell):  # docs/cells.md
    def __init__(self, input_size, hidden_size):
        super().__init__(input_size, hidden_size)
        self.weight_ih = nn.Parameter(ts.zeros(2 * hidden_size, input_size))
        self.bias_ih = nn.Parameter(ts.zeros(2 * hidden_size))
        self.reset_parameters()

    def forward(self, x, state=None):
        a_prev = self.prepare(x, state)
        z, candidate = ts.chunk(self.input_projection(x), 2, axis=-1)
        z = nn.gate(z.sigmoid(), "update")
        return (1 - z) * a_prev + z * nn.gate(candidate, "candidate")


class MemoryCell(nn.RecurrentCell):  # docs/cells.md
    state_names = ("a", "m")

    def __init__(self, input_size, hidden_size):
        super().__init__(input_size, hidden_size)
        self.gate_parameters(gates=3, bias=True)
        self.reset_parameters()

    def forward(self, x, state=None):
        a_prev, m_prev = self.prepare(x, state)
        keep, write, candidate = ts.chunk(self.input_projection(x) + self.hidden_projection(a_prev), 3, axis=-1)
        keep = nn.gate(keep.sigmoid(), "keep")
        m = keep * m_prev + (1 - keep) * nn.gate(candidate.tanh(), "candidate")
        return nn.gate(write.sigmoid(), "output") * m.tanh(), m


CELLS = {"gated": GatedUnit, "min_gru": MinGRUCell, "memory": MemoryCell}
WRAPPERS = {
    "bidirectional": lambda make: nn.Bidirectional(nn.Recurrent(make(3, 4))),
    "stacked": lambda make: nn.Stacked([nn.Recurrent(make(3, 4)), nn.Recurrent(make(4, 4), reverse=True)]),
}


def run(model, x, lengths, transparent, calls=1):
    """Outputs and every gradient of the last of ``calls`` forward + backward passes."""
    for _ in range(calls):
        model.zero_grad()
        inputs = ts.Tensor(x, requires_grad=True)
        with ts.transparent() if transparent else contextlib.nullcontext():
            out, _ = model(inputs, lengths=lengths)
        (out * ts.Tensor(np.random.default_rng(9).standard_normal(out.shape))).sum().backward()
    return [out.numpy(), inputs.grad] + [p.grad for p in model.parameters()], out


def assert_same(got, expected):
    assert len(got) == len(expected)
    for i, (a, b) in enumerate(zip(got, expected)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=f"value {i}")


@pytest.mark.parametrize("wrapper", WRAPPERS)
@pytest.mark.parametrize("cell", CELLS)
def test_recorded_equals_transparent_with_lengths(cell, wrapper):
    ts.set_default_dtype("float64")
    model = WRAPPERS[wrapper](CELLS[cell])
    twin = copy.deepcopy(model)
    x = np.random.default_rng(1).standard_normal((5, 3, 3))
    # Three calls: the first records, the second checks the replay, the third replays a trusted tape.
    recorded, out = run(model, x, [5, 2, 4], transparent=False, calls=3)
    assert_same(recorded, run(twin, x, [5, 2, 4], transparent=True)[0])
    nodes = [node for node in viz.trace(out.sum()).nodes.values() if node.op]
    in_loop = [node.op for node in nodes if "t" in node.tags]
    assert in_loop.count("RecordedStep") == 10 and set(in_loop) <= {"RecordedStep", "Where", "GetItem"}  # one node per step, two layers of 5
    # x W_ih^T + b_ih of every step in one node per layer and direction, before the loop
    assert [node.op for node in nodes].count("Linear") == 2


def test_one_node_per_step_tagged_like_a_kernel_step():
    outputs, _ = nn.Recurrent(MemoryCell(3, 4))(ts.randn(6, 2, 3))
    steps = [n for n in viz.trace(outputs.sum()).nodes.values() if n.op == "RecordedStep"]
    assert sorted(n.tags["t"] for n in steps) == list(range(1, 7))
    assert all(n.tags["cell"] == "MemoryCell" and n.tags["role"] == "state" and n.tags["parts"] == ("a", "m") for n in steps)
    with ts.transparent():
        outputs, _ = nn.Recurrent(MemoryCell(3, 4))(ts.randn(6, 2, 3))
    assert "RecordedStep" not in [n.op for n in viz.trace(outputs.sum()).nodes.values()]


def test_gradient_flow_and_stepper_see_the_recorded_step():
    ts.set_default_dtype("float64")
    layer = nn.Recurrent(MemoryCell(3, 4))
    twin = copy.deepcopy(layer)
    x = ts.randn(5, 2, 3)
    flows = viz.gradient_flow(layer(x)[0][-1].sum())
    with ts.transparent():
        expected = viz.gradient_flow(twin(x)[0][-1].sum())
    assert sorted(flows) == sorted(expected) == [("a", 0, "forward"), ("m", 0, "forward")]
    for key in flows:
        np.testing.assert_allclose(flows[key], expected[key], rtol=1e-10)
    steps = list(viz.backward_steps(layer(x)[0].sum()))
    assert [s.raw.op for s in steps].count("RecordedStep") == 5


def test_parameters_changed_after_recording_are_seen():
    ts.set_default_dtype("float64")
    model = nn.Bidirectional(nn.Recurrent(GatedUnit(3, 4)))
    x = np.random.default_rng(1).standard_normal((5, 2, 3))
    run(model, x, None, transparent=False, calls=3)
    for p in model.parameters():
        nn.init.uniform_(p, -1.0, 1.0)
    state = model.state_dict()
    state = {k: v * 0.5 for k, v in state.items()}
    model.load_state_dict(state)
    twin = copy.deepcopy(model)
    assert_same(run(model, x, None, transparent=False)[0], run(twin, x, None, transparent=True)[0])
    model.float()  # a new dtype: a new recording
    twin.float()
    got, expected = run(model, x.astype(np.float32), None, False)[0], run(twin, x.astype(np.float32), None, True)[0]
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


class Dropping(GatedUnit):
    def forward(self, x, state=None):
        return nn.functional.dropout(super().forward(x, state), 0.5, self.training)


class HostReading(GatedUnit):
    def forward(self, x, state=None):
        new = super().forward(x, state)
        return new * 2.0 if float(new.sum()) > 1e9 else new


class Hooked(GatedUnit):
    def forward(self, x, state=None):
        new = super().forward(x, state)
        new.register_hook(lambda grad: grad * 2.0)
        return new


class Counting(GatedUnit):
    """Branches on a Python counter: the tape records one branch, the check on the next call sees the other."""

    calls = 0

    def forward(self, x, state=None):
        self.calls += 1
        new = super().forward(x, state)
        return new.tanh() if self.calls % 2 else new.sigmoid()


@pytest.mark.parametrize("cell, reason", [(Dropping, "random numbers"), (HostReading, "host"), (Hooked, "hook"),
                                          (Counting, "branches in Python")])
def test_unfaithful_steps_warn_once_and_run_transparently(cell, reason):
    ts.set_default_dtype("float64")
    model = nn.Recurrent(cell(3, 4))
    twin = copy.deepcopy(model)
    x = np.random.default_rng(1).standard_normal((5, 2, 3))
    ts.manual_seed(3)
    with pytest.warns(RecordingWarning, match=reason) as caught:
        got = run(model, x, [5, 3], transparent=False, calls=2)[0]
    assert len(caught) == 1
    ts.manual_seed(3)
    expected = run(twin, x, [5, 3], transparent=True, calls=2)[0]
    assert_same(got, expected)


class LogOfInput(GatedUnit):
    """log(x⟨t⟩₀) depends on the input alone: it runs batched over time before the loop."""

    def forward(self, x, state=None):
        return super().forward(x, state) + x[:, :1].log()


class LogInLoop(GatedUnit):
    """log(x⟨t⟩₀ + 0·a⟨t⟩) reads the new state: it runs inside each step's node."""

    def forward(self, x, state=None):
        new = super().forward(x, state)
        return new + (x[:, :1] + 0.0 * new).log()


@pytest.mark.parametrize("cell, message", [(LogInLoop, r"Log inside a recorded cell step.*time step 4"),
                                           (LogOfInput, r"Log produced a non-finite output.*time step 4")])
def test_detect_anomaly_names_the_inner_op_and_the_time_step(cell, message):
    layer = nn.Recurrent(cell(3, 4))
    x = np.abs(np.random.default_rng(1).standard_normal((5, 2, 3))) + 0.1
    layer(ts.Tensor(x))
    layer(ts.Tensor(x))  # recorded and checked: the next call replays
    x[3, 1, 0] = -1.0
    with np.errstate(invalid="ignore"), ts.detect_anomaly(), pytest.raises(FloatingPointError, match=message):
        layer(ts.Tensor(x))


def test_retain_graph_keeps_the_tape():
    ts.set_default_dtype("float64")
    layer = nn.Recurrent(MemoryCell(3, 4))
    x = ts.randn(4, 2, 3)
    layer(x)
    out, _ = layer(x)
    loss = out.sum()
    loss.backward(retain_graph=True)
    first = [p.grad.copy() for p in layer.parameters()]
    loss.backward()
    for p, g in zip(layer.parameters(), first):
        np.testing.assert_allclose(p.grad, 2 * g, rtol=1e-12)
    with pytest.raises(RuntimeError, match="second time"):
        loss.backward()


def test_no_grad_and_eval_have_their_own_recordings():
    ts.set_default_dtype("float64")
    layer = nn.Recurrent(GatedUnit(3, 4))
    x = ts.randn(4, 2, 3)
    with ts.no_grad():
        out, _ = layer(x)
        assert not out.requires_grad
    layer.eval()
    with ts.transparent():
        expected, _ = layer(x)
    np.testing.assert_allclose(layer(x)[0].numpy(), expected.numpy(), rtol=1e-12)


@pytest.mark.parametrize("cell", [GatedUnit, MemoryCell, MinGRUCell])
def test_check_cell_checks_the_recorded_path(cell):
    assert ts.testing.check_cell(cell(3, 4))


def test_check_cell_fails_a_cell_whose_recording_differs():
    class Flipping(GatedUnit):
        def forward(self, x, state=None):
            new = super().forward(x, state)
            return new if ts.settings.transparent else new * 1.5  # what no real cell does: two paths differ

    with pytest.raises(AssertionError, match="recorded"):
        ts.testing.check_cell(Flipping(3, 4))
