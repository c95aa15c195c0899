"""Binary arithmetic: + - * / @, unary minus and ** with a scalar exponent.

Every binary op broadcasts like NumPy and undoes it in backward through
``unbroadcast``. A Python number stays a Python number (NumPy 2 treats it as
a "weak" scalar, so float32 * 2.0 stays float32) and gets no gradient: by the
op convention it is a keyword, ``scalar``, and None holds its place among the
operands (``2 * x`` is ``Mul.apply(None, x, scalar=2)``, ``x - 1`` is
``Sub.apply(x, None, scalar=1)``), so forward computes exactly ``2 * x``.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import blas
from ..backend import backend_of
from ..checks import is_real
from ..function import Function, shape_of, unbroadcast
from ..tensor import Tensor
from ._util import apply_binary, operand, with_scalar


class Add(Function):
    __slots__ = ("a_shape", "b_shape")

    def forward(self, a, b, *, scalar=None):
        a, b = with_scalar(a, b, scalar)
        self.a_shape, self.b_shape = shape_of(a), shape_of(b)
        return a + b

    def backward(self, grad):
        grad_a = unbroadcast(grad, self.a_shape) if self.needs_input_grad[0] else None
        grad_b = unbroadcast(grad, self.b_shape) if self.needs_input_grad[1] else None
        return grad_a, grad_b


def add(a: Any, b: Any) -> Tensor:
    """a + b, broadcasting."""
    return apply_binary(Add, a, b)


class Sub(Function):
    __slots__ = ("a_shape", "b_shape")

    def forward(self, a, b, *, scalar=None):
        a, b = with_scalar(a, b, scalar)
        self.a_shape, self.b_shape = shape_of(a), shape_of(b)
        return a - b

    def backward(self, grad):
        grad_a = unbroadcast(grad, self.a_shape) if self.needs_input_grad[0] else None
        grad_b = unbroadcast(-grad, self.b_shape) if self.needs_input_grad[1] else None
        return grad_a, grad_b


def sub(a: Any, b: Any) -> Tensor:
    """a - b, broadcasting."""
    return apply_binary(Sub, a, b)


class Mul(Function):
    __slots__ = ("a", "b")
    saved_inputs = (0, 1)

    def forward(self, a, b, *, scalar=None):
        a, b = with_scalar(a, b, scalar)
        self.a, self.b = a, b
        return a * b

    def backward(self, grad):
        a, b = self.a, self.b
        grad_a = unbroadcast(grad * b, shape_of(a)) if self.needs_input_grad[0] else None
        grad_b = unbroadcast(grad * a, shape_of(b)) if self.needs_input_grad[1] else None
        return grad_a, grad_b


def mul(a: Any, b: Any) -> Tensor:
    """a * b elementwise, broadcasting."""
    return apply_binary(Mul, a, b)


class Div(Function):
    __slots__ = ("a_shape", "b", "out")
    saved_inputs = (1,)
    saves_output = True

    def forward(self, a, b, *, scalar=None):
        a, b = with_scalar(a, b, scalar)
        self.a_shape, self.b = shape_of(a), b
        self.out = a / b
        return self.out

    def backward(self, grad):
        # d(a/b)/da = 1/b ; d(a/b)/db = -a/b^2 = -out/b
        grad_over_b = grad / self.b
        grad_a = unbroadcast(grad_over_b, self.a_shape) if self.needs_input_grad[0] else None
        grad_b = unbroadcast(-grad_over_b * self.out, shape_of(self.b)) if self.needs_input_grad[1] else None
        return grad_a, grad_b


def div(a: Any, b: Any) -> Tensor:
    """a / b elementwise, broadcasting."""
    return apply_binary(Div, a, b)


class Neg(Function):
    __slots__ = ()

    def forward(self, x):
        return -x

    def backward(self, grad):
        return (-grad,)


def neg(x: Tensor) -> Tensor:
    """-x."""
    return Neg.apply(x)


class Pow(Function):
    __slots__ = ("x", "exponent")
    saved_inputs = (0,)

    def forward(self, x, *, exponent):
        self.x, self.exponent = x, exponent
        return x**exponent

    def backward(self, grad):
        if self.exponent == 0:
            # x^0 = 1 is constant: gradient 0 everywhere, also at x = 0 where p * x^(p-1) would be 0 * inf = NaN (as PyTorch)
            return (backend_of(grad).xp.zeros_like(grad),)
        # d(x^p)/dx = p * x^(p-1)
        return (grad * self.exponent * self.x ** (self.exponent - 1),)


def pow(x: Tensor, exponent: float) -> Tensor:
    """x ** exponent for a Python number ``exponent``."""
    if not is_real(exponent):
        raise TypeError(
            f"pow: the exponent must be a Python number; got {type(exponent).__name__}. "
            "For a tensor exponent y write (x.log() * y).exp()"
        )
    return Pow.apply(x, exponent=exponent)


ROWS_PER_PRODUCT = 2048
"""The most rows :func:`rows_times` multiplies in one BLAS call on NumPy. Each OpenBLAS thread packs
blocks of a product's rows into a buffer it keeps for the life of the process, and a taller product touches
more of it: with (T·B = 8,192)-row products by a 2,048-row weight, the peak of bench/lm_step.py --memory's
step grew by 10 MB on two BLAS threads (none on one). Its timed steps have 2,048 rows or fewer, so they stay
one product."""


def as_rows(a: Any) -> Any:
    """a (..., K) as (rows, K): a itself when 2-D, a view when its rows are one block, else a copy (a
    zero-length K too)."""
    if a.ndim == 2:
        return a
    return a.reshape(math.prod(a.shape[:-1]), a.shape[-1])


def rows_times(a: Any, b: Any) -> Any:
    """a (..., K) @ b (K, N) -> (..., N), as 2-D products over all of a's rows.

    NumPy multiplies a stacked ``a`` by a matrix one (M, K) slice at a time:
    a (T, B, K) sequence by a layer's weight then takes 1.5 to 3.8 times as long
    as the same rows in one product on two threads (docs/performance.md,
    "Cheaper steps"). An ``a`` whose rows are not one block is copied into
    one first, which costs far less than the slices. On NumPy, more rows than
    :data:`ROWS_PER_PRODUCT` are multiplied that many at a time. Any other
    ``a`` or ``b`` (a vector, a stack of matrices on the right) is NumPy's ``@``."""
    if a.ndim < 2 or b.ndim != 2:
        return a @ b
    if a.ndim == 2 and len(a) <= ROWS_PER_PRODUCT:
        return blas.product(a, b)
    rows = as_rows(a)
    if len(rows) <= ROWS_PER_PRODUCT or type(rows) is not np.ndarray:
        product = blas.product(rows, b)
    else:
        product = np.empty((len(rows), b.shape[1]), dtype=np.result_type(a, b))
        for start in range(0, len(rows), ROWS_PER_PRODUCT):  # each block its own product (a narrow one is small)
            blas.product(rows[start : start + ROWS_PER_PRODUCT], b, out=product[start : start + ROWS_PER_PRODUCT])
    return product.reshape(*a.shape[:-1], b.shape[-1])


class MatMul(Function):
    """a @ b with NumPy's rules: 1-D operands are vectors, leading axes broadcast as a batch."""

    __slots__ = ("a", "b")
    saved_inputs = (0, 1)

    def forward(self, a, b):
        self.a, self.b = a, b
        return rows_times(a, b)

    def backward(self, grad):
        a, b = self.a, self.b
        # Treat vectors as (1, n) rows and (n, 1) columns so one formula covers every case.
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        if b.ndim == 1:
            grad = grad[..., None]
        if a.ndim == 1:
            grad = grad[..., None, :]
        grad_a = grad_b = None
        if self.needs_input_grad[0]:
            grad_a = unbroadcast(rows_times(grad, b2.swapaxes(-1, -2)), a2.shape).reshape(a.shape)
        if self.needs_input_grad[1]:
            if b2.ndim == 2 and a2.ndim > 2:
                # A shared weight: one big matmul instead of a batch of them summed afterwards.
                grad_b = as_rows(a2).T @ as_rows(grad)
            else:
                grad_b = unbroadcast(a2.swapaxes(-1, -2) @ grad, b2.shape)
            grad_b = grad_b.reshape(b.shape)
        return grad_a, grad_b


def matmul(a: Any, b: Any) -> Tensor:
    """a @ b: matrix product, batched over leading axes (which broadcast)."""
    a, b = operand(a), operand(b)
    a_shape, b_shape = np.shape(getattr(a, "data", a)), np.shape(getattr(b, "data", b))
    if len(a_shape) == 0 or len(b_shape) == 0:
        raise ValueError(f"matmul: shapes {a_shape} @ {b_shape}: both operands need at least one axis; use * for scalars")
    inner_b = b_shape[0] if len(b_shape) == 1 else b_shape[-2]
    if a_shape[-1] != inner_b:
        raise ValueError(
            f"matmul: shapes {a_shape} @ {b_shape} do not fit: the last axis of the left ({a_shape[-1]}) "
            f"must equal the {'only' if len(b_shape) == 1 else 'second-to-last'} axis of the right ({inner_b}). "
            "Transpose one operand (w.T) or check the layer sizes"
        )
    return MatMul.apply(a, b)


class Linear(Function):
    """x @ weight.T + bias in one node: the affine map of a layer, without keeping x @ weight.T alive beside it."""

    __slots__ = ("x", "weight")
    saved_inputs = (0, 1)
    layout_keywords = ("weight_t",)

    def forward(self, x, weight, bias, *, weight_t=None):
        """``weight_t``: weight.T laid out contiguously, from a caller that multiplies by one weight once per
        time step (a recorded cell step; see nn.steps.contiguous_transpose)."""
        self.x, self.weight = x, weight
        out = rows_times(x, weight.T if weight_t is None else weight_t)
        if bias is not None:
            out += bias
        return out

    def backward(self, grad):
        x, weight = self.x, self.weight
        grad_x = rows_times(grad, weight) if self.needs_input_grad[0] else None  # (..., in): x's shape
        rows = as_rows(grad)
        grad_weight = rows.T @ as_rows(x) if self.needs_input_grad[1] else None
        grad_bias = rows.sum(axis=0) if self.needs_input_grad[2] else None
        return grad_x, grad_weight, grad_bias


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x @ weight.T + bias for x (..., in), weight (out, in), bias (out,) -> (..., out), as torch.nn.functional.linear."""
    if weight.ndim != 2 or x.ndim == 0 or x.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"linear: input {x.shape} and weight {weight.shape} do not fit: the input's last axis must equal "
            "the weight's second (in_features)"
        )
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"linear: bias {bias.shape} must have shape ({weight.shape[0]},), one value per output")
    return Linear.apply(x, weight, bias)
