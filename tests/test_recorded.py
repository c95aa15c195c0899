"""The recorded path (a user's cell as one node per step, replayed from a tape) against the transparent one."""
import contextlib
import copy
import sys
import warnings

import numpy as np
import pytest

import tinygrad_seq as ts
from tinygrad_seq import nn, viz
from tinygrad_seq.nn.recorded import RecordingWarning

from .conftest import ForgetsTheTuple, to_host

pytestmark = pytest.mark.usefixtures("backend")  # every test on NumPy and on the strict device backend (conftest)


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


class InputScaled(nn.RecurrentCell):
    """Gates from x⟨t⟩ elementwise (x⟨t⟩₀ ⊙ w, broadcast) and from x⟨t⟩ @ W: both batch over time."""

    def __init__(self, input_size, hidden_size):
        super().__init__(input_size, hidden_size)
        self.weight_in = nn.Parameter(ts.zeros(input_size, hidden_size))
        self.scale = nn.Parameter(ts.zeros(hidden_size))
        self.weight_hh = nn.Parameter(ts.zeros(hidden_size, hidden_size))
        self.reset_parameters()

    def forward(self, x, state=None):
        a_prev = self.prepare(x, state)
        z = nn.gate((x[:, :1] * self.scale + 0.5).sigmoid(), "update")
        candidate = (x @ self.weight_in + a_prev @ self.weight_hh.T).tanh()
        return z * a_prev + (1 - z) * candidate


class Concatenating(nn.RecurrentCell):
    """tanh([x⟨t⟩, a⟨t−1⟩] W^T + b): x⟨t⟩ enters through a concat with the state, so nothing batches."""

    def __init__(self, input_size, hidden_size):
        super().__init__(input_size, hidden_size)
        self.weight = nn.Parameter(ts.zeros(hidden_size, input_size + hidden_size))
        self.bias = nn.Parameter(ts.zeros(hidden_size))
        self.reset_parameters()

    def forward(self, x, state=None):
        a_prev = self.prepare(x, state)
        return ts.ops.linear(ts.concat([x, a_prev], axis=-1), self.weight, self.bias).tanh()


CELLS = {"gated": GatedUnit, "min_gru": MinGRUCell, "memory": MemoryCell, "input_scaled": InputScaled,
         "concatenating": Concatenating}
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
    return [out.numpy(), to_host(inputs.grad)] + [to_host(p.grad) for p in model.parameters()], out


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
    in_loop = [node.op for node in viz.trace(out.sum()).nodes.values() if "t" in node.tags]
    assert in_loop.count("RecordedStep") == 10 and set(in_loop) <= {"RecordedStep", "Where", "GetItem"}  # one node per step, two layers of 5


def graph_nodes(tensor):
    """Every op node behind ``tensor``."""
    found, stack = {}, [tensor]
    while stack:
        fn = stack.pop().grad_fn
        if fn is not None and id(fn) not in found:
            found[id(fn)] = fn
            stack.extend(arg for arg in fn.inputs if isinstance(arg, ts.Tensor))
    return list(found.values())


@pytest.mark.parametrize("given_state", [False, True])
@pytest.mark.parametrize("cell", CELLS)
def test_a_call_mixing_checked_and_batched_steps_equals_transparent(cell, given_state):
    """Without a given state, the second call's first step (an initial state without grad: a tape of its own)
    is still checked on x⟨1⟩ while the later steps read the projection that the trusted tape of the others
    allows. A given initial state that requires grad gets its gradient."""
    ts.set_default_dtype("float64")
    model = nn.Stacked([nn.Recurrent(CELLS[cell](3, 4)), nn.Recurrent(CELLS[cell](4, 4), reverse=True)])
    twin = copy.deepcopy(model)
    x = np.random.default_rng(2).standard_normal((6, 3, 3))
    start = [tuple(np.random.default_rng(i).standard_normal((3, 4)) for _ in layer.cell.state_names) for i, layer in enumerate(model.layers)]

    def run_with_state(model, transparent, calls):
        for _ in range(calls):
            model.zero_grad()
            inputs = ts.Tensor(x, requires_grad=True)
            states = [[ts.Tensor(p, requires_grad=True) for p in parts] for parts in start] if given_state else []
            given = [model.layers[i].cell.from_parts(tuple(parts)) for i, parts in enumerate(states)] or None
            with ts.transparent() if transparent else contextlib.nullcontext():
                out, _ = model(inputs, given, lengths=[6, 1, 4])
            (out * ts.Tensor(np.random.default_rng(9).standard_normal(out.shape))).sum().backward()
        return to_host([out.numpy(), inputs.grad] + [p.grad for parts in states for p in parts] + [p.grad for p in model.parameters()])

    expected = run_with_state(twin, True, 1)
    for calls in (1, 1, 1):  # records, checks (and batches what a trusted tape allows), replays batched
        assert_same(run_with_state(model, False, calls), expected)


def recorded_steps(out):
    return sorted((fn for fn in graph_nodes(out) if fn.name == "RecordedStep"), key=lambda fn: fn.t)


def test_input_terms_of_all_steps_are_one_node_before_the_loop():
    ts.set_default_dtype("float64")
    layer = nn.Recurrent(GatedUnit(3, 4))
    x = ts.Tensor(np.random.default_rng(1).standard_normal((5, 2, 3)))
    first, _ = layer(x)  # records; steps read x⟨t⟩ and replay every op
    unbatched = recorded_steps(first)
    assert all(node.inputs[0] is x for node in unbatched)
    layer(x)  # checks the replay
    out, _ = layer(x)
    steps = recorded_steps(out)
    projection = steps[0].inputs[0]
    assert projection.shape == (5, 2, 8) and all(node.inputs[0] is projection for node in steps)
    assert projection.grad_fn.name == "Linear" and projection.grad_fn.inputs[0] is x  # x W_ih^T + b_ih, all steps at once
    assert "t" not in projection.grad_fn.tags
    linears = [fn for fn in graph_nodes(out) if fn.name == "Linear"]
    assert len(linears) == 1  # and none per step
    full = unbatched[-1].tape
    loop = steps[-1].tape
    assert [op.cls.__name__ for op in full.ops].count("Linear") == 2
    assert [op.cls.__name__ for op in loop.ops].count("Linear") == 1 and len(loop.ops) == len(full.ops) - 1
    assert steps[-1].inputs[2:] == (layer.cell.weight_hh, layer.cell.bias_hh)  # W_ih is not the step's (running is a keyword)


@pytest.mark.parametrize("cell, batched", [(MinGRUCell, ["Linear", "GetItem", "GetItem", "Sigmoid", "Sub", "Mul"]),
                                           (InputScaled, ["GetItem", "Mul", "Add", "Sigmoid", "MatMul", "Sub"]),
                                           (Concatenating, [])])
def test_what_is_batched(cell, batched):
    """The state-independent ops the tape shows, and only those, run before the loop."""
    layer = nn.Recurrent(cell(3, 4))
    x = ts.randn(5, 2, 3, requires_grad=True)
    for _ in range(3):
        out, _ = layer(x)
    steps = recorded_steps(out)
    before = [fn.name for fn in graph_nodes(out) if "t" not in fn.tags]
    for op in batched:
        before.remove(op)
    assert "Sigmoid" not in [op.cls.__name__ for op in steps[-1].tape.ops] or not batched
    if batched:
        assert steps[-1].inputs[0] is not x
    else:
        assert all(node.inputs[0] is x for node in steps) and "Linear" not in before


def test_one_node_per_step_tagged_like_a_kernel_step():
    outputs, _ = nn.Recurrent(MemoryCell(3, 4))(ts.randn(6, 2, 3))
    steps = [n for n in viz.trace(outputs.sum()).nodes.values() if n.op == "RecordedStep"]
    assert sorted(n.tags["t"] for n in steps) == list(range(1, 7))
    assert all(n.tags["cell"] == "MemoryCell" and n.tags["role"] == "state" and n.tags["parts"] == ("a", "m") for n in steps)
    with ts.transparent():
        outputs, _ = nn.Recurrent(MemoryCell(3, 4))(ts.randn(6, 2, 3))
    assert "RecordedStep" not in [n.op for n in viz.trace(outputs.sum()).nodes.values()]


def flow_keys_like_transparent(layer, x, warm_up=0):
    """viz.gradient_flow of the last output, on ``layer``'s own path (after ``warm_up`` calls) and on the
    transparent path of a copy, asserted equal; returns the flow's (part, layer, direction) keys."""
    twin = copy.deepcopy(layer)
    for _ in range(warm_up):
        layer(x)
    flows = viz.gradient_flow(layer(x)[0][-1].sum())
    with ts.transparent():
        expected = viz.gradient_flow(twin(x)[0][-1].sum())
    assert sorted(flows) == sorted(expected)
    for key in flows:
        np.testing.assert_allclose(flows[key], expected[key], rtol=1e-10)
    return sorted(flows)


def test_gradient_flow_and_stepper_see_the_recorded_step():
    ts.set_default_dtype("float64")
    layer = nn.Recurrent(MemoryCell(3, 4))
    x = ts.randn(5, 2, 3)
    assert flow_keys_like_transparent(layer, x) == [("a", 0, "forward"), ("m", 0, "forward")]
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


class AroundLSTM(nn.RecurrentCell):
    """A cell of yours built around a built-in LSTMCell (which runs its kernel), with a residual."""

    state_names = ("a", "c")

    def __init__(self, input_size, hidden_size):
        super().__init__(input_size, hidden_size)
        self.inner = nn.LSTMCell(input_size, hidden_size)

    def forward(self, x, state=None):
        a, c = self.prepare(x, state)
        a_new, c_new = self.inner(x, (a, c))
        return a_new + 0.1 * a, c_new


@pytest.mark.parametrize("batch", [2, 130])  # 130 rows: the kernel copies W_hh^T for its one step
def test_a_wrapped_built_in_cell_sees_its_weights_change(batch):
    """The kernel's copy of W_hh^T, made for one call, must not be replayed in later calls after an update."""
    ts.set_default_dtype("float64")
    layers = [nn.Recurrent(AroundLSTM(3, 4)) for _ in range(2)]
    layers[1].load_state_dict(layers[0].state_dict())
    rng = np.random.default_rng(0)
    for call in range(3):
        x = rng.standard_normal((3, batch, 3))
        outputs = []
        for layer, transparent in zip(layers, (False, True)):
            with ts.transparent() if transparent else contextlib.nullcontext():
                out, _ = layer(ts.Tensor(x))
            out.sum().backward()
            outputs.append(to_host(out.data))
            for p in layer.parameters():  # an SGD step, in place
                p.data -= 0.5 * p.grad
                p.grad = None
        np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-12, atol=1e-12)


class Permuting(GatedUnit):
    """Reads one block of its gates through an index array and a slice at once (g[rows, :H])."""

    def forward(self, x, state=None):
        a = self.prepare(x, state)
        g = self.input_projection(x) + self.hidden_projection(a)
        rows = np.arange(g.shape[0])[::-1].copy()
        z = g[rows, : self.hidden_size].sigmoid()
        return z * a + (1 - z) * g[:, self.hidden_size :].tanh()


class Rejoining(GatedUnit):
    """Cuts its gate block into chunks and also reads the block itself (every other column): the block's
    gradient is the chunks' joined plus that slice's, added into one buffer."""

    def forward(self, x, state=None):
        a = self.prepare(x, state)
        g = self.input_projection(x) + self.hidden_projection(a)
        z, candidate = ts.chunk(g, 2, axis=-1)
        z = z.sigmoid()
        return (1 - z) * a + z * candidate.tanh() + 0.1 * g[:, ::2]


def replays_like_transparent(cell):
    """Record, check and replay ``cell`` in float64; the replay's outputs and gradients equal the transparent path's."""
    ts.set_default_dtype("float64")
    model = nn.Recurrent(cell(3, 4))
    x = np.random.default_rng(2).standard_normal((5, 3, 3))
    got, expected = run(model, x, None, transparent=False, calls=3), run(copy.deepcopy(model), x, None, transparent=True)
    assert_same(got[0], expected[0])
    return model.cell


def test_an_index_array_beside_a_slice_is_replayed_like_transparent():
    replays_like_transparent(Permuting)


def test_a_gate_block_read_whole_and_in_chunks_is_replayed_like_transparent():
    cell = replays_like_transparent(Rejoining)
    assert any(tape.chunked() for tape in trusted_tapes(cell))  # both ways of reading the block were replayed


class WithUnusedParameter(GatedUnit):
    """A parameter the step never reads (kept for later, or left over): it gets no gradient, on every path."""

    def __init__(self, input_size, hidden_size):
        super().__init__(input_size, hidden_size)
        self.spare = nn.Parameter(ts.zeros(4, 5))


def test_a_parameter_the_step_never_reads_gets_no_gradient():
    ts.set_default_dtype("float64")
    model = nn.Recurrent(WithUnusedParameter(3, 4))
    x = np.random.default_rng(3).standard_normal((5, 2, 3))
    twin = copy.deepcopy(model)
    for layer, transparent in ((model, False), (twin, True)):
        for _ in range(3):  # record, check, replay
            layer.zero_grad()
            with ts.transparent() if transparent else contextlib.nullcontext():
                out, _ = layer(ts.Tensor(x))
            out.sum().backward()
        assert layer.cell.spare.grad is None and layer.cell.weight_hh.grad is not None
    np.testing.assert_allclose(to_host(model.cell.weight_hh.grad), to_host(twin.cell.weight_hh.grad), rtol=1e-10)


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


@pytest.mark.parametrize("wrap", [lambda layer: layer, lambda layer: nn.Stacked([layer]), lambda layer: nn.Bidirectional(layer)],
                         ids=["Recurrent", "Stacked", "Bidirectional"])
def test_a_recording_warning_points_at_the_users_call(wrap):
    """The warning names the line that called the layer, however deep in the library the step that warns runs."""
    model = wrap(nn.Recurrent(Dropping(3, 4)))
    with pytest.warns(RecordingWarning, match="random numbers") as caught:
        line = sys._getframe().f_lineno + 1
        model(ts.randn(5, 2, 3))
    places = [(w.filename, w.lineno) for w in caught if w.category is RecordingWarning]
    assert places and set(places) == {(__file__, line)}  # Bidirectional: one warning per direction's cell


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
    x = np.abs(np.random.default_rng(1).standard_normal((5, 2, 3), dtype=np.float32)) + np.float32(0.1)
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
    first = [to_host(p.grad).copy() for p in layer.parameters()]
    loss.backward()
    for p, g in zip(layer.parameters(), first):
        np.testing.assert_allclose(to_host(p.grad), 2 * g, rtol=1e-12)
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


@pytest.mark.parametrize("cell", [GatedUnit, MemoryCell, MinGRUCell, InputScaled, Concatenating])
def test_check_cell_checks_the_recorded_path(cell):
    assert ts.testing.check_cell(cell(3, 4))


def test_check_cell_fails_a_cell_whose_recording_differs():
    class Flipping(GatedUnit):
        def forward(self, x, state=None):
            new = super().forward(x, state)
            return new if ts.settings.transparent else new * 1.5  # what no real cell does: two paths differ

    with pytest.raises(AssertionError, match="recorded"):
        ts.testing.check_cell(Flipping(3, 4))


def trusted_tapes(cell):
    """Every tape of the cell that runs generated code: the trusted recordings, and the loop tapes
    ``recorded_tapes`` splits from them (working out every split now, so none is made after this)."""
    from tinygrad_seq.nn.recorded import _tapes, recorded_tapes
    from tinygrad_seq.nn.tape import Tape
    whole = [tape for tape in _tapes[cell].values() if isinstance(tape, Tape) and tape.trusted]
    return list({id(tape): tape for tape in whole + recorded_tapes(cell)}.values())


@pytest.mark.parametrize("cell", [*CELLS.values(), Permuting, Rejoining, WithUnusedParameter, AroundLSTM])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_generated_replay_equals_the_interpreted_one_bit_for_bit(cell, dtype):
    """A trusted tape runs as generated Python (nn/tape_code.py); the interpreter it replaces is the reference."""
    ts.set_default_dtype(dtype)
    model = nn.Bidirectional(nn.Recurrent(cell(3, 4)))
    twin = copy.deepcopy(model)
    x = np.random.default_rng(4).standard_normal((5, 3, 3)).astype(dtype)
    generated = run(model, x, [5, 2, 4], transparent=False, calls=3)[0]
    run(twin, x, [5, 2, 4], transparent=False, calls=2)  # records and checks: now trusted, with code
    tapes = [tape for layer in (twin.forward_layer, twin.backward_layer) for tape in trusted_tapes(layer.cell)]
    assert tapes and all(tape.code is not None for tape in tapes)
    for tape in tapes:
        tape.code = None  # back to the interpreter
    interpreted = run(twin, x, [5, 2, 4], transparent=False)[0]
    for i, (a, b) in enumerate(zip(generated, interpreted)):
        if a is None or b is None:
            assert a is None and b is None, f"value {i}"
        else:
            np.testing.assert_array_equal(a, b, err_msg=f"value {i}")


def test_the_generated_code_reads_as_the_ops_in_order():
    layer = nn.Recurrent(GatedUnit(3, 4))
    for _ in range(2):
        layer(ts.randn(5, 2, 3))
    tape = trusted_tapes(layer.cell)[0]
    source = tape.code.source
    calls = [line.rsplit("# ", 1)[1] for line in source.splitlines() if ".__new__(" in line]  # each op's name in a comment
    chunks = tape.chunked()  # the gate block's two chunks: plain views, their gradients joined
    assert len(chunks) == 2 and source.count("['index']]; f") == 2
    assert calls == [op.cls.__name__ for j, op in enumerate(tape.ops) if j not in chunks]
    assert "def forward(fixed, transposed):" in source and "def backward(tape, fns, likes, seeds, tags):" in source
    assert source.count(".backward(g[") == sum(tape.slot_needs[tape.first_result + j] for j in range(len(tape.ops)) if j not in chunks)


def scaling_op(name):
    """An op class made by a factory, its name whatever the factory gives (not an identifier here)."""

    def forward(self, x, *, factor):
        self.factor = factor
        return x * factor

    def backward(self, grad):
        return (grad * self.factor,)

    return type(name, (ts.Function,), {"__slots__": ("factor",), "forward": forward, "backward": backward})


class NamedOddly(GatedUnit):
    """Uses ops whose class names are not identifiers, or are names the generated code uses itself."""

    ops = [scaling_op(name) for name in ("Scale-2", "fixed", "tape", "g", "class", "v3", "None", "two\nlines")]

    def forward(self, x, state=None):
        new = super().forward(x, state)
        for op in self.ops:
            new = op.apply(new, factor=1.0)
        return new


def test_any_op_class_name_compiles():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the code is generated: no fallback warning
        cell = replays_like_transparent(NamedOddly)
    assert all(tape.code is not None for tape in trusted_tapes(cell))


def test_new_gradient_needs_rewrite_the_code():
    layer = nn.Recurrent(GatedUnit(3, 4))
    for _ in range(2):
        layer(ts.randn(5, 2, 3))
    tape = trusted_tapes(layer.cell)[0]
    before = tape.code
    tape.set_needs(tuple(False for _ in range(tape.n_fixed)))
    assert tape.code is not before and ".backward(" not in tape.code.source  # nothing needs a gradient now


class Counting3(nn.RecurrentCell):
    """Three parts, of which n (a step counter) never reaches the output a⟨t⟩."""

    state_names = ("a", "c", "n")

    def __init__(self, input_size, hidden_size):
        super().__init__(input_size, hidden_size)
        self.gate_parameters(gates=2, bias=True)
        self.reset_parameters()

    def forward(self, x, state=None):
        a, c, n = self.prepare(x, state)
        z, candidate = ts.chunk(self.input_projection(x) + self.hidden_projection(a), 2, axis=-1)
        c = z.sigmoid() * c + candidate.tanh()
        return c.tanh(), c, n + 1.0


def test_gradient_flow_leaves_out_a_part_no_gradient_reaches_on_both_paths():
    ts.set_default_dtype("float64")
    layer = nn.Recurrent(Counting3(3, 4))
    # two calls first, to record and check: the flow compared comes from replayed steps
    assert flow_keys_like_transparent(layer, ts.randn(5, 2, 3), warm_up=2) == [("a", 0, "forward"), ("c", 0, "forward")]


def test_a_tape_whose_code_fails_to_compile_is_interpreted_with_a_warning(monkeypatch):
    from tinygrad_seq.nn import tape_code

    def broken(self, tape):
        raise SyntaxError("a bug in the generator")

    monkeypatch.setattr(tape_code.TapeCode, "__init__", broken)
    with pytest.warns(RecordingWarning, match="could not be written out as code.*a bug in the generator"):
        cell = replays_like_transparent(GatedUnit)
    assert all(tape.trusted and tape.code is None for tape in trusted_tapes(cell))


@pytest.mark.parametrize("cell", ["gated", "input_scaled"])  # one value batched, (T, B, 8); two joined, (T, 2 * 4 + 2 * 4)
def test_replayed_steps_write_the_projection_gradient_into_one_array_that_becomes_it(cell):
    """As the kernels' step ops do: each replayed step writes its row of the batched projection's gradient
    into one array (GradientRows), which the projection's node receives as its gradient. The gradients
    equal the transparent path's."""
    from tinygrad_seq.engine import backward_iter
    from tinygrad_seq.lazy_grad import StepRowsGrad

    ts.set_default_dtype("float64")
    layer = nn.Recurrent(CELLS[cell](3, 4))
    x = ts.randn(5, 2, 3, requires_grad=True)
    for _ in range(2):  # records and checks the tape
        layer(x)
    out, _ = layer(x)
    loss = (out * out).sum()
    sources, blocks, received = set(), [], []
    for step in backward_iter(loss):
        if step.node.name == "RecordedStep":
            sent = step.input_grads
            assert isinstance(sent[0], StepRowsGrad)
            sources.add(id(step.node.inputs[0]))
            blocks.append(sent[0].block.array)
        elif id(step.tensor) in sources:  # the projection the steps read
            received.append(step.grad)
    assert len(sources) == 1 and len(blocks) == 5 and len(received) == 1 and all(b is received[0] for b in blocks)
    got = [to_host(p.grad).copy() for p in layer.parameters()] + [to_host(x.grad).copy()]
    layer.zero_grad()
    x.grad = None
    with ts.transparent():
        out, _ = layer(x)
    (out * out).sum().backward()
    for a, b in zip(got, [to_host(p.grad) for p in layer.parameters()] + [to_host(x.grad)]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


class BatchMixing(ts.Function):
    """y = mix @ a for a constant (B, B) ``mix``, sending a's gradient mix.T @ g as an OuterGrad (a lazy kind)."""

    __slots__ = ("mix",)

    def forward(self, a, *, mix):
        self.mix = mix
        return mix @ a

    def backward(self, grad):
        from tinygrad_seq.lazy_grad import OuterGrad

        return (OuterGrad(self.mix, grad, grad.shape),)


class MixingCell(GatedUnit):
    """GatedUnit whose state first passes an op that sends its gradient as factors."""

    def forward(self, x, state=None):
        a_prev = self.prepare(x, state)
        mix = a_prev.backend.xp.asarray(np.eye(a_prev.shape[0]) * 0.5 + 0.25, dtype=a_prev.dtype)
        return super().forward(x, BatchMixing.apply(a_prev, mix=mix))


def test_a_lazy_gradient_sent_to_the_state_inside_a_replayed_step_is_kept():
    """An op inside the step may send the previous state's gradient as a lazy kind (here an OuterGrad): the
    replay adds it in, as the transparent path's engine does."""
    ts.set_default_dtype("float64")
    model = nn.Recurrent(MixingCell(3, 4))
    x = np.random.default_rng(5).standard_normal((5, 2, 3))
    h0 = ts.Tensor(np.random.default_rng(6).standard_normal((2, 4)), requires_grad=True)

    def grads(transparent):
        model.zero_grad()
        h0.grad = None
        inputs = ts.Tensor(x, requires_grad=True)
        with ts.transparent() if transparent else contextlib.nullcontext():
            out, _ = model(inputs, h0)
        (out * out).sum().backward()
        return [to_host(inputs.grad), to_host(h0.grad)] + [to_host(p.grad) for p in model.parameters()]

    for _ in range(2):
        grads(transparent=False)  # records and checks the tape
    assert_same(grads(transparent=False), grads(transparent=True))


def test_a_warning_points_at_the_users_call_when_the_package_is_imported_through_a_symlink(tmp_path):
    import os
    import subprocess
    from pathlib import Path

    package = Path(ts.__file__).resolve().parent
    linked = tmp_path / "linked"
    linked.mkdir()
    os.symlink(package, linked / "tinygrad_seq")
    script = tmp_path / "user.py"
    script.write_text("import warnings, tinygrad_seq as ts\nfrom tinygrad_seq import nn\nwarnings.simplefilter('always')\n"
                      "with warnings.catch_warnings(record=True) as caught:\n    warnings.simplefilter('always')\n"
                      "    nn.LSTM(2, 3, dropout=0.5)\nprint(caught[0].filename, caught[0].lineno)\n")
    env = {**os.environ, "PYTHONPATH": str(linked)}
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, check=True)
    assert result.stdout.split() == [str(script), "6"]


class _Summed(ts.Function):
    """A user's op whose backward forgets to broadcast back: a (B, H) input gets an (H,) gradient."""

    __slots__ = ()

    def forward(self, x):
        return x * 1

    def backward(self, grad):
        return (grad.sum(axis=0),)


@pytest.mark.parametrize("op, message", [
    (ForgetsTheTuple, r"^ForgetsTheTuple\.backward returned a ndarray, not a tuple: .*`return \(grad,\)`"),
    (_Summed, r"^_Summed\.backward: gradient of shape \(4,\) for an input of shape \(2, 4\); each gradient must have its input's shape"),
])
def test_a_users_op_with_a_wrong_backward_fails_on_the_default_path_as_on_the_transparent_one(op, message):
    class Scaled(nn.RecurrentCell):
        state_names = ("a",)

        def __init__(self, input_size, hidden_size):
            super().__init__(input_size, hidden_size)
            self.weight = nn.Parameter(ts.randn(hidden_size, input_size + hidden_size).data * 0.1)

        def forward(self, x, state):
            return op.apply(ts.concat([state, x], axis=-1) @ self.weight.T).tanh()

    ts.manual_seed(0)
    cell = Scaled(3, 4)
    for context in (contextlib.nullcontext, ts.transparent):  # the replay read row 0 of the array, or broadcast the (4,)
        with context(), pytest.raises(RuntimeError, match=message):
            outputs, _ = nn.Recurrent(cell)(ts.randn(5, 2, 3))
            outputs.sum().backward()
