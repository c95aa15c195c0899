"""Reductions along axes: sum, mean, max (ties share the gradient), softmax and log-softmax."""
from __future__ import annotations

import math

from ..backend import backend_of
from ..function import Function
from ..tensor import Tensor
from ._util import normalize_axes


def _expand_reduced(grad, axes, keepdims):
    """Put back the reduced axes as size 1 so ``grad`` broadcasts against the input."""
    return grad if keepdims else backend_of(grad).xp.expand_dims(grad, axes)


class Sum(Function):
    __slots__ = ("shape", "axes", "keepdims")

    def forward(self, x, *, axes, keepdims):
        self.shape, self.axes, self.keepdims = x.shape, axes, keepdims
        return x.sum(axis=axes, keepdims=keepdims)

    def backward(self, grad):
        grad = _expand_reduced(grad, self.axes, self.keepdims)
        return (backend_of(grad).xp.broadcast_to(grad, self.shape),)


def sum(x: Tensor, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
    """Sum over ``axis`` (an int, a tuple, or None for all axes)."""
    return Sum.apply(x, axes=normalize_axes(axis, x.ndim, "sum"), keepdims=keepdims)


class Mean(Function):
    __slots__ = ("shape", "axes", "keepdims", "count")

    def forward(self, x, *, axes, keepdims):
        self.shape, self.axes, self.keepdims = x.shape, axes, keepdims
        self.count = math.prod(x.shape[a] for a in axes)
        return x.mean(axis=axes, keepdims=keepdims)

    def backward(self, grad):
        grad = _expand_reduced(grad, self.axes, self.keepdims) / self.count
        return (backend_of(grad).xp.broadcast_to(grad, self.shape),)


def mean(x: Tensor, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
    """Mean over ``axis`` (an int, a tuple, or None for all axes)."""
    return Mean.apply(x, axes=normalize_axes(axis, x.ndim, "mean"), keepdims=keepdims)


class Max(Function):
    __slots__ = ("share", "axes", "keepdims")

    def forward(self, x, *, axes, keepdims):
        xp = backend_of(x).xp
        out = x.max(axis=axes, keepdims=True)
        # Every element equal to the maximum gets an equal share of the gradient.
        is_max = x == out
        if out.dtype.kind == "f":
            # NaN != NaN, so no element would "equal" a NaN maximum: the NaNs share the gradient instead (torch.max()).
            # Always computed, not behind `if nan_max.any()`: on a GPU that test would wait for the device.
            is_max |= xp.isnan(x) & xp.isnan(out)
        self.share = is_max / is_max.sum(axis=axes, keepdims=True, dtype=x.dtype)
        self.axes, self.keepdims = axes, keepdims
        return out if keepdims else out.squeeze(axis=axes)

    def backward(self, grad):
        return (_expand_reduced(grad, self.axes, self.keepdims) * self.share,)


def max(x: Tensor, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
    """Largest value over ``axis`` (values only, no indices), NaN if the values include one.

    The gradient goes to the maximum; ties share it equally, and where the
    maximum is NaN the NaNs share it, as ``torch.max()`` does (``torch.max(dim)``
    gives a tie or several NaNs' gradient to one index; ``torch.amax`` sends
    NaN to every element of a slice holding a NaN).
    """
    if x.size == 0:
        raise ValueError(f"max: the tensor of shape {x.shape} is empty; a maximum needs at least one element")
    return Max.apply(x, axes=normalize_axes(axis, x.ndim, "max"), keepdims=keepdims)


def min(x: Tensor, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
    """Smallest value over ``axis``, as -max(-x) (so ties, and NaNs, share the gradient too)."""
    return -max(-x, axis, keepdims)


def argmax(x: Tensor, axis: int | None = None) -> Tensor:
    """Index of the largest value (flat index when ``axis`` is None); not differentiable."""
    if axis is not None:
        (axis,) = normalize_axes(axis, x.ndim, "argmax")
    return Tensor.wrap(x.data.argmax(axis=axis))


class Softmax(Function):
    __slots__ = ("out", "axis")
    saves_output = True

    def forward(self, x, *, axis):
        xp = backend_of(x).xp
        out = x - x.max(axis=axis, keepdims=True)  # the shift keeps exp from overflowing
        xp.exp(out, out=out)
        out /= out.sum(axis=axis, keepdims=True)
        self.out, self.axis = out, axis
        return out

    def backward(self, grad):
        # Jacobian-vector product of s = softmax(x): s * (g - <g, s>)
        s = self.out
        grad_x = grad - (grad * s).sum(axis=self.axis, keepdims=True)
        grad_x *= s
        return (grad_x,)


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    """exp(x) / sum(exp(x)) along ``axis``, computed after subtracting the maximum."""
    return Softmax.apply(x, axis=normalize_axes(axis, x.ndim, "softmax")[0])


class LogSoftmax(Function):
    __slots__ = ("out", "axis")
    saves_output = True

    def forward(self, x, *, axis):
        xp = backend_of(x).xp
        out = x - x.max(axis=axis, keepdims=True)
        out -= xp.log(xp.exp(out).sum(axis=axis, keepdims=True))  # log-sum-exp of the shifted logits
        self.out, self.axis = out, axis
        return out

    def backward(self, grad):
        # d log_softmax: g - softmax(x) * sum(g)
        softmax_times_sum = backend_of(grad).xp.exp(self.out)
        softmax_times_sum *= grad.sum(axis=self.axis, keepdims=True)
        return (grad - softmax_times_sum,)


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    """log(softmax(x)) along ``axis``, stable for large logits (log-sum-exp)."""
    return LogSoftmax.apply(x, axis=normalize_axes(axis, x.ndim, "log_softmax")[0])
