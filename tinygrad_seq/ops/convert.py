"""Moving a tensor to another dtype or backend, differentiably: the gradient goes back the same way."""
from __future__ import annotations

from ..backend import backend_of
from ..function import Function


class Cast(Function):
    __slots__ = ("source_dtype",)

    def forward(self, x, *, dtype):
        self.source_dtype = x.dtype
        return x.astype(dtype)

    def backward(self, grad):
        return (grad.astype(self.source_dtype),)


class ToBackend(Function):
    __slots__ = ("source",)

    def forward(self, x, *, backend):
        self.source = backend_of(x)
        return backend.adopt(x)

    def backward(self, grad):
        return (self.source.adopt(grad),)
