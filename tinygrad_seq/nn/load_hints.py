"""Why a state dict does not fit a model, in the model's terms: what ``Module.load_state_dict`` adds to its error.

The one case named here is the commonest: a checkpoint of another cell, whose
recurrent weight (G·H, H) stacks another number G of gate blocks than the
model's (a GRU's 3 into an LSTM's 4). The message names both cells and the
fix. Models are read through ``named_modules`` only, so this module imports
nothing of nn.
"""
from __future__ import annotations

from typing import Any

import numpy as np

_CELL_OF_GATE_BLOCKS = {1: "an RNN", 2: "a simplified GRU", 3: "a GRU", 4: "an LSTM"}  # the built-in cells' G in W_hh (G·H, H)


def value_shape(value: Any) -> tuple[int, ...]:
    """The shape of a state dict's value: an array of any backend, a Tensor, or nested lists."""
    return tuple(value.shape) if hasattr(value, "shape") else np.shape(value)


def other_cell_hint(model: Any, state_dict: dict[str, Any], own: dict[str, Any]) -> str:
    """The fix to name where a recurrent weight_hh (G·H, H) has the model's H but another G: another cell's weights.

    The checkpoint's G is named by the built-in cell that has it ("3 gate blocks, as a GRU has"), the model's by the
    class of the module that holds the weight; a mis-shape that another G does not explain (an input size) adds the
    sizes to the fix."""
    for key, parameter in own.items():
        if not key.split(".")[-1].startswith("weight_hh") or key not in state_dict:
            continue
        theirs, ours = value_shape(state_dict[key]), parameter.shape
        if len(theirs) == len(ours) == 2 and theirs[1] == ours[1] and theirs[0] != ours[0] and theirs[0] % theirs[1] == 0:
            blocks = theirs[0] // theirs[1], ours[0] // ours[1]
            known = _CELL_OF_GATE_BLOCKS.get(blocks[0])
            holder = type(_holder(model, key)).__name__
            sizes = any(value_shape(state_dict[k]) != _gate_scaled(p.shape, blocks) for k, p in own.items()
                        if k in state_dict and value_shape(state_dict[k]) != p.shape)
            return (f"{key} holds {blocks[0]} gate blocks of H = {theirs[1]} rows in the checkpoint"
                    + (f" (as {known} has)" if known else "") + f" and {blocks[1]} in the model's {holder}: build the "
                    "model with the cell" + (" and the sizes" if sizes else "") + " the checkpoint was saved with")
    return ""


def _holder(model: Any, key: str) -> Any:
    """The module whose parameter ``key`` is: its longest prefix that names one ("rnn.layers.0.cell" of
    "rnn.layers.0.cell.weight_hh"; the model itself for LSTM's "weight_hh_l0", or past a list or dict attribute)."""
    modules = dict(model.named_modules())
    parts = key.split(".")[:-1]
    while parts and ".".join(parts) not in modules:
        parts.pop()
    return modules.get(".".join(parts), model)


def _gate_scaled(shape: tuple[int, ...], blocks: tuple[int, int]) -> tuple[int, ...]:
    """A gate-stacked parameter's shape (G·H first) with the checkpoint's G instead of the model's."""
    return (shape[0] // blocks[1] * blocks[0], *shape[1:]) if shape and shape[0] % blocks[1] == 0 else shape
