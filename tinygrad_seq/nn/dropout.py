"""Dropout: zero each value with probability p while training, scale the rest by 1 / (1 - p)."""
from __future__ import annotations

import numpy as np

from ..checks import check_probability
from ..ops.dropout import DropoutMask
from ..tensor import Tensor, as_tensor
from .module import Module


def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Inverted dropout: the identity when not training or p == 0 (as ``torch.nn.functional.dropout``)."""
    check_probability(p, "dropout")
    x = as_tensor(x, "dropout")
    if x.dtype.kind != "f":  # the kept values are scaled by 1 / (1 - p), which integers cannot hold
        raise TypeError(f"dropout: x must hold floats; got {x.dtype}. Cast it first: x.float()")
    if not training or p == 0.0:
        return x
    backend = x.backend
    draw_dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.float32  # the generators draw these two (not float16)
    keep = backend.random.random(x.shape, dtype=draw_dtype) >= p
    scale = 0.0 if p == 1.0 else 1.0 / (1.0 - p)
    mask = backend.xp.asarray(keep, dtype=x.dtype) * x.dtype.type(scale)
    return DropoutMask.apply(x, mask=mask)


class Dropout(Module):
    """Applies :func:`dropout` with probability ``p`` in training mode; the identity in ``eval()``."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        check_probability(p, "Dropout")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
