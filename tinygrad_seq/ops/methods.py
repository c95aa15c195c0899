"""Tensor's operators and methods: ``x + y``, ``x @ w``, ``x.sum()``, ``x.reshape()``, ``x.to()``.

Each is a function of ops/ taking the tensor first (``x.sum(0)`` is
``ops.sum(x, 0)``, with its docstring); :func:`install` attaches them to
:class:`Tensor` when ops/ is imported, which importing ``tinygrad_seq`` does.
They are attached from here because tensor.py sits below the ops and never
imports them.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .. import settings
from ..backend import Backend, backend_or_dtype
from ..tensor import Tensor
from . import arithmetic, elementwise, reduce, select
from ._util import pytorch_keywords
from . import shape as shape_ops  # not "shape": Tensor.shape is the tensor's
from .convert import Cast, ToBackend


def reflected(function: Callable[[Any, Any], Tensor]) -> Callable[[Tensor, Any], Tensor]:
    """The reflected operator: Python calls ``x.__rsub__(2)`` for ``2 - x``, which is ``sub(2, x)``."""

    def method(self: Tensor, other: Any) -> Tensor:
        return function(other, self)

    method.__doc__ = f"other {function.__name__} self (Python's reflected operator)."
    return method


def comparison(symbol: str) -> Callable[[Tensor, Any], Tensor]:
    """``x < y`` and the others: a bool tensor, not differentiable."""

    def method(self: Tensor, other: Any) -> Tensor:
        return select.compare(symbol, self, other)

    method.__doc__ = f"self {symbol} other elementwise, a bool tensor (no gradient)."
    return method


def in_place(function: Callable[[Any, Any], Tensor], symbol: str) -> Callable[[Tensor, Any], Tensor]:
    """``x += y`` and its kin, as PyTorch's, where no gradient is to be recorded (``with ts.no_grad(): p -= lr *
    p.grad``): x's own float memory changes, so its views see the new values and a node that saved x refuses to run
    backward with them. An int or bool tensor (ids, a mask) gets new memory instead: the ops that index with it keep
    the arrays they read, which no version check covers. Where a gradient is recorded (x or y requires grad, grad
    enabled), and in a cell's forward run by a recurrent layer (whose two paths must agree, and whose state is an
    earlier step's output), it is ``x = x + y``: a new tensor, of x's shape and dtype, that the name now holds; other
    names for x's memory (its views, the tensor it views) keep the old values, where PyTorch would change them. A
    parameter, or a view of one, is refused there, as PyTorch refuses it."""

    def method(self: Tensor, other: Any) -> Tensor:
        recorded = settings.grad_enabled and (self.requires_grad or getattr(other, "requires_grad", False))
        if recorded:
            _refuse_in_graph(self, symbol)
        result = function(self, other)
        if result.shape != self.shape:
            raise ValueError(f"x {symbol}= y in place: the result has shape {result.shape} but x has {self.shape}; y must "
                             f"broadcast to x's shape. For a new tensor of the larger shape write z = x {symbol} y")
        if result.dtype != self.dtype and not np.can_cast(result.dtype, self.dtype, casting="same_kind"):
            raise TypeError(f"x {symbol}= y in place: the result is {result.dtype}, which x ({self.dtype}) cannot hold; "
                            f"convert y first, or write z = x {symbol} y for a new tensor")
        if recorded or settings.recording is not None or settings.cell_forward:
            return result if result.dtype == self.dtype else to(result, self.dtype)
        data = result._data if result.dtype == self.dtype else result._data.astype(self.dtype)
        if self.dtype.kind in "biu" or isinstance(self._data, np.generic):  # ids and masks, or a NumPy number: new memory
            self.data = self.backend.xp.array(data, copy=True)
        elif not getattr(getattr(self._data, "flags", None), "writeable", True):  # CuPy's arrays are always writeable
            raise ValueError(f"x {symbol}= y in place: x's array {self.shape} is read-only (ts.from_numpy of a read-only "
                             f"array shares it); write z = x {symbol} y for a new tensor")
        else:
            self._write(..., data)
        return self

    method.__doc__ = f"self {symbol}= other: in place where no gradient is recorded (see ops.methods.in_place)."
    return method


def _refuse_in_graph(tensor: Tensor, symbol: str) -> None:
    """Refuse the in-place change, with a gradient recorded, that PyTorch refuses too: a leaf that requires grad (a
    parameter), or a view of one, which the new tensor of ``x + y`` would not reach."""
    fix = (f"Update it under `with ts.no_grad():`, as an optimizer's step does (PyTorch refuses this too); for a new "
           f"tensor, write y = x {symbol} ...")
    if tensor.requires_grad and tensor.grad_fn is None:
        raise RuntimeError(f"x {symbol}= ...: x {tensor.shape} is a leaf that requires grad (a parameter), changed in place "
                           f"with grad enabled, which backward could not follow. {fix}")
    base = tensor
    while base.grad_fn is not None and type(base.grad_fn).view_of_input and base._counter is not None \
            and base._counter is getattr(base.grad_fn.inputs[0], "_counter", None):
        base = base.grad_fn.inputs[0]
    if base is not tensor and base.requires_grad and base.grad_fn is None:
        raise RuntimeError(f"x {symbol}= ...: x {tensor.shape} is a view of a parameter {base.shape}, changed in place with "
                           f"grad enabled: the change would not reach it. {fix}")


def to(self: Tensor, target: str | Backend | Any) -> Tensor:
    """This tensor on another backend ("numpy", "cupy", or one installed by ``backend.register``) or with another dtype;
    differentiable, except to an integer or bool dtype, whose tensors have no gradient (PyTorch's rule)."""
    moved = backend_or_dtype(target, "to")
    if isinstance(moved, Backend):
        return self if moved is self.backend else ToBackend.apply(self, backend=moved)
    return self if moved == self.dtype else Cast.apply(self, dtype=moved)  # to ints: no node (Function.apply)


METHODS: dict[str, Any] = {
    "to": to,
    "double": lambda self: to(self, np.float64),
    "float": lambda self: to(self, np.float32),
    "__add__": arithmetic.add, "__radd__": reflected(arithmetic.add),
    "__sub__": arithmetic.sub, "__rsub__": reflected(arithmetic.sub),
    "__mul__": arithmetic.mul, "__rmul__": reflected(arithmetic.mul),
    "__truediv__": arithmetic.div, "__rtruediv__": reflected(arithmetic.div),
    "__iadd__": in_place(arithmetic.add, "+"), "__isub__": in_place(arithmetic.sub, "-"),
    "__imul__": in_place(arithmetic.mul, "*"), "__itruediv__": in_place(arithmetic.div, "/"),
    "__matmul__": arithmetic.matmul, "__rmatmul__": reflected(arithmetic.matmul),
    "__neg__": arithmetic.neg, "__pow__": arithmetic.pow, "__abs__": elementwise.abs,
    "__eq__": comparison("=="), "__ne__": comparison("!="), "__lt__": comparison("<"),
    "__le__": comparison("<="), "__gt__": comparison(">"), "__ge__": comparison(">="),
    "__getitem__": shape_ops.getitem,
    "exp": elementwise.exp, "log": elementwise.log, "sqrt": elementwise.sqrt, "abs": elementwise.abs,
    "tanh": elementwise.tanh, "sigmoid": elementwise.sigmoid, "relu": elementwise.relu, "clamp": elementwise.clamp,
    **{name: pytorch_keywords(getattr(reduce, name)) for name in ("sum", "mean", "argmax", "softmax", "log_softmax")},
    "max": pytorch_keywords(reduce.max, pair="x.argmax"), "min": pytorch_keywords(reduce.min, pair="(-x).argmax"),
    "masked_fill": select.masked_fill,
    "reshape": shape_ops.reshape, "transpose": shape_ops.transpose, "swapaxes": shape_ops.swapaxes,
    "unsqueeze": pytorch_keywords(shape_ops.unsqueeze), "squeeze": pytorch_keywords(shape_ops.squeeze),
    "flatten": shape_ops.flatten,
    "T": property(lambda self: shape_ops.transpose(self), doc="The tensor with its axes reversed (x.transpose())."),
}


def install(cls: type = Tensor) -> None:
    """Give ``cls`` every method of :data:`METHODS`."""
    for name, method in METHODS.items():
        setattr(cls, name, method)


install()
