"""Roles: what a tensor of a recurrent step *is*, recorded as tags by the library.

Tools read roles, never display names: ``viz.gradient_flow`` finds the states
by their role, the renderer colours by role, and ``viz.notation`` derives the
pictures' labels (a⟨t⟩, Γf⟨t⟩, ...) from roles in one table. A cell author
marks the gates with :func:`gate`; ``nn.Recurrent`` marks the rest itself.

=========  =====================  ==========================================
role       extra tag              what
=========  =====================  ==========================================
"state"    ``part``: a name of    a part of the state a⟨t⟩ (the cell's
           ``state_names``        ``state_names``: "a", "c", or a user's);
                                  ``parts`` (all names) on a fused step's
                                  packed state, which holds them all
"gate"     ``gate``: "update",    a gate or candidate made inside a step;
           "forget", "output",    ``complement=True`` when the tensor is
           "reset", "candidate"   1 − gate (PyTorch's GRU z = 1 − Γu)
           or a user's name
"input"                           x⟨t⟩, the step's input (a[l−1]⟨t⟩ above
                                  layer 0)
"output"                          ŷ⟨t⟩, a prediction made from a⟨t⟩
"loss"                            L⟨t⟩, a per-step loss
"projec-   ``source``: "input"    a matmul of all gates at once: W_ax x⟨t⟩
tion"      or "state"             (+ b) or W_aa a⟨t−1⟩ (+ b)
=========  =====================  ==========================================

How the built-in cells map (PyTorch's gate names on the left):

===============  ============================================================
cell             roles
===============  ============================================================
RNNCell          state a
GRUCell          r: gate "reset"; z: gate "update" with complement=True
                 (a⟨t⟩ = (1 − z) c̃ + z a⟨t−1⟩, so z = 1 − Γu); 1 − z: gate
                 "update" (Γu); n: gate "candidate"; state a
SimplifiedGRU    z: gate "update" with complement=True; 1 − z: "update";
                 n: "candidate"; state a
LSTMCell         i: gate "update" (the course's Γu); f: "forget"; g:
                 "candidate" (c̃); o: "output"; states a and c
===============  ============================================================

>>> import tinygrad_seq as ts
>>> from tinygrad_seq import nn
>>> f = nn.gate(ts.randn(2, 3).sigmoid(), "forget")
>>> f.tags["role"], f.tags["gate"]
('gate', 'forget')
"""
from __future__ import annotations

from .. import settings
from ..modes import tag
from ..tensor import Tensor

ROLES = ("state", "gate", "input", "output", "loss", "projection")
GATES = ("update", "forget", "output", "reset", "candidate")  # the course's gates; a cell may name others


def _mark(tensor: Tensor, **role: object) -> Tensor:
    """Tag ``tensor`` with its role; a leaf (no node to carry them) also takes the step's tags (t, layer, ...)."""
    return tag(tensor, **({**settings.current_tags, **role} if tensor.grad_fn is None else role))


def gate(tensor: Tensor, name: str, complement: bool = False) -> Tensor:
    """Mark ``tensor`` as the gate ``name`` of the step being computed, and return it.

    ``name``: one of GATES or a name of the cell's own. ``complement``: the
    tensor is 1 − the gate (PyTorch's GRU z is 1 − Γu).
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"nn.gate: the gate's name must be a non-empty string such as {GATES}; got {name!r}")
    return _mark(tensor, role="gate", gate=name, **({"complement": True} if complement else {}))


def state(tensor: Tensor, part: str) -> Tensor:
    """Mark ``tensor`` as the state part ``part`` (a name of the cell's ``state_names``); nn.Recurrent does it."""
    return _mark(tensor, role="state", part=part)


def packed_state(tensor: Tensor, parts: tuple[str, ...]) -> Tensor:
    """Mark a fused step's result, which holds every part of the state (``parts``, the cell's ``state_names``)."""
    return _mark(tensor, role="state", parts=tuple(parts))


def step_input(tensor: Tensor) -> Tensor:
    """Mark ``tensor`` as x⟨t⟩, the input of a step (nn.Recurrent does it)."""
    return _mark(tensor, role="input")


def output(tensor: Tensor) -> Tensor:
    """Mark ``tensor`` as ŷ⟨t⟩, a prediction of the step being computed."""
    return _mark(tensor, role="output")


def projection(tensor: Tensor, source: str) -> Tensor:
    """Mark ``tensor`` as the matmul of every gate at once, of the step's input (``source="input"``) or state."""
    return _mark(tensor, role="projection", source=source)


def loss(tensor: Tensor) -> Tensor:
    """Mark ``tensor`` as L⟨t⟩, the loss of the step being computed."""
    return _mark(tensor, role="loss")


__all__ = ["GATES", "ROLES", "gate", "loss", "output", "packed_state", "projection", "state", "step_input"]
