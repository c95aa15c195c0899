"""The op behind dropout: scaling by a mask drawn once, forward and backward alike (nn/dropout.py draws it)."""
from __future__ import annotations

from ..function import Function


class DropoutMask(Function):
    """x * mask, where mask holds 0 or 1/(1 - p); the same mask scales the gradient.

    x positional; keyword: mask, an array of x's shape and dtype (not
    differentiated: it was drawn at random, not computed from anything).
    """

    __slots__ = ("mask",)

    def forward(self, x, *, mask):
        self.mask = mask
        return x * mask

    def backward(self, grad):
        return (grad * self.mask,)
