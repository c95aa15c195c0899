"""Adagrad (Duchi et al.): each coordinate's step shrinks with its accumulated squared gradients."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..tensor import Tensor
from .optimizer import Optimizer


class Adagrad(Optimizer):
    """g = grad + weight_decay · p;  s ← s + g²;  p ← p - lr / (1 + (t - 1) lr_decay) · g / (sqrt(s) + eps)."""

    state_names = ("step", "sum")
    non_negative = ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps")

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
    ) -> None:
        super().__init__(
            params,
            dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay, initial_accumulator_value=initial_accumulator_value, eps=eps),
        )

    def required_state(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("step", "sum")

    def update(self, param, grad, state, group):
        xp = param.backend.xp
        if not state:
            state["step"] = 0
            state["sum"] = xp.full_like(param.data, group["initial_accumulator_value"])
        state["step"] += 1
        g = self.weight_decayed(param, grad, group["weight_decay"])
        step_lr = group["lr"] / (1 + (state["step"] - 1) * group["lr_decay"])

        work = self.scratch(param, 1)
        state["sum"] += xp.multiply(g, g, out=work)
        std = xp.sqrt(state["sum"], out=work)
        std += group["eps"]
        update = xp.divide(g, std, out=work)
        update *= step_lr
        param.data -= update
