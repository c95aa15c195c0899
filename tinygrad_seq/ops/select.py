"""Choosing between values: where, maximum, masked_fill, and the (non-differentiable) comparisons.

A condition or mask is a bool array that chooses, not data that is
differentiated: by the op convention it is a keyword (``condition=``,
``mask=``), and only the values chosen between are positional tensors. A
Python number among them is the keyword ``scalar``, with None in its place,
as in the arithmetic ops.
"""
from __future__ import annotations

import operator
from typing import Any

import numpy as np

from ..backend import backend_of
from ..function import Function, shape_of, unbroadcast
from ..tensor import Tensor
from ._util import apply_binary, operand, with_scalar


def _mask_array(mask: Any, op: str, like: Any = None, name: str = "condition") -> Any:
    """The bool array of ``mask`` (called ``name`` in ``op``'s errors), on the backend of the tensor ``like`` (a host
    mask moves to the GPU with it)."""
    data = mask.data if isinstance(mask, Tensor) else mask
    if not hasattr(data, "dtype"):
        data = np.asarray(data)
    if data.dtype != bool:
        raise TypeError(f"{op}: the {name} must be a bool tensor or array; got {data.dtype}. Build it with a comparison, e.g. x > 0")
    if isinstance(like, Tensor):
        data = like.backend.adopt(data)
    return data


class Where(Function):
    __slots__ = ("condition", "a_shape", "b_shape")

    def forward(self, a, b, *, condition, scalar=None):
        a, b = with_scalar(a, b, scalar)
        self.condition, self.a_shape, self.b_shape = condition, shape_of(a), shape_of(b)
        return backend_of(condition).xp.where(condition, a, b)

    def backward(self, grad):
        zero = grad.dtype.type(0)
        where = backend_of(grad).xp.where
        grad_a = unbroadcast(where(self.condition, grad, zero), self.a_shape) if self.needs_input_grad[0] else None
        grad_b = unbroadcast(where(self.condition, zero, grad), self.b_shape) if self.needs_input_grad[1] else None
        return grad_a, grad_b


def where(condition: Any, a: Any, b: Any) -> Tensor:
    """``a`` where ``condition`` is True, else ``b`` (all three broadcast); the gradient follows the choice."""
    a, b = operand(a), operand(b)
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):  # two numbers: nothing to differentiate
        mask = _mask_array(condition, "where")
        return Tensor.wrap(backend_of(mask).xp.where(mask, a, b))
    like = a if isinstance(a, Tensor) else b
    condition = _mask_array(condition, "where", like)
    if not isinstance(b, Tensor):
        return Where.apply(a, None, condition=condition, scalar=b)
    if not isinstance(a, Tensor):
        return Where.apply(None, b, condition=condition, scalar=a)
    return Where.apply(a, b, condition=condition)


class Maximum(Function):
    __slots__ = ("a", "b")
    saved_inputs = (0, 1)

    def forward(self, a, b, *, scalar=None):
        a, b = with_scalar(a, b, scalar)
        self.a, self.b = a, b
        return backend_of(a if hasattr(a, "dtype") else b).xp.maximum(a, b)

    def backward(self, grad):
        a, b = self.a, self.b
        # As PyTorch: the larger side gets the gradient, each side half of it where a == b, and both
        # all of it where either is NaN (no comparison holds, so neither is known to be the smaller).
        tie = 0.5 * (a == b)
        grad_a = unbroadcast(grad * (1 - (a < b) - tie), shape_of(a)) if self.needs_input_grad[0] else None
        grad_b = unbroadcast(grad * (1 - (a > b) - tie), shape_of(b)) if self.needs_input_grad[1] else None
        return grad_a, grad_b


def maximum(a: Any, b: Any) -> Tensor:
    """Elementwise larger of ``a`` and ``b`` (broadcasting); ties split the gradient in half."""
    return apply_binary(Maximum, a, b)


class MaskedFill(Function):
    __slots__ = ("mask", "x_shape")

    def forward(self, x, *, mask, value):
        self.mask, self.x_shape = mask, x.shape
        return backend_of(x).xp.where(mask, x.dtype.type(value), x)

    def backward(self, grad):
        filled = backend_of(grad).xp.where(self.mask, grad.dtype.type(0), grad)
        return (unbroadcast(filled, self.x_shape),)


def masked_fill(x: Tensor, mask: Any, value: float) -> Tensor:
    """``x`` with ``value`` wherever ``mask`` (bool, broadcast to x) is True; no gradient flows there."""
    mask = _mask_array(mask, "masked_fill", x, name="mask")
    try:
        fits = np.broadcast_shapes(np.shape(mask), x.shape) == x.shape
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"masked_fill: mask of shape {np.shape(mask)} does not broadcast to the tensor's shape {x.shape}")
    return MaskedFill.apply(x, mask=mask, value=value)


_COMPARISONS = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def compare(op: str, a: Any, b: Any) -> Tensor:
    """Elementwise ``a op b`` as a bool tensor; comparisons are not differentiable."""
    a_data, b_data = (v.data if isinstance(v, Tensor) else v for v in (operand(a), operand(b)))
    try:
        return Tensor.wrap(backend_of(a_data).xp.asarray(_COMPARISONS[op](a_data, b_data)))
    except ValueError as error:
        raise ValueError(f"compare {op}: {error} (shapes {np.shape(a_data)} and {np.shape(b_data)})") from None
