"""Moving a tensor to another dtype or backend, differentiably: the gradient goes back the same way."""
from __future__ import annotations

from ..backend import backend_of
from ..tensor import Function


class Cast(Function):
    __slots__ = ("source_dtype",)

    def forward(self, x, dtype):
        self.source_dtype = x.dtype
        return x.astype(dtype)

    def backward(self, grad):
        return (grad.astype(self.source_dtype),)


class ToBackend(Function):
    __slots__ = ("source",)

    def forward(self, x, backend):
        self.source = backend_of(x)
        return backend.asarray(self.source.to_host(x) if backend.name == "numpy" else x)

    def backward(self, grad):
        return (self.source.asarray(backend_of(grad).to_host(grad) if self.source.name == "numpy" else grad),)
