"""The BPTT explorer's page, read without a browser: its data are the library's numbers, its page stands alone."""
import contextlib
import html
import warnings
import json
import re

import numpy as np
import pytest

import tinygrad_seq as ts
from tinygrad_seq import nn, viz
from tinygrad_seq.function import Function
from tinygrad_seq.viz import demo, rules
from tinygrad_seq.viz.explore import COLLAPSE_ABOVE, COLLAPSE_STEPS, _dense, _shown


class MemoryCell(nn.RecurrentCell):
    """A user's cell with a two-part state and a gate of its own."""

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
        m = keep * m_prev + (1 - keep) * nn.gate(candidate.tanh(), "candidate")
        return nn.gate(write.sigmoid(), "output") * m.tanh(), m


@pytest.fixture(autouse=True)
def memory_cell(monkeypatch):
    monkeypatch.setitem(ts.settings.cell_registry, "explore_memory", MemoryCell)


def page_data(page):
    """The steps the page replays, parsed back from its script."""
    payload = re.search(r"window\.EXPLORER_DATA = (.*?);</script>", page, re.S).group(1)
    return json.loads(payload.replace("<\\/", "</"))


def build(cell="rnn", steps=3, fused=False, **options):
    model = demo.small_model(cell, steps=steps, **options)
    with contextlib.nullcontext() if fused else ts.transparent():
        return model, model.loss()


def test_the_page_replays_the_real_backward_pass_number_for_number(tmp_path):
    model, loss = build("lstm")
    explorer = viz.explore(loss, tmp_path / "lstm", params=model.parameters())
    assert explorer.path == tmp_path / "lstm.html" and str(explorer) == str(explorer.path)
    data = page_data(explorer.path.read_text(encoding="utf-8"))

    twin, twin_loss = build("lstm")  # the same seeded model, stepped by the library itself
    steps = list(viz.backward_steps(twin_loss, params=twin.parameters()))
    assert explorer.steps == len(steps) == len(data["backward"])
    for recorded, step in zip(data["backward"], steps):
        assert recorded["op"] == step.op
        assert np.array_equal(np.array(recorded["grad"]["values"]), step.grad)  # every value, exactly
        assert len(recorded["sends"]) == len(step.input_grads)
        for sent, (arg, grad) in zip(recorded["sends"], step.input_grads):  # what goes along each edge, exactly
            dense = _dense(grad, arg.shape)
            assert sent["norm"] == float(np.linalg.norm(dense))
            if sent["values"] is not None:
                assert np.array_equal(np.array(sent["values"]), dense)
    for name, p in model.parameters().items():  # explore leaves what loss.backward() would
        np.testing.assert_allclose(p.grad, twin.parameters()[name].grad, rtol=1e-12, atol=1e-15)


def test_the_page_is_self_contained(tmp_path):
    model, loss = build("gru", fused=True)
    page = viz.explore(loss, tmp_path / "gru.html", params=model.parameters()).path.read_text(encoding="utf-8")
    assert "<svg" in page and "window.EXPLORER_DATA" in page and 'id="step"' in page and 'id="grad"' in page
    assert not re.search(r"\ssrc\s*=", page)  # no script or image fetched
    assert "<link" not in page and "@import" not in page
    addresses = set(re.findall(r"https?://[^\s\"')]+", page))
    assert addresses <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}  # namespaces, never fetched


def test_values_are_one_line_per_row_for_the_page_to_wrap():
    """NumPy broke a 9-value gradient at 60 characters and the panel wrapped it again, leaving "0." alone on a line."""
    sent = np.array([[-0.0006, 0.0023, -0.0057, 0, 0, 0, 0, 0, 0]])
    assert "\n" not in _shown(sent)["text"] and _shown(sent)["text"].startswith("[-0.0006  0.0023 -0.0057  0. ")
    assert _shown(np.eye(3) * 0.1234)["text"].count("\n") == 2  # a matrix: a row per line
    assert "-0." not in _shown(np.array([[-0.0, 0.5, -0.0]]))["text"]  # a gradient of exactly 0 has no sign to show


def test_a_state_gradient_is_shown_as_the_sum_of_its_contributions(tmp_path):
    model, loss = build("rnn")
    data = page_data(viz.explore(loss, tmp_path / "rnn.html", params=model.parameters()).page)
    a2 = next(s for s in data["backward"] if s["name"] == "a⟨2⟩")
    assert [term["from"] for term in a2["sum"]] == ["from ŷ⟨2⟩", "from W_aa a⟨2⟩ at t = 3"]
    total = sum(np.array(term["values"], dtype=np.float32) for term in a2["sum"])  # the model computes in float32
    np.testing.assert_array_equal(total, np.array(a2["grad"]["values"], dtype=np.float32))
    # the last state has one contribution (from ŷ⟨3⟩): no sum to show
    assert next(s for s in data["backward"] if s["name"] == "a⟨3⟩")["sum"] == []


def test_a_shared_weight_collects_one_contribution_per_time_step(tmp_path):
    model, loss = build("rnn")
    params = model.parameters()
    data = page_data(viz.explore(loss, tmp_path / "rnn.html", params=params).page)
    w_aa = next(p for p in data["params"] if p["name"] == "rnn.weight_hh_l0")
    assert w_aa["symbol"] == "W_aa"
    assert [s["t"] for s in w_aa["steps"]] == [3, 2, 1]  # one term per step, from the last step back
    np.testing.assert_allclose(w_aa["steps"][-1]["running"]["values"], params["rnn.weight_hh_l0"].grad, rtol=1e-6)  # float32
    assert np.count_nonzero(w_aa["steps"][-1]["contribution"]["values"]) == 0  # t = 1 adds nothing: a⟨0⟩ = 0
    running = np.cumsum([np.array(s["contribution"]["values"]) for s in w_aa["steps"]], axis=0)
    np.testing.assert_allclose([s["running"]["values"] for s in w_aa["steps"]], running, rtol=1e-12)


def test_a_deep_pages_layers_count_from_1_as_its_states_do(tmp_path):
    model, loss = build("gru", steps=2, layers=2)
    data = page_data(viz.explore(loss, tmp_path / "deep.html", params=model.parameters()).page)
    symbols = {p["name"]: p["symbol"] for p in data["params"]}
    assert symbols["rnn.weight_hh_l0"] == "W_aa^[1]" and symbols["rnn.weight_hh_l1"] == "W_aa^[2]"
    where = {step["name"]: step["where"] for step in data["backward"]}
    assert where["a^[2]⟨2⟩"] == "t = 2, layer 2" and where["a^[1]⟨1⟩"] == "t = 1, layer 1"
    terms = [s["where"] for p in data["params"] if p["name"] == "rnn.weight_hh_l1" for s in p["steps"]]
    assert terms == ["t = 2, layer 2", "t = 1, layer 2"]


@pytest.mark.parametrize("fused", [False, True], ids=["transparent", "fused"])
def test_the_chart_is_the_gradient_flow(tmp_path, fused):
    model, loss = build("lstm", steps=4, fused=fused)
    data = page_data(viz.explore(loss, tmp_path / "lstm.html").page)
    twin, twin_loss = build("lstm", steps=4, fused=fused)
    flows = viz.gradient_flow(twin_loss)
    assert len(data["flow"]) == len(flows) == 2  # a and c
    for series in data["flow"]:
        part = series["label"][5]  # "‖∂L/∂a⟨t⟩‖"
        norms = {p["t"]: p["norm"] for p in series["points"]}
        np.testing.assert_allclose([norms[t] for t in range(1, 5)], flows[part, 0, "forward"], rtol=1e-6)  # float32 norms there
        assert [p["t"] for p in series["points"]] == [4, 3, 2, 1]  # filled in from right to left


CASES = [
    ("rnn", {}), ("gru", {}), ("lstm", {}), ("simplified_gru", {}), ("explore_memory", {}),
    ("lstm", {"layers": 2, "bidirectional": True}), ("gru", {"layers": 2}), ("explore_memory", {"bidirectional": True}),
]


@pytest.mark.parametrize("fused", [False, True], ids=["transparent", "fused"])
@pytest.mark.parametrize("cell,options", CASES, ids=[f"{c}-{'-'.join(o) or 'one'}" for c, o in CASES])
def test_every_cell_and_layout_gets_a_rule_and_a_drawn_node_at_every_step(tmp_path, cell, options, fused):
    model, loss = build(cell, steps=2, fused=fused, **options)
    explorer = viz.explore(loss, tmp_path / "page.html", params=model.parameters())
    data = page_data(explorer.page)
    svg_ids = set(re.findall(r"<title>([^<]+)</title>", explorer.page))
    for step in data["backward"]:
        assert step["rule"] and not step["rule"][0].startswith(step["op"] + ": no rule"), step["op"]
        assert step["drawn"] and set(step["drawn"]) <= svg_ids, step["name"]
        for sent in step["sends"]:
            for tail, head in sent["edges"]:
                assert html.unescape(f"{tail}&#45;&gt;{head}") in {html.unescape(i) for i in svg_ids}
    assert all(step["drawn"] and set(step["drawn"]) <= svg_ids for step in data["forward"])
    assert len(data["forward"]) == sum(1 for n in viz.trace(build(cell, steps=2, fused=fused, **options)[1]).nodes.values()
                                       if n.kind == "op")


def test_the_rule_is_written_in_the_course_notation():
    model, loss = build("rnn")
    graph = viz.trace(loss, model.parameters())
    by_name = {rules.names(graph)[k]: r for k, r in rules.node_rules(graph).items()}
    assert by_name["a⟨2⟩"]["backward"] == ["∂L/∂(W_ax x⟨2⟩ + W_aa a⟨1⟩) = ∂L/∂a⟨2⟩ ⊙ (1 − a⟨2⟩²)"]
    assert by_name["a⟨2⟩"]["forward"] == "a⟨2⟩ = tanh(W_ax x⟨2⟩ + W_aa a⟨1⟩)"
    assert "∂L/∂W_aa += ∂L/∂(W_aa a⟨1⟩) a⟨1⟩ᵀ" in by_name["W_aa a⟨1⟩"]["backward"]
    assert "∂L/∂a⟨1⟩ += W_aaᵀ ∂L/∂(W_aa a⟨1⟩)" in by_name["W_aa a⟨1⟩"]["backward"]

    fused_model, fused_loss = build("lstm", fused=True)
    graph = viz.trace(fused_loss, fused_model.parameters())
    step = next(r for k, r in rules.node_rules(graph).items() if graph.nodes[k].op == "LSTMStep" and graph.nodes[k].tags["t"] == 2)
    assert step["forward"] == "a⟨2⟩ = Γo⟨2⟩ ⊙ tanh(c⟨2⟩),  c⟨2⟩ = Γf⟨2⟩ ⊙ c⟨1⟩ + Γu⟨2⟩ ⊙ c̃⟨2⟩"
    assert "dc = (∂L/∂c⟨2⟩ from c⟨3⟩) + ∂L/∂a⟨2⟩ ⊙ Γo⟨2⟩ ⊙ (1 − tanh(c⟨2⟩)²)" in step["backward"]
    assert "∂L/∂W_aa += [dΓu; dΓf; dc̃; dΓo] a⟨1⟩ᵀ" in step["backward"]


def test_a_deep_layers_own_read_of_the_layer_below_has_a_name_of_its_own(tmp_path):
    # layer 2 reads a^[1]⟨t⟩ back out of layer 1's outputs: that read is x^[2]⟨t⟩, so the state's gradient is the
    # sum of what comes "from x^[2]⟨2⟩" and from the next step, never "from a^[1]⟨2⟩" itself
    model, loss = build("lstm", steps=3, layers=2)
    data = page_data(viz.explore(loss, tmp_path / "deep.html", params=model.parameters()).page)
    state = next(step for step in data["backward"] if step["name"] == "a^[1]⟨2⟩")
    assert [term["from"] for term in state["sum"]] == ["from x^[2]⟨2⟩", "from W_aa^[1] a^[1]⟨2⟩ at t = 3"]
    assert state["where"] == "t = 2, layer 1"
    bidirectional, loss = build("lstm", steps=2, layers=2, bidirectional=True)
    data = page_data(viz.explore(loss, tmp_path / "bi.html", params=bidirectional.parameters()).page)
    state = next(step for step in data["backward"] if step["name"] == "→a^[1]⟨2⟩")
    assert state["where"] == "t = 2, layer 1, forward"  # a bidirectional page names both directions
    assert all(term["from"] != "from →a^[1]⟨2⟩" for term in state["sum"])
    # both directions of layer 2 read it, through the two directions' outputs joined (hidden): it named that join
    state = next(step for step in data["backward"] if step["name"] == "→a^[1]⟨1⟩")
    assert "from →x^[2]⟨1⟩ and ←x^[2]⟨1⟩" in [term["from"] for term in state["sum"]], state["sum"]


def test_in_a_deep_graph_everything_of_a_layer_carries_its_number():
    """Two layers' gates, projections and weights read apart (Γf^[1]⟨1⟩, Γf^[2]⟨1⟩), in labels and rules alike; a
    hidden gate slice is named after the node drawn ("(W_ax x⟨1⟩ + W_aa a⟨0⟩)[:, 3:6]"), not as a GetItem no one can
    see, nor as "Add^[2]⟨1⟩[:, 3:6]", one of the step's several Adds."""
    model, loss = build("lstm", steps=2, layers=2)
    graph = viz.trace(loss, model.parameters())
    labels = {node.label for node in graph.nodes.values()}
    assert {"Γf^[1]⟨1⟩", "Γf^[2]⟨1⟩", "c̃^[2]⟨2⟩", "W_aa^[2] a^[2]⟨1⟩", "W_ax^[2] x^[2]⟨2⟩", "W_ax^[1] x⟨2⟩"} <= labels
    by_name = {rules.names(graph)[k]: r for k, r in rules.node_rules(graph).items()}
    assert by_name["Γf^[2]⟨1⟩"]["forward"] == "Γf^[2]⟨1⟩ = σ((W_ax^[2] x^[2]⟨1⟩ + W_aa^[2] a^[2]⟨0⟩)[:, 3:6])"  # layer 2's
    for cell in ("lstm", "gru"):  # every node named by what it computes: an op's name with its step is ambiguous
        model, loss = build(cell, steps=2, layers=2, bidirectional=True)
        names = rules.names(viz.trace(loss, model.parameters()))
        assert not [name for name in names.values() if re.search(r"\b(Add|Mul|Sub|Linear|GetItem)\S*⟨\d+⟩", name)], names
    for cell in ("lstm", "gru"):  # no rule names a node by an op that is not drawn
        model, loss = build(cell, steps=2, layers=2)
        graph = viz.trace(loss, model.parameters())
        assert not any("GetItem" in rule["forward"].split("   (")[0] for rule in rules.node_rules(graph).values())
    bidirectional, loss = build("gru", steps=2, bidirectional=True)  # one layer: arrows, no superscripts
    graph = viz.trace(loss)
    labels = {node.label for node in graph.nodes.values()}
    assert {"←Γr⟨1⟩", "→z⟨2⟩ = 1 − →Γu⟨2⟩", "→Γu⟨2⟩", "←W_aa ←a⟨3⟩"} <= labels  # 1 − z, which a⟨t⟩ reads, is Γu
    assert {"→Γu⟨2⟩ ⊙ →c̃⟨2⟩", "→z⟨2⟩ ⊙ →a⟨1⟩"} <= set(rules.names(graph).values())

    fused_model = demo.small_model("gru", steps=2, layers=2)
    graph = viz.trace(fused_model.loss(), fused_model.parameters())
    step = next(r for k, r in rules.node_rules(graph).items() if graph.nodes[k].op == "GRUStep" and graph.nodes[k].tags == {**graph.nodes[k].tags, "t": 2, "layer": 1})
    assert "tanh(W_cx^[2] a^[1]⟨2⟩ + Γr^[2]⟨2⟩ ⊙ (W_ca^[2] a^[2]⟨1⟩ + b_ca^[2]))" in step["forward"]
    assert "∂L/∂a^[2]⟨1⟩ += ∂L/∂a^[2]⟨2⟩ ⊙ z^[2]⟨2⟩ + W_aa^[2]ᵀ [dΓr; dz; dc̃ ⊙ Γr^[2]⟨2⟩]" in step["backward"]


def test_a_fused_layers_gathered_outputs_are_named_as_a_sequence():
    """On the kernel path a layer's outputs are one StackPart of its packed states: named a^[l]⟨1..T⟩ like
    the transparent path's Stack, with a rule that says which part it takes, and ended sequences when any."""
    model = demo.small_model("lstm", layers=2)
    graph = viz.trace(model.loss(), model.parameters())
    names = rules.names(graph)
    gathers = {k: n for k, n in graph.nodes.items() if n.op == "StackPart"}
    assert sorted(names[k] for k in gathers) == ["a^[1]⟨1..3⟩", "a^[2]⟨1..3⟩"]
    assert "a^[2]⟨1..3⟩[t=2]" in names.values()
    rule = rules.node_rules(graph)[next(k for k in gathers if names[k] == "a^[1]⟨1..3⟩")]
    assert rule["forward"] == "a^[1]⟨1..3⟩ = stack((a, c)^[1]⟨1⟩, (a, c)^[1]⟨2⟩, (a, c)^[1]⟨3⟩)[:, 0]"
    assert rule["backward"][0] == "∂L/∂(a, c)^[1]⟨1⟩ += its slice of ∂L/∂a^[1]⟨1..3⟩ in part [0], 0 in the other parts"
    picks = {n.label for n in graph.nodes.values() if n.op == "GetItem"}  # the graph names them as the rules do
    assert {"a^[2]⟨1..3⟩[t=1]", "a^[2]⟨1..3⟩[t=2]", "a^[2]⟨1..3⟩[t=3]"} <= picks
    lstm, head = nn.LSTM(2, 3), nn.Linear(3, 1)
    out, _ = lstm(ts.randn(3, 1, 2))
    graph = viz.trace(head(out[-1]).sum() + head(out[-3]).sum())  # negative indices count from the last step
    assert {n.label for n in graph.nodes.values() if n.op == "GetItem"} == {"a⟨1..3⟩[t=3]", "a⟨1..3⟩[t=1]"}
    masked = rules.forward_rule("StackPart", "a⟨1..2⟩", ["s1", "s2"], {"part": 0, "masked": True})
    assert masked == "a⟨1..2⟩ = stack(s1, s2)[:, 0], 0 where a sequence has ended"
    assert rules.backward_rule("StackPart", "a", ["s"], [True], [False], {"part": 0, "masked": True})[0].endswith(
        "0 in the other parts and where its sequence has ended")


# The rule of each built-in cell step at t = 2, checked line by line against the op's backward() in ops/cell_steps.py.
STEP_RULES = {
    "rnn_relu": [
        "dz = ∂L/∂a⟨2⟩ ⊙ [a⟨2⟩ > 0]   (z: the pre-activation)",
        "∂L/∂(W_ax x) at t = 2: dz   (∂L/∂W_ax += dz x⟨2⟩ᵀ once all steps are in)",
        "∂L/∂a⟨1⟩ += W_aaᵀ dz",
        "∂L/∂W_aa += dz a⟨1⟩ᵀ",
        "∂L/∂(b_a (with W_aa)) += dz   (summed over the batch)",
    ],
    "gru": [  # PyTorch's: Γr scales W_ca a⟨t−1⟩ + b_ca, so W_aa's and b's c̃ rows get dc̃ ⊙ Γr
        "dc̃ = ∂L/∂a⟨2⟩ ⊙ (1 − z⟨2⟩) ⊙ (1 − c̃⟨2⟩²)",
        "dz = ∂L/∂a⟨2⟩ ⊙ (a⟨1⟩ − c̃⟨2⟩) ⊙ z⟨2⟩ ⊙ (1 − z⟨2⟩)",
        "dΓr = dc̃ ⊙ (W_ca a⟨1⟩ + b_ca) ⊙ Γr⟨2⟩ ⊙ (1 − Γr⟨2⟩)",
        "∂L/∂(W_ax x) at t = 2: [dΓr; dz; dc̃]   (∂L/∂W_ax += [dΓr; dz; dc̃] x⟨2⟩ᵀ once all steps are in)",
        "∂L/∂a⟨1⟩ += ∂L/∂a⟨2⟩ ⊙ z⟨2⟩ + W_aaᵀ [dΓr; dz; dc̃ ⊙ Γr⟨2⟩]",
        "∂L/∂W_aa += [dΓr; dz; dc̃ ⊙ Γr⟨2⟩] a⟨1⟩ᵀ",
        "∂L/∂(b_a (with W_aa)) += [dΓr; dz; dc̃ ⊙ Γr⟨2⟩]   (summed over the batch)",
    ],
    "gru_reset_before": [  # the course's: Γr scales a⟨t−1⟩ before W_ca
        "dc̃ = ∂L/∂a⟨2⟩ ⊙ (1 − z⟨2⟩) ⊙ (1 − c̃⟨2⟩²)",
        "dz = ∂L/∂a⟨2⟩ ⊙ (a⟨1⟩ − c̃⟨2⟩) ⊙ z⟨2⟩ ⊙ (1 − z⟨2⟩)",
        "dΓr = (W_caᵀ dc̃) ⊙ a⟨1⟩ ⊙ Γr⟨2⟩ ⊙ (1 − Γr⟨2⟩)",
        "∂L/∂(W_ax x) at t = 2: [dΓr; dz; dc̃]   (∂L/∂W_ax += [dΓr; dz; dc̃] x⟨2⟩ᵀ once all steps are in)",
        "∂L/∂a⟨1⟩ += ∂L/∂a⟨2⟩ ⊙ z⟨2⟩ + (W_caᵀ dc̃) ⊙ Γr⟨2⟩ + W_(r,z)ᵀ [dΓr; dz]   (W_(r,z): W_aa's rows for Γr and z)",
        "∂L/∂W_aa += [[dΓr; dz] a⟨1⟩ᵀ;  dc̃ (Γr⟨2⟩ ⊙ a⟨1⟩)ᵀ]",
        "∂L/∂(b_a (with W_aa)) += [dΓr; dz; dc̃]   (summed over the batch)",
    ],
    "simplified_gru": [  # the code keeps z = 1 − Γu: the projection's first block is z's pre-activation
        "dz = ∂L/∂a⟨2⟩ ⊙ (a⟨1⟩ − c̃⟨2⟩) ⊙ z⟨2⟩ ⊙ (1 − z⟨2⟩)",
        "dc̃ = ∂L/∂a⟨2⟩ ⊙ (1 − z⟨2⟩) ⊙ (1 − c̃⟨2⟩²)",
        "∂L/∂(W_ax x) at t = 2: [dz; dc̃]   (∂L/∂W_ax += [dz; dc̃] x⟨2⟩ᵀ once all steps are in)",
        "∂L/∂a⟨1⟩ += ∂L/∂a⟨2⟩ ⊙ z⟨2⟩ + W_aaᵀ [dz; dc̃]",
        "∂L/∂W_aa += [dz; dc̃] a⟨1⟩ᵀ",
        "∂L/∂(b_a (with W_aa)) += [dz; dc̃]   (summed over the batch)",
    ],
    "lstm_peephole": [
        "dΓo = ∂L/∂a⟨2⟩ ⊙ tanh(c⟨2⟩) ⊙ Γo⟨2⟩ ⊙ (1 − Γo⟨2⟩)",
        "dc = (∂L/∂c⟨2⟩ from c⟨3⟩) + ∂L/∂a⟨2⟩ ⊙ Γo⟨2⟩ ⊙ (1 − tanh(c⟨2⟩)²)  + dΓo ⊙ w_co",
        "dc̃ = dc ⊙ Γu⟨2⟩ ⊙ (1 − c̃⟨2⟩²),  dΓu = dc ⊙ c̃⟨2⟩ ⊙ Γu⟨2⟩ ⊙ (1 − Γu⟨2⟩),  dΓf = dc ⊙ c⟨1⟩ ⊙ Γf⟨2⟩ ⊙ (1 − Γf⟨2⟩)",
        "∂L/∂(W_ax x) at t = 2: [dΓu; dΓf; dc̃; dΓo]   (∂L/∂W_ax += [dΓu; dΓf; dc̃; dΓo] x⟨2⟩ᵀ once all steps are in)",
        "∂L/∂(a, c)⟨1⟩ += (W_aaᵀ [dΓu; dΓf; dc̃; dΓo],  dc ⊙ Γf⟨2⟩ + dΓu ⊙ w_ci + dΓf ⊙ w_cf)  for (a⟨1⟩, c⟨1⟩)",
        "∂L/∂W_aa += [dΓu; dΓf; dc̃; dΓo] a⟨1⟩ᵀ",
        "∂L/∂(b_a (with W_aa)) += [dΓu; dΓf; dc̃; dΓo]   (summed over the batch)",
        "∂L/∂w_ci += Σ dΓu ⊙ c⟨1⟩,  ∂L/∂w_cf += Σ dΓf ⊙ c⟨1⟩,  ∂L/∂w_co += Σ dΓo ⊙ c⟨2⟩",
    ],
}


@pytest.mark.parametrize("variant", sorted(STEP_RULES))
def test_each_fused_cell_step_shows_its_own_backward(variant):
    from tests.cell_variants import CELLS

    cell = CELLS[variant]()
    out, _ = nn.Recurrent(cell)(ts.randn(3, 1, 3))
    graph = viz.trace(out.sum(), dict(cell.named_parameters()))
    step = next(r for k, r in rules.node_rules(graph).items() if graph.nodes[k].op.endswith("Step") and graph.nodes[k].tags["t"] == 2)
    assert step["backward"] == STEP_RULES[variant]


def test_a_step_with_ended_sequences_says_their_gradient_passes_through():
    out, _ = nn.Recurrent(nn.RNNCell(3, 4))(ts.randn(3, 2, 3), lengths=[3, 1])
    graph = viz.trace(out.sum())
    step = next(r for k, r in rules.node_rules(graph).items() if graph.nodes[k].op == "RNNStep" and graph.nodes[k].tags["t"] == 2)
    assert step["backward"][-1] == "(a sequence that has ended keeps a⟨1⟩: its gradient passes straight through to it)"


def test_the_loss_rule_follows_its_reduction_and_smoothing():
    from tinygrad_seq.nn import functional as F

    logits = ts.randn(4, 3, requires_grad=True, name="ŷ")
    for options, expected in [
        ({"reduction": "sum"}, "∂L/∂ŷ = ∂L/∂L (softmax(ŷ) − one_hot(y))"),
        ({}, "∂L/∂ŷ = ∂L/∂L (softmax(ŷ) − one_hot(y)) / the number of targets counted (a mean; ignore_index ones are not)"),
        ({"reduction": "sum", "label_smoothing": 0.1}, "∂L/∂ŷ = ∂L/∂L (softmax(ŷ) − ((1 − 0.1) one_hot(y) + 0.1 / C))"),
    ]:
        loss = F.cross_entropy(logits, np.array([0, 1, 2, 0]), **options)
        loss.name = "L"
        graph = viz.trace(loss)
        assert rules.node_rules(graph)[graph.root]["backward"] == [expected]


def every_function():
    found, todo = [], [Function]
    while todo:
        for sub in todo.pop().__subclasses__():
            todo.append(sub)
            if sub.__module__.startswith("tinygrad_seq."):
                found.append(sub)
    return found


@pytest.mark.parametrize("op", sorted({f.__name__ for f in every_function()}))
def test_every_op_of_the_library_has_a_forward_formula_and_a_backward_rule(op):
    assert op in rules.FORWARD or op in rules.CELL_FORWARD
    assert op in rules.BACKWARD or op in rules.CELL_STEPS


def test_a_users_op_shows_its_name_or_its_own_rule(tmp_path):
    class Cube(Function):
        def forward(self, x):
            self.x = x
            return x**3

        def backward(self, grad):
            return (3 * self.x**2 * grad,)

    class Square(Cube):
        backward_rule = "{in0} gets 2 {in0} ⊙ ∂L/∂{out}"

        def forward(self, x):
            self.x = x
            return x**2

        def backward(self, grad):
            return (2 * self.x * grad,)

    x = ts.Tensor([1.0, 2.0], requires_grad=True, name="x")
    data = page_data(viz.explore(Square.apply(Cube.apply(x)).sum(), tmp_path / "op.html").page)
    rules_by_op = {s["op"]: s["rule"] for s in data["backward"]}
    assert rules_by_op["Cube"] == ["Cube: no rule written for this op; its backward() sends each input its gradient"]
    assert rules_by_op["Square"] == ["Cube gets 2 Cube ⊙ ∂L/∂Square"]


def test_a_formula_brackets_an_argument_only_where_its_operator_is_at_the_top():
    """tanh(w ⊙ x) is one term: written bare when multiplied. A product or a sum is bracketed as an argument."""
    x = ts.Tensor(np.ones((2, 3)), name="x")
    w, v = (ts.Tensor(np.full((2, 3), value), requires_grad=True, name=name) for value, name in ((0.5, "w"), (0.25, "v")))
    product = w * x
    loss = ((product.tanh() * v).sum() + (product + v) * v).sum()
    names = set(rules.names(viz.trace(loss, {"w": w, "v": v})).values())
    assert {"tanh(w ⊙ x)", "tanh(w ⊙ x) ⊙ v", "Σ (tanh(w ⊙ x) ⊙ v)", "((w ⊙ x) + v) ⊙ v"} <= names


def test_a_long_graph_is_collapsed_one_box_per_cell_step(tmp_path):
    model, loss = build("lstm", steps=12)
    assert 12 > COLLAPSE_STEPS and len(viz.trace(loss)) < COLLAPSE_ABOVE  # long, though not large
    with pytest.warns(viz.CollapsedWarning, match=r"explore: 12 time steps and \d+ nodes, drawn with one box per cell "
                      r"step \(the steps still visit every node\): .*Pass collapse=False") as caught:
        explorer = viz.explore(loss, tmp_path / "long.html", params=model.parameters())
    assert caught[0].filename == __file__  # as draw_graph's: the user's line
    data = page_data(explorer.page)
    assert explorer.collapsed and data["collapsed"]
    gate = next(s for s in data["backward"] if s["name"] == "Γf⟨5⟩")
    assert gate["drawn"] == ["step_0_forward_5"]  # the gate lights up its step's box
    small_model, small_loss = build("lstm", steps=2)
    assert not viz.explore(small_loss, tmp_path / "short.html").collapsed
    _, large = build("lstm", steps=6, layers=2, bidirectional=True)  # 463 nodes
    assert len(viz.trace(large)) > COLLAPSE_ABOVE
    with pytest.warns(viz.CollapsedWarning, match="6 time steps"):
        assert viz.explore(large, tmp_path / "large.html").collapsed
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # asked for: no warning
        assert viz.explore(build("lstm", steps=12)[1], tmp_path / "forced.html", collapse=True).collapsed


def test_jupyter_shows_the_same_page_inline(tmp_path):
    model, loss = build("rnn", steps=2, fused=True)
    explorer = viz.explore(loss)  # a temporary file
    try:
        shown = explorer._repr_html_()
        assert shown.startswith("<iframe") and 'srcdoc="' in shown
        srcdoc = re.search(r'srcdoc="([^"]*)"', shown).group(1)
        assert html.unescape(srcdoc) == explorer.path.read_text(encoding="utf-8")
    finally:
        explorer.path.unlink()


def test_bad_input_is_a_clear_error():
    with pytest.raises(TypeError, match="explore: expects the Tensor"):
        viz.explore(np.ones(2))
    with pytest.raises(ValueError, match=r"explore: runs backward from a scalar; got a tensor of shape \(2,\).*loss.sum\(\)"):
        viz.explore(ts.ones(2, requires_grad=True) * 2)
    with pytest.raises(ValueError, match="explore: the loss does not require grad"):
        viz.explore(ts.ones(2).sum())
    with pytest.raises(ValueError, match="explore: the loss is a leaf tensor"):
        viz.explore(ts.ones(1, requires_grad=True))
    loss = (ts.ones(2, requires_grad=True) * 3).sum()
    loss.backward()
    with pytest.raises(ValueError, match=r"explore: the loss's graph was freed by an earlier backward\(\).*compute the loss again"):
        viz.explore(loss)


def test_bptt_command_writes_the_explorer(tmp_path, monkeypatch, capsys):
    from tinygrad_seq.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["bptt", "--cell", "gru", "--steps", "2", "--html", "explorer.html"]) == 0
    printed = capsys.readouterr().out
    assert "explorer: explorer.html" in printed and "step   1/" in printed
    page = (tmp_path / "explorer.html").read_text(encoding="utf-8")
    assert len(page_data(page)["backward"]) == int(re.search(r"(\d+) steps\.", printed).group(1))
    assert not (tmp_path / "bptt").exists()  # no frames unless --out asks for them


def test_a_python_number_is_written_where_it_stood():
    """A number reaches an op as the keyword ``scalar`` (None in its place); the rules still write it there."""
    x = ts.Tensor([1.0, 2.0], requires_grad=True, name="x")
    found = rules.node_rules(viz.trace(((1 - x) * 2) ** 3))
    forward = [entry["forward"] for entry in found.values()]
    assert forward == ["1 − x   (Sub)", "(1 − x) ⊙ 2   (Mul)", "((1 − x) ⊙ 2)^3   (Pow)"]
    assert ["∂L/∂x = −∂L/∂(1 − x)"] in [entry["backward"] for entry in found.values()]
    numpy_number = rules.node_rules(viz.trace(x * np.float32(2.5)))  # a NumPy number is written too, not as "·"
    assert [entry["forward"] for entry in numpy_number.values()] == ["x ⊙ 2.5   (Mul)"]
