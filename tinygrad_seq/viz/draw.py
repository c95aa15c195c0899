"""From the graph model to a Graphviz Digraph: clusters per time step, course-notation labels.

Colour legend
-------------
==================  =========================================================
colour              what
==================  =========================================================
light blue          parameters (leaves that require grad), with module path
                    and course name: ``rnn.weight_hh_l0 · W_aa``
grey box            inputs (float leaves without grad): x, h0; one made in a
                    step by an op is named by it: "Concat (no grad)"
small grey text     constants: token ids, masks
white box           an op's output, labelled with the op
light yellow        states (role "state"): a⟨t⟩, c⟨t⟩, a user's parts
light green         gates and candidates (role "gate": Γu, Γf, Γo, Γr, z, c̃,
                    a user's), predictions ŷ⟨t⟩ and per-step losses L⟨t⟩
                    (roles "output", "loss")
light red           the tensor the graph was drawn from (usually the loss)
dashed frame        a cluster: one per time step ("t = 3"), inside one per
                    row (layer and direction) for deep, bidirectional and
                    per-step-output models
==================  =========================================================

With the backward stepper: dark grey nodes are done, the orange node is the
current step (its gradient shown), white nodes are still pending; the orange
edges carry the gradients the current step sends to its inputs.
"""
from __future__ import annotations

import contextlib
import warnings
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import graphviz
import numpy as np

from ..callers import callers_level
from ..lazy_grad import LazyGrad
from ..tensor import Tensor
from . import notation
from .images import FONT, has_dot, render_svg
from .trace import Graph, GraphNode, parameter_names, trace

PARAMETER, INPUT, OP, STATE, GATE, ROOT = "#cfe2f3", "#eeeeee", "#ffffff", "#fff2cc", "#d9ead3", "#f4cccc"
DONE, CURRENT = "#b7b7b7", "#f6b26b"
FILL_BY_ROLE = {"state": STATE, "gate": GATE, "output": GATE, "loss": GATE}  # colours read roles, never labels
# Up to this many nodes and EDGE_LABELS_UP_TO_STEPS time steps the gradients the stepper's current node sends are
# labels of their edges; above either, labels placed beside them after the layout (xlabel): an edge label doubles
# dot's ranks, and on a 2-layer bidirectional LSTM (304 nodes) two of them took a frame from 1.6 s to 27 s; a frame
# of an RNN gate by gate took 0.3 s at 7 steps (70 nodes), 0.5 at 8, 1.1 at 9 and 2.8 at 10, against 0.1–0.3 s
# with xlabels. A small graph keeps them on the edge, readable.
EDGE_LABELS_UP_TO = 150
EDGE_LABELS_UP_TO_STEPS = 7
# Beyond either size, a graph is drawn with one box per cell step unless asked otherwise (draw_graph's
# collapse_cells=None, explore's collapse=None, the CLI without --no-collapse): Graphviz's time-step grid takes
# seconds, then minutes, as steps and nodes grow, and Ctrl-C does not stop the in-process layout. Measured with
# dot 2.43 on 2 cores: at 10 steps 0.7-2.5 s (an RNN or an LSTM gate by gate, a 2-layer bidirectional LSTM);
# at 16 a minute (an LSTM with its output row); gate by gate, an RNN of 25 steps (132 nodes) 79 s, an LSTM of
# 22 (382 nodes) 136 s; in-process about as slow. visualization.md's first picture (4 steps, 303 nodes) is whole.
COLLAPSE_STEPS = 10  # time steps
COLLAPSE_ABOVE = 400  # nodes


class CollapsedWarning(UserWarning):
    """draw_graph drew each cell step as one box by itself, the graph being too large to lay out in seconds
    (:func:`too_large_to_lay_out`)."""


class Digraph(graphviz.Digraph):
    """A graphviz.Digraph that displays in Jupyter without Graphviz's ``dot`` program.

    graphviz's own display runs ``dot`` and raises ExecutableNotFound where it
    is missing; this one renders the SVG in-process (see ``render_svg``).
    ``drawn_as`` (set by ``draw_graph``) maps each graph node's key to the DOT
    nodes that show it, for tools that light nodes up in the rendered SVG.
    """

    drawn_as: dict[str, list[str]]

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None, **_: Any) -> dict[str, str]:
        return {"image/svg+xml": render_svg(self.source)}

    def _repr_svg_(self) -> str:
        return render_svg(self.source)


def summarize(array: Any, limit: int = 6) -> str:
    """A short text for a small array's values, or its mean and spread for a large one."""
    if isinstance(array, list):  # several lazy parts for one input (blocks of a weight's rows)
        array = sum(part.dense() for part in array)
    elif isinstance(array, LazyGrad):
        prefix, shown = array.display()
        return prefix + summarize(shown, limit)
    if isinstance(array, Tensor):  # a parameter, say: its values (NumPy may not take one that requires grad)
        array = array.numpy()
    values = np.asarray(Tensor.wrap(array).numpy() if not isinstance(array, np.ndarray) else array, dtype=np.float64)
    if values.size <= limit:
        shown = np.round(values.ravel(), 3) + 0.0  # + 0.0: a tiny negative value shows as 0., not -0.
        return np.array2string(shown, precision=3, separator=" ", suppress_small=True)
    with np.errstate(invalid="ignore", over="ignore"):  # an inf among them: its mean and spread read inf or nan, quietly
        mean, spread, largest = values.mean(), values.std(), np.abs(values).max()
    if np.isfinite(largest) and abs(mean) <= 1e-6 * largest:  # rounding left over from values that sum to 0 (a
        # softmax's gradient): shown as 0. Not with an inf among them, whose mean is inf or nan, and says so
        mean = 0.0
    return f"μ={mean:.3g} σ={spread:.3g} |max|={largest:.3g}"


def _fill(node: GraphNode, root: str) -> str:
    if node.key == root:
        return ROOT
    if node.kind == "parameter":
        return PARAMETER
    if node.kind in ("input", "constant"):
        return INPUT
    return FILL_BY_ROLE.get(node.role, OP)


def _label(graph: Graph, node: GraphNode, show_shapes: bool, show_values: bool, grad: Any) -> str:
    """A node's text: a parameter's path with its course name (``Graph.parameter_label``), an op's name, ..."""
    lines = []
    if node.kind == "parameter":
        lines.append(graph.parameter_label(node.key))
    elif node.kind == "op" and node.label != node.op:
        lines += [node.label, node.op]
    else:
        lines.append(node.label)
    if show_shapes:
        lines.append(str(tuple(node.shape)))
    if show_values:
        lines.append("= " + summarize(node.tensor.data))
    if grad is not None:
        lines.append("∇ " + summarize(grad))
    return "\\n".join(lines)


def _row_sort_key(row: tuple[Any, Any]) -> tuple:
    """Rows from the inputs up: layers in order, a reverse direction after its forward one, then layers
    tagged with something other than a number (the per-step outputs of ``viz.demo``: "output")."""
    layer, direction = row
    index = notation.layer_index(layer)
    if layer is None:
        place = (0, 0, "")
    elif index is not None:
        place = (1, index, "")
    else:
        place = (2, 0, str(layer))
    return place + ({"forward": 0, "reverse": 1}.get(direction, 2), str(direction))


def _both_directions(layer: Any, rows: list) -> bool:
    return sum(1 for other in rows if other[0] == layer) > 1


def _row_label(row: tuple[Any, Any], rows: list) -> str:
    """ "layer 1", or "layer 1 forward" and "layer 1 reverse" for a bidirectional layer; "output"."""
    return notation.layer_name(row[0]) + (f" {row[1]}" if _both_directions(row[0], rows) else "")


def gate_slices(graph: Graph) -> dict[str, str]:
    """The slices that cut one stacked-gates matmul into its gates, each mapped to the node it cuts.

    A slice is a GetItem made in a time step, without a role, whose input is
    an op of the same step: ``chunk(x @ W.T, 4)`` in an LSTM step, or a part
    taken out of a step's packed state by a cell whose output is more than
    its first part (the built-in LSTM's a⟨t⟩ are gathered after the loop, by
    one StackPart). Not the
    GetItems that pick step t out of a whole sequence: their input is outside
    the time loop, or they carry a role (a deeper layer's input a[l−1]⟨t⟩).
    """
    inputs: dict[str, list[str]] = defaultdict(list)
    for source, target in graph.edges:
        inputs[target].append(source)
    slices: dict[str, str] = {}
    for node in graph.nodes.values():  # forward order: a slice of a slice resolves to the matmul
        if node.op != "GetItem" or node.role is not None or node.step is None or len(inputs[node.key]) != 1:
            continue
        source = graph.nodes[inputs[node.key][0]]
        if source.kind == "op" and source.step == node.step:
            slices[node.key] = slices.get(source.key, source.key)
    return slices


def time_gathers(graph: Graph) -> dict[str, dict[Any, list[str]]]:
    """The nodes that gather a layer's time steps only to be read back one step at a time.

    ``nn.Recurrent`` stacks a layer's outputs a⟨1⟩ … a⟨T⟩ (and ``Bidirectional``
    concatenates the two directions' stacks); the next layer, or the output
    layer, then picks step t out of it (a GetItem made in step t). Each such
    Stack or Concat, outside the time steps, made only of step tensors and
    read only by step-t GetItems, maps to {t: the step tensors of step t it
    holds}. One read any other way (a loss over the whole sequence) is kept.
    """
    inputs: dict[str, list[str]] = defaultdict(list)
    consumers: dict[str, list[str]] = defaultdict(list)
    for source, target in graph.edges:
        inputs[target].append(source)
        consumers[source].append(target)
    held: dict[str, dict[Any, list[str]]] = {}
    for node in graph.nodes.values():
        if node.kind != "op" or node.step is not None or node.key == graph.root or not inputs[node.key]:
            continue
        parts: dict[Any, list[str]] = defaultdict(list)
        for source in inputs[node.key]:
            if source in held:
                for t, keys in held[source].items():
                    parts[t] += keys
            elif graph.nodes[source].step is not None:
                parts[graph.nodes[source].step[2]].append(source)
            else:
                break
        else:
            held[node.key] = dict(parts)
    for key in reversed(list(held)):  # consumers first: a Concat is judged before the Stacks it reads
        for consumer in consumers[key]:
            node = graph.nodes[consumer]
            picks_a_step = node.op == "GetItem" and node.step is not None and node.step[2] in held[key]
            if not (picks_a_step or consumer in held):
                del held[key]
                break
    return held


def draw_graph(
    tensor: Tensor | Graph,
    params: Mapping[str, Tensor] | Any = None,
    *,
    cluster_by_time: bool = True,
    collapse_cells: bool | None = None,
    show_slices: bool = False,
    show_shapes: bool = True,
    show_values: bool = False,
    show_grads: bool = False,
    rankdir: str = "LR",
    grads: Mapping[str, Any] | None = None,
    highlight: Mapping[str, str] | None = None,
    highlight_edges: Mapping[tuple[str, str], str] | None = None,
    current_name: str | None = None,
) -> Digraph:
    """Draw the graph that made ``tensor`` (see the module docstring for the colours).

    The time steps form a grid: one column per step, t = 1 … T left to right
    (top to bottom with ``rankdir="TB"``), and one row per layer and
    direction: layer 1 at the bottom (layers count from 1, as the states in
    them do: a^[1]⟨t⟩), a reverse direction above its forward one, the
    per-step outputs and losses on top (with "TB": layer 1 on the left, the
    outputs on the right).

    Args:
        params: names for parameters: ``dict(model.named_parameters())``, or the model itself.
        cluster_by_time: one cluster per time step ("t = 1", ...); with several
            rows, each row a cluster ("layer 1", "layer 2 reverse", "output")
            holding its time steps' clusters.
        collapse_cells: each cell step becomes one box, so a 1,000-step graph
            stays readable. None (the default): only for a graph of more than
            COLLAPSE_STEPS time steps or COLLAPSE_ABOVE nodes
            (:func:`too_large_to_lay_out`), with a CollapsedWarning (False
            draws every node, however long Graphviz then takes).
        show_slices: draw the nodes that only cut or repackage a tensor: the
            slices that cut a stacked-gates matmul into the gates
            (:func:`gate_slices`), and the Stack/Concat that gather a layer's
            steps to be read back one step at a time (:func:`time_gathers`).
            By default an edge goes straight from the matmul to each gate,
            and from step t's tensors to what reads step t; the stepper's
            current node is drawn all the same.
        show_shapes, show_values: add each tensor's shape, and its values (or
            mean and spread when large).
        show_grads: add gradients: the leaves' ``.grad`` and retained grads,
            after backward (the stepper passes the gradients it has seen).
        rankdir: "LR" puts time left to right, "TB" top to bottom.
        grads, highlight, highlight_edges, current_name: used by the backward
            stepper (gradient by node key, fill colour by node key, label by
            edge, and the current node's name, "W_aa a⟨1⟩[:, 6:9]" for a bare
            op, with which a collapsed box names it).
    """
    graph = tensor if isinstance(tensor, Graph) else trace(tensor, parameter_names(params, "draw_graph"))
    if collapse_cells is None:
        collapse_cells = cluster_by_time and collapse_by_size(graph)
    grads = dict(grads or {})
    if show_grads:
        for node in graph.nodes.values():
            if node.key not in grads and node.tensor.grad is not None:
                grads[node.key] = node.tensor.grad
    highlight = highlight or {}
    highlight_edges = highlight_edges or {}
    # The stepper's current node is always drawn, even when it is a slice.
    slices = {} if show_slices else gate_slices(graph)
    hidden = {k: v for k, v in slices.items() if highlight.get(k) != CURRENT}
    # name: the SVG's <title>, which a browser shows on hovering the picture (Graphviz writes "%3" without one)
    dot = Digraph(name="computation graph", graph_attr={"rankdir": rankdir, "fontname": FONT},  # viz/fonts has it for PNG
                  node_attr={"fontname": FONT, "fontsize": "10", "style": "filled", "shape": "box"},
                  edge_attr={"arrowsize": "0.6", "fontname": FONT})

    gathers = {} if show_slices or collapse_cells or not cluster_by_time else time_gathers(graph)
    # The gather the stepper is on is drawn, and so is each gather linked to a drawn one: a drawn Concat reads its
    # Stacks whole (not step t), and a drawn Stack feeds its Concat. Until no more are linked.
    drawn_gathers = {key for key in gathers if highlight.get(key) == CURRENT}
    while drawn_gathers:
        for key in drawn_gathers:
            del gathers[key]
        drawn_gathers = {end for source, target in graph.edges for end, other in ((source, target), (target, source))
                         if other in drawn_gathers and end in gathers}

    # The edges to draw, each with the graph's edges it stands for: a hidden slice's consumers read the
    # matmul, and what reads step t of a gathered sequence reads step t's own tensors.
    stands_for: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for source, target in graph.edges:
        if target in hidden or target in gathers:
            continue
        drawn_source = hidden.get(source, source)
        tails = gathers[drawn_source][graph.nodes[target].step[2]] if drawn_source in gathers else [drawn_source]
        for tail in dict.fromkeys(hidden.get(k, k) for k in tails):
            stands_for[(tail, target)].append((source, target))

    groups: dict[tuple[Any, Any, Any], list[GraphNode]] = defaultdict(list)
    if cluster_by_time or collapse_cells:
        for node in graph.nodes.values():
            if node.step is not None and node.key not in hidden:
                groups[node.step].append(node)
        # An input or constant used by one time step only (x⟨t⟩, a⟨0⟩, a mask) is drawn inside that step.
        consumers: dict[str, set] = defaultdict(set)
        for source, target in stands_for:
            consumers[source].add(graph.nodes[target].step)
        for node in graph.nodes.values():
            steps = consumers.get(node.key, set())
            if node.step is None and node.kind in ("input", "constant") and len(steps) == 1 and None not in steps:
                groups[next(iter(steps))].append(node)
    placed = {node.key: step for step, members in groups.items() for node in members}
    rows = sorted({step[:2] for step in groups}, key=_row_sort_key)
    columns = sorted({step[2] for step in groups})
    column_of = {t: i for i, t in enumerate(columns)}
    # Rankdir "LR" lays rows out from the top, so the rows from the inputs up are drawn in reverse.
    shown_rows = rows[::-1] if rankdir in ("LR", "RL") else rows
    several_rows = len(rows) > 1

    def node_statement(target: graphviz.Digraph, node: GraphNode) -> None:
        attributes = {"fillcolor": highlight.get(node.key, _fill(node, graph.root))}
        if node.kind == "parameter":
            attributes["shape"] = "ellipse"
        elif node.kind == "constant":
            attributes.update(shape="plaintext", fontsize="8", fontcolor="#777777", style="")
        if node.key in highlight and highlight[node.key] == DONE:
            attributes["fontcolor"] = "#555555"
        if node.key in highlight and highlight[node.key] == CURRENT:
            attributes["penwidth"] = "2"
        grad = grads.get(node.key) if (show_grads or node.key in grads) else None
        target.node(node.key, _label(graph, node, show_shapes, show_values, grad), **attributes)

    group_key: dict[str, str] = {}
    layout_edges: list[tuple[str, str, dict]] = []  # invisible: they hold the grid together
    same_rank: list[tuple[list[str], bool]] = []  # nodes that share a rank; True: keep them in this order
    if collapse_cells:
        box = {step: f"step_{step[0]}_{step[1]}_{step[2]}" for step in groups}
        for step, members in groups.items():
            t = step[2]
            for node in members:
                group_key[node.key] = box[step]
            cell = next((n.tags.get("cell") for n in members if n.tags.get("cell")), None)
            states = sorted({n.label for n in members if n.role == "state"})
            header = "  ".join([f"t = {t}"] + ([cell] if cell else []) + ([_row_label(step[:2], rows)] if several_rows or not cell else []))
            # The nodes drawn when not collapsed: the stepper's current slice joins the box, and is not counted.
            count = sum(1 for n in members if n.key not in slices)
            lines = [header] + ([", ".join(states)] if states else []) + ([f"({count} nodes)"] if show_shapes else [])
            current = next((n for n in members if highlight.get(n.key) == CURRENT), None)
            if current is not None and current.key in grads:  # the stepper's node inside: the gradient arriving at it
                lines.append(f"now {current_name or current.label}: ∇ {summarize(grads[current.key], limit=3)}")
            label = "\\n".join(lines)
            visited = [n for n in members if n.backward_step]  # an input x⟨t⟩ never turns DONE
            fill = CURRENT if any(highlight.get(n.key) == CURRENT for n in members) else (
                DONE if visited and all(highlight.get(n.key) == DONE for n in visited) else STATE)
            # The box is the time step, so no cluster around it: clusters are what makes
            # Graphviz slow on long sequences.
            # One group per row keeps a row's boxes in line.
            # margin: Graphviz 2.43 measures DejaVu Sans a few % narrow, and the longest line touched the box's sides
            dot.node(box[step], label, fillcolor=fill, shape="box3d", group=f"row{rows.index(step[:2])}", margin="0.2,0.06")
        for node in graph.nodes.values():
            if node.key not in group_key and node.key not in hidden:
                node_statement(dot, node)
        # Each column is one rank: a row's boxes in time order, the rows of a column side by side.
        linked = {(group_key.get(s, s), group_key.get(t, t)) for s, t in stands_for}
        for row in rows:
            boxes = [box[(*row, t)] for t in columns if (*row, t) in box]
            layout_edges += [(a, b, {}) for a, b in zip(boxes, boxes[1:]) if (a, b) not in linked]
        if several_rows:
            same_rank = [([box[(*row, t)] for row in shown_rows if (*row, t) in box], True) for t in columns]
    elif cluster_by_time and groups:
        # The weights stay outside the rows: drawn inside their own row, they kept its edges from crossing the
        # others, but Graphviz then let the steps of a deep or bidirectional row drift apart, 100-350 pt where they
        # had kept within 5-100.
        layout_edges, same_rank = _emit_grid(dot, groups, stands_for, rows, shown_rows, columns, node_statement)
        for node in graph.nodes.values():
            if node.key not in placed and node.key not in hidden and node.key not in gathers:
                node_statement(dot, node)
    else:
        for node in graph.nodes.values():
            if node.key not in hidden:
                node_statement(dot, node)

    # An edge into an earlier column (the reverse direction's recurrence), or from a node made of
    # several steps (a layer's outputs gathered by a Stack, then read one step at a time), points
    # back in time: it must not push its head to the right, so it does not constrain the ranks.
    column: dict[str, int] = {}
    gathered: set[str] = set()  # made from steps' nodes outside any step
    sources: dict[str, list[str]] = defaultdict(list)
    for source, target in stands_for:
        sources[target].append(source)
    for key in graph.nodes:
        if key in placed:
            column[key] = column_of[placed[key][2]]
        else:
            column[key] = max((column.get(s, 0) for s in sources[key]), default=0)
            if any(s in placed or s in gathered for s in sources[key]):
                gathered.add(key)

    drawn: set[tuple[str, str]] = set()
    fans = _shared_fans(graph, group_key, placed) if collapse_cells else _read_back_row_by_row(graph, stands_for, placed, gathered)
    on_the_edge = len(graph) <= EDGE_LABELS_UP_TO and _time_steps(graph) <= EDGE_LABELS_UP_TO_STEPS
    for (source, target), originals in stands_for.items():
        edge = (group_key.get(source, source), group_key.get(target, target))
        if edge[0] == edge[1] or edge in drawn:
            continue
        attributes = {}
        backward = target in placed and (column[source] > column[target] or source in gathered)
        lit = next((highlight_edges[o] for o in originals if o in highlight_edges), None)
        if lit is not None:  # the stepper's gradient on its way: drawn even where one edge stands for several
            attributes.update(color=CURRENT, penwidth="2", fontsize="8")
            run = fans.get(edge)  # the edge kept for a run ("shared by t = 1..3") says that too
            if on_the_edge:
                attributes["label"] = f"{run}\\n{lit}" if run else lit
            else:
                attributes.update(xlabel=lit, **({"label": run} if run else {}))
        elif edge in fans:
            if not fans[edge]:
                continue
            attributes.update(label=fans[edge], style="dashed", fontsize="8")
        elif graph.nodes[source].kind == "constant":
            attributes.update(style="dotted", color="#999999")
        drawn.add(edge)
        if backward:
            attributes["constraint"] = "false"
        dot.edge(*edge, **attributes)

    for tail, head, attributes in layout_edges:
        dot.edge(tail, head, style="invis", **attributes)
    if layout_edges and not collapse_cells:
        dot.graph_attr["newrank"] = "true"  # ranks the whole graph at once, across the clusters
    for members, ordered in same_rank:
        with dot.subgraph() as rank:
            rank.attr(rank="same")
            for key in members:
                rank.node(key)
            if ordered:
                for tail, head in zip(members, members[1:]):
                    rank.edge(tail, head, style="invis")
    dot.drawn_as = _drawn_as(graph, hidden, gathers, group_key)
    return dot


def too_large_to_lay_out(graph: Graph) -> bool:
    """Whether ``graph`` has time steps and more than COLLAPSE_STEPS of them or COLLAPSE_ABOVE nodes: then its
    grid takes Graphviz too long to lay out, and it is drawn with one box per cell step unless asked otherwise."""
    times = _time_steps(graph)
    return times > 0 and (times > COLLAPSE_STEPS or len(graph) > COLLAPSE_ABOVE)


def _time_steps(graph: Graph) -> int:
    """How many time steps (columns of the grid) ``graph`` has."""
    return len({t for _, _, t in graph.steps()})


def collapse_by_size(graph: Graph, caller: str = "draw_graph", option: str = "collapse_cells", aside: str = "") -> bool:
    """What ``option=None`` of ``caller`` (draw_graph's collapse_cells, explore's collapse) decides:
    :func:`too_large_to_lay_out`, with a CollapsedWarning when it is; ``aside`` is said after "one box per cell step"."""
    if not too_large_to_lay_out(graph):
        return False
    times = _time_steps(graph)
    unstoppable = "" if has_dot() else ", and the in-process layout (no dot installed) cannot be stopped with Ctrl-C"
    warnings.warn(
        f"{caller}: {times} time steps and {len(graph)} nodes, drawn with one box per cell step{aside}: Graphviz "
        f"would take minutes to lay out more than {COLLAPSE_STEPS} time steps or {COLLAPSE_ABOVE} nodes{unstoppable}. "
        f"Pass {option}=False to draw every node anyway (--no-collapse on the command line), or {option}=True "
        "(--collapse) to ask for the boxes and silence this",
        CollapsedWarning, stacklevel=callers_level())
    return True


def _drawn_as(graph: Graph, hidden: Mapping[str, str], gathers: Mapping[str, Mapping[Any, list[str]]],
              group_key: Mapping[str, str]) -> dict[str, list[str]]:
    """Graph key -> the DOT nodes that show it: itself, its collapsed step's box, the matmul a hidden
    slice cuts, or the step tensors a hidden gather holds (what the explorer lights up for it)."""
    def shown(key: str) -> str:
        key = hidden.get(key, key)
        return group_key.get(key, key)

    drawn = {}
    for key in graph.nodes:
        if key in gathers:
            drawn[key] = list(dict.fromkeys(shown(k) for keys in gathers[key].values() for k in keys))
        else:
            drawn[key] = [shown(key)]
    return drawn


INVISIBLE = {"shape": "point", "style": "invis", "width": "0", "height": "0"}


def _emit_grid(dot: graphviz.Digraph, groups: Mapping[tuple[Any, Any, Any], list[GraphNode]],
               stands_for: Mapping[tuple[str, str], Any], rows: list, shown_rows: list, columns: list,
               node_statement: Any) -> tuple[list[tuple[str, str, dict]], list[tuple[list[str], bool]]]:
    """Emit the time steps as clusters in a grid; return the invisible edges that hold it, and the rows' ends, which
    share a rank each side, in the rows' order.

    Columns: each row has invisible separators before each of its columns
    and after the last. Every node of step t that feeds nothing else in its
    step points to the separator after the step, which leads to every node
    of step t+1 that nothing in its step feeds, so a column starts only
    after the previous one ends. With one row, the separators are one
    ``group`` (Graphviz keeps a group's edges straight, so they stand in a
    line) and the edges into and out of the steps weigh more: the steps stay
    on that line. Held by nothing else, as in a language model whose head
    reads the whole output sequence, each step had been drawn below the one
    before, down the picture. With several rows, each column boundary
    has two separators per row, chained down the rows and back up (edges of
    length 0 or more): every row's next column then starts after every
    row's column has ended, so the columns of all rows line up. (A shared
    rank across clusters would do the same, but Graphviz then sometimes
    draws nodes outside their cluster.)

    Rows: one cluster per layer and direction. Graphviz ignores flat edges
    between clusters, so the rows' order comes from invisible nodes outside
    them, one per row before the first column and one after the last. Each
    side's share a rank and are kept in order twice over: by flat edges, and
    by one node that reaches them all through edges in that order
    ("ordering"). Either alone let Graphviz swap rows: the ordering node in
    about one frame in four of the backward stepper's (whose gradients widen
    the nodes), the flat edges in a deep bidirectional graph, which they also
    broke apart when they were all that held the rows. The edge from each
    into its row joins two nodes of one ``group``, which makes crossing it
    costly enough that the rows follow their order.
    """
    step_of = {n.key: step for step, members in groups.items() for n in members}
    order = {key: i for i, key in enumerate(step_of)}
    fed_inside, feeds_inside = set(), set()
    for source, target in stands_for:
        if source in step_of and step_of.get(target) == step_of[source]:
            feeds_inside.add(source)
            fed_inside.add(target)
    last = len(columns)
    several = len(rows) > 1
    # down[(row, i)] is reached from column i − 1, up[(row, i)] leads to column i; one node with one row.
    down = {(row, i): f"sep_{rows.index(row)}_{i}" for row in rows for i in range(last + 1)}
    up = {(row, i): f"sep_{rows.index(row)}_{i}_up" for row in rows for i in range(last + 1)} if several else down
    edges: list[tuple[str, str, dict]] = []
    pull = {} if several else {"weight": "8"}  # one row: its steps are held to the line of its separators (see above)
    for row in rows:
        for i, t in enumerate(columns):
            keys = {n.key for n in groups.get((*row, t), ())}
            edges += [(up[(row, i)], k, pull) for k in sorted(keys - fed_inside, key=order.get)]
            edges += [(k, down[(row, i + 1)], pull) for k in sorted(keys - feeds_inside, key=order.get)]
            edges.append((up[(row, i)], down[(row, i + 1)], {}))
    if several:
        for i in range(last + 1):
            for above, below in zip(shown_rows, shown_rows[1:]):
                edges += [(down[(above, i)], down[(below, i)], {"minlen": "0"}), (up[(below, i)], up[(above, i)], {"minlen": "0"})]
            edges.append((down[(shown_rows[-1], i)], up[(shown_rows[-1], i)], {"minlen": "0"}))

    def ends(row: tuple[Any, Any], i: int) -> dict[str, str]:
        return {"group": f"row{rows.index(row)}"} if not several or i in (0, last) else {}

    for row in shown_rows:
        layer, direction = row
        with contextlib.ExitStack() as stack:
            target = dot
            if several:
                target = stack.enter_context(dot.subgraph(name=f"cluster_layer{layer}" + (f"_{direction}" if _both_directions(layer, rows) else "")))
                target.attr(label=_row_label(row, rows), style="dashed", color="#999999", fontsize="11")
            for i, t in enumerate(columns + [None]):
                for key in dict.fromkeys((down[(row, i)], up[(row, i)])):
                    target.node(key, **INVISIBLE, **ends(row, i))
                if t is not None and (*row, t) in groups:
                    with target.subgraph(name=f"cluster_layer{layer}_{direction}_t{t}") as cluster:
                        cluster.attr(label=f"t = {t}", style="dashed", color="#999999", fontsize="11")
                        for node in groups[(*row, t)]:
                            node_statement(cluster, node)
    if not several:
        return edges, []
    dot.node("rows_start", ordering="out", **INVISIBLE)
    dot.node("rows_end", ordering="in", **INVISIBLE)
    for row in shown_rows:
        start, finish = f"row{rows.index(row)}_start", f"row{rows.index(row)}_end"
        dot.node(start, **INVISIBLE, **ends(row, 0))
        dot.node(finish, **INVISIBLE, **ends(row, last))
        edges += [("rows_start", start, {}), (start, down[(row, 0)], {}), (up[(row, last)], finish, {}), (finish, "rows_end", {})]
    return edges, [([f"row{rows.index(row)}_{side}" for row in shown_rows], True) for side in ("start", "end")]


def _read_row_by_row(node: GraphNode, readers: list[GraphNode]) -> bool:
    """Whether the steps read ``node`` one row each: the input projection of all steps (each fused step reads its
    row t), or a sequence every step takes its own step t out of (a GetItem of row t − 1, t counted from 1 along
    the sequence); not a weight (or a mask) they all use, nor one row that every step reads."""
    return node.role == "projection" or node.sequence is not None and all(
        reader.op == "GetItem" and reader.step is not None
        and node.sequence.picks(reader.tensor.grad_fn.params.get("index")) == reader.step[2] for reader in readers)


def _read_back_row_by_row(graph: Graph, stands_for: Mapping[tuple[str, str], Any], placed: Mapping[str, Any],
                          gathered: set[str]) -> dict[tuple[str, str], str]:
    """In a grid drawn node by node, one edge stands for the links of a sequence made after the steps of a row to
    each of them, where each step reads its row t: a deep fused layer's input projection x^[2] W_ax^T of all
    steps (it reads the layer below gathered), or a gather the stepper draws while it is the current node (a
    layer's outputs stacked, which the output row picks step t out of). Drawn after the last column, its edges
    back to each step would loop across the picture; one dashed edge goes to the last step, labelled "row t to
    step t = 1..T", as in collapsed drawings (:func:`_shared_fans`).
    Returns edge -> label for the edge kept, and edge -> "" for the ones dropped."""
    readers: dict[str, list[GraphNode]] = defaultdict(list)
    for source, target in graph.edges:
        readers[source].append(graph.nodes[target])
    runs: dict[tuple[str, Any, Any], list[tuple[Any, str]]] = defaultdict(list)
    for source, target in stands_for:
        if source in gathered and target in placed and _read_row_by_row(graph.nodes[source], readers[source]):
            layer, direction, t = placed[target]
            runs[(source, layer, direction)].append((t, target))
    fans: dict[tuple[str, str], str] = {}
    for (source, _, _), members in runs.items():
        if len(members) < 2:
            continue
        members.sort(key=lambda member: member[0])
        fans.update({(source, target): "" for _, target in members})
        fans[(source, members[-1][1])] = f"row t to step t = {members[0][0]}..{members[-1][0]}"
    return fans


def _shared_fans(graph: Graph, group_key: Mapping[str, str], placed: Mapping[str, Any]) -> dict[tuple[str, str], str]:
    """In collapsed drawings, one edge stands for a node's links to every step of a run.

    A weight used by all T steps would otherwise get T edges (and Graphviz's
    layout time grows quadratically with them); it gets one dashed edge to the
    first step, labelled with how many steps share it. A sequence that the
    steps read one step each (the layer below's outputs, gathered) gets one
    edge too, labelled so, to the last step: the gather is drawn after the
    last column, and an edge from it back to the first looped across the
    picture. Likewise the steps' outputs gathered by one node (a Stack) get
    one edge from the last step.
    Returns edge -> label for the edge kept, and edge -> "" for the ones dropped.
    """
    runs: dict[tuple[str, str, Any, Any], list[tuple[Any, str]]] = defaultdict(list)
    readers: dict[str, list[GraphNode]] = defaultdict(list)
    for source, target in graph.edges:
        readers[source].append(graph.nodes[target])
        if source in group_key and target not in group_key:
            layer, direction, t = placed[source]
            runs[("out", target, layer, direction)].append((t, group_key[source]))
        elif target in group_key and source not in group_key:
            layer, direction, t = placed[target]
            runs[("in", source, layer, direction)].append((t, group_key[target]))
    fans: dict[tuple[str, str], str] = {}
    for (way, other, _, _), members in runs.items():
        steps = sorted(set(members), key=lambda m: m[0])
        row_by_row = way == "in" and _read_row_by_row(graph.nodes[other], readers[other])
        if len(steps) < (2 if row_by_row else 3):  # two edges to a weight read well; one back to t = 1 loops
            continue
        first_t, last_t = steps[0][0], steps[-1][0]
        keep = steps[0][1] if way == "in" and not row_by_row else steps[-1][1]
        for _, box in steps:
            edge = (other, box) if way == "in" else (box, other)
            fans[edge] = ""
        kept = (other, keep) if way == "in" else (keep, other)
        if way == "out":
            fans[kept] = f"from t = {first_t}..{last_t}"
        elif row_by_row:
            fans[kept] = f"row t to step t = {first_t}..{last_t}"
        else:
            fans[kept] = f"shared by t = {first_t}..{last_t}"
    return fans
