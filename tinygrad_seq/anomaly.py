"""``detect_anomaly``'s checks and the engine's words for where things are.

With anomaly mode on (``ts.detect_anomaly()``), ``Function.apply`` calls
:func:`check_forward` on every op's output, the engine calls
:func:`check_gradient` on every gradient it passes on, and ``nn.Recurrent``
calls :func:`check_finite_input` on what it receives: the first NaN or inf
raises ``FloatingPointError`` naming the op, its time step, layer and
direction, the tensor and the first bad element. :func:`place` and
:func:`describe` (a node's tags and a tensor in words) serve every error
message of the engine.
"""
from __future__ import annotations

import traceback
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from . import settings
from .backend import backend_of
from .lazy_grad import LazyGrad

if TYPE_CHECKING:  # for type checkers only: these modules sit above this one
    from .function import Function
    from .tensor import Tensor


def finite(array: Any) -> bool:
    return array.dtype.kind != "f" or bool(backend_of(array).xp.isfinite(array).all())


def place(tags: dict[str, Any]) -> str:
    """ "time step 3, layer 0, forward" from a node's tags ("outside the time loop" without them)."""
    parts = []
    if "t" in tags:
        parts.append(f"time step {tags['t']}")
    if "layer" in tags:
        parts.append(f"layer {tags['layer']}")
    if "direction" in tags:
        parts.append(str(tags["direction"]))
    return ", ".join(parts) or "outside the time loop"


def at_place(tags: dict[str, Any]) -> str:
    """ "at time step 3, layer 0, forward", or "outside the time loop"."""
    where = place(tags)
    return where if not ("t" in tags or "layer" in tags or "direction" in tags) else f"at {where}"


def describe(tensor: Tensor) -> str:
    """A tensor in words for error messages: its name, else its role ("state a", "gate forget"), else "unnamed"."""
    if tensor.name:
        return tensor.name
    tags = tensor.tags
    what = tags.get("part") or ", ".join(tags.get("parts", ())) or tags.get("gate", "")
    return f"{tags['role']} {what}".strip() if "role" in tags else "unnamed"


def input_names(args: Sequence[Any]) -> str:
    names = [f"{describe(a)} {tuple(a.shape)}" for a in args if a is not None]
    return ", ".join(names) or "none"


def first_non_finite(array: Any) -> tuple[tuple[int, ...], int, float]:
    """(multi-index, flat index, value) of the first NaN or inf in ``array`` (C order)."""
    xp = backend_of(array).xp
    flat = int(xp.argmax(~xp.isfinite(array).ravel()))
    index = tuple(int(i) for i in np.unravel_index(flat, array.shape))
    return index, flat, float(array.ravel()[flat])


def describe_non_finite(array: Any, time_axis: int | None = None) -> str:
    """ "nan at index (4, 1, 0) (flat index 25), time step 5": where the first NaN or inf of ``array`` is.

    ``time_axis``: the axis of time steps when ``array`` is a sequence
    (counted from 1, as the ``t`` tag of nn.Recurrent).
    """
    index, flat, value = first_non_finite(array)
    text = f"{value} at index {index} (flat index {flat})"
    if time_axis is not None and array.ndim > time_axis:
        text += f", time step {index[time_axis] + 1}"
    return text


def check_finite_input(tensor: Tensor, op: str, what: str, time_axis: int | None = None) -> None:
    """detect_anomaly's check of what a layer receives (nn.Recurrent's input and state): raise at the first NaN or inf.

    Names the layer, the tensor, the first non-finite element and its time
    step, so a NaN in the data is not blamed on the first op that reads it.
    """
    if finite(tensor._data):
        return
    raise FloatingPointError(
        f"detect_anomaly: {what} {tensor.name or 'unnamed'} of shape {tensor.shape} given to {op} is already non-finite: "
        f"{describe_non_finite(tensor._data, time_axis)}. The NaN or inf came in with it; no op of {op} made it. "
        "Check the data, or where this tensor was computed (run that inside detect_anomaly() too)"
    )


def check_forward(op: str, args: Sequence[Any], out: Any) -> None:
    """detect_anomaly's forward check: the first op whose output holds NaN or inf raises.

    If an input is non-finite already, the message blames that input (its
    name, the first bad element, its time step) rather than the op.
    """
    if finite(out):
        return
    tags = settings.current_tags
    stack = "".join(traceback.format_stack()[-6:-3])
    for arg in args:
        if arg is not None and not finite(arg._data):
            made = f" (made at time step {arg.tags['t']})" if "t" in arg.tags else ""
            raise FloatingPointError(
                f"detect_anomaly: the input {arg.name or 'unnamed'} of shape {arg.shape}{made} of {op} is already non-finite "
                f"going forward, {at_place(tags)}: {describe_non_finite(arg._data)}. "
                f"The NaN or inf came in with this input; {op} did not make it. Check where that input comes from "
                f"(the data, a parameter, or an op run outside detect_anomaly()). {op} was called at:\n{stack}"
            )
    raise FloatingPointError(
        f"detect_anomaly: {op} produced a non-finite output going forward, {at_place(tags)} "
        # time_axis: set by nn.Recurrent on the fused path's input projection, which maps all time steps at once
        f"(tags {tags}): its output of shape {tuple(out.shape)} holds {describe_non_finite(out, tags.get('time_axis'))}; "
        f"its inputs, all finite: {input_names(args)}. It was called at:\n{stack}"
    )


def check_gradient(node: Function, arg: Tensor, grad: Any) -> None:
    """detect_anomaly's backward check: the first op that sends a NaN or inf gradient raises."""
    arrays = grad.arrays() if isinstance(grad, LazyGrad) else (grad,)
    if all(finite(a) for a in arrays):
        return
    where = "".join(node.created_at[-3:]) if node.created_at else "  (made outside detect_anomaly(); wrap the forward pass too to see where)\n"
    raise FloatingPointError(
        f"detect_anomaly: {node.name} (tags {node.tags}) sent a non-finite gradient going backward, at {place(node.tags)}, "
        f"to its input {arg.name or 'unnamed'} of shape {arg.shape}; the op's inputs: {input_names(node.inputs)}. "
        f"The op was made at:\n{where}"
    )
