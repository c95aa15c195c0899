"""The graph model: a computation graph traced into nodes and edges, ready to draw.

Drawing happens in two steps (trace, then emit DOT), so the model can also
be inspected or tested without Graphviz. The walk uses an explicit stack: a
graph of an RNN unrolled over thousands of steps is deeper than Python's
recursion limit.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from ..checks import is_real
from ..tensor import Tensor
from . import notation

# Course names of the recurrent parameters, by PyTorch name (the part before _l0 / _reverse).
COURSE_PARAMETER_NAMES = {
    "weight_ih": "W_ax",
    "weight_hh": "W_aa",
    "bias_ih": "b_a (with W_ax)",  # PyTorch keeps b_a as two vectors, one added to each matmul
    "bias_hh": "b_a (with W_aa)",
    "weight_ci": "w_ci",
    "weight_cf": "w_cf",
    "weight_co": "w_co",
}


def course_parameter_name(path: str, context: notation.Context = notation.Context(), layer: Any = None,
                          direction: str | None = None) -> str | None:
    """W_aa for "rnn.weight_hh_l0", W_ax for "cell.weight_ih", ...; None for parameters the course does not name.

    In a deep graph the name carries its layer, counted from 1 as the states' are (W_aa^[2]), and in a
    bidirectional one its direction (←W_aa), so that two layers' weights read apart. ``layer`` (from 0) and
    ``direction`` are the ones the parameter serves (``Graph.parameter_name`` reads them from the ops that use
    it); without them they are read from a PyTorch name's suffix ("_l1", "_l0_reverse").

    >>> course_parameter_name("rnn.bias_hh_l1_reverse", notation.Context(deep=True, bidirectional=True))
    '←b_a^[2] (with ←W_aa^[2])'
    """
    found = re.fullmatch(r"(.+?)(?:_l(\d+)(_reverse)?)?", path.rsplit(".", 1)[-1])
    name = COURSE_PARAMETER_NAMES.get(found[1])
    if name is None:
        return None
    if notation.layer_index(layer) is None and found[2] is not None:
        layer, direction = int(found[2]), "reverse" if found[3] else "forward"
    return re.sub(r"[Wwb]_\w+", lambda symbol: notation.mark(symbol[0], layer, direction, context), name)


@dataclass(eq=False)
class GraphNode:
    """One tensor of the graph: an op's output, a parameter, an input or a constant (public API).

    Attributes:
        key: a unique id usable in DOT ("n140...").
        tensor: the tensor itself (its data, grad and grad_fn).
        kind: "op" (made by an op), "parameter" (a leaf that requires grad),
            "input" (a float leaf without grad) or "constant" (ints, bools: ids, masks).
        label: what to show: the course label derived from the role
            (``viz.notation``: "a⟨3⟩", "Γf⟨2⟩"), else the parameter's path, the
            tensor's name, or the op's name; for an input made in a layer's step by
            an op none of whose inputs needs a gradient (so no node recorded it:
            a user cell's [x⟨1⟩, a⟨0⟩]), that op's name, "Concat (no grad)". For
            display only: tools read ``tags``.
        tags: ``tensor.tags``: the step's t, layer, direction and cell, and
            the role ("state" with part, "gate" with gate, "input", "output",
            "loss"; see ``nn.roles``); {} for a leaf without any.
        op: the name of the op that made it ("Tanh"), None for leaves.
        shape: the tensor's shape.
        role: ``tags.get("role")``.
        sequence: for a tensor holding one time step per row (a layer's outputs
            stacked, two directions' joined), what it holds step by step
            (:class:`Sequence`); None for any other.
    """

    key: str
    tensor: Tensor
    kind: str
    label: str
    tags: dict[str, Any] = field(default_factory=dict)
    sequence: Sequence | None = None

    @property
    def op(self) -> str | None:
        return self.tensor.grad_fn.name if self.tensor.grad_fn is not None else None

    @property
    def shape(self) -> tuple[int, ...]:
        return self.tensor.shape

    @property
    def role(self) -> str | None:
        return self.tags.get("role")

    @property
    def backward_step(self) -> bool:
        """Whether the backward pass visits this node: an op whose result requires grad (leaves only receive)."""
        return self.kind == "op" and self.tensor.requires_grad

    @property
    def step(self) -> tuple[Any, Any, Any] | None:
        """(layer, direction, t) of the time step the node belongs to, or None outside the time loop."""
        if "t" not in self.tags:
            return None
        return (self.tags.get("layer"), self.tags.get("direction"), self.tags["t"])


@dataclass
class Graph:
    """Nodes in forward order (inputs before the ops that use them) and edges input -> consumer."""

    nodes: dict[str, GraphNode]
    edges: list[tuple[str, str]]
    root: str
    context: notation.Context = field(default_factory=notation.Context)  # deep and/or bidirectional: how to write states
    keys: dict[int, str] = field(default_factory=dict)  # id(tensor) -> its node's key

    def __len__(self) -> int:
        return len(self.nodes)

    def key_of(self, tensor: Tensor) -> str | None:
        """The key of ``tensor``'s node ("n0", "n1", ...: its place in forward order), None when it is not in the
        graph. Keys are the DOT ids of a drawing, so the same model draws the same SVG every run."""
        return self.keys.get(id(tensor))

    def node_of(self, tensor: Tensor) -> GraphNode:
        """``tensor``'s node; a KeyError when it is not in the graph (:meth:`key_of` is None then)."""
        key = self.key_of(tensor)
        if key is None:
            raise KeyError(f"Graph.node_of: this {tensor.shape} tensor is not in the graph (it did not go into the "
                           "tensor traced); ask graph.key_of(tensor) first, which is None for such a tensor")
        return self.nodes[key]

    def parameter_name(self, key: str) -> str | None:
        """The course's name of the parameter ``key`` in this graph (W_aa, W_aa^[2] in a deep one, ...: see
        :func:`course_parameter_name`), with the layer and direction of the first op using it that is tagged
        with a layer number (a step of that layer, or its input projection)."""
        used_in = self._layer_users.get(key, {})
        named = course_parameter_name(self.nodes[key].label, self.context, used_in.get("layer"), used_in.get("direction"))
        return named or self._output_parameters.get(key)

    def parameter_label(self, key: str) -> str:
        """A parameter's label in the pictures and the printouts: its path and course name, "rnn.weight_hh_l0 · W_aa"
        (the path alone where the course has no name for it)."""
        course = self.parameter_name(key)
        return f"{self.nodes[key].label} · {course}" if course else self.nodes[key].label

    @cached_property
    def _output_parameters(self) -> dict[str, str]:
        """W_ya and b_y: the matrices and vectors that only the ops making ŷ⟨t⟩ (role "output") read, whatever
        their paths (``head.weight``, ``fc.bias``)."""
        readers: dict[str, set] = {}
        for source, target in self.edges:
            readers.setdefault(source, set()).add(self.nodes[target].role)
        named = {}
        for key, roles in readers.items():
            node = self.nodes[key]
            if node.kind == "parameter" and roles == {"output"} and len(node.shape) in (1, 2):
                named[key] = "W_ya" if len(node.shape) == 2 else "b_y"
        return named

    @cached_property
    def _layer_users(self) -> dict[str, dict[str, Any]]:
        """For each tensor, the tags of the first op using it that is tagged with a layer number: one pass over
        the edges for all the parameters' names."""
        found: dict[str, dict[str, Any]] = {}
        for source, target in self.edges:
            if source not in found and notation.layer_index(self.nodes[target].tags.get("layer")) is not None:
                found[source] = self.nodes[target].tags
        return found

    def steps(self) -> list[tuple[Any, Any, Any]]:
        """The distinct (layer, direction, t) time steps in the graph, sorted."""
        found = {n.step for n in self.nodes.values() if n.step is not None}
        return sorted(found, key=lambda s: (str(s[0]), str(s[1]), s[2]))


def parameter_names(params: Any, caller: str) -> dict[str, Tensor]:
    """``params`` as {name: tensor}: a mapping (``dict(model.named_parameters())``) as it is, a model (anything
    with ``named_parameters()``) by its module paths, (name, tensor) pairs (``model.named_parameters()`` itself),
    None as no names. Anything else, ``model.parameters()`` included (the tensors without their names), is a
    TypeError naming ``caller`` and the fix."""
    if params is None:
        return {}
    if isinstance(params, Mapping):
        named = dict(params)
    elif callable(getattr(params, "named_parameters", None)):
        named = dict(params.named_parameters())
    else:
        pairs = list(params) if hasattr(params, "__iter__") and not isinstance(params, (str, Tensor)) else None
        if pairs is None or not all(isinstance(pair, tuple) and len(pair) == 2 for pair in pairs):
            raise TypeError(
                f"{caller}: params names the parameters: pass dict(model.named_parameters()), or the model itself; got a "
                f"{type(params).__name__} (model.parameters() gives the tensors without their names)"
            )
        named = dict(pairs)
    for name, tensor in named.items():
        if not isinstance(name, str) or not isinstance(tensor, Tensor):
            raise TypeError(
                f"{caller}: params maps names (str) to parameter tensors; got {name!r} -> a {type(tensor).__name__}. Pass "
                "dict(model.named_parameters()) (a state dict holds arrays)"
            )
    return named


def trace(root: Tensor, params: Mapping[str, Tensor] | Any = None) -> Graph:
    """Walk the graph that made ``root`` into a :class:`Graph`.

    ``params``: names for leaves, usually ``dict(model.named_parameters())`` (or the model itself),
    so parameters show their module path ("rnn.weight_hh_l0").
    """
    if not isinstance(root, Tensor):
        raise TypeError(f"trace: expects the Tensor whose graph to draw (a loss, an output); got {type(root).__name__}")
    names = {id(t): name for name, t in parameter_names(params, "trace").items()}
    post_order: list[Tensor] = []
    expanded: set[int] = set()
    stack: list[tuple[Tensor, bool]] = [(root, False)]
    while stack:
        tensor, done = stack.pop()
        if done:
            post_order.append(tensor)
            continue
        if id(tensor) in expanded:
            continue
        expanded.add(id(tensor))
        stack.append((tensor, True))
        if tensor.grad_fn is not None:
            for arg in reversed(tensor.grad_fn.inputs):
                if isinstance(arg, Tensor) and id(arg) not in expanded:
                    stack.append((arg, False))

    nodes: dict[str, GraphNode] = {}
    sequences: dict[int, Sequence] = {}  # the stacks of a sequence's steps, for the ops that pick one back out
    edges: list[tuple[str, str]] = []
    seen_edges: set[tuple[str, str]] = set()
    keys = {id(tensor): f"n{i}" for i, tensor in enumerate(post_order)}  # the graph holds the tensors: ids stay theirs
    all_tags = {keys[id(tensor)]: tensor.tags for tensor in post_order}
    context = notation.Context.of(all_tags.values())
    for tensor in post_order:
        key = keys[id(tensor)]
        tags = all_tags[key]
        course = notation.label(tags, context, _what_is_read(tensor, tags, sequences))
        if tensor.grad_fn is not None:
            kind, label = "op", course or tensor.name or _sequence_label(tensor, sequences, context) or tensor.grad_fn.name
            for edge in ((keys[id(arg)], key) for arg in tensor.grad_fn.inputs if isinstance(arg, Tensor)):
                if edge not in seen_edges:
                    seen_edges.add(edge)
                    edges.append(edge)
        elif tensor.requires_grad:
            kind, label = "parameter", names.get(id(tensor)) or tensor.name or "parameter"
        elif tensor.dtype.kind == "f":
            made_by = getattr(tensor, "_made_by", None)  # an op in a step whose inputs need no gradient: [x⟨1⟩, a⟨0⟩]
            kind, label = "input", names.get(id(tensor)) or course or tensor.name or (f"{made_by} (no grad)" if made_by else "input")
        else:
            kind, label = "constant", course or tensor.name or str(tensor.dtype)
        nodes[key] = GraphNode(key, tensor, kind, label, tags, sequences.get(id(tensor)))
    return Graph(nodes, edges, keys[id(root)], context, keys)


# The ops around a time loop carry no tags of their own: the loop stacks the steps' outputs after it, and a
# model picks a step back out. They are named from the tags of what they read (never from its label), so that
# the picture, the explorer's panel and its formulas (rules.py) all call them alike.

@dataclass(frozen=True)
class Sequence:
    """A tensor holding one time step per row of axis 0, as the graph shows it made: a layer's outputs stacked,
    a⟨1..3⟩; two directions' joined, [→a, ←a]⟨1..3⟩, or summed, (→a + ←a)⟨1..3⟩."""

    symbol: str  # "a^[2]", "[→a, ←a]", "→a + ←a": the sequence's name is symbol⟨first..last⟩, a sum in parentheses
    first: int
    last: int
    at: Callable[[str], str]  # its step written out: at("⟨2⟩") is "[→a⟨2⟩, ←a⟨2⟩]"

    def picks(self, index: Any) -> int | None:
        """The time step row ``index`` of the sequence holds ([-1] the last, as in Python), None for another index."""
        steps = self.last - self.first + 1
        if isinstance(index, bool) or not isinstance(index, int) or not -steps <= index < steps:
            return None
        return self.first + index % steps

    @property
    def name(self) -> str:
        return f"{notation.grouped(self.symbol)}⟨{self.first}..{self.last}⟩"  # ⟨1..1⟩ for one step: a⟨1⟩ is its state


MERGES = {"Add": " + ", "Mul": " ⊙ "}
"""The ops that merge two directions' outputs step by step (nn.Bidirectional's "sum", "mul"; "ave" is the sum
times 0.5), written between them."""


def _sequence_label(tensor: Tensor, sequences: dict[int, Sequence], context: notation.Context) -> str | None:
    """A name for an untagged op that stacks a sequence or picks a step of one: a⟨1..3⟩ for a⟨1⟩, a⟨2⟩, a⟨3⟩
    stacked along axis 0 (or part a of (a, c)⟨1⟩ … (a, c)⟨3⟩; a step masked past a sequence's end counts as
    its state), recorded in ``sequences``; [→a, ←a]⟨1..3⟩ for two such sequences joined along the features,
    (→a + ←a)⟨1..3⟩ summed (MERGES), 0.5·(→a + ←a)⟨1..3⟩ scaled, dropout(a)⟨1..3⟩ dropped out;
    a⟨1..3⟩[t=2] for [1] or [-2] of one (the index written as the time step it picks); a⟨2⟩ for part [0] of the
    packed (a, c)⟨2⟩; None for any other op. ``sequences``, keyed by id(tensor), holds the op's inputs already
    (trace walks inputs first)."""
    fn = tensor.grad_fn
    args = [arg for arg in fn.inputs if isinstance(arg, Tensor)]
    of = [sequences.get(id(arg)) for arg in args]
    if fn.name == "GetItem" and args:
        index = fn.params.get("index")
        if of[0] is None:
            part = _part_tags(args[0], index) if isinstance(index, int) else None
            return None if part is None else notation.label(part, context)
        t = of[0].picks(index)
        return None if t is None else f"{of[0].name}[t={t}]"
    merged = len(of) == 2 and None not in of and (of[0].first, of[0].last) == (of[1].first, of[1].last)
    if fn.name == "Concat" and merged and fn.params.get("axis") == tensor.ndim - 1 > 0:  # the features, not the time axis
        a, b = of
        found = Sequence(f"[{a.symbol}, {b.symbol}]", a.first, a.last, lambda step: f"[{a.at(step)}, {b.at(step)}]")
    elif fn.name in MERGES and merged:
        a, b, sign = *of, MERGES[fn.name]
        found = Sequence(f"{a.symbol}{sign}{b.symbol}", a.first, a.last, lambda step: f"{a.at(step)}{sign}{b.at(step)}")
    elif fn.name == "Mul" and len(of) == 1 and of[0] is not None and is_real(fn.params.get("scalar")):
        a, scale = of[0], f"{fn.params['scalar']:g}·"
        found = Sequence(scale + notation.grouped(a.symbol), a.first, a.last, lambda step: scale + notation.grouped(a.at(step)))
    elif fn.name == "DropoutMask" and len(of) == 1 and of[0] is not None:  # between stacked layers
        a = of[0]
        found = Sequence(f"dropout({a.symbol})", a.first, a.last, lambda step: f"dropout({a.at(step)})")
    elif fn.name in ("Stack", "StackPart") and fn.params.get("axis", 0) == 0:  # time is axis 0 of a layer's outputs
        stacked = [_kept(arg).tags if fn.name == "Stack" else _part_tags(arg, fn.params["part"]) or {} for arg in args]
        symbols = {notation.symbol(tags, context) for tags in stacked}
        times = [tags.get("t") for tags in stacked]
        if not stacked or len(symbols) != 1 or None in symbols or not isinstance(times[0], int) \
                or times != list(range(times[0], times[0] + len(times))):
            return None
        symbol = symbols.pop()
        found = Sequence(symbol, times[0], times[-1], lambda step: symbol + step)
    else:
        return None
    sequences[id(tensor)] = found
    return found.name


def _kept(output: Tensor) -> Tensor:
    """A layer's output at one step, as the state it holds: with ``lengths`` it is that state masked to zeros past
    a sequence's end, a Where with no role of its own."""
    fn = output.grad_fn
    if fn is not None and fn.name == "Where" and "role" not in output.tags and isinstance(fn.inputs[0], Tensor):
        return fn.inputs[0]
    return output


def _what_is_read(tensor: Tensor, tags: dict[str, Any], sequences: dict[int, Sequence]) -> str | None:
    """For a deep layer's read of step t of the layer below's outputs (x^[2]⟨t⟩), and its input projection of all
    steps at once (the fused path), what the graph shows they read: "[→a^[1]⟨2⟩, ←a^[1]⟨2⟩]",
    "[→a^[1], ←a^[1]]⟨1..3⟩". None where the graph does not show it, and ``notation.label`` says what the
    context suggests."""
    fn = tensor.grad_fn
    role, t = tags.get("role"), tags.get("t")
    if fn is None or role not in ("input", "projection") or not (notation.layer_index(tags.get("layer")) or 0) > 0:
        return None
    source = fn.inputs[0] if fn.inputs and isinstance(fn.inputs[0], Tensor) else None
    sequence = sequences.get(id(source))
    if role == "input" and fn.name == "GetItem" and sequence is not None and sequence.picks(fn.params.get("index")) == t:
        return sequence.at(f"⟨{t}⟩")
    if role == "projection" and tags.get("source") != "state" and t is None and sequence is not None:
        return sequence.name
    return None


def _part_tags(source: Any, index: int) -> dict[str, Any] | None:
    """The tags of part ``index`` (−1 for the last) of a fused step's packed state (a, c)⟨2⟩: a⟨2⟩'s for [0]; None
    when ``source`` is not one."""
    parts = source.tags.get("parts") if isinstance(source, Tensor) else None
    if not parts or source.tags.get("role") != "state" or not -len(parts) <= index < len(parts):
        return None
    return {**source.tags, "part": parts[index]}
