"""nn.Linear: y = x W^T + b."""
from __future__ import annotations

import math

from ..checks import check_counts
from ..creation import zeros
from ..ops import linear
from ..tensor import Tensor, as_tensor
from . import init
from .module import Module, Parameter


class Linear(Module):
    """A fully connected layer, y = x @ weight.T + bias.

    Shapes:
        weight (out_features, in_features), bias (out_features,), both
        U(-1/sqrt(in_features), 1/sqrt(in_features)) as PyTorch.
        input (..., in_features) -> output (..., out_features).
    """

    _parent_init = "super().__init__(in_features, out_features)"

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        check_counts("Linear", minimum=0, in_features=in_features, out_features=out_features)  # 0 is allowed, as in torch
        self.in_features, self.out_features = in_features, out_features
        bound = 1 / math.sqrt(in_features) if in_features else 0.0
        self.weight = init.uniform_(Parameter(zeros(out_features, in_features)), -bound, bound)
        self.bias = init.uniform_(Parameter(zeros(out_features)), -bound, bound) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor):  # an array or a list, as the other layers take them
            x = as_tensor(x, f"Linear({self.in_features} -> {self.out_features})")
        if x.shape[-1:] != (self.in_features,):
            raise ValueError(
                f"Linear({self.in_features} -> {self.out_features}): the input's last axis must be {self.in_features}; "
                f"got shape {x.shape}"
            )
        return linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
