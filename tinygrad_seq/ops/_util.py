"""Helpers shared by the ops: turning arguments into operands and normalising axes."""
from __future__ import annotations

import functools
import numbers
from collections.abc import Callable
from typing import Any

from ..checks import is_int
from ..function import Function
from ..tensor import as_tensor, Tensor


def operand(value: Any) -> Any:
    """A Tensor, or a Python number kept as it is (a weak scalar under NumPy 2); lists and arrays become Tensors (not copied)."""
    if isinstance(value, (Tensor, numbers.Real)):
        return value
    return as_tensor(value)


def apply_binary(op: type[Function], a: Any, b: Any) -> Tensor:
    """``op`` on two operands, following the op convention: tensors positionally, a Python number as the keyword
    ``scalar`` with None left in its place (``1 - z`` is ``Sub.apply(None, z, scalar=1)``).

    The number reaches forward unchanged, so NumPy 2 treats it as a weak scalar (float32 * 2.0 stays float32,
    as it would if it were never wrapped) and it gets no gradient; an array or list becomes a Tensor.
    """
    if isinstance(a, Tensor):
        if isinstance(b, Tensor):
            return op.apply(a, b)
        if isinstance(b, numbers.Real):
            return op.apply(a, None, scalar=b)
        return op.apply(a, as_tensor(b))
    if isinstance(b, Tensor):
        if isinstance(a, numbers.Real):
            return op.apply(None, b, scalar=a)
        return op.apply(as_tensor(a), b)
    return apply_binary(op, as_tensor(a), b)  # neither is a tensor: the left one becomes one


def with_scalar(a: Any, b: Any, scalar: Any) -> tuple[Any, Any]:
    """The two operands with the Python number ``scalar`` in the place the op convention left None (or as they are)."""
    if scalar is None:
        return a, b
    return (scalar, b) if a is None else (a, scalar)


def normalize_axes(axis: int | tuple[int, ...] | None, ndim: int, op: str) -> tuple[int, ...]:
    """``axis`` (int, tuple or None for all) as a tuple of non-negative axes, checked against ``ndim``."""
    if axis is None:
        return tuple(range(ndim))
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    normalized = []
    for a in axes:
        if type(a) is not int and not is_int(a):  # 1.0, "0", True, a list: the rule reshape's sizes follow too
            raise TypeError(f"{op}: axis must be an int, a tuple of ints, or None for all; got {axis!r}")
        if not -ndim <= a < max(ndim, 1):
            raise ValueError(f"{op}: axis {a} is out of range for a tensor with {ndim} axes (valid: {-ndim}..{ndim - 1})")
        normalized.append(a % ndim if ndim else 0)
    return tuple(normalized)


def pytorch_keywords(function: Callable[..., Any], pair: str | None = None) -> Callable[..., Any]:
    """``function`` taking PyTorch's ``dim=`` and ``keepdim=`` too, as NumPy's ``axis=`` and ``keepdims=`` (PyTorch
    takes ``axis=`` beside ``dim=`` the same way): ``x.sum(dim=1, keepdim=True)`` as ``x.sum(axis=1, keepdims=True)``.
    ``pair``: where PyTorch's ``dim=`` returns (values, indices) and this function the values only (``max``), the
    function that gives the indices, named in the TypeError that ``dim=`` is then, so no code unpacks rows as a pair."""

    @functools.wraps(function)
    def taking_dim(*args: Any, **kwargs: Any) -> Any:
        if pair is not None and "dim" in kwargs:
            raise TypeError(f"{function.__name__}(dim=...) is PyTorch's, which returns (values, indices); here "
                            f"{function.__name__}(axis=...) returns the values and {pair}(axis=...) the indices")
        for pytorch, numpy in (("dim", "axis"), ("keepdim", "keepdims")):
            if pytorch in kwargs:
                if numpy in kwargs:
                    raise TypeError(f"{function.__name__}: got both {pytorch}= (PyTorch's name) and {numpy}=; pass one")
                kwargs[numpy] = kwargs.pop(pytorch)
        return function(*args, **kwargs)

    return taking_dim
