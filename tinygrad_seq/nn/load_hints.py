"""Why a state dict does not fit a model, in the model's terms: what ``Module.load_state_dict`` adds to its error.

Three cases are named here, the commonest: a checkpoint of another cell, whose
recurrent weight (G·H, H) stacks another number G of gate blocks than the
model's (a GRU's 3 into an LSTM's 4); a recurrent layer of other
``num_layers`` or ``bidirectional`` (keys ``..._l1``, ``..._reverse`` more
or fewer); and keys that differ by a prefix (the state dict of a model that
holds this one, "lstm.weight_ih_l0" for "weight_ih_l0", or the other way
round). Each message names the fix. Models are read through ``named_modules`` only, so this module imports
nothing of nn.
"""
from __future__ import annotations

import re
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


def prefix_hint(missing: list[str], unexpected: list[str]) -> str:
    """The fix when the saved keys are the model's with a prefix added ("lstm.": saved from a model holding this one)
    or taken away (saved from a module this model holds); "" when no one prefix explains every missing key."""
    for saved, wanted, added in ((unexpected, missing, True), (missing, unexpected, False)):
        if not wanted:
            continue
        prefixes = {key[: -len(wanted[0])] for key in saved if key.endswith(wanted[0]) and len(key) > len(wanted[0])}
        for prefix in prefixes:
            if prefix.endswith(".") and all(prefix + key in saved for key in wanted):
                if added:
                    return (f"The saved keys carry the prefix {prefix!r} (saved from a model that holds this one): load "
                            f"{{k.removeprefix({prefix!r}): v for k, v in state.items() if k.startswith({prefix!r})}}")
                return (f"The model's keys start with {prefix!r} and the saved ones do not (saved from the module at "
                        f"{prefix[:-1]!r}): load them into that module, model.{prefix[:-1]}.load_state_dict(state)")
    return ""


_LAYER_KEY = re.compile(r"^(.*?)(?:weight|bias)_(?:ih|hh)_l(\d+)(_reverse)?$")  # PyTorch's names: weight_ih_l1_reverse


def _layouts(keys: Any) -> dict[str, tuple[int, bool]]:
    """{prefix: (num_layers, bidirectional)} of the recurrent layers whose PyTorch-named keys are among ``keys``."""
    found: dict[str, tuple[int, bool]] = {}
    for key in keys:
        match = _LAYER_KEY.match(key)
        if match:
            prefix, layer, reverse = match.group(1), int(match.group(2)), bool(match.group(3))
            layers, both = found.get(prefix, (0, False))
            found[prefix] = (max(layers, layer + 1), both or reverse)
    return found


def layers_hint(state_dict: dict[str, Any], own: dict[str, Any]) -> str:
    """The fix when a recurrent layer's keys say another ``num_layers`` or ``bidirectional`` than the model's (a
    2-layer bidirectional LSTM's weights into a 1-layer one); "" when they agree or name no such layer."""
    saved, ours = _layouts(state_dict), _layouts(own)
    for prefix, (layers, bidirectional) in ours.items():
        if prefix in saved and saved[prefix] != (layers, bidirectional):
            theirs = saved[prefix]
            where = f"the layer at {prefix[:-1]!r}" if prefix else "the layer"
            return (f"The checkpoint's keys are those of {where} with num_layers={theirs[0]}, bidirectional={theirs[1]}; "
                    f"the model's with num_layers={layers}, bidirectional={bidirectional}: build the model as the checkpoint "
                    "was saved")
    return ""
