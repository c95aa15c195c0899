"""Adam (Kingma and Ba), PyTorch's formulation with bias correction and L2 weight decay."""
from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from .. import compiled
from ..checks import as_real
from ..tensor import Tensor
from .optimizer import Optimizer

LOOPS = compiled.Loops("tinygrad_seq.optim.loops", "Adam runs its NumPy update", [np.float32, np.float64])
_compiled_loops = LOOPS.on  # optim/loops.py when its loop can run on the arrays given, else None


class Adam(Optimizer):
    """Adaptive moments: per-parameter steps scaled by running gradient statistics.

        g = grad + weight_decay · p
        m ← m + (1 - β1)(g - m)            v ← β2 v + (1 - β2) g²
        p ← p - lr / (1 - β1^t) · m / (sqrt(v) / sqrt(1 - β2^t) + eps)
    """

    state_names = ("step", "exp_avg", "exp_avg_sq")
    non_negative = ("lr", "eps", "weight_decay")

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        betas = tuple(betas) if isinstance(betas, (tuple, list)) else betas  # anything else: check_group says what it takes
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    def check_group(self, group: dict[str, Any], where: str = "") -> None:
        super().check_group(group, where)
        betas = group["betas"]
        if type(betas) is tuple and len(betas) == 2 and type(betas[0]) is float and type(betas[1]) is float \
                and 0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0:
            return  # the usual case, tested without a generator: step() asks every time
        pair = [as_real(b) for b in betas] if isinstance(betas, (tuple, list)) and len(betas) == 2 else None
        if pair is None or not all(b is not None and 0.0 <= b < 1.0 for b in pair):
            raise ValueError(f"Adam: betas must be two numbers in [0, 1), (β1, β2) such as (0.9, 0.999){where}; got {betas!r}")

    def required_state(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("step", "exp_avg", "exp_avg_sq")

    def update(self, param, grad, state, group):
        xp = param.backend.xp
        beta1, beta2 = group["betas"]
        if not state:
            state["step"] = 0
            state["exp_avg"] = xp.zeros_like(param.data)
            state["exp_avg_sq"] = xp.zeros_like(param.data)
        state["step"] += 1
        step, m, v = state["step"], state["exp_avg"], state["exp_avg_sq"]
        g = self.weight_decayed(param, grad, group["weight_decay"])
        step_size = group["lr"] / (1 - beta1**step)
        loops = _compiled_loops(param.data, g, m, v)
        if loops is not None:  # the same operations in the same order, one compiled loop (optim/loops.py)
            one = param.data.dtype.type  # each constant rounded to the arrays' dtype, as NumPy's weak scalars are
            loops.adam_update(param.data.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1), one(1 - beta1), one(beta2),
                              one(1 - beta2), one(math.sqrt(1 - beta2**step)), one(group["eps"]), one(step_size))
            param._bump_version()
            return

        work = self.scratch(param, 1)
        xp.subtract(g, m, out=work)
        work *= 1 - beta1
        m += work  # m ← m + (1 - β1)(g - m): lerp towards g, as torch.lerp_
        xp.multiply(g, g, out=work)
        work *= 1 - beta2
        v *= beta2
        v += work

        denominator = xp.sqrt(v, out=work)
        denominator /= math.sqrt(1 - beta2**step)
        denominator += group["eps"]
        update = xp.divide(m, denominator, out=work)
        update *= step_size
        param.data -= update
