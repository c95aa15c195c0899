"""The BPTT explorer: one HTML page that steps through the real backward (and forward) pass of a graph.

``viz.explore(loss)`` runs backward through :func:`viz.backward_steps` once,
records what every step received and sent, and writes a self-contained page
(the SVG of the unrolled graph, the recorded steps as data, a script and a
style sheet, nothing fetched) that replays them: buttons, arrow keys, a
slider, play/pause, and ``PAGE#step=N`` to open step N.

Like ``loss.backward()``, it leaves the parameters' gradients and frees the
graph.

>>> import tinygrad_seq as ts
>>> from tinygrad_seq import viz
>>> from tinygrad_seq.viz import demo
>>> model = demo.small_model("rnn", steps=2)
>>> explorer = viz.explore(model.loss(), params=dict(model.named_parameters()))
>>> explorer.steps, explorer.path.suffix
(11, '.html')
"""
from __future__ import annotations

import base64
import html
import json
import os
import re
import tempfile
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..lazy_grad import LazyGrad
from ..tensor import Tensor
from . import notation, rules
from .draw import COLLAPSE_ABOVE, COLLAPSE_STEPS, collapse_by_size, draw_graph, time_gathers
from .flow import state_part_grads
from .images import FONT, FONT_FILE, render_svg
from .render import refuse_folder
from .stepper import backward_steps
from .trace import Graph, parameter_names, trace

SMALL = 12  # a tensor with at most this many values is shown in full; a larger one by its norm
PAGE = Path(__file__).with_name("explorer")  # explorer.js and explorer.css, inlined into every page


class Explorer:
    """A written explorer page.

    Attributes:
        path: the HTML file (self-contained: open it from disk in any browser).
        steps: how many backward steps it replays (M in its "N / M" counter).
        collapsed: whether cell steps were drawn as one box each (long or large graphs, see ``explore``).
    """

    def __init__(self, path: Path, page: str, steps: int, collapsed: bool) -> None:
        self.path, self.page, self.steps, self.collapsed = path, page, steps, collapsed

    def __str__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"Explorer({str(self.path)!r}, steps={self.steps})"

    def screenshot(self, png: str | os.PathLike, step: int | None = None) -> Path:
        """A PNG of the page at backward step ``step`` (from 1), taken in headless Chromium (see ``viz.browser``)."""
        from .browser import screenshot

        return screenshot(self.path, png, step)

    def _repr_html_(self) -> str:
        """The same page inline in Jupyter, in an iframe (its script and ids stay apart from the notebook's)."""
        return (f'<iframe class="tinygrad-seq-explorer" srcdoc="{html.escape(self.page, quote=True)}" '
                'style="width: 100%; height: 820px; border: 1px solid #ccc;"></iframe>')


def explore(loss: Tensor, path: str | os.PathLike | None = None, params: Mapping[str, Tensor] | Any = None,
            collapse: bool | None = None, title: str | None = None) -> Explorer:
    """Write the explorer page for ``loss``'s graph and return an :class:`Explorer`.

    Args:
        loss: a scalar to run backward from (usually the loss).
        path: the HTML file to write; None writes one into a temporary folder that is removed when
            Python exits (enough for a notebook, which shows the page inline).
        params: names for the parameters, ``dict(model.named_parameters())`` or the model itself:
            their running gradients are shown step by step.
        collapse: draw each cell step as one box; None (default) collapses
            graphs of more than ``COLLAPSE_STEPS`` time steps or ``COLLAPSE_ABOVE`` nodes, with a
            ``viz.CollapsedWarning`` (the page says so too), as ``draw_graph`` does.
        title: the page's heading.
    """
    if not isinstance(loss, Tensor):
        raise TypeError(f"explore: expects the Tensor to run backward from (a loss); got {type(loss).__name__}")
    if loss.size != 1:
        raise ValueError(f"explore: runs backward from a scalar; got a tensor of shape {loss.shape}. Reduce it first, e.g. loss.sum()")
    if not loss.requires_grad:
        raise ValueError("explore: the loss does not require grad (no parameter reaches it, or it was computed under no_grad)")
    if loss.grad_fn is None:
        raise ValueError("explore: the loss is a leaf tensor: there is no backward pass to step through")
    if loss.grad_fn.freed:
        raise ValueError("explore: the loss's graph was freed by an earlier backward() (or explore()); compute the loss again")
    target = None if path is None else page_path(path)  # before the backward pass, which uses the loss up
    params = parameter_names(params, "explore")
    graph = trace(loss, params)
    collapsed = (collapse_by_size(graph, "explore", "collapse", " (the steps still visit every node)") if collapse is None
                 else bool(collapse))
    dot = draw_graph(graph, collapse_cells=collapsed)
    svg = render_svg(dot.source)
    drawn_edges = {html.unescape(title) for title in re.findall(r'class="edge">\s*<title>(.*?)</title>', svg)}
    data = _record(graph, dot.drawn_as, drawn_edges, params, loss)
    data["title"] = title or "Backpropagation through time"
    data["collapsed"] = collapsed
    page = _page(svg, data)
    if target is None:
        handle, name = tempfile.mkstemp(prefix="explorer-", suffix=".html", dir=_scratch_folder())
        os.close(handle)
        target = Path(name)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(page, encoding="utf-8")
    return Explorer(target, page, len(data["backward"]), collapsed)


def page_path(path: str | os.PathLike) -> Path:
    """Where ``explore`` writes its page: ``path``, with .html added when it has no suffix; a folder or another
    suffix is refused (ValueError, IsADirectoryError)."""
    refuse_folder(path, "explore", "bptt.html")
    target = Path(path)
    if not target.suffix:
        return target.with_suffix(".html")
    if target.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"explore: writes an HTML page, and {path} ends in {target.suffix}; name the file .html "
                         f"(e.g. {target.with_suffix('.html').name})")
    return target


_scratch: tempfile.TemporaryDirectory | None = None


def _scratch_folder() -> str:
    """A folder for pages written without a path (a notebook's), removed when Python exits."""
    global _scratch
    if _scratch is None:
        _scratch = tempfile.TemporaryDirectory(prefix="tinygrad-seq-explorer-")
    return _scratch.name


def _dense(grad: Any, shape: tuple[int, ...]) -> np.ndarray:
    """A gradient as one float64 host array, whatever lazy form the engine sent it in."""
    if isinstance(grad, list):
        return sum((_dense(part, shape) for part in grad), np.zeros(shape))
    if isinstance(grad, LazyGrad):
        grad = grad.dense()
    return np.asarray(Tensor.wrap(grad).numpy(), dtype=np.float64)


def _shown(values: np.ndarray) -> dict[str, Any]:
    """How the page shows a tensor: its values when small, else its norm; ``values`` in full precision."""
    values = np.asarray(values, dtype=np.float64) + 0.0  # + 0.0: an exact zero's sign, -0., shows as 0.
    norm = float(np.linalg.norm(values))
    shape = list(values.shape)
    if values.size <= SMALL:
        row = values.ndim == 0 or (values.ndim == 2 and values.shape[0] == 1)  # a scalar, or one example's vector
        # A row per line, never broken by NumPy: the page wraps a long one at the panel's width (two wraps, NumPy's
        # at 60 characters and the panel's, left single numbers on lines of their own)
        text = np.array2string(values.reshape(-1) if row else values, precision=4, separator=" ",
                               floatmode="maxprec", max_line_width=1_000_000)
        return {"text": text, "values": values.tolist(), "norm": norm, "shape": shape}
    return {"text": f"‖·‖ = {norm:.4g}   (shape {tuple(shape)}, |max| = {np.abs(values).max():.3g})",
            "values": None, "norm": norm, "shape": shape}


def _record(graph: Graph, drawn_as: Mapping[str, list[str]], drawn_edges: set[str], params: Mapping[str, Tensor],
            loss: Tensor) -> dict[str, Any]:
    """Run the backward pass once and record every step, the forward values and the gradient flow.

    ``drawn_as``: graph key -> the SVG nodes showing it; ``drawn_edges``: the SVG's edges, "tail->head".
    """
    names = rules.names(graph)
    node_rules = rules.node_rules(graph)  # before backward: it frees what the rules read (GetItem's index)
    consumers: dict[str, list[str]] = defaultdict(list)
    for source, target in graph.edges:
        consumers[source].append(target)
    gathers = time_gathers(graph)
    parameter_of = {graph.key_of(p): name for name, p in params.items() if graph.key_of(p) is not None}
    # b_a is two vectors in PyTorch's layout: the panel names each with its matmul, "b_a (with W_aa)"
    symbols = {name: names.get(graph.key_of(p)) or rules.course_parameter_name(name, graph.context) or name for name, p in params.items()}

    def edges_between(source: str, target: str) -> list[list[str]]:
        return [[tail, head] for tail in drawn_as.get(source, []) for head in drawn_as.get(target, [])
                if f"{tail}->{head}" in drawn_edges]

    def origin(consumer: str, t: Any) -> str:
        """Where a contribution comes from: the first node with a course name downstream of ``consumer``; the
        readers of step t of a gather, when several read it (both directions of the layer above: "from
        →x^[2]⟨2⟩ and ←x^[2]⟨2⟩", whose gradients the gather has added up)."""
        key = consumer
        for _ in range(8):
            node = graph.nodes[key]
            if notation.label(node.tags, graph.context) or node.tensor.name or node.kind != "op":
                break
            ahead = consumers.get(key, [])
            if key in gathers:  # a layer's steps gathered (Stack, Concat): follow what reads step t back
                ahead = [c for c in ahead if c in gathers or graph.nodes[c].step is not None and graph.nodes[c].step[2] == t]
                if len(ahead) > 1 and not any(c in gathers for c in ahead):
                    return "from " + " and ".join(names[c] for c in ahead)
            if len(ahead) != 1:
                break
            key = ahead[0]
        node = graph.nodes[key]
        where = f" at t = {node.tags['t']}" if "t" in node.tags and node.tags["t"] != t else ""
        return f"from {names[key]}{where}"

    backward: list[dict[str, Any]] = []
    arrivals: dict[str, list[dict[str, Any]]] = defaultdict(list)  # key -> gradients received so far
    running: dict[str, np.ndarray] = {}
    param_steps: dict[str, list[dict[str, Any]]] = {name: [] for name in params}
    flow: dict[str, dict[str, Any]] = {}
    visited = []
    for step in backward_steps(loss, params=params, retain_graph=True):
        key = graph.key_of(step.tensor)
        node = graph.nodes[key]
        visited.append(step.raw.node)
        grad = _dense(step.grad, step.tensor.shape)
        record = {
            "key": key, "drawn": drawn_as.get(key, []), "op": step.op, "name": names[key], "gradient": rules.gradient(names[key]),
            "where": notation.place(node.tags, graph.context),
            "grad": _shown(grad), "rule": node_rules[key]["backward"], "forward": node_rules[key]["forward"],
            "sends": [], "sum": [], "params": [],
        }
        if len(arrivals[key]) > 1:  # a gradient that is a sum: show its terms
            record["sum"] = _distinct_origins(arrivals[key])
        for arg, sent in step.input_grads:
            source = graph.key_of(arg)
            dense = _dense(sent, arg.shape)
            shown = _shown(dense)
            to = names.get(source, "input")
            record["sends"].append({"to": to, "gradient": rules.gradient(to), "edges": edges_between(source, key), **shown})
            arrivals[source].append({"from": origin(key, graph.nodes[source].tags.get("t")), "via": names[key], **shown})
            if source in parameter_of:
                name = parameter_of[source]
                running[name] = running.get(name, 0) + dense
                entry = {"step": step.index, "t": node.tags.get("t"), "where": notation.place(node.tags, graph.context), "contribution": shown,
                         "running": _shown(running[name])}
                param_steps[name].append(entry)
                record["params"].append(name)
        _flow_points(step, node, flow, graph.context)
        backward.append(record)
    for fn in visited:  # the graph was kept for part_grads; free it as backward() would
        fn.free()

    forward = []
    for key, node in graph.nodes.items():
        if node.kind != "op":
            continue
        inputs = [names.get(graph.key_of(a), "·") for a in node.tensor.grad_fn.inputs if isinstance(a, Tensor)]
        edges = [edge for a in node.tensor.grad_fn.inputs if isinstance(a, Tensor) for edge in edges_between(graph.key_of(a), key)]
        forward.append({"key": key, "drawn": drawn_as.get(key, []), "op": node.op, "name": names[key], "edges": edges,
                        "where": notation.place(node.tags, graph.context), "formula": node_rules[key]["forward"], "inputs": inputs,
                        "value": _shown(node.tensor.backend.to_host(node.tensor.data))})
    return {
        "backward": backward, "forward": forward,
        "params": [{"name": name, "symbol": symbols[name], "steps": param_steps[name]} for name in params],
        "flow": sorted(flow.values(), key=lambda s: s["order"]),
    }


def _distinct_origins(terms: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Terms that come from the same place (two paths into m⟨t⟩) are told apart by the node they pass through."""
    seen = [term["from"] for term in terms]
    return [{**term, "from": f"{term['from']} through {term['via']}"} if seen.count(term["from"]) > 1 else term
            for term in terms]


def _flow_points(step: Any, node: Any, flow: dict[str, dict[str, Any]], context: notation.Context) -> None:
    """‖∂L/∂part⟨t⟩‖ for a state's step, as ``viz.gradient_flow`` measures it (packed states part by part)."""
    tags = node.tags
    for part, grad in state_part_grads(tags, step.raw.node, step.raw.grad):
        values = _dense(grad, grad.shape)
        layer, direction = tags.get("layer"), tags.get("direction")
        series = f"{part}|{layer}|{direction}"
        label = "‖" + rules.gradient(notation.label({**tags, "part": part, "t": "t"}, context)) + "‖"
        entry = flow.setdefault(series, {"label": label, "points": [], "order": (str(layer), str(direction), part)})
        entry["points"].append({"t": tags["t"], "step": step.index, "norm": float(np.linalg.norm(values))})


def _page(svg: str, data: dict[str, Any]) -> str:
    """The whole page: style, SVG, data and script inlined; nothing is fetched."""
    svg = svg[svg.index("<svg"):]  # drop the XML prolog and doctype
    script = (PAGE / "explorer.js").read_text(encoding="utf-8")
    style = (PAGE / "explorer.css").read_text(encoding="utf-8")
    # JSON is JavaScript (NaN and Infinity included); "</" is escaped so no string can end the script.
    payload = json.dumps(data, ensure_ascii=False, default=_json_default).replace("</", "<\\/")
    # The labels' font travels with the page, so ⟨ ⟩ Γ c̃ ⊙ look the same on every machine.
    font = base64.b64encode(FONT_FILE.read_bytes()).decode("ascii")
    style = f'@font-face {{ font-family: "{FONT}"; src: url(data:font/ttf;base64,{font}) format("truetype"); }}\n' + style
    parts = {"title": html.escape(data["title"]), "style": style, "svg": svg, "data": payload, "script": script}
    template = (PAGE / "explorer.html").read_text(encoding="utf-8")
    return re.sub(r"\{\{(\w+)\}\}", lambda match: parts[match[1]], template)  # one pass: inserted text is not scanned


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    return str(value)


__all__ = ["COLLAPSE_ABOVE", "COLLAPSE_STEPS", "Explorer", "explore"]
