"""RMSprop (Hinton): steps divided by a running root mean square of the gradients."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..tensor import Tensor
from .optimizer import Optimizer


class RMSprop(Optimizer):
    """g = grad + weight_decay · p;  s ← α s + (1 - α) g²;  a = sqrt(s - ḡ² if centered else s) + eps

        p ← p - lr · g / a, or with momentum: b ← momentum · b + g / a;  p ← p - lr · b
    (ḡ, in the centered variant, is the running mean of g.)
    """

    state_names = ("step", "square_avg", "momentum_buffer", "grad_avg")
    non_negative = ("lr", "alpha", "eps", "weight_decay", "momentum")

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
    ) -> None:
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum, centered=centered))

    def required_state(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("step", "square_avg") + (("momentum_buffer",) if group["momentum"] > 0 else ()) + (
            ("grad_avg",) if group["centered"] else ())

    def update(self, param, grad, state, group):
        xp = param.backend.xp
        alpha = group["alpha"]
        if not state:
            state["step"] = 0
            state["square_avg"] = xp.zeros_like(param.data)
            if group["momentum"] > 0:
                state["momentum_buffer"] = xp.zeros_like(param.data)
            if group["centered"]:
                state["grad_avg"] = xp.zeros_like(param.data)
        state["step"] += 1
        g = self.weight_decayed(param, grad, group["weight_decay"])

        avg = self.scratch(param, 1)
        square_avg = state["square_avg"]
        square_avg *= alpha
        xp.multiply(g, g, out=avg)
        avg *= 1 - alpha
        square_avg += avg
        if group["centered"]:
            grad_avg = state["grad_avg"]
            xp.subtract(g, grad_avg, out=avg)
            avg *= 1 - alpha
            grad_avg += avg  # lerp towards g
            xp.multiply(grad_avg, grad_avg, out=avg)
            xp.subtract(square_avg, avg, out=avg)
            xp.sqrt(avg, out=avg)
        else:
            xp.sqrt(square_avg, out=avg)
        avg += group["eps"]

        if group["momentum"] > 0:
            buffer = state["momentum_buffer"]
            buffer *= group["momentum"]
            buffer += xp.divide(g, avg, out=avg)
            update = xp.multiply(buffer, group["lr"], out=avg)
        else:
            update = xp.divide(g, avg, out=avg)
            update *= group["lr"]
        param.data -= update
