"""Stochastic gradient descent with momentum, Nesterov momentum and weight decay (PyTorch's rule)."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..tensor import Tensor
from .optimizer import Optimizer


class SGD(Optimizer):
    """p ← p - lr · d, where d is the (momentum-averaged) gradient.

        g = grad + weight_decay · p
        b = g on the first step, else momentum · b + (1 - dampening) · g
        d = g + momentum · b if nesterov else b       (d = g without momentum)
    """

    state_names = ("momentum_buffer",)
    non_negative = ("lr", "momentum", "weight_decay")

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, nesterov=nesterov, weight_decay=weight_decay))

    def check_group(self, group: dict[str, Any], where: str = "") -> None:
        super().check_group(group, where)
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(f"SGD: nesterov=True needs momentum > 0 and dampening = 0{where}; got momentum="
                             f"{group['momentum']!r}, dampening={group['dampening']!r}")

    def update(self, param, grad, state, group):
        g = self.weight_decayed(param, grad, group["weight_decay"])
        momentum = group["momentum"]
        if momentum:
            buffer = state.get("momentum_buffer")
            if buffer is None:
                buffer = state["momentum_buffer"] = g.copy()
            else:
                buffer *= momentum
                buffer += g if not group["dampening"] else (1 - group["dampening"]) * g
            if group["nesterov"]:
                nesterov = param.backend.xp.multiply(buffer, momentum, out=self.scratch(param, 1))
                nesterov += g
                g = nesterov
            else:
                g = buffer
        step = param.backend.xp.multiply(g, group["lr"], out=self.scratch(param, 1))
        param.data -= step
