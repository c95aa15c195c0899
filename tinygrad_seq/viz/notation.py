"""The pictures' labels, derived from roles in one place, in the course's notation.

``nn`` records what a tensor is (its role, see ``nn.roles``); this module
alone decides how that is written. Nothing parses these labels: change the
tables below and every picture follows, while gradient flow, colours and the
stepper, which read roles, stay the same.

=====================  =====================================================
tensor                 label
=====================  =====================================================
state part             a⟨t⟩, c⟨t⟩ (a user's part by its name); the initial
                       state a⟨0⟩, or ←a⟨T+1⟩ for the reverse direction
gates                  Γu⟨t⟩, Γf⟨t⟩, Γo⟨t⟩, Γr⟨t⟩, candidate c̃⟨t⟩; PyTorch's
                       GRU z (= 1 − Γu) as "z⟨t⟩ = 1 − Γu⟨t⟩"
input                  x⟨t⟩; in a deep RNN layer l reads a^[l−1]⟨t⟩, its
                       own read of it drawn "x^[l]⟨t⟩ = a^[l−1]⟨t⟩"; above a
                       bidirectional layer, both directions as the graph
                       joins them: "→x^[2]⟨t⟩ = [→a^[1]⟨t⟩, ←a^[1]⟨t⟩]" (each
                       direction's read carries its arrow in a graph with a
                       reverse direction, as its states do)
projections            W_ax x⟨t⟩ and W_aa a⟨t−1⟩ (each with its bias); in a deep
                       RNN's layer l, W_ax^[l] x^[l]⟨t⟩
output, loss           ŷ⟨t⟩, L⟨t⟩
deep RNN (a graph      states as a^[l]⟨t⟩, layers counted from 1 as in the
with layers above 0)   course
bidirectional (a       →a⟨t⟩ for the forward direction, ←a⟨t⟩ for the reverse
graph with a reverse
direction)
=====================  =====================================================

>>> label({"role": "gate", "gate": "forget", "t": 3})
'Γf⟨3⟩'
>>> label({"role": "state", "part": "c", "t": 2}), label({"role": "state", "part": "a"})
('c⟨2⟩', 'a⟨0⟩')
>>> label({"role": "state", "part": "a", "t": 2, "layer": 1, "direction": "reverse"}, Context(deep=True, bidirectional=True))
'←a^[2]⟨2⟩'
>>> label({"role": "gate", "gate": "update", "complement": True, "t": 1})
'z⟨1⟩ = 1 − Γu⟨1⟩'
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

# The course's symbols for the gates; a gate of a user's cell is written with its own name.
GATE_SYMBOLS = {"update": "Γu", "forget": "Γf", "output": "Γo", "reset": "Γr", "candidate": "c̃"}
# A gate stored as 1 − gate: the symbol PyTorch's parametrisation uses for it (GRU z = 1 − Γu).
COMPLEMENT_SYMBOLS = {"update": "z"}
SYMBOLS = {"input": "x", "output": "ŷ", "loss": "L"}
ARROWS = {"forward": "→", "reverse": "←"}


def layer_index(layer: Any) -> int | None:
    """A layer tag as an int (``nn`` tags layers from 0, as PyTorch names them: weight_hh_l0); None for a tag
    that is not a layer number (viz.demo's "output")."""
    return int(layer) if isinstance(layer, numbers.Integral) and not isinstance(layer, bool) else None


def layer_name(layer: Any) -> str:
    """How a picture names a layer: counted from 1, as the course's a^[1]⟨t⟩ ("layer 1" for the tag 0); another
    tag as it is.

    >>> layer_name(0), layer_name("output")
    ('layer 1', 'output')
    """
    index = layer_index(layer)
    return f"layer {index + 1}" if index is not None else "layer" if layer is None else str(layer)


def place(tags: dict[str, Any], context: Context | None = None) -> str:
    """Where a tensor of the pictures is, from its tags: "t = 2, layer 1, reverse" (layers counted from 1; error
    messages, anomaly.place, count from 0 as PyTorch's names do: weight_hh_l0); "" outside the time loop. In a
    bidirectional graph (``context``) both directions are named, elsewhere only a reverse one.

    >>> place({"t": 2, "layer": 0, "direction": "reverse"}), place({"t": 3, "layer": "output"}), place({})
    ('t = 2, layer 1, reverse', 't = 3, output', '')
    >>> place({"t": 2, "layer": 0, "direction": "forward"}, Context(bidirectional=True))
    't = 2, layer 1, forward'
    >>> place({"t": 2, "layer": "output", "direction": "forward"}, Context(bidirectional=True))
    't = 2, output'
    >>> place({"t": 2, "layer": "head", "direction": "forward"}, Context(bidirectional=True))
    't = 2, head'
    """
    parts = [f"t = {tags['t']}"] if "t" in tags else []
    if tags.get("layer") is not None:
        parts.append(layer_name(tags["layer"]))
    direction = tags.get("direction")
    said = direction == "reverse" or (direction is not None and context is not None and context.bidirectional)
    recurrent = tags.get("layer") is None or layer_index(tags["layer"]) is not None  # not a row such as "output"
    if said and recurrent:  # a row above the layers (the outputs) reads both directions: its tag only places it
        parts.append(str(direction))
    return ", ".join(parts)


@dataclass(frozen=True)
class Context:
    """What the whole graph is: deep (layers above 0) and/or bidirectional; it changes how states are written."""

    deep: bool = False
    bidirectional: bool = False
    directions: frozenset[tuple[int, str]] = frozenset()  # (layer, direction) of each layer's steps: what reads them

    @classmethod
    def of(cls, all_tags: Any) -> Context:
        """The context of a graph from the tags of all its tensors."""
        all_tags = list(all_tags)
        deep = any((layer_index(tags.get("layer")) or 0) > 0 for tags in all_tags)
        directions = frozenset((layer_index(tags.get("layer")), tags["direction"]) for tags in all_tags
                               if tags.get("direction") in ARROWS and layer_index(tags.get("layer")) is not None)
        return cls(deep, any(tags.get("direction") == "reverse" for tags in all_tags), directions)


def mark(symbol: str, layer: Any, direction: Any, context: Context) -> str:
    """``symbol`` with the layer it belongs to as a superscript in a deep graph (a^[2], Γf^[2], W_aa^[2]; layers
    tagged from 0, written from 1) and its direction as an arrow in a bidirectional one (←a, ←Γf, ←W_aa).

    >>> mark("Γf", 1, "reverse", Context(deep=True, bidirectional=True)), mark("Γf", 1, "reverse", Context())
    ('←Γf^[2]', 'Γf')
    """
    layer = layer_index(layer)
    written = f"{symbol}^[{layer + 1}]" if context.deep and layer is not None else symbol
    return (ARROWS.get(direction, "") if context.bidirectional else "") + written


def _state(part: str, tags: dict[str, Any], context: Context, layer: Any = None) -> str:
    """A state part with the layer (deep) and the direction (bidirectional) it belongs to."""
    return mark(part, tags.get("layer") if layer is None else layer, tags.get("direction"), context)


def symbol(tags: dict[str, Any], context: Context = Context()) -> str | None:
    """The symbol of a tensor with a role ("Γf", "a", "(a, c)", "x"), without its time step; None without a role."""
    role = tags.get("role")
    if role == "state":
        if "part" in tags:
            return _state(tags["part"], tags, context)
        return _state("(" + ", ".join(tags.get("parts", ())) + ")", tags, context)  # a fused step's packed state
    if role == "gate":  # of its layer and direction, as the states: two layers' Γf⟨1⟩ read apart
        name = tags.get("gate", "?")
        written = _state(GATE_SYMBOLS.get(name, name), tags, context)
        if tags.get("complement"):
            return _state(COMPLEMENT_SYMBOLS[name], tags, context) if name in COMPLEMENT_SYMBOLS else f"1 − {written}"
        return written
    layer = layer_index(tags.get("layer"))
    if role == "input" and layer is not None and layer > 0:
        return input_at(tags, context, "")
    return SYMBOLS.get(role)


def input_at(tags: dict[str, Any], context: Context, step: str) -> str:
    """What the layer of ``tags`` reads at ``step`` ("⟨2⟩", or "" for the symbol alone), as the context tells it:
    x⟨2⟩; in a deep graph layer l reads a^[l−1]⟨2⟩ (layers from 1), and a bidirectional layer below it both its
    directions, as concatenated. Where the graph holds what is read, the trace names it from that instead (a sum
    of the directions, say): see ``label``'s ``reads``.

    >>> input_at({"layer": 1}, Context(deep=True), "⟨2⟩"), input_at({"layer": 0}, Context(), "⟨2⟩")
    ('a^[1]⟨2⟩', 'x⟨2⟩')
    >>> input_at({"layer": 1}, Context(True, True, frozenset({(0, "forward"), (0, "reverse")})), "⟨2⟩")
    '[→a^[1]⟨2⟩, ←a^[1]⟨2⟩]'
    """
    layer = layer_index(tags.get("layer"))
    if layer is None or layer == 0:
        return SYMBOLS["input"] + step
    below = sorted(direction for layer_below, direction in context.directions if layer_below == layer - 1)
    deep = Context(deep=True, bidirectional=context.bidirectional)
    if len(below) > 1:  # forward first, as nn.Bidirectional joins them
        return "[" + ", ".join(mark("a", layer - 1, direction, deep) + step for direction in below) + "]"
    return mark("a", layer - 1, below[0] if below else None, deep) + step


def _read_name(tags: dict[str, Any], layer: int, context: Context) -> str:
    """x^[l], a deep layer's own read of the layer below; →x^[l] or ←x^[l], by the reading direction, in a graph
    with a reverse direction (as its states are →a^[l], ←a^[l])."""
    return mark("x", layer, tags.get("direction"), Context(deep=True, bidirectional=context.bidirectional))


def grouped(term: str) -> str:
    """``term`` in parentheses when it is a sum, difference, product or quotient at its top level (→a⟨1⟩ + ←a⟨1⟩), to
    be multiplied or reduced; one whose operators are all inside brackets (tanh(w ⊙ x), (a + b)[:, 3:6]) stands alone.

    >>> grouped("→a⟨1⟩ + ←a⟨1⟩"), grouped("[→a⟨1⟩, ←a⟨1⟩]"), grouped("0.5·(→a⟨1⟩ + ←a⟨1⟩)"), grouped("tanh(w ⊙ x)")
    ('(→a⟨1⟩ + ←a⟨1⟩)', '[→a⟨1⟩, ←a⟨1⟩]', '0.5·(→a⟨1⟩ + ←a⟨1⟩)', 'tanh(w ⊙ x)')
    """
    return f"({term})" if top_level_operators(term) else term


def top_level_operators(term: str) -> list[tuple[int, str]]:
    """(position, operator) of each of " + ", " − ", " ⊙ ", " ⊘ " in ``term`` outside every bracket.

    >>> top_level_operators("a + tanh(b ⊙ c) − d")
    [(1, ' + '), (15, ' − ')]
    """
    found, depth = [], 0
    for i, char in enumerate(term):
        if char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        elif depth == 0 and term[i : i + 3] in (" + ", " − ", " ⊙ ", " ⊘ "):
            found.append((i, term[i : i + 3]))
    return found


def label(tags: dict[str, Any], context: Context = Context(), reads: str | None = None) -> str | None:
    """The label of a tensor with a role: "Γf⟨3⟩", "→a^[2]⟨1⟩", "z⟨2⟩ = 1 − Γu⟨2⟩", "W_aa a⟨2⟩"; None without one.
    ``reads``: what the graph shows is read, for a deep layer's read of the layer below at its step
    ("→x^[2]⟨2⟩ = →a^[1]⟨2⟩ + ←a^[1]⟨2⟩") and for its projection of all steps at once
    ("W_ax^[2] [→a^[1], ←a^[1]]⟨1..3⟩"); without it, what the context suggests (``input_at``). A projection of one
    step of a deep layer multiplies that step's read, "W_ax^[2] x^[2]⟨2⟩"."""
    role = tags.get("role")
    t = tags.get("t")
    if role == "projection":
        step = "" if t is None else f"⟨{t}⟩"
        previous = "" if t is None else f"⟨{t - 1 if tags.get('direction') != 'reverse' else t + 1}⟩"
        if tags.get("source") == "state":
            return f"{_state('W_aa', tags, context)} {_state('a', tags, context)}{previous}"
        layer = layer_index(tags.get("layer"))
        if t is not None and layer is not None and layer > 0:  # it multiplies the layer's own read x^[l]⟨t⟩, drawn
            return f"{_state('W_ax', tags, context)} {_read_name(tags, layer, context)}{step}"  # beside it
        return f"{_state('W_ax', tags, context)} {grouped(reads or input_at(tags, context, step))}"
    found = symbol(tags, context)
    if found is None:
        return None
    step = f"⟨{t if t is not None else tags.get('start', 0)}⟩"
    layer = layer_index(tags.get("layer"))
    if role == "input" and layer is not None and layer > 0 and t is not None:
        # the layer's own read of a^[l−1]⟨t⟩ (a step picked out of the layer below's outputs): a name of its own, so
        # that it and the state it reads are two names, and a rule never says a^[1]⟨2⟩ comes "from a^[1]⟨2⟩"
        return f"{_read_name(tags, layer, context)}{step} = {reads or input_at(tags, context, step)}"
    if role == "gate" and tags.get("complement") and tags.get("gate") in COMPLEMENT_SYMBOLS:
        return f"{found}{step} = 1 − {_state(GATE_SYMBOLS[tags['gate']], tags, context)}{step}"
    return found + step


__all__ = ["ARROWS", "COMPLEMENT_SYMBOLS", "Context", "GATE_SYMBOLS", "SYMBOLS", "grouped", "input_at", "label", "layer_index", "layer_name", "mark", "place", "symbol",
           "top_level_operators"]
