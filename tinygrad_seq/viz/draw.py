"""From the graph model to a Graphviz Digraph: clusters per time step, course-notation labels.

Colour legend
-------------
==================  =========================================================
colour              what
==================  =========================================================
light blue          parameters (leaves that require grad), with module path
                    and course name: ``rnn.weight_hh_l0 · W_aa``
grey box            inputs (float leaves without grad): x, h0
small grey text     constants: token ids, masks
white box           an op's output, labelled with the op
light yellow        states (role "state"): a⟨t⟩, c⟨t⟩, a user's parts
light green         gates and candidates (role "gate": Γu, Γf, Γo, Γr, z, c̃,
                    a user's), predictions ŷ⟨t⟩ and per-step losses L⟨t⟩
                    (roles "output", "loss")
light red           the tensor the graph was drawn from (usually the loss)
dashed frame        a cluster: one per time step ("t = 3"), inside one per
                    layer and direction for deep and bidirectional models
==================  =========================================================

With the backward stepper: dark grey nodes are done, the orange node is the
current step (its gradient shown), white nodes are still pending; the orange
edges carry the gradients the current step sends to its inputs.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import graphviz
import numpy as np

from ..tensor import SliceGrad, Tensor
from .trace import Graph, GraphNode, course_parameter_name, trace

PARAMETER, INPUT, OP, STATE, GATE, ROOT = "#cfe2f3", "#eeeeee", "#ffffff", "#fff2cc", "#d9ead3", "#f4cccc"
DONE, CURRENT = "#b7b7b7", "#f6b26b"
FILL_BY_ROLE = {"state": STATE, "gate": GATE, "output": GATE, "loss": GATE}  # colours read roles, never labels


class Digraph(graphviz.Digraph):
    """A graphviz.Digraph that displays in Jupyter without Graphviz's ``dot`` program.

    graphviz's own display runs ``dot`` and raises ExecutableNotFound where it
    is missing; this one renders the SVG in-process (see ``render_svg``).
    """

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None, **_: Any) -> dict[str, str]:
        from .render import render_svg

        return {"image/svg+xml": render_svg(self.source)}

    def _repr_svg_(self) -> str:
        from .render import render_svg

        return render_svg(self.source)


def summarize(array: Any, limit: int = 6) -> str:
    """A short text for a small array's values, or its mean and spread for a large one."""
    if isinstance(array, SliceGrad):
        return f"[{array.index}]: " + summarize(array.values, limit)
    if isinstance(array, list):  # several lazy parts for one input (blocks of a weight's rows)
        array = sum(part.dense() for part in array)
    elif hasattr(array, "dense"):  # a lazy gradient (a weight's per-step outer product): shown in full
        array = array.dense()
    values = np.asarray(Tensor.wrap(array).numpy() if not isinstance(array, np.ndarray) else array, dtype=np.float64)
    if values.size <= limit:
        return np.array2string(values.ravel(), precision=3, separator=" ", suppress_small=True)
    return f"μ={values.mean():.3g} σ={values.std():.3g} |max|={np.abs(values).max():.3g}"


def _fill(node: GraphNode, root: str) -> str:
    if node.key == root:
        return ROOT
    if node.kind == "parameter":
        return PARAMETER
    if node.kind in ("input", "constant"):
        return INPUT
    return FILL_BY_ROLE.get(node.role, OP)


def _label(node: GraphNode, show_shapes: bool, show_values: bool, grad: Any) -> str:
    lines = []
    if node.kind == "parameter":
        course = course_parameter_name(node.label)
        lines.append(f"{node.label} · {course}" if course else node.label)
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


def _cluster_path(step: tuple[Any, Any, Any], nested: bool) -> list[tuple[str, str]]:
    """(cluster name, label) from the outermost cluster in; nested adds layer and direction levels."""
    layer, direction, t = step
    path = []
    if nested:
        path.append((f"cluster_layer{layer}", f"layer {layer}"))
        path.append((f"cluster_layer{layer}_{direction}", str(direction)))
    path.append((f"cluster_layer{layer}_{direction}_t{t}", f"t = {t}"))
    return path


def draw_graph(
    tensor: Tensor | Graph,
    params: Mapping[str, Tensor] | None = None,
    *,
    cluster_by_time: bool = True,
    collapse_cells: bool = False,
    show_shapes: bool = True,
    show_values: bool = False,
    show_grads: bool = False,
    rankdir: str = "LR",
    grads: Mapping[str, Any] | None = None,
    highlight: Mapping[str, str] | None = None,
    highlight_edges: Mapping[tuple[str, str], str] | None = None,
) -> Digraph:
    """Draw the graph that made ``tensor`` (see the module docstring for the colours).

    Args:
        params: names for parameters, e.g. ``dict(model.named_parameters())``.
        cluster_by_time: one cluster per time step ("t = 1", ...), nested per
            layer and direction when there are several.
        collapse_cells: each cell step becomes one box, so a 1,000-step graph
            stays readable.
        show_shapes, show_values: add each tensor's shape, and its values (or
            mean and spread when large).
        show_grads: add gradients: the leaves' ``.grad`` and retained grads,
            after backward (the stepper passes the gradients it has seen).
        rankdir: "LR" puts time left to right, "TB" top to bottom.
        grads, highlight, highlight_edges: used by the backward stepper
            (gradient by node key, fill colour by node key, label by edge).
    """
    graph = tensor if isinstance(tensor, Graph) else trace(tensor, params)
    grads = dict(grads or {})
    if show_grads:
        for node in graph.nodes.values():
            if node.key not in grads and node.tensor.grad is not None:
                grads[node.key] = node.tensor.grad
    highlight = highlight or {}
    dot = Digraph(graph_attr={"rankdir": rankdir, "fontname": "DejaVu Sans"},  # viz/fonts has it for PNG (render.FONT)
                  node_attr={"fontname": "DejaVu Sans", "fontsize": "10", "style": "filled", "shape": "box"},
                  edge_attr={"arrowsize": "0.6", "fontname": "DejaVu Sans"})

    groups: dict[tuple[Any, Any, Any], list[GraphNode]] = defaultdict(list)
    if cluster_by_time or collapse_cells:
        for node in graph.nodes.values():
            if node.step is not None:
                groups[node.step].append(node)
        # An input or constant used by one time step only (x⟨t⟩, a⟨0⟩, a mask) is drawn inside that step.
        consumers: dict[str, set] = defaultdict(set)
        for source, target in graph.edges:
            consumers[source].add(graph.nodes[target].step)
        for node in graph.nodes.values():
            steps = consumers.get(node.key, set())
            if node.step is None and node.kind in ("input", "constant") and len(steps) == 1 and None not in steps:
                groups[next(iter(steps))].append(node)
    placed = {node.key: step for step, members in groups.items() for node in members}
    nested = len({(s[0], s[1]) for s in groups}) > 1

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
        target.node(node.key, _label(node, show_shapes, show_values, grads.get(node.key) if (show_grads or node.key in grads) else None), **attributes)

    group_key = {}
    if collapse_cells:
        for step, members in groups.items():
            layer, direction, t = step
            key = f"step_{layer}_{direction}_{t}"
            for node in members:
                group_key[node.key] = key
            cell = next((n.tags.get("cell") for n in members if n.tags.get("cell")), "step")
            states = sorted({n.label for n in members if n.role == "state"})
            header = f"t = {t}  {cell}" + (f"  layer {layer} {direction}" if nested else "")
            label = "\\n".join([header, ", ".join(states)] + ([f"({len(members)} nodes)"] if show_shapes else []))
            fill = CURRENT if any(highlight.get(n.key) == CURRENT for n in members) else (
                DONE if members and all(highlight.get(n.key) == DONE for n in members) else STATE)
            # The box is the time step, so no cluster around it: clusters are what makes
            # Graphviz slow on long sequences.
            dot.node(key, label, fillcolor=fill, shape="box3d")
        for node in graph.nodes.values():
            if node.key not in group_key:
                node_statement(dot, node)
    elif cluster_by_time and groups:
        tree: dict = {}
        for step in groups:
            level = tree
            for name_label in _cluster_path(step, nested):
                level = level.setdefault(name_label, {})
            level.setdefault(None, []).extend(groups[step])

        def emit(target: graphviz.Digraph, level: dict) -> None:
            for name_label, inner in level.items():
                if name_label is None:
                    for node in inner:
                        node_statement(target, node)
                    continue
                with target.subgraph(name=name_label[0]) as cluster:
                    cluster.attr(label=name_label[1], style="dashed", color="#999999", fontsize="11")
                    emit(cluster, inner)

        emit(dot, tree)
        for node in graph.nodes.values():
            if node.key not in placed:
                node_statement(dot, node)
    else:
        for node in graph.nodes.values():
            node_statement(dot, node)

    drawn: set[tuple[str, str]] = set()
    fans = _shared_fans(graph, group_key, placed) if collapse_cells else {}
    for source, target in graph.edges:
        edge = (group_key.get(source, source), group_key.get(target, target))
        if edge[0] == edge[1] or edge in drawn:
            continue
        drawn.add(edge)
        if edge in fans:
            if fans[edge]:
                dot.edge(*edge, label=fans[edge], style="dashed", fontsize="8")
            continue
        attributes = {}
        if highlight_edges and (source, target) in highlight_edges:
            attributes = {"color": CURRENT, "penwidth": "2", "fontsize": "8", "label": highlight_edges[(source, target)]}
        elif graph.nodes[source].kind == "constant":
            attributes = {"style": "dotted", "color": "#999999"}
        dot.edge(*edge, **attributes)
    return dot


def _shared_fans(graph: Graph, group_key: Mapping[str, str], placed: Mapping[str, Any]) -> dict[tuple[str, str], str]:
    """In collapsed drawings, one edge stands for a node's links to every step of a run.

    A weight used by all T steps would otherwise get T edges (and Graphviz's
    layout time grows quadratically with them); it gets one dashed edge to the
    first step, labelled with how many steps share it. Likewise the steps'
    outputs gathered by one node (a Stack) get one edge from the last step.
    Returns edge -> label for the edge kept, and edge -> "" for the ones dropped.
    """
    runs: dict[tuple[str, str, Any, Any], list[tuple[Any, str]]] = defaultdict(list)
    for source, target in graph.edges:
        if source in group_key and target not in group_key:
            layer, direction, t = placed[source]
            runs[("out", target, layer, direction)].append((t, group_key[source]))
        elif target in group_key and source not in group_key:
            layer, direction, t = placed[target]
            runs[("in", source, layer, direction)].append((t, group_key[target]))
    fans: dict[tuple[str, str], str] = {}
    for (way, other, _, _), members in runs.items():
        steps = sorted(set(members), key=lambda m: m[0])
        if len(steps) < 3:
            continue
        first_t, last_t = steps[0][0], steps[-1][0]
        keep = steps[0][1] if way == "in" else steps[-1][1]
        for _, box in steps:
            edge = (other, box) if way == "in" else (box, other)
            fans[edge] = ""
        kept = (other, keep) if way == "in" else (keep, other)
        fans[kept] = f"shared by t = {first_t}..{last_t}" if way == "in" else f"from t = {first_t}..{last_t}"
    return fans
