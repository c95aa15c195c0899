"""Cells and the wrappers that unroll them: gradients, lengths, tags, names, registry, course notation, errors."""

import collections
import warnings

import numpy as np
import pytest

import tinygrad_seq as ts
from tinygrad_seq import nn, viz
from tinygrad_seq.engine import topological_order

from .cell_variants import CELLS, GatedCell
from .conftest import to_host

pytestmark = pytest.mark.usefixtures("backend")  # every test on NumPy and on the strict device backend (conftest)



@pytest.mark.parametrize("path", ["kernel", "recorded", "transparent"])
@pytest.mark.parametrize("make", CELLS.values(), ids=list(CELLS))
def test_check_cell(make, path):
    """Every path of every cell: finite-difference gradients of a step and through every wrapper with lengths."""
    ts.manual_seed(0)
    cell = make()
    with ts.testing.on_path(path):
        assert nn.steps.path_of(cell) == path
        # two sequences: one full, one ended after step 1 (a third was another length-1 one, and a sixth of the time)
        assert ts.testing.check_cell(cell, batch_size=2)


def test_check_cell_catches_a_broken_cell():
    class LeakyCell(nn.RecurrentCell):
        """Ignores the lengths contract by keeping a hidden copy of the state between calls."""

        def __init__(self, input_size, hidden_size):
            super().__init__(input_size, hidden_size)
            self.weight = nn.Parameter(ts.randn(hidden_size, input_size))

        def forward(self, x, state=None):
            state = self.prepare(x, state)
            return (x @ self.weight.T + state.detach()).tanh()  # detach: the gradient to the state is lost

    with pytest.raises(AssertionError, match=r"check_cell: one step's gradients: grad_check: input 1 \(a, shape \(2, 2\)\)"):
        ts.testing.check_cell(LeakyCell(3, 2))


def test_a_cell_without_prepare_starts_from_its_initial_state():
    class BareCell(nn.RecurrentCell):
        """forward reads the state as given: no self.prepare, so it relies on cell(x) to supply the start."""

        def __init__(self, input_size, hidden_size):
            super().__init__(input_size, hidden_size)
            self.gate_parameters(1, bias=True)
            self.reset_parameters()

        def forward(self, x, state=None):
            return (self.input_projection(x) + self.hidden_projection(state)).tanh()

    ts.manual_seed(0)
    cell, x = BareCell(3, 2), ts.randn(4, 3)
    np.testing.assert_array_equal(to_host(cell(x)), to_host(cell(x, cell.initial_state(4, like=x))))
    with pytest.raises(AssertionError, match=r"check_cell: state=None: forward\(x\) without a state raised AttributeError: "
                                             r".*Start forward with state = self.prepare\(x, state\)"):
        ts.testing.check_cell(cell)  # the contract still asks forward to start there itself
    with pytest.raises(ValueError, match=r"BareCell: the input must have shape \(batch, 3\); got \(4, 5\)"):
        cell(ts.randn(4, 5))


def test_check_cell_catches_a_forward_that_starts_elsewhere():
    class OnesCell(nn.RNNCell):
        def forward(self, x, state=None):
            return super().forward(x, ts.ones(x.shape[0], self.hidden_size, dtype=x.dtype) if state is None else state)

    with pytest.raises(AssertionError, match=r"check_cell: state=None: cell.forward\(x\) differs from cell.forward\(x, "):
        ts.testing.check_cell(OnesCell(3, 2, fused=False))


def _roles(tensor):
    """{(role, what) } of the tensors that made ``tensor``: what = the gate (with "1-" for a complement) or part."""
    order, _ = topological_order(tensor)
    found = set()
    for t in order:
        tags = t.tags
        if tags.get("role") == "gate":
            found.add(("gate", ("1-" if tags.get("complement") else "") + tags["gate"]))
        elif tags.get("role") == "state":
            found.add(("state", tags.get("part") or tags.get("parts")))
        elif tags.get("role") == "projection":
            found.add(("projection", tags["source"]))
        elif tags.get("role"):
            found.add((tags["role"], None))
    return found


def _labels(tensor):
    return {node.label for node in viz.trace(tensor).nodes.values()}


@pytest.fixture
def transparent():
    with ts.transparent():
        yield


def test_cells_tag_their_gates_with_roles(transparent):
    x = ts.randn(2, 3)
    with ts.tags(t=2):
        a, c = nn.LSTMCell(3, 4)(x)
    assert {("gate", "update"), ("gate", "forget"), ("gate", "candidate"), ("gate", "output")} <= _roles(a)
    assert {"Γu⟨2⟩", "Γf⟨2⟩", "c̃⟨2⟩", "Γo⟨2⟩"} <= _labels(a)  # the labels come from the roles
    with ts.tags(t=5):
        h = nn.GRUCell(3, 4)(x)
    assert {("gate", "reset"), ("gate", "1-update"), ("gate", "update"), ("gate", "candidate")} <= _roles(h)
    # z is PyTorch's 1 − Γu, and 1 − z, which the new state reads, is the course's Γu: both are drawn and named
    assert {"Γr⟨5⟩", "z⟨5⟩ = 1 − Γu⟨5⟩", "Γu⟨5⟩", "c̃⟨5⟩", "W_ax x⟨5⟩", "W_aa a⟨4⟩"} <= _labels(h)
    assert {("gate", "1-update"), ("gate", "update"), ("gate", "candidate")} <= _roles(nn.SimplifiedGRUCell(3, 4)(x))


PROJECTIONS = {("projection", "input"), ("projection", "state")}  # W_ax x⟨t⟩ and W_aa a⟨t−1⟩, all gates at once
ROLES_OF_CELLS = {  # what every built-in cell's unrolled graph holds, on both paths
    "rnn": ({("state", "a"), ("input", None), *PROJECTIONS}, {("state", "a")}),  # fused: inputs projected before the loop
    "gru": ({("state", "a"), ("input", None), ("gate", "reset"), ("gate", "1-update"), ("gate", "update"), ("gate", "candidate"),
             *PROJECTIONS}, {("state", "a")}),
    "simplified_gru": ({("state", "a"), ("input", None), ("gate", "1-update"), ("gate", "update"), ("gate", "candidate"),
                        *PROJECTIONS}, {("state", "a")}),
    "lstm": ({("state", "a"), ("state", "c"), ("input", None), ("gate", "update"), ("gate", "forget"),
              ("gate", "candidate"), ("gate", "output"), *PROJECTIONS}, {("state", ("a", "c"))}),
}


@pytest.mark.parametrize("name", list(ROLES_OF_CELLS))
def test_every_built_in_cell_carries_the_documented_roles_on_both_paths(name):
    gate_by_gate, fused = ROLES_OF_CELLS[name]
    x = ts.randn(3, 2, 3, requires_grad=True)
    with ts.transparent():
        out, _ = nn.Recurrent(nn.make_cell(name, 3, 4))(x)
    assert _roles(out) == gate_by_gate
    out, _ = nn.Recurrent(nn.make_cell(name, 3, 4))(x)
    assert fused <= _roles(out) and not any(role == "gate" for role, _ in _roles(out))


def test_a_fused_lstm_labels_its_packed_initial_state():
    out, _ = nn.Recurrent(nn.LSTMCell(3, 4), reverse=True)(ts.randn(3, 2, 3))
    assert {"←(a, c)⟨4⟩", "←(a, c)⟨1⟩"} <= _labels(out)  # the reverse direction starts from ←(a, c)⟨T+1⟩


def test_recurrent_tags_every_step_with_roles(transparent):
    x = ts.randn(3, 2, 3)
    layer = nn.Recurrent(nn.LSTMCell(3, 4), reverse=True)
    layer.layer = 1
    out, (a, c) = layer(x)
    # reverse: the last step processed is position 1
    assert a.tags == {"t": 1, "layer": 1, "direction": "reverse", "cell": "LSTMCell", "role": "state", "part": "a"}
    assert c.tags["part"] == "c" and c.tags["t"] == 1
    # layer 1 of a deep RNN is the course's a^[2] (its gates too) and reads a^[1] (its own read: ←x^[2]); reverse starts from ←a⟨T+1⟩
    assert {"←a^[2]⟨1⟩", "←a^[2]⟨3⟩", "←c^[2]⟨3⟩", "←Γf^[2]⟨3⟩", "←x^[2]⟨2⟩ = a^[1]⟨2⟩", "←a^[2]⟨4⟩", "←c^[2]⟨4⟩"} <= _labels(out)


def test_outputs_are_the_states_and_batch_first_transposes():
    ts.manual_seed(0)
    cell = nn.GRUCell(3, 4)
    x = ts.randn(5, 2, 3)
    out, final = nn.Recurrent(cell)(x)
    state = None
    for t in range(5):
        state = cell(x[t], state)
        np.testing.assert_allclose(out[t].numpy(), state.numpy(), rtol=1e-6)
    np.testing.assert_allclose(final.numpy(), state.numpy(), rtol=1e-6)
    out_bf, final_bf = nn.Recurrent(cell, batch_first=True)(x.swapaxes(0, 1))
    np.testing.assert_allclose(out_bf.numpy(), out.numpy().swapaxes(0, 1), rtol=1e-6)
    np.testing.assert_allclose(final_bf.numpy(), final.numpy(), rtol=1e-6)


def test_lengths_and_initial_state():
    ts.manual_seed(1)
    cell = nn.LSTMCell(3, 4)
    x = ts.randn(4, 3, 3)
    h0, c0 = ts.randn(3, 4), ts.randn(3, 4)
    out, (h, c) = nn.Recurrent(cell)(x, (h0, c0), lengths=[4, 1, 2])
    assert not out.numpy()[1:, 1].any() and not out.numpy()[2:, 2].any()
    alone, (h_alone, c_alone) = nn.Recurrent(cell)(x[:2, 2:3], (h0[2:3], c0[2:3]))
    np.testing.assert_allclose(h.numpy()[2], h_alone.numpy()[0], rtol=1e-6)
    np.testing.assert_allclose(c.numpy()[2], c_alone.numpy()[0], rtol=1e-6)
    np.testing.assert_allclose(out.numpy()[:2, 2], alone.numpy()[:, 0], rtol=1e-6)


def test_bidirectional_merge_modes_and_independent_weights():
    ts.manual_seed(2)
    layer = nn.Bidirectional(nn.Recurrent(nn.RNNCell(3, 4)), merge_mode=None)
    assert not np.array_equal(layer.forward_layer.cell.weight_ih.numpy(), layer.backward_layer.cell.weight_ih.numpy())
    x = ts.randn(3, 2, 3)
    (forward_out, reverse_out), (forward_final, reverse_final) = layer(x)
    np.testing.assert_allclose(reverse_final.numpy(), reverse_out.numpy()[0])  # the reverse direction ends at position 1
    np.testing.assert_allclose(forward_final.numpy(), forward_out.numpy()[-1])
    f, r = forward_out.numpy(), reverse_out.numpy()
    for mode, expected in (("concat", np.concatenate([f, r], -1)), ("sum", f + r), ("mul", f * r), ("ave", (f + r) / 2)):
        layer.merge_mode = mode
        np.testing.assert_allclose(layer(x)[0].numpy(), expected, rtol=1e-6)
    with pytest.raises(ValueError, match="merge_mode must be one of"):
        nn.Bidirectional(nn.Recurrent(nn.RNNCell(3, 4)), merge_mode="max")


def test_stacked_numbers_layers_and_drops_out_between_them_only():
    ts.manual_seed(3)
    first, second = nn.Recurrent(nn.RNNCell(3, 4)), nn.Recurrent(nn.RNNCell(4, 4))
    stacked = nn.Stacked([first, second], dropout=1.0)  # drop everything between the layers
    assert (first.layer, second.layer) == (0, 1)
    x = ts.randn(3, 2, 3)
    out, states = stacked(x)
    expected, _ = second(ts.zeros(3, 2, 4))
    np.testing.assert_allclose(out.numpy(), expected.numpy())
    assert len(states) == 2 and states[1].tags["layer"] == 1
    stacked.eval()
    out, _ = stacked(x)
    np.testing.assert_allclose(out.numpy(), second(first(x)[0])[0].numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="layer 1 expects 5 inputs but layer 0 gives 4"):
        nn.Stacked([nn.Recurrent(nn.RNNCell(3, 4)), nn.Recurrent(nn.RNNCell(5, 4))])


class Doubled(nn.Recurrent):
    """A subclass with a forward of its own: the wrappers must call it, not run the base class's loop around it."""

    def forward(self, x, state=None, lengths=None):
        out, final = super().forward(x, state, lengths)
        return out * 2, final


class TimeMeans(nn.Module):
    """A layer of the user's own inside a Stacked: batch-first, no run method; records the layout it was given."""

    input_size = output_size = 4
    batch_first = True

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x, state=None, lengths=None):
        self.seen.append(x.shape)
        return x - x.mean(axis=1, keepdims=True), None  # axis 1 is time, batch-first


@pytest.mark.parametrize("batch_first", [False, True], ids=["time_major", "batch_first"])
def test_wrappers_call_a_layer_that_is_not_theirs_as_a_user_does(batch_first):
    ts.manual_seed(4)
    x = ts.randn(*((2, 5, 3) if batch_first else (5, 2, 3)))
    first, second = Doubled(nn.RNNCell(3, 4), batch_first=batch_first), Doubled(nn.RNNCell(4, 4), batch_first=batch_first)
    out, _ = nn.Stacked([first, second])(x)
    np.testing.assert_allclose(out.numpy(), second(first(x)[0])[0].numpy(), rtol=1e-6)  # both doublings applied
    both = nn.Bidirectional(Doubled(nn.RNNCell(3, 4), batch_first=batch_first), merge_mode=None)
    (forward_out, _), _ = both(x)
    np.testing.assert_allclose(forward_out.numpy(), both.forward_layer(x)[0].numpy(), rtol=1e-6)
    mine = TimeMeans()
    layer = nn.Recurrent(nn.RNNCell(3, 4), batch_first=True)
    x = ts.randn(2, 5, 3)
    out, states = nn.Stacked([layer, mine])(x)
    assert mine.seen == [(2, 5, 4)] and states[1] is None  # given batch-first, as it asked
    np.testing.assert_allclose(out.numpy(), mine(layer(x)[0])[0].numpy(), rtol=1e-6)


class Tripled(nn.Module):
    """A layer that says nothing of its sizes: alone in a Stacked, as before, nothing checks its feature count."""

    batch_first = False

    def forward(self, x, state=None, lengths=None):
        return x * 3, None


def test_a_stack_of_one_layer_without_sizes_runs_it():
    x = ts.randn(5, 2, 7)
    out, _ = nn.Stacked([Tripled()])(x)
    np.testing.assert_allclose(out.numpy(), 3 * x.numpy())


def test_a_batch_first_stack_swaps_its_axes_once_each_way():
    lstm = nn.LSTM(3, 4, num_layers=3, batch_first=True, bidirectional=True)
    out, _ = lstm(ts.randn(2, 5, 3))
    ops = [node.grad_fn.name for node in topological_order(out.sum())[0]]
    assert ops.count("Transpose") == 1 and ops.count("LSTMStep") == 30  # the output's way back; the input has no grad


def test_stacked_names_itself_in_its_errors():
    stack = nn.Stacked([nn.Recurrent(nn.RNNCell(3, 4)), nn.Recurrent(nn.RNNCell(4, 4))], name="Encoder")
    with pytest.raises(ValueError, match=r"^Encoder: state must be a list of one state per layer \(2\); got a list of 1$"):
        stack(ts.randn(5, 2, 3), [None])
    with pytest.raises(ValueError, match=r"^Encoder: state must be a list .*; got a Tensor of shape \(2, 4\)$"):
        stack(ts.randn(5, 2, 3), ts.zeros(2, 4))  # one state for the whole stack: not split along its first axis
    with pytest.raises(ValueError, match=r"^Encoder: the input has 2 features per step; the layer expects input_size=3$"):
        stack(ts.randn(5, 2, 2))
    with pytest.raises(ValueError, match=r"^Stacked: dropout is a probability in \[0, 1\]; got True$"):
        nn.Stacked([nn.Recurrent(nn.RNNCell(3, 4))], dropout=True)
    assert nn.LSTM(3, 4, num_layers=2, dropout=np.float32(0.25)).dropout == 0.25  # a NumPy float is a number too


def test_wrappers_over_a_user_defined_cell_grad_check():
    class TinyCell(nn.RecurrentCell):
        def __init__(self, input_size, hidden_size):
            super().__init__(input_size, hidden_size)
            self.weight = nn.Parameter(ts.zeros(hidden_size, input_size + hidden_size))
            self.reset_parameters()

        def forward(self, x, state=None):
            a = self.prepare(x, state)
            return (ts.concat([x, a], axis=1) @ self.weight.T).tanh()

    ts.set_default_dtype("float64")
    cell = TinyCell(2, 3)
    model = nn.Stacked([nn.Bidirectional(nn.Recurrent(cell)), nn.Recurrent(TinyCell(6, 3), reverse=True)])
    x = ts.randn(4, 2, 2, requires_grad=True)
    assert ts.grad_check(lambda x, *p: model(x, lengths=[4, 2])[0], [x, *model.parameters()])


def test_truncated_bptt_cuts_the_graph_between_chunks():
    ts.manual_seed(4)
    layer = nn.Recurrent(nn.LSTMCell(2, 3))
    chunk1, chunk2 = ts.randn(3, 1, 2, requires_grad=True), ts.randn(3, 1, 2, requires_grad=True)
    _, state = layer(chunk1)
    state = tuple(s.detach() for s in state)  # carry the values, not the graph
    out, _ = layer(chunk2, state)
    out.sum().backward()
    assert chunk1.grad is None and chunk2.grad is not None


def test_registry():
    assert isinstance(nn.make_cell("lstm", 3, 4, peephole=True), nn.LSTMCell)
    assert type(nn.make_cell("simplified_gru", 3, 4)) is nn.SimplifiedGRUCell
    with pytest.raises(KeyError, match=r"unknown cell 'lstn'; registered cells are gru, lstm, rnn, simplified_gru.*@nn.register_cell\('lstn'\)"):
        nn.make_cell("lstn", 3, 4)
    with pytest.raises(KeyError, match=r"^\"unknown cell 'GRU'; cell names are case-sensitive: 'gru'\"$"):  # PyTorch's class name
        nn.make_cell("GRU", 3, 4)
    with pytest.raises(TypeError, match="is not a subclass of nn.RecurrentCell"):
        nn.register_cell("bad")(nn.Linear)

    @nn.register_cell("test_cell")
    class TestCell(nn.RNNCell):
        pass

    try:
        assert isinstance(nn.make_cell("test_cell", 2, 2), TestCell)
    finally:
        del ts.settings.cell_registry["test_cell"]


def test_forget_bias():
    cell = nn.init.forget_bias_(nn.LSTMCell(3, 4), 2.0)
    assert (cell.bias_ih.numpy()[4:8] == 2.0).all() and (cell.bias_hh.numpy()[4:8] == 0).all()
    assert not (cell.bias_ih.numpy()[:4] == 2.0).all()
    lstm = nn.init.forget_bias_(nn.LSTM(3, 4, num_layers=2, bidirectional=True))
    assert all((getattr(lstm, f"bias_ih_l{k}{s}").numpy()[4:8] == 1.0).all() for k in (0, 1) for s in ("", "_reverse"))
    with pytest.raises(TypeError, match="forget_bias_: GRU holds no cell with a forget gate"):
        nn.init.forget_bias_(nn.GRU(3, 4))
    with pytest.raises(ValueError, match="LSTMCell was built with bias=False"):
        nn.init.forget_bias_(nn.LSTMCell(3, 4, bias=False))


def test_forget_bias_reaches_a_users_cell_that_declares_its_forget_gate():
    class CoupledGates(nn.RNNCell):  # gate rows stacked as (forget, candidate): block 0 is the forget gate
        forget_gate = 0

        def __init__(self, input_size, hidden_size):
            nn.RecurrentCell.__init__(self, input_size, hidden_size)
            self.gate_parameters(2, True)

    model = nn.Recurrent(CoupledGates(3, 4))
    nn.init.forget_bias_(model, 1.5)
    assert (model.cell.bias_ih.numpy()[:4] == 1.5).all() and (model.cell.bias_hh.numpy()[:4] == 0).all()
    assert not (model.cell.bias_ih.numpy()[4:] == 1.5).any()


def test_a_state_that_does_not_fit_names_the_layer_it_was_given_to():
    x = ts.randn(5, 2, 3)
    stack = nn.Stacked([nn.Recurrent(nn.LSTMCell(3, 4)), nn.Recurrent(nn.LSTMCell(4, 4))])
    fits = (ts.zeros(2, 4), ts.zeros(2, 4))
    with pytest.raises(nn.StateError, match=r"^Stacked\(2 layers\): state\[1\] \(layer 1\): LSTMCell: state part c has shape \(3, 4\); "
                                            r"expected 2 tensor\(s\) \(a, c\) of shape \(2, 4\)$"):
        stack(x, [fits, (ts.zeros(2, 4), ts.zeros(3, 4))])
    with pytest.raises(nn.StateError, match=r"^Stacked\(2 layers\): state\[0\] \(layer 0\): LSTMCell: the state must be .*; got a tuple of 1$"):
        stack(x, [(ts.zeros(2, 4),), fits])
    both_ways = nn.Stacked([nn.Bidirectional(nn.Recurrent(nn.GRUCell(3, 4))), nn.Bidirectional(nn.Recurrent(nn.GRUCell(8, 4)))])
    pair = (ts.zeros(2, 4), ts.zeros(2, 4))
    with pytest.raises(nn.StateError, match=r"^Stacked\(2 layers\): state\[1\] \(layer 1\): Bidirectional\(Recurrent\(GRUCell\)\): "
                                            r"state\[1\] \(reverse\): GRUCell: state part a has shape \(2, 5\)"):
        both_ways(x, [pair, (ts.zeros(2, 4), ts.zeros(2, 5))])
    with pytest.raises(nn.StateError, match=r"^Stacked\(2 layers\): state\[1\] \(layer 1\): Bidirectional\(Recurrent\(GRUCell\)\): "
                                            r"state must be None or a pair \(forward_state, reverse_state\); got a Tensor of shape \(2, 4\)$"):
        both_ways(x, [pair, ts.zeros(2, 4)])
    out, _ = stack(x, [fits, fits])  # a state that fits still runs, and a StateError is a ValueError for older callers
    assert out.shape == (5, 2, 4) and issubclass(nn.StateError, ValueError)


def test_a_state_error_from_inside_the_steps_is_not_blamed_on_the_state_given():
    class Widening(nn.RNNCell):  # a bug of the cell's: its new state is twice too wide, checked as forward returns it
        def forward(self, x, state=None):
            state = self.prepare(x, state)
            return ts.concat([state, state], axis=-1)

    stack = nn.Stacked([nn.Recurrent(Widening(3, 4)), nn.Recurrent(nn.RNNCell(4, 4))])
    with ts.transparent():  # the cell's own forward, step by step
        with pytest.raises(nn.StateError, match=r"^Widening\.forward returned a Tensor of shape \(2, 8\); .*its part a has shape \(2, 8\)"):
            stack(ts.randn(5, 2, 3), [ts.zeros(2, 4), ts.zeros(2, 4)])  # both fit: the error is the cell's


def test_a_layers_own_state_error_is_not_renamed_when_no_state_was_given():
    class Careless(nn.Recurrent):  # runs its cell on a wrong state of its own making
        def forward(self, x, state=None, lengths=None):
            return super().forward(x, (ts.zeros(9, 4), ts.zeros(9, 4)), lengths)

    stack = nn.Stacked([Careless(nn.LSTMCell(3, 4))])
    with pytest.raises(nn.StateError, match=r"^LSTMCell: state part a has shape \(9, 4\)"):
        stack(ts.randn(5, 2, 3))


class Returning(GatedCell):
    """A cell whose forward returns ``returns(a, c)`` of its new a (and c, for two parts): right or wrong."""

    returns = staticmethod(lambda a, c: a)

    @classmethod
    def of(cls, returns, state_names=("a",)):
        return type("Bad", (cls,), {"returns": staticmethod(returns), "state_names": state_names})

    def forward(self, x, state=None):
        parts = self.state_parts(self.prepare(x, state))
        a = (self.input_projection(x) + self.hidden_projection(parts[0])).tanh()
        return self.returns(a, a * parts[-1])


WRONG_RETURNS = {  # what forward returned, the cell's state_names, and what the error says of it
    "a tuple for one part": (lambda a, c: (a, a), ("a",),
                             r"a tuple of 2; it must return the new state, one Tensor of shape \(2, 4\) \(state_names = \('a',\)\): "
                             r"return the Tensor itself, not a tuple"),
    "one tensor for two parts": (lambda a, c: a, ("a", "c"),
                                 r"a Tensor of shape \(2, 4\); it must return the new state, a tuple of 2 Tensors \(a, c\), each of "
                                 r"shape \(2, 4\) \(state_names = \('a', 'c'\)\): return one Tensor per name of state_names, in its order"),
    "no return": (lambda a, c: None, ("a",), r"None; .*: add the missing `return` of the new state at the end of forward$"),
    "an array": (lambda a, c: a.numpy(), ("a",), r"a numpy\.ndarray of shape \(2, 4\); .*not \.numpy\(\), \.data or NumPy calls"),
    "an array part": (lambda a, c: (a, c.numpy()), ("a", "c"),
                      r"a tuple of 2; .*: its part c is a numpy\.ndarray of shape \(2, 4\): compute every part with the tensor ops"),
    "a dict": (lambda a, c: {"a": a, "c": c}, ("a", "c"), r"a dict; .*: return a tuple of its parts in the order of state_names, \(a, c\)"),
    "a wrong shape": (lambda a, c: a[:, :2], ("a",),
                      r"a Tensor of shape \(2, 2\); .*: its part a has shape \(2, 2\), not \(batch, hidden_size\) = \(2, 4\) "
                      r"\(a cell whose state parts have other shapes says so by overriding initial_state and check_state\)$"),
}


@pytest.mark.parametrize("where", ["recorded", "transparent", "cell alone", "Bidirectional"])
@pytest.mark.parametrize("case", list(WRONG_RETURNS))
def test_what_forward_returns_is_checked_as_it_returns_on_every_path(case, where):
    """A forward that returns no state of its cell fails on the first step, on every path, with one message that names
    forward, what it returned, what it must return and the fix; never later, nor deep inside the library."""
    returns, names, said = WRONG_RETURNS[case]
    cell = Returning.of(returns, names)(3, 4)
    x = ts.randn(5, 2, 3)
    run = {"cell alone": lambda: cell(x[0]), "Bidirectional": lambda: nn.Bidirectional(nn.Recurrent(cell))(x)}.get(
        where, lambda: nn.Recurrent(cell)(x))
    with ts.testing.on_path("transparent" if where == "transparent" else "recorded"), warnings.catch_warnings():
        warnings.simplefilter("error")  # and no RecordingWarning first: the recording never sees it
        with pytest.raises(nn.StateError, match=r"^Bad\.forward returned " + said):
            run()


def test_a_forward_that_returns_a_state_that_fits_runs_as_before():
    """A one-element tuple or list for a one-part state fits, as it does given as a state."""
    for returns in (lambda a, c: [a], lambda a, c: (a,)):
        cell = Returning.of(returns)(3, 4)
        for path in ("recorded", "transparent"):
            with ts.testing.on_path(path):
                out, final = nn.Recurrent(cell)(ts.randn(5, 2, 3))
            assert out.shape == (5, 2, 4) and cell.state_parts(final)[0].shape == (2, 4)


def test_a_cell_with_a_check_state_of_its_own_has_its_new_state_checked_by_it():
    """A state of another shape than (B, H), which the cell's own initial_state and check_state describe, still runs
    on every path; a new state that its check_state refuses is blamed on forward, with the cell's own words."""
    class Wide(GatedCell):
        gates = 2

        def initial_state(self, batch_size, like=None):
            return ts.zeros(batch_size, 2 * self.hidden_size)

        def check_state(self, state, batch_size):
            if not isinstance(state, ts.Tensor) or state.shape != (batch_size, 2 * self.hidden_size):
                raise nn.StateError(f"Wide: the state must be ({batch_size}, {2 * self.hidden_size})")

        def output(self, state):
            return state[:, : self.hidden_size]

        def forward(self, x, state=None):
            state = self.prepare(x, state)
            return (self.input_projection(x) + self.hidden_projection(state[:, : self.hidden_size])).tanh()

    class Narrowing(Wide):
        def forward(self, x, state=None):
            return super().forward(x, state)[:, :6]

    for path in ("recorded", "transparent"):
        with ts.testing.on_path(path):
            out, final = nn.Recurrent(Wide(3, 4))(ts.randn(5, 2, 3))
            assert out.shape == (5, 2, 4) and final.shape == (2, 8) and Wide(3, 4)(ts.randn(2, 3)).shape == (2, 8)
            with pytest.raises(nn.StateError, match=r"^Narrowing\.forward returned a Tensor of shape \(2, 6\), which is not a new "
                                                    r"state of the cell: Wide: the state must be \(2, 8\)$"):
                nn.Recurrent(Narrowing(3, 4))(ts.randn(5, 2, 3))


class DictState(GatedCell):
    """A state kept as a dict {"a": ..., "c": ...}: state_parts, from_parts, initial_state and output say so."""
    state_names, gates = ("a", "c"), 2

    def initial_state(self, batch_size, like=None):
        a, c = super().initial_state(batch_size, like)
        return {"a": a, "c": c}

    def state_parts(self, state):
        return (state["a"], state["c"]) if isinstance(state, dict) else tuple(state)

    def from_parts(self, parts):
        return {"a": parts[0], "c": parts[1]}

    def output(self, state):
        return state["a"]

    def forward(self, x, state=None):
        state = self.prepare(x, state)
        i, f = ts.chunk(self.input_projection(x) + self.hidden_projection(state["a"]), 2, axis=-1)
        c = state["c"] * f.sigmoid() + i.tanh()
        return {"a": c.tanh(), "c": c}


class MixedWidths(GatedCell):
    """a (B, H) and a memory m (B, 2H): only initial_state says so."""
    state_names = ("a", "m")

    def initial_state(self, batch_size, like=None):
        return ts.zeros(batch_size, self.hidden_size), ts.zeros(batch_size, 2 * self.hidden_size)

    def forward(self, x, state=None):
        a, m = state if state is not None else self.initial_state(x.shape[0], like=x)
        a = (self.input_projection(x) + self.hidden_projection(a) + m[:, : self.hidden_size]).tanh()
        return a, ts.concat([a, m[:, : self.hidden_size]], axis=-1)


def test_a_cell_that_lays_its_state_out_its_own_way_is_read_its_way():
    """What forward returns is read by the cell's own state_parts (a dict), and a cell with its own initial_state
    has only each part's batch checked: both ran before the check existed and run still."""
    x = ts.randn(5, 2, 3)
    for path in ("recorded", "transparent"):
        with ts.testing.on_path(path):
            out, final = nn.Recurrent(DictState(3, 4))(x)
            assert out.shape == (5, 2, 4) and set(final) == {"a", "c"}
            assert DictState(3, 4)(ts.randn(2, 3))["c"].shape == (2, 4)
    assert ts.testing.check_cell(DictState(3, 4))
    with ts.transparent():
        out, (a, m) = nn.Recurrent(MixedWidths(3, 4))(x)
    assert out.shape == (5, 2, 4) and m.shape == (2, 8)

    class Unreadable(DictState):
        def forward(self, x, state=None):
            return tuple(super().forward(x, state).values())[:1]

    class Unbatched(MixedWidths):
        def forward(self, x, state=None):
            a, m = super().forward(x, state)
            return a, m.sum(axis=0)

    with pytest.raises(nn.StateError, match=r"Unreadable\.forward returned a tuple of 1; .*return one Tensor per name of "
                                            r"state_names, in its order: \(a, c\)"):
        Unreadable(3, 4)(ts.randn(2, 3))
    with pytest.raises(nn.StateError, match=r"Unbatched\.forward returned a tuple of 2; .*its part m has shape \(8,\), "
                                            r"not 2 rows, one per sequence of the batch"):
        with ts.transparent():
            nn.Recurrent(Unbatched(3, 4))(x)


class OnePartDict(GatedCell):
    """One part, kept in a dict: the default path carries it as a tensor, and hands forward the dict."""

    def initial_state(self, batch_size, like=None):
        return {"h": super().initial_state(batch_size, like)}

    def state_parts(self, state):
        return (state["h"],)

    def from_parts(self, parts):
        return {"h": parts[0]}

    def output(self, state):
        return state["h"]

    def forward(self, x, state=None):
        state = self.prepare(x, state)
        return {"h": (self.input_projection(x) + self.hidden_projection(state["h"])).tanh()}


def test_a_one_part_state_kept_its_own_way_runs_on_every_path_and_is_named_in_errors():
    x = ts.randn(5, 2, 3)
    for path in ("recorded", "transparent"):
        with ts.testing.on_path(path):
            out, final = nn.Recurrent(OnePartDict(3, 4))(x)
            assert out.shape == (5, 2, 4) and final["h"].shape == (2, 4)
    with pytest.raises(nn.StateError, match=r"^OnePartDict: the state must be what its from_parts makes; got a Tensor of "
                                            r"shape \(2, 4\) \(OnePartDict\.state_parts could not read it: IndexError: "):
        OnePartDict(3, 4)(ts.randn(2, 3), ts.zeros(2, 4))

    class ReturnsTensor(OnePartDict):
        def forward(self, x, state=None):
            return super().forward(x, state)["h"]

    with pytest.raises(nn.StateError, match=r"^ReturnsTensor\.forward returned a Tensor of shape \(2, 4\); it must return the "
                                            r"new state, what its from_parts makes of one part, each a Tensor of 2 rows "):
        ReturnsTensor(3, 4)(ts.randn(2, 3))


def test_a_check_state_of_the_cells_own_does_not_let_a_missing_return_or_a_stumble_through():
    class Lenient(nn.RNNCell):
        def check_state(self, state, batch_size):  # lets None through
            if state is not None and state.shape[0] != batch_size:
                raise nn.StateError("Lenient: wrong batch")

    class Forgetful(Lenient):
        def forward(self, x, state=None):
            super().forward(x, state)

    class Unpacking(nn.LSTMCell):
        def check_state(self, state, batch_size):
            a, c = state  # a ValueError for one tensor of 3 rows
            super().check_state((a, c), batch_size)

    class ReturnsOne(Unpacking):
        def forward(self, x, state=None):
            return super().forward(x, state)[0]

    with ts.transparent():
        with pytest.raises(nn.StateError, match=r"^Forgetful\.forward returned None; .*add the missing `return`"):
            Forgetful(3, 4)(ts.randn(2, 3))
        with pytest.raises(nn.StateError, match=r"^ReturnsOne\.forward returned a Tensor of shape \(3, 4\); .*return one "
                                                r"Tensor per name of state_names, in its order: \(a, c\)"):
            ReturnsOne(3, 4)(ts.randn(3, 3))


def test_what_forward_returns_is_checked_once_per_layer_call(monkeypatch):
    """The check costs the time loop nothing per step: on the first step of a transparent call, on the recording
    steps of the recorded path, never on a replay of a trusted tape, and not on a kernel's steps."""
    calls = []
    check = nn.RecurrentCell.check_returned
    monkeypatch.setattr(nn.RecurrentCell, "check_returned", lambda self, *args: (calls.append(1), check(self, *args))[1])
    x = ts.randn(6, 2, 3)
    for path, counts in (("transparent", [1, 1, 1, 1]), ("recorded", [1, 1, 0, 0]), ("kernel", [0, 0, 0, 0])):
        cell = nn.GRUCell(3, 4) if path == "kernel" else Returning(3, 4)
        layer = nn.Recurrent(cell)
        with ts.testing.on_path(path):
            got = []
            for _ in counts:
                calls.clear()
                layer(x)
                got.append(len(calls))
        assert got == counts, path


def test_check_cell_reports_what_forward_returned_as_an_assertion_error():
    """check_cell returns True or raises an AssertionError: also for a forward that returns no state, whatever path its
    own calls take (a kernel runs no forward), and for a step that raises; the error is its cause."""
    class KernelAndWrongForward(nn.RNNCell):  # its kernel is right; its forward, the reference, is not
        def forward(self, x, state=None):
            a = super().forward(x, state)
            return (a, a)

    class Raising(Returning):
        def forward(self, x, state=None):
            raise KeyError("weight_xh")

    for cell in (Returning.of(lambda a, c: (a, a))(3, 4), KernelAndWrongForward(3, 4)):
        with pytest.raises(AssertionError, match=r"^check_cell: the new state forward returns: \w+\.forward returned a tuple of 2; "
                                                 r"it must return the new state, one Tensor of shape \(2, 4\)") as caught:
            ts.testing.check_cell(cell)
        assert isinstance(caught.value.__cause__, nn.StateError)
    with pytest.raises(AssertionError, match=r"^check_cell: one step: running one step of the cell raised KeyError: 'weight_xh'$") as caught:
        ts.testing.check_cell(Raising(3, 4))
    assert isinstance(caught.value.__cause__, KeyError)


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: nn.RNNCell(3, 4)(ts.randn(2, 5)), ValueError, r"RNNCell: the input must have shape \(batch, 3\); got \(2, 5\)"),
        (lambda: nn.LSTMCell(3, 4)(ts.randn(2, 3), ts.randn(2, 4)), ValueError, r"LSTMCell: the state must be 2 tensor\(s\) \(a, c\) of shape \(2, 4\); got a Tensor of shape \(2, 4\)"),
        (lambda: nn.GRUCell(3, 4)(ts.randn(2, 3), ts.randn(3, 4)), ValueError, r"GRUCell: state part a has shape \(3, 4\); expected 1 tensor\(s\) \(a\) of shape \(2, 4\)"),
        (lambda: nn.RNNCell(3, 4, nonlinearity="gelu"), ValueError, r"nonlinearity must be 'tanh' or 'relu'"),
        (lambda: nn.RNNCell(0, 4), ValueError, r"^RNNCell: input_size must be an int >= 1; got 0$"),
        (lambda: nn.LSTM(3, True), ValueError, r"^LSTM: hidden_size must be an int >= 1; got True$"),
        (lambda: nn.GRU(3, 2.5), ValueError, r"^GRU: hidden_size must be an int >= 1; got 2.5$"),
        (lambda: nn.Linear(3, -1), ValueError, r"^Linear: out_features must be an int >= 0; got -1$"),
        (lambda: nn.Embedding(0, 3), ValueError, r"^Embedding: num_embeddings must be an int >= 1; got 0$"),
        (lambda: nn.Recurrent(nn.RNNCell(3, 4))(ts.randn(2, 3)), ValueError, r"the input must have 3 axes \(time, batch, features\); got shape \(2, 3\)"),
        (lambda: nn.Recurrent(nn.RNNCell(3, 4))(ts.randn(2, 1, 4)), ValueError, r"the input has 4 features per step; the layer expects input_size=3"),
        (lambda: nn.Recurrent(nn.RNNCell(3, 4))(ts.randn(2, 2, 3), lengths=[2, 0]), ValueError, r"every length must be at least 1; got 0 at index 1"),
        (lambda: nn.Recurrent(nn.RNNCell(3, 4))(ts.randn(2, 2, 3), lengths=[3, 1]), ValueError, r"length 3 at index 0 is longer than the 2 time steps"),
        (lambda: nn.Recurrent(nn.RNNCell(3, 4))(ts.randn(2, 2, 3), lengths=[1]), ValueError,
         r"lengths must be 2 ints \(one per sequence in the batch; the input of shape \(2, 2, 3\) is read as \(time, batch, features\)\)"),
        # time-major data given to a batch-first layer: the count says how the axes were read
        (lambda: nn.LSTM(3, 4, batch_first=True)(ts.randn(5, 2, 3), lengths=[5, 3]), ValueError,
         r"^LSTM: lengths must be 5 ints \(one per sequence in the batch; the input of shape \(5, 2, 3\) is read as "
         r"\(batch, time, features\)\); got \[5, 3\]$"),
        (lambda: nn.Recurrent(nn.Linear(3, 4)), TypeError, r"cell must be an nn.RecurrentCell; got Linear.*make_cell"),
        (lambda: nn.LSTM(3, 4, num_layers=2)(ts.randn(5, 2, 3), (ts.zeros(1, 2, 4), ts.zeros(2, 2, 4))), ValueError,
         r"LSTM: h0 must have shape \(num_layers \* num_directions, batch, hidden_size\) = \(2, 2, 4\); got \(1, 2, 4\)"),
        (lambda: nn.LSTM(3, 4)(ts.randn(5, 2, 3), ts.zeros(1, 2, 4)), ValueError,
         r"^LSTM: hx must be None or a pair \(h0, c0\), .*; got a Tensor of shape \(1, 2, 4\); an LSTM's state is two tensors: pass \(h0, c0\)$"),
        (lambda: nn.LSTM(3, 4)(ts.randn(5, 2, 3), [ts.zeros(1, 2, 4)] * 3), ValueError, r"^LSTM: hx must be None or a pair .*; got a list of 3$"),
        # arrays as states: the layers and cells take tensors, and say so, naming the part
        (lambda: nn.LSTM(3, 4)(ts.randn(5, 2, 3), (np.zeros((1, 2, 4)), np.zeros((1, 2, 4)))), ValueError,
         r"^LSTM: h0 must be a Tensor; got a numpy\.ndarray of shape \(1, 2, 4\): make it one, ts\.Tensor\(h0\)$"),
        (lambda: nn.LSTM(3, 4)(ts.randn(5, 2, 3), (np.zeros((2, 4)), np.zeros((2, 4)))), ValueError,  # the shape is wrong too
         r"^LSTM: h0 must have shape .* = \(1, 2, 4\); got a numpy\.ndarray of shape \(2, 4\): make it a Tensor, ts\.Tensor\(h0\)$"),
        (lambda: nn.GRUCell(3, 4)(ts.randn(2, 3), np.zeros((2, 4), np.float32)), nn.StateError,
         r"^GRUCell: the state must be 1 tensor\(s\) \(a\) of shape \(2, 4\); got a numpy\.ndarray of shape \(2, 4\): make it a Tensor, ts\.Tensor\(array\)$"),
        (lambda: nn.Recurrent(nn.GRUCell(3, 4))(ts.randn(5, 2, 3), np.zeros((2, 4), np.float32)), nn.StateError,
         r"^GRUCell: the state must be .*; got a numpy\.ndarray of shape \(2, 4\): make it a Tensor"),
        (lambda: nn.LSTMCell(3, 4)(ts.randn(2, 3), (np.zeros((2, 4)), np.zeros((2, 4)))), nn.StateError,
         r"^LSTMCell: the state must be 2 tensor\(s\) \(a, c\) of shape \(2, 4\); got a tuple of 2 whose part a is a "
         r"numpy\.ndarray of shape \(2, 4\): make each part a Tensor, ts\.Tensor\(array\)$"),
        (lambda: nn.LSTMCell(3, 4)(ts.randn(2, 3), (ts.zeros(2, 4), None)), nn.StateError,
         r"^LSTMCell: the state must be .*; got a tuple of 2 whose part c is None: make each part a Tensor$"),
        # a whole sequence given to a cell, which runs one step
        (lambda: nn.GRUCell(3, 4)(ts.randn(6, 2, 3)), ValueError,
         r"^GRUCell: the input must have shape \(batch, 3\); got \(6, 2, 3\); a cell runs one step: run a whole sequence "
         r"\(time, batch, features\) through nn\.Recurrent\(cell\), or give the cell one step at a time, x\[t\]$"),
        # the course's column layout (n_x, m), and one example without its batch axis
        (lambda: nn.LSTMCell(3, 4)(ts.randn(3, 10)), ValueError,
         r"^LSTMCell: the input must have shape \(batch, 3\); got \(3, 10\); the course writes x⟨t⟩ as a column per example "
         r"\(3, m\); this library puts the batch first, as PyTorch: pass x\.T$"),
        (lambda: nn.RNNCell(3, 4)(ts.randn(3)), ValueError,
         r"^RNNCell: the input must have shape \(batch, 3\); got \(3,\); a single example needs a batch axis: pass x\[None\]"),
        (lambda: nn.RNNCell(3, 4)(ts.randn(10, 5)), ValueError, r"^RNNCell: the input must have shape \(batch, 3\); got \(10, 5\)$"),
        # what the layers would not take either
        (lambda: nn.GRUCell(3, 4)(None), TypeError,
         r"^GRUCell: the input x must be a Tensor, an array or a nested list of numbers, of shape \(batch, 3\); got None"),
        (lambda: nn.LSTMCell(3, 4)([[0.0, 1.0, 2.0], [0.0]]), TypeError,
         r"^LSTMCell: the input x must be a Tensor, an array or a nested list of numbers, of shape \(batch, 3\); got a list \("),
        (lambda: nn.RNNCell(3, 4)(np.array([["a", "b", "c"]])), TypeError,
         r"^RNNCell: the input x must hold numbers, of shape \(batch, 3\); got a numpy\.ndarray of shape \(1, 3\) of dtype <U1$"),
        (lambda: nn.GRU(3, 4, bidirectional=True, batch_first=True)(ts.randn(2, 5, 3), ts.zeros(1, 2, 4)), ValueError, r"GRU: h0 must have shape .* = \(2, 2, 4\)"),
        (lambda: nn.RNN(3, 4, num_layers=0), ValueError, r"^RNN: num_layers must be an int >= 1; got 0$"),
        # A layer of torch's kind names itself, not the Recurrent inside it
        (lambda: nn.LSTM(3, 4)(ts.randn(6, 2, 5)), ValueError, r"^LSTM: the input has 5 features per step; the layer expects input_size=3"),
        (lambda: nn.GRU(3, 4, batch_first=True)(ts.randn(2, 6, 3), lengths=[6, 7]), ValueError,
         r"^GRU: length 7 at index 1 is longer than the 6 time steps of the input\. A length counts a sequence's real steps: "
         r"pad the input to the longest sequence"),
        (lambda: nn.LSTM(3, 4)(ts.randn(6, 2, 3), (ts.zeros(1, 2, 4), ts.zeros(1, 2, 5))), ValueError,
         r"LSTM: c0 must have shape .* = \(1, 2, 4\); got \(1, 2, 5\)$"),  # a wrong size: no batch-first hint
        (lambda: nn.LSTM(3, 4, batch_first=True)(ts.randn(2, 6, 3), (ts.zeros(2, 1, 4), ts.zeros(1, 2, 4))), ValueError,
         r"LSTM: h0 must have shape .* = \(1, 2, 4\); got \(2, 1, 4\) \(h0 is never batch-first, whatever batch_first says\)$"),
        (lambda: nn.GRU(3, 4)(ts.randn(6, 2, 3), (ts.zeros(1, 2, 4), ts.zeros(1, 2, 4))), ValueError,
         r"GRU: h0 must have shape .*; got a tuple of 2: a GRU's state is one tensor, h0 \(only an LSTM takes \(h0, c0\)\)$"),
        # An empty sequence (T = 0): every layer says so up front, with the shape and the fix.
        (lambda: nn.Recurrent(nn.LSTMCell(3, 4))(ts.zeros(0, 2, 3)), ValueError,
         r"Recurrent\(LSTMCell\): the input of shape \(0, 2, 3\) \(time, batch, features\) has no time steps \(T = 0\)\. Give it at least one step"),
        (lambda: nn.Recurrent(nn.GRUCell(3, 4), batch_first=True)(np.zeros((2, 0, 3))), ValueError,
         r"Recurrent\(GRUCell\): the input of shape \(2, 0, 3\) \(batch, time, features\) has no time steps"),
        (lambda: nn.Bidirectional(nn.Recurrent(nn.RNNCell(3, 4)))(ts.zeros(0, 1, 3)), ValueError,
         r"Bidirectional\(Recurrent\(RNNCell\)\): the input of shape \(0, 1, 3\)"),
        (lambda: nn.Stacked([nn.Recurrent(nn.RNNCell(3, 4)), nn.Recurrent(nn.RNNCell(4, 4))])(ts.zeros(0, 1, 3)), ValueError,
         r"Stacked\(2 layers\): the input of shape \(0, 1, 3\)"),
        (lambda: nn.RNN(3, 4)(ts.zeros(0, 2, 3)), ValueError, r"^RNN: the input of shape \(0, 2, 3\) .*has no time steps"),
        (lambda: nn.GRU(3, 4, bidirectional=True)(ts.zeros(0, 2, 3)), ValueError, r"^GRU: the input of shape \(0, 2, 3\)"),
        (lambda: nn.LSTM(3, 4, batch_first=True)(ts.zeros(2, 0, 3)), ValueError,
         r"^LSTM: the input of shape \(2, 0, 3\) \(batch, time, features\) has no time steps \(T = 0\).*use the initial state"),
    ],
)
def test_recurrent_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


@pytest.mark.parametrize("layer", [nn.RNN, nn.GRU, nn.LSTM])
def test_integer_input_is_promoted_alike_by_every_layer_and_path(layer):
    """Ids fed straight in: NumPy's int64 x float32 weights -> float64, the same for RNN, GRU and LSTM, fused or not."""
    ids = np.arange(12).reshape(3, 2, 2) % 3
    model = layer(2, 3)
    out, _ = model(ts.Tensor(ids))
    with ts.transparent():
        reference, _ = model(ts.Tensor(ids))
    with pytest.warns(nn.PrecisionWarning, match=rf"^{layer.__name__}: the input is float64 and the weights float32, so the layer "
                                              r"computes in float64 \(NumPy's promotion\).*x\.astype\(np\.float32\) or "
                                              r'x\.to\("float32"\), or the model to float64, model\.to\("float64"\)$'):
        as_floats, _ = model(ts.Tensor(ids.astype(np.float64)))  # a float64 input: computed alike, and said (ints are ids)
    assert out.dtype == reference.dtype == np.float64
    np.testing.assert_allclose(out.numpy(), reference.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out.numpy(), as_floats.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("make, name", [
    (lambda: nn.Recurrent(nn.GRUCell(2, 3)), "Recurrent(GRUCell)"),
    (lambda: nn.Bidirectional(nn.Recurrent(nn.LSTMCell(2, 3))), "Bidirectional(Recurrent(LSTMCell))"),
    (lambda: nn.Stacked([nn.Recurrent(nn.RNNCell(2, 3)), nn.Recurrent(nn.RNNCell(3, 3))]), "Stacked(2 layers)"),
])
def test_a_float64_input_to_every_layer_warns_once_at_the_callers_line(make, name):
    layer, x = make(), np.random.default_rng(0).standard_normal((4, 2, 2))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")  # as a script runs: once per line that calls
        for _ in range(3):
            out = layer(x)[0]
    assert [(w.category, w.filename) for w in caught] == [(nn.PrecisionWarning, __file__)]
    assert str(caught[0].message).startswith(f"{name}: the input is float64 and the weights float32") and out.dtype == np.float64
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        layer(x.astype(np.float32))  # the fix it names: quiet


@pytest.mark.parametrize("make, state, name", [
    (lambda: nn.LSTM(2, 3), lambda wide: (np.zeros((1, 2, 3), np.float32), np.zeros((1, 2, 3), wide)), "LSTM: c0"),
    (lambda: nn.GRU(2, 3, num_layers=2), lambda wide: np.zeros((2, 2, 3), wide), "GRU: h0"),
    (lambda: nn.Recurrent(nn.GRUCell(2, 3)), lambda wide: np.zeros((2, 3), wide), "Recurrent(GRUCell): state"),
    (lambda: nn.Bidirectional(nn.Recurrent(nn.LSTMCell(2, 3))),
     lambda wide: (None, (np.zeros((2, 3), np.float32), np.zeros((2, 3), wide))), "Bidirectional(Recurrent(LSTMCell)): state[1][1]"),
    (lambda: nn.Stacked([nn.Recurrent(nn.RNNCell(2, 3)), nn.Recurrent(nn.RNNCell(3, 3))]),
     lambda wide: [None, np.zeros((2, 3), wide)], "Stacked(2 layers): state[1]"),
])
def test_a_float64_initial_state_warns_as_a_float64_input_does(make, state, name):
    """The state promotes the whole layer as the input would: said once, naming the part, and quiet once converted."""
    layer, x = make(), np.zeros((4, 2, 2), np.float32)

    def tensors(value):
        return None if value is None else ts.Tensor(value) if isinstance(value, np.ndarray) else type(value)(map(tensors, value))

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        for _ in range(3):
            out = layer(x, tensors(state(np.float64)))[0]
    assert [(w.category, w.filename) for w in caught] == [(nn.PrecisionWarning, __file__)]
    part = name.split(": ")[1]
    assert str(caught[0].message).startswith(f"{name} is float64 and the weights float32, so the layer computes in float64")
    assert f'Convert it, {part}.to("float32"), or the model' in str(caught[0].message) and out.dtype == np.float64
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert layer(x, tensors(state(np.float32)))[0].dtype == np.float32  # the fix it names: quiet


def test_a_one_tensor_state_unpacked_as_two_is_named():
    """a, c = self.prepare(x, state) on a state of one tensor splits it into its batch rows: the error spoke of a
    shape (4,) and of overriding initial_state, not of the unpacking (a learner's walk)."""

    class Unpacking(GatedCell):
        def forward(self, x, state=None):
            a, c = self.prepare(x, state)
            return a * c

    with pytest.raises(nn.StateError, match=r"its part a has shape \(4,\), one row of the batch: unpacking a state of one tensor "
                                            r"\(`a, c = self\.prepare\(x, state\)`\) splits it into its rows"):
        Unpacking(3, 4)(ts.randn(2, 3))


def test_a_projection_that_does_not_fit_names_the_cells_parameter_and_its_shape():
    """It said "linear: input (2, 4) and weight (8, 3) do not fit", of no parameter the cell's author wrote."""

    class TransposedWeight(nn.RecurrentCell):
        def __init__(self, input_size, hidden_size):
            super().__init__(input_size, hidden_size)
            self.gate_parameters(gates=2, bias=True)
            self.weight_hh = nn.Parameter(ts.randn(2 * hidden_size, input_size))  # (G·H, I): should be (G·H, H)

        def forward(self, x, state=None):
            a = self.prepare(x, state)
            return (self.input_projection(x) + self.hidden_projection(a))[:, : self.hidden_size].tanh()

    with pytest.raises(ValueError, match=r"^TransposedWeight\.hidden_projection: linear: input \(2, 4\) and weight \(8, 3\) do not "
                                         r"fit.*The cell's weight_hh is \(8, 3\) and bias_hh \(8,\); they must be \(G × 4, 4\) "
                                         r"and \(G × 4,\), G the number of gates, the same in both, which "
                                         r"gate_parameters\(gates=G\) makes$"):
        TransposedWeight(3, 4)(ts.randn(2, 3))

    class ConcatenatedInput(GatedCell):  # the course's [x, a] into a projection of x: the input is wrong
        def forward(self, x, state=None):
            a = self.prepare(x, state)
            return self.input_projection(ts.concat([x, a], axis=-1)).tanh()

    with pytest.raises(ValueError, match=r"^ConcatenatedInput\.input_projection: linear: .*\. It projects x of 3 features, "
                                         r"\(batch, 3\); it was given \(2, 7\)$"):
        ConcatenatedInput(3, 4)(ts.randn(2, 3))


@pytest.mark.parametrize("make", [nn.RNNCell, nn.GRUCell, nn.LSTMCell])
def test_integer_input_to_a_cell(make):
    cell = make(2, 3)
    state = cell(ts.Tensor(np.array([[1, 0], [0, 2]])))
    parts = state if isinstance(state, tuple) else (state,)
    assert all(p.dtype == np.float64 and p.shape == (2, 3) for p in parts)


# ---------------------------------------------------------------- the course's own equations


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def course_parameters(rng, n_x, n_a, keys):
    shapes = {"Wax": (n_a, n_x), "Waa": (n_a, n_a)}
    return {k: rng.standard_normal(shapes.get(k, (n_a, 1) if k.startswith("b") else (n_a, n_a + n_x))) for k in keys}


@pytest.mark.parametrize("path", ["kernel", "transparent"])
@pytest.mark.parametrize("make", [nn.RNNCell, nn.GRUCell, nn.LSTMCell, Returning.of(lambda a, c: (a, c), ("a", "c"))],
                         ids=["rnn", "gru", "lstm", "users"])
def test_a_cell_takes_an_array_or_a_list_as_the_layers_do(make, path):
    """cell(x) on a NumPy array or a nested list: the step of the same values as a Tensor (the layers take both)."""
    ts.manual_seed(0)
    cell = make(3, 4)
    values = [[0.5, -1.0, 2.0], [0.0, 0.25, -0.5]]
    with ts.testing.on_path(path):
        expected = [to_host(p.data) for p in cell.state_parts(cell(ts.Tensor(values)))]
        for given in (np.array(values, dtype=np.float32), values):
            got = cell.state_parts(cell(given))
            assert [p.dtype for p in got] == [np.float32] * len(got)  # a list of floats takes the default dtype, as ts.Tensor
            for a, b in zip(got, expected):
                np.testing.assert_array_equal(to_host(a.data), b)


def test_gate_parameters_before_the_base_init_says_to_call_it_first():
    class Early(nn.RecurrentCell):
        def __init__(self, input_size, hidden_size):
            self.gate_parameters(gates=1, bias=True)  # before super().__init__: hidden_size is not set yet
            super().__init__(input_size, hidden_size)

    class EarlyReset(nn.RecurrentCell):
        def __init__(self, input_size, hidden_size):
            self.reset_parameters()
            super().__init__(input_size, hidden_size)

    for cell, method in ((Early, "gate_parameters"), (EarlyReset, "reset_parameters")):
        with pytest.raises(AttributeError, match=rf"^{cell.__name__}: cannot call {method}\(\) before RecurrentCell\.__init__\(\); "
                                                 r"call super\(\)\.__init__\(input_size, hidden_size\) first in your __init__$"):
            cell(3, 4)


def test_course_rnn_and_lstm_equations():
    rng = np.random.default_rng(0)
    n_x, n_a, m = 3, 5, 4
    xt, a_prev, c_prev = rng.standard_normal((n_x, m)), rng.standard_normal((n_a, m)), rng.standard_normal((n_a, m))

    p = course_parameters(rng, n_x, n_a, ["Wax", "Waa", "ba"])
    a_next = np.tanh(p["Waa"] @ a_prev + p["Wax"] @ xt + p["ba"])  # rnn_cell_forward
    cell = nn.load_course_parameters(nn.RNNCell(n_x, n_a).double(), p)
    np.testing.assert_allclose(cell(ts.Tensor(xt.T), ts.Tensor(a_prev.T)).numpy().T, a_next, rtol=1e-12)

    p = course_parameters(rng, n_x, n_a, ["Wf", "bf", "Wi", "bi", "Wc", "bc", "Wo", "bo"])
    concat = np.concatenate([a_prev, xt])  # lstm_cell_forward
    ft, it = sigmoid(p["Wf"] @ concat + p["bf"]), sigmoid(p["Wi"] @ concat + p["bi"])
    cct = np.tanh(p["Wc"] @ concat + p["bc"])
    c_next = ft * c_prev + it * cct
    a_next = sigmoid(p["Wo"] @ concat + p["bo"]) * np.tanh(c_next)
    cell = nn.load_course_parameters(nn.LSTMCell(n_x, n_a).double(), p)
    a, c = cell(ts.Tensor(xt.T), (ts.Tensor(a_prev.T), ts.Tensor(c_prev.T)))
    np.testing.assert_allclose(a.numpy().T, a_next, rtol=1e-12)
    np.testing.assert_allclose(c.numpy().T, c_next, rtol=1e-12)


def test_course_gru_equations():
    rng = np.random.default_rng(1)
    n_x, n_a, m = 2, 3, 4
    xt, c_prev = rng.standard_normal((n_x, m)), rng.standard_normal((n_a, m))

    p = course_parameters(rng, n_x, n_a, ["Wu", "bu", "Wr", "br", "Wc", "bc"])
    gamma_u = sigmoid(p["Wu"] @ np.concatenate([c_prev, xt]) + p["bu"])
    gamma_r = sigmoid(p["Wr"] @ np.concatenate([c_prev, xt]) + p["br"])
    c_tilde = np.tanh(p["Wc"] @ np.concatenate([gamma_r * c_prev, xt]) + p["bc"])
    c_next = gamma_u * c_tilde + (1 - gamma_u) * c_prev
    cell = nn.load_course_parameters(nn.GRUCell(n_x, n_a, reset_after=False).double(), p)
    np.testing.assert_allclose(cell(ts.Tensor(xt.T), ts.Tensor(c_prev.T)).numpy().T, c_next, rtol=1e-12)

    p = course_parameters(rng, n_x, n_a, ["Wu", "bu", "Wc", "bc"])
    gamma_u = sigmoid(p["Wu"] @ np.concatenate([c_prev, xt]) + p["bu"])
    c_tilde = np.tanh(p["Wc"] @ np.concatenate([c_prev, xt]) + p["bc"])
    c_next = gamma_u * c_tilde + (1 - gamma_u) * c_prev
    cell = nn.load_course_parameters(nn.SimplifiedGRUCell(n_x, n_a).double(), p)
    np.testing.assert_allclose(cell(ts.Tensor(xt.T), ts.Tensor(c_prev.T)).numpy().T, c_next, rtol=1e-12)


def test_course_parameter_errors():
    with pytest.raises(KeyError, match=r"load_course_parameters\(LSTMCell\): the dict lacks Wo, bo"):
        nn.load_course_parameters(nn.LSTMCell(2, 3), course_parameters(np.random.default_rng(0), 2, 3, ["Wf", "bf", "Wi", "bi", "Wc", "bc"]))
    with pytest.raises(ValueError, match=r"Wax has shape \(3, 4\); a cell with n_x=2, n_a=3 needs \(3, 2\)"):
        nn.load_course_parameters(nn.RNNCell(2, 3), {"Wax": np.zeros((3, 4)), "Waa": np.zeros((3, 3)), "ba": np.zeros((3, 1))})
    with pytest.raises(TypeError, match="the course has no parameters for GRUCell"):
        nn.load_course_parameters(nn.GRUCell(2, 3), {})


def test_detach_state_cuts_the_graph_of_any_state_and_keeps_its_structure():
    """Truncated BPTT's carry for a state of any shape: a tensor, an LSTM's (h, c), a LanguageModel's list of them,
    a wrapper's pairs with None, a cell's dict."""
    w = ts.ones(2, requires_grad=True)
    made = [w * 2.0, w * 3.0, w * 4.0]
    state = [(made[0], made[1]), {"m": made[2]}, None, w * 5.0]
    cut = nn.detach_state(state)
    assert type(cut) is list and type(cut[0]) is tuple and list(cut[1]) == ["m"] and cut[2] is None
    leaves = [cut[0][0], cut[0][1], cut[1]["m"], cut[3]]
    assert all(t.grad_fn is None and not t.requires_grad for t in leaves)
    assert [t.tolist() for t in leaves] == [[2.0, 2.0], [3.0, 3.0], [4.0, 4.0], [5.0, 5.0]]
    assert nn.detach_state(made[0]).grad_fn is None and nn.detach_state(None) is None
    HC = collections.namedtuple("HC", "h c")
    kept = nn.detach_state(collections.OrderedDict(s=HC(w * 1.0, w * 2.0)))  # a cell's own structures stay theirs
    assert type(kept) is collections.OrderedDict and type(kept["s"]) is HC and kept["s"].c.grad_fn is None
    factory = nn.detach_state(collections.defaultdict(list, h=w * 2.0))
    assert type(factory) is collections.defaultdict and factory["missing"] == [] and factory["h"].grad_fn is None
    with pytest.raises(TypeError, match=r"^detach_state: a state holds tensors, in tuples, lists or dicts; got ndarray$"):
        nn.detach_state(np.zeros(2))
