"""Unary elementwise functions: exp, log, sqrt, abs, tanh, sigmoid, relu, clamp.

Each derivative is written in terms of whatever forward already computed
(tanh' = 1 - tanh², sigmoid' = s(1 - s)), as the math is usually taught.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import backend_of
from ..checks import is_real
from ..function import Function
from ..tensor import Tensor


class Exp(Function):
    __slots__ = ("out",)
    saves_output = True

    def forward(self, x):
        self.out = backend_of(x).xp.exp(x)
        return self.out

    def backward(self, grad):
        return (grad * self.out,)  # d e^x = e^x


def exp(x: Tensor) -> Tensor:
    """e^x elementwise."""
    return Exp.apply(x)


class Log(Function):
    __slots__ = ("x",)
    saved_inputs = (0,)

    def forward(self, x):
        self.x = x
        return backend_of(x).xp.log(x)

    def backward(self, grad):
        return (grad / self.x,)  # d log x = 1/x


def log(x: Tensor) -> Tensor:
    """Natural logarithm elementwise."""
    return Log.apply(x)


class Sqrt(Function):
    __slots__ = ("out",)
    saves_output = True

    def forward(self, x):
        self.out = backend_of(x).xp.sqrt(x)
        return self.out

    def backward(self, grad):
        return (grad * 0.5 / self.out,)  # d sqrt(x) = 1 / (2 sqrt(x))


def sqrt(x: Tensor) -> Tensor:
    """Square root elementwise."""
    return Sqrt.apply(x)


class Abs(Function):
    __slots__ = ("x",)
    saved_inputs = (0,)

    def forward(self, x):
        self.x = x
        return backend_of(x).xp.abs(x)

    def backward(self, grad):
        return (grad * backend_of(self.x).xp.sign(self.x),)  # sign(0) = 0, as PyTorch


def abs(x: Tensor) -> Tensor:
    """|x| elementwise (gradient 0 at 0)."""
    return Abs.apply(x)


class Tanh(Function):
    __slots__ = ("out",)
    saves_output = True

    def forward(self, x):
        self.out = backend_of(x).xp.tanh(x)
        return self.out

    def backward(self, grad):
        return (grad * (1 - self.out * self.out),)  # tanh' = 1 - tanh²


def tanh(x: Tensor) -> Tensor:
    """Hyperbolic tangent elementwise."""
    return Tanh.apply(x)


def logistic(x: Any) -> Any:
    """σ(x) = 1 / (1 + e^−x) on an array, to the last bit for every x (as PyTorch's), in place on one new array.

    The sigmoid of the Sigmoid op, the cell kernels' NumPy equations and the
    binary cross-entropy. (The shortcut (1 + tanh(x/2)) / 2 loses the relative
    precision of small values: σ(−40) would be 0. The float32 LSTM and GRU
    kernels' compiled loops take it all the same, for speed, and say so:
    ops/loops.py.)
    """
    xp = backend_of(x).xp
    # For x < −709, e^−x overflows to inf and the result is the correct 0: the warning is only noise.
    with np.errstate(over="ignore"):
        out = xp.negative(x, out=xp.empty_like(x))  # out= keeps 0-d results arrays
        xp.exp(out, out=out)
        out += 1
        xp.reciprocal(out, out=out)
    return out


class Sigmoid(Function):
    __slots__ = ("out",)
    saves_output = True

    def forward(self, x):
        self.out = logistic(x)
        return self.out

    def backward(self, grad):
        return (grad * self.out * (1 - self.out),)  # σ' = σ(1 - σ)


def sigmoid(x: Tensor) -> Tensor:
    """Logistic sigmoid 1 / (1 + e^-x) elementwise, without overflow for large |x|."""
    return Sigmoid.apply(x)


class Relu(Function):
    __slots__ = ("x",)
    saved_inputs = (0,)

    def forward(self, x):
        self.x = x
        return backend_of(x).xp.maximum(x, 0)

    def backward(self, grad):
        return (grad * (self.x > 0),)  # gradient 0 at 0, as PyTorch


def relu(x: Tensor) -> Tensor:
    """max(x, 0) elementwise."""
    return Relu.apply(x)


class Clamp(Function):
    __slots__ = ("inside",)

    def forward(self, x, *, lo=None, hi=None):
        # PyTorch passes the gradient where lo <= x <= hi, bounds included.
        inside = True
        if lo is not None:
            inside = x >= lo
        if hi is not None:
            inside = inside & (x <= hi)
        self.inside = inside
        return backend_of(x).xp.clip(x, lo, hi)

    def backward(self, grad):
        return (grad * self.inside,)


def clamp(x: Tensor, lo: float | None = None, hi: float | None = None) -> Tensor:
    """x limited to [lo, hi] (either bound may be None); gradient 1 inside, bounds included."""
    if lo is None and hi is None:
        raise ValueError("clamp: give at least one of lo and hi, e.g. x.clamp(-5.0, 5.0)")
    for name, bound in (("lo", lo), ("hi", hi)):
        if bound is not None and not is_real(bound):
            raise TypeError(f"clamp: {name} must be a number (or None for no bound); got {bound!r}")
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"clamp: lo={lo} is greater than hi={hi}; swap them")
    return Clamp.apply(x, lo=lo, hi=hi)
