"""Helpers shared by the ops: turning arguments into operands and normalising axes."""
from __future__ import annotations

import numbers
from typing import Any

from ..tensor import Tensor, as_tensor


def operand(value: Any) -> Any:
    """A Tensor, or a Python number kept as it is (a weak scalar under NumPy 2); lists and arrays become Tensors (not copied)."""
    if isinstance(value, (Tensor, numbers.Real)):
        return value
    return as_tensor(value)


def normalize_axes(axis: int | tuple[int, ...] | None, ndim: int, op: str) -> tuple[int, ...]:
    """``axis`` (int, tuple or None for all) as a tuple of non-negative axes, checked against ``ndim``."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int,)) or hasattr(axis, "__index__") else tuple(axis)
    normalized = []
    for a in axes:
        if not -ndim <= a < max(ndim, 1):
            raise ValueError(f"{op}: axis {a} is out of range for a tensor with {ndim} axes (valid: {-ndim}..{ndim - 1})")
        normalized.append(a % ndim if ndim else 0)
    return tuple(normalized)
