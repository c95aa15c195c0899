"""Stepping through backpropagation: every parameter from the first step, the fused path, a user's cell."""
import numpy as np
import pytest

import tinygrad_seq as ts
from tinygrad_seq import viz
from tinygrad_seq.cli import main as cli
from tinygrad_seq.viz import demo

from .conftest import to_host

pytestmark = pytest.mark.usefixtures("backend")  # every test on NumPy and on the strict device backend (conftest)


def test_every_parameter_is_reported_from_the_first_step():
    model = demo.small_model("rnn", steps=3)
    params = model.parameters()
    with ts.transparent():
        loss = model.loss()
    steps = list(viz.backward_steps(loss, params=params))
    assert all(set(step.parameter_grads) == set(params) for step in steps)
    first = to_host(steps[0].parameter_grads["rnn.weight_hh_l0"])
    assert first.shape == params["rnn.weight_hh_l0"].shape and not first.any()  # zeros until its first contribution
    norms = [np.linalg.norm(to_host(step.parameter_grads["rnn.weight_hh_l0"])) for step in steps]
    assert norms[0] == 0 and norms[-1] > 0
    np.testing.assert_allclose(to_host(steps[-1].parameter_grads["rnn.weight_hh_l0"]), to_host(params["rnn.weight_hh_l0"].grad))


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm", "simplified_gru"])
def test_bptt_steps_through_the_fused_path(tmp_path, capsys, cell):
    assert cli(["bptt", "--cell", cell, "--fused", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    frames = sorted(tmp_path.glob("step_*.svg"))
    assert frames and f"{len(frames)} steps." in printed
    last = frames[-1].read_text()
    assert "<svg" in last and "∇" in last  # the current node shows the gradient it received


def test_graph_and_bptt_accept_import(tmp_path, capsys):
    module = tmp_path / "my_cells.py"
    module.write_text("from tinygrad_seq import nn\n\n@nn.register_cell('stepping_tanh')\nclass Mine(nn.RNNCell):\n    pass\n")
    try:
        assert cli(["graph", "--cell", "stepping_tanh", "--import", str(module), "--out", str(tmp_path / "g.svg")]) == 0
        assert cli(["bptt", "--cell", "stepping_tanh", "--import", str(module), "--steps", "2", "--out", str(tmp_path / "b")]) == 0
    finally:
        ts.settings.cell_registry.pop("stepping_tanh", None)
    assert (tmp_path / "g.svg").exists() and list((tmp_path / "b").glob("step_*.svg"))


def test_graph_writes_png_without_graphviz(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", "")  # no dot to be found, installed or not
    assert cli(["graph", "--cell", "gru", "--steps", "2", "--out", str(tmp_path / "g.png")]) == 0
    assert (tmp_path / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_stepper_writes_a_bare_op_as_what_it_computes():
    """A GRU's listing read "Add: ... -> GetItem (1, 3); GetItem (1, 3)": which gate's slice was not said."""
    model = demo.small_model("gru", steps=2)
    with ts.transparent():
        loss = model.loss()
    lines = [step.describe() for step in viz.backward_steps(loss, params=model)]
    assert not any("GetItem (" in line or "-> Add (" in line for line in lines), "\n".join(lines)
    assert any("GetItem W_aa a⟨1⟩[:, 6:9]:" in line for line in lines)  # the candidate's rows of the hidden product


@pytest.mark.parametrize("steps", [4, 12])
def test_the_running_sum_of_the_losses_goes_by_one_name(steps):
    """Past four steps it read "Add⟨10⟩ + L⟨11⟩" as what step 12 sends on (a time step 10?), and step 16 wrote the same
    node "(Add⟨8⟩ + L⟨9⟩) + L⟨10⟩"; with four, "((L⟨1⟩ + L⟨2⟩) + L⟨3⟩) + L⟨4⟩" (a newcomer's walk)."""
    model = demo.small_model("rnn", steps=steps)
    lines = [step.describe() for step in viz.backward_steps(model.loss(), params=model)]
    sums = [line for line in lines if " Add " in line and "L⟨" in line]
    first = "L⟨1⟩ + L⟨2⟩ + L⟨3⟩" if steps == 4 else f"L⟨1⟩ + … + L⟨{steps - 1}⟩"
    assert sums[0].endswith(f"Add L: ∇ [1.] -> {first} (); L⟨{steps}⟩ ()"), sums[0]
    for line, t in zip(sums[1:], range(steps - 1, 1, -1)):  # each sum is named as the line before sent to it
        called = " + ".join(f"L⟨{k}⟩" for k in range(1, t + 1)) if t < 5 else f"L⟨1⟩ + … + L⟨{t}⟩"
        assert f" Add {called}: ∇" in line, line


def test_only_a_run_of_one_symbol_at_consecutive_steps_is_shortened():
    from tinygrad_seq.viz.rules import _sum_of

    assert _sum_of([f"L⟨{t}⟩" for t in range(1, 6)]) == "L⟨1⟩ + … + L⟨5⟩"
    assert _sum_of(["L⟨1⟩", "…", "L⟨38⟩", "L⟨39⟩"]) == "L⟨1⟩ + … + L⟨39⟩"  # a shortened run, read back whole
    for terms in ([f"L⟨{t}⟩" for t in (1, 3, 4, 5, 6)], [f"L⟨{t}⟩" for t in range(5, 0, -1)],
                  [f"L⟨{t}⟩" for t in range(1, 5)] + ["ŷ⟨5⟩"], ["L⟨1⟩", "L⟨2⟩"]):
        assert _sum_of(terms) == " + ".join(terms), terms  # a gap, another order, another symbol, too few: as they are


class CourseRNNCell(ts.nn.RecurrentCell):
    """The course's compact form, a⟨t⟩ = tanh(W_a [x⟨t⟩, a⟨t−1⟩]): at t = 1 neither x⟨1⟩ nor a⟨0⟩ needs a
    gradient, so the concat is recorded as no node."""

    def __init__(self, input_size, hidden_size):
        super().__init__(input_size, hidden_size)
        self.weight = ts.nn.Parameter(ts.randn(input_size + hidden_size, hidden_size) * 0.3)

    def forward(self, x, state=None):
        a_prev = self.prepare(x, state)
        return (ts.concat([x, a_prev], axis=1) @ self.weight).tanh()


def test_an_input_made_in_a_step_by_an_op_is_called_by_that_op():
    """It was drawn and listed as "input", a box from nowhere at t = 1 in a cell that concatenates."""
    layer = ts.nn.Recurrent(CourseRNNCell(2, 3))
    data = ts.randn(3, 1, 2) * 0.5  # made by an op outside any step: still "input"
    with ts.transparent():
        out, _ = layer(data)
    loss = (out * data.sum()).sum()
    graph = viz.trace(loss, layer)
    labels = sorted(node.label for node in graph.nodes.values() if node.kind == "input")
    assert labels == ["Concat (no grad)", "input", "x⟨2⟩", "x⟨3⟩"]
    lines = [step.describe() for step in viz.backward_steps(loss, params=layer)]
    assert lines[-1].split(":")[0].endswith("MatMul Concat (no grad) cell.weight"), lines[-1]
    # made in a tagged block of the user's own (no recurrent layer's): an input as before
    weight = ts.nn.Parameter(ts.ones(3))
    with ts.tags(t=1, layer="output"):
        scale = ts.ones(3) * 3.0
    graph = viz.trace((weight * scale).sum())
    assert graph.node_of(scale).label == "input"


@pytest.mark.parametrize("cell, bidirectional", [("lstm", True), ("lstm", False), ("gru", True)])
def test_a_slice_is_written_with_the_name_its_source_goes_by(cell, bidirectional):
    """A bidirectional LSTM's gate slice read "←Add⟨1⟩[:, 6:9]" while the Add it cuts was named
    "←W_ax x⟨1⟩ + ←W_aa ←a⟨2⟩" everywhere else: one tensor, two names in one line."""
    from tinygrad_seq.viz import rules

    model = demo.small_model(cell, steps=2, bidirectional=bidirectional)
    with ts.transparent():
        graph = viz.trace(model.loss(), model)
    names = rules.names(graph)
    slices = [(key, node) for key, node in graph.nodes.items() if node.op == "GetItem" and names[key].endswith("]")]
    assert slices
    for key, node in slices:
        source = names[graph.key_of(node.tensor.grad_fn.inputs[0])]
        assert names[key].startswith((f"{source}[", f"({source})[")), (names[key], source)
