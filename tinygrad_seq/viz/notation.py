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
input                  x⟨t⟩; in a deep RNN layer l reads a^[l−1]⟨t⟩
projections            W_ax x⟨t⟩ and W_aa a⟨t−1⟩ (each with its bias)
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

from dataclasses import dataclass
from typing import Any

# The course's symbols for the gates; a gate of a user's cell is written with its own name.
GATE_SYMBOLS = {"update": "Γu", "forget": "Γf", "output": "Γo", "reset": "Γr", "candidate": "c̃"}
# A gate stored as 1 − gate: the symbol PyTorch's parametrisation uses for it (GRU z = 1 − Γu).
COMPLEMENT_SYMBOLS = {"update": "z"}
SYMBOLS = {"input": "x", "output": "ŷ", "loss": "L"}
ARROWS = {"forward": "→", "reverse": "←"}


@dataclass(frozen=True)
class Context:
    """What the whole graph is: deep (layers above 0) and/or bidirectional; it changes how states are written."""

    deep: bool = False
    bidirectional: bool = False

    @classmethod
    def of(cls, all_tags: Any) -> Context:
        """The context of a graph from the tags of all its tensors."""
        all_tags = list(all_tags)
        deep = any(isinstance(tags.get("layer"), int) and tags["layer"] > 0 for tags in all_tags)
        return cls(deep, any(tags.get("direction") == "reverse" for tags in all_tags))


def _state(part: str, tags: dict[str, Any], context: Context, layer: Any = None) -> str:
    """A state part with the layer (deep) and the direction (bidirectional) it belongs to."""
    layer = tags.get("layer") if layer is None else layer
    written = f"{part}^[{layer + 1}]" if context.deep and isinstance(layer, int) else part
    arrow = ARROWS.get(tags.get("direction"), "") if context.bidirectional else ""
    return arrow + written


def symbol(tags: dict[str, Any], context: Context = Context()) -> str | None:
    """The symbol of a tensor with a role ("Γf", "a", "(a, c)", "x"), without its time step; None without a role."""
    role = tags.get("role")
    if role == "state":
        if "part" in tags:
            return _state(tags["part"], tags, context)
        return _state("(" + ", ".join(tags.get("parts", ())) + ")", tags, context)  # a fused step's packed state
    if role == "gate":
        name = tags.get("gate", "?")
        written = GATE_SYMBOLS.get(name, name)
        if tags.get("complement"):
            return COMPLEMENT_SYMBOLS.get(name, f"1 − {written}")
        return written
    if role == "input" and isinstance(tags.get("layer"), int) and tags["layer"] > 0:
        return _state("a", tags, Context(deep=True), layer=tags["layer"] - 1)  # layer l reads a^[l−1] (from 1)
    return SYMBOLS.get(role)


def label(tags: dict[str, Any], context: Context = Context()) -> str | None:
    """The label of a tensor with a role: "Γf⟨3⟩", "→a^[2]⟨1⟩", "z⟨2⟩ = 1 − Γu⟨2⟩", "W_aa a⟨2⟩"; None without one."""
    role = tags.get("role")
    t = tags.get("t")
    if role == "projection":
        step = "" if t is None else f"⟨{t}⟩"
        previous = "" if t is None else f"⟨{t - 1 if tags.get('direction') != 'reverse' else t + 1}⟩"
        if tags.get("source") == "state":
            return f"W_aa {_state('a', tags, context)}{previous}"
        source = symbol({**tags, "role": "input"}, context)
        return f"W_ax {source}{step}"
    found = symbol(tags, context)
    if found is None:
        return None
    step = f"⟨{t if t is not None else tags.get('start', 0)}⟩"
    if role == "gate" and tags.get("complement") and tags.get("gate") in COMPLEMENT_SYMBOLS:
        return f"{found}{step} = 1 − {GATE_SYMBOLS.get(tags['gate'], tags['gate'])}{step}"
    return found + step


__all__ = ["ARROWS", "COMPLEMENT_SYMBOLS", "Context", "GATE_SYMBOLS", "SYMBOLS", "label", "symbol"]
