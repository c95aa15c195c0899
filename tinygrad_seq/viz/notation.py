"""The pictures' labels, derived from roles in one place: a⟨t⟩, c⟨t⟩, Γf⟨t⟩, c̃⟨t⟩, x⟨t⟩, ŷ⟨t⟩, L⟨t⟩.

``nn`` records what a tensor is (its role, see ``nn.roles``); this module
alone decides how that is written. Nothing parses these labels: change the
tables below and every picture follows, while gradient flow, colours and the
stepper, which read roles, stay the same.

>>> label({"role": "gate", "gate": "forget", "t": 3})
'Γf⟨3⟩'
>>> label({"role": "state", "part": "c", "t": 2}), label({"role": "state", "part": "a"})
('c⟨2⟩', 'a⟨0⟩')
>>> label({"role": "input", "t": 1, "layer": 1})
'a[0]⟨1⟩'
"""
from __future__ import annotations

from typing import Any

# The course's symbols for the gates; a gate of a user's cell is written with its own name.
GATE_SYMBOLS = {"update": "Γu", "forget": "Γf", "output": "Γo", "reset": "Γr", "candidate": "c̃"}
# A gate stored as 1 − gate (PyTorch's GRU z = 1 − Γu).
COMPLEMENT_SYMBOLS = {"update": "z"}
SYMBOLS = {"input": "x", "output": "ŷ", "loss": "L"}


def symbol(tags: dict[str, Any]) -> str | None:
    """The symbol of a tensor with a role ("Γf", "a", "(a, c)", "x"), without its time step; None without a role."""
    role = tags.get("role")
    if role == "state":
        return tags["part"] if "part" in tags else f"({', '.join(tags.get('parts', ()))})"
    if role == "gate":
        name = tags.get("gate", "?")
        if tags.get("complement"):
            return COMPLEMENT_SYMBOLS.get(name, f"1−{GATE_SYMBOLS.get(name, name)}")
        return GATE_SYMBOLS.get(name, name)
    if role == "input" and tags.get("layer"):
        return f"a[{tags['layer'] - 1}]"  # a deeper layer l reads the outputs of layer l − 1
    return SYMBOLS.get(role)


def label(tags: dict[str, Any]) -> str | None:
    """The label of a tensor with a role: its symbol and time step ("Γf⟨3⟩"; an initial state is ⟨0⟩)."""
    found = symbol(tags)
    if found is None:
        return None
    return f"{found}⟨{tags.get('t', 0)}⟩"


__all__ = ["COMPLEMENT_SYMBOLS", "GATE_SYMBOLS", "SYMBOLS", "label", "symbol"]
