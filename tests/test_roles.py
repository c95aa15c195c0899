"""Roles, not names: every tool works for any cell, and display labels can change freely."""
import contextlib

import numpy as np
import pytest

import tinygrad_seq as ts
from tinygrad_seq import nn, viz
from tinygrad_seq.viz import draw, notation

from .conftest import to_host

pytestmark = pytest.mark.usefixtures("backend")  # every test on NumPy and on the strict device backend (conftest)


class MemoryCell(nn.RecurrentCell):
    """A user's cell: state parts ("a", "m") and a gate of its own ("keep")."""

    state_names = ("a", "m")

    def __init__(self, input_size, hidden_size):
        super().__init__(input_size, hidden_size)
        self.gate_parameters(gates=3, bias=True)

    def initial_state(self, batch_size, like=None):
        return (ts.zeros(batch_size, self.hidden_size), ts.zeros(batch_size, self.hidden_size))

    def forward(self, x, state=None):
        a_prev, m_prev = self.prepare(x, state)
        keep, write, candidate = ts.chunk(self.input_projection(x) + self.hidden_projection(a_prev), 3, axis=-1)
        keep = nn.gate(keep.sigmoid(), "keep")
        candidate = nn.gate(candidate.tanh(), "candidate")
        m = keep * m_prev + (1 - keep) * candidate
        return nn.gate(write.sigmoid(), "output") * m.tanh(), m


def memory_loss(transparent, steps=5):
    """The default path (a user's cell recorded: one node per step) or ts.transparent() (every gate a node)."""
    ts.manual_seed(0)
    ts.set_default_dtype("float64")
    layer = nn.Recurrent(MemoryCell(3, 4))
    with ts.transparent() if transparent else contextlib.nullcontext():
        out, _ = layer(ts.randn(steps, 2, 3))
    return (out[-1] ** 2).sum(), layer.cell


@pytest.mark.parametrize("transparent", [False, True])
def test_a_users_cell_gets_gradient_flow_for_each_of_its_parts(transparent):
    # By hand on the transparent path, where each part is a tensor of its own (the default, recorded path packs
    # them into one node per step, whose part_grads gives each part's gradient).
    loss, cell = memory_loss(transparent=True)
    graph = viz.trace(loss)
    states = {(n.tags["part"], n.tags["t"]): n.tensor for n in graph.nodes.values() if n.role == "state" and "t" in n.tags}
    assert {part for part, _ in states} == {"a", "m"} and len(states) == 10
    for tensor in states.values():
        tensor.retain_grad()
    loss.backward(retain_graph=True)
    by_hand = {part: [np.linalg.norm(to_host(states[part, t].grad)) for t in range(1, 6)] for part in "am"}
    loss, _ = memory_loss(transparent)
    flows = viz.gradient_flow(loss)
    assert set(flows) == {("a", 0, "forward"), ("m", 0, "forward")}
    for part in "am":
        np.testing.assert_allclose(flows[part, 0, "forward"], by_hand[part], rtol=1e-12)


def test_a_users_cell_is_coloured_and_labelled_by_its_roles():
    loss, _ = memory_loss(transparent=True, steps=2)
    graph = viz.trace(loss)
    fills = {node.label: draw._fill(node, graph.root) for node in graph.nodes.values()}
    assert fills["a⟨2⟩"] == fills["m⟨1⟩"] == draw.STATE
    assert fills["keep⟨1⟩"] == fills["c̃⟨2⟩"] == fills["Γo⟨1⟩"] == draw.GATE
    steps = list(viz.backward_steps(loss))
    assert {"a⟨2⟩", "m⟨2⟩", "keep⟨2⟩"} <= {step.name for step in steps}


def test_renaming_every_label_changes_no_tool(monkeypatch):
    def snapshot():
        loss, _ = memory_loss(transparent=True, steps=3)
        graph = viz.trace(loss)
        fills = sorted(draw._fill(node, graph.root) for node in graph.nodes.values())
        stepped = [(step.op, step.tags.get("role"), step.tags.get("t")) for step in viz.backward_steps(loss)]
        loss, _ = memory_loss(transparent=True, steps=3)
        return viz.gradient_flow(loss), fills, stepped, {node.label for node in graph.nodes.values()}

    flows, fills, stepped, labels = snapshot()
    renamed = {name: f"G_{name}" for name in notation.GATE_SYMBOLS}
    monkeypatch.setattr(notation, "GATE_SYMBOLS", renamed)
    monkeypatch.setattr(notation, "SYMBOLS", {role: f"<{role}>" for role in notation.SYMBOLS})
    original = notation.symbol
    monkeypatch.setattr(notation, "symbol", lambda tags, context=notation.Context(): original(tags, context) and f"«{original(tags, context)}»")
    flows_after, fills_after, stepped_after, labels_after = snapshot()
    assert labels_after != labels and "«G_candidate»⟨1⟩" in labels_after and "«a»⟨2⟩" in labels_after
    assert fills_after == fills and stepped_after == stepped
    assert flows_after.keys() == flows.keys()
    for key in flows:
        np.testing.assert_array_equal(flows_after[key], flows[key])


def test_gate_names_must_be_words():
    with pytest.raises(ValueError, match=r"nn.gate: the gate's name must be a non-empty string"):
        nn.gate(ts.randn(2), "")
