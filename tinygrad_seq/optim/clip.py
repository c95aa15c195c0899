"""Gradient clipping, the remedy for exploding gradients: by global norm and by value (PyTorch's rules)."""
from __future__ import annotations

import math
from collections.abc import Iterable

from ..tensor import Tensor


def _with_grads(params: Tensor | Iterable[Tensor]) -> list[Tensor]:
    params = [params] if isinstance(params, Tensor) else list(params)
    return [p for p in params if p.grad is not None]


def clip_grad_norm_(
    params: Tensor | Iterable[Tensor],
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
) -> float:
    """Scale all gradients together so their joint norm is at most ``max_norm``; returns the norm before.

    The norm is taken over all gradients as if they were one vector (the
    norm of the per-parameter norms). Every gradient is multiplied in place by
    min(1, max_norm / (norm + 1e-6)). ``norm_type`` may be ``inf`` (largest
    absolute value). Parameters without a gradient are skipped.
    """
    grads = [p.grad for p in _with_grads(params)]
    if not grads:
        return 0.0
    norm_type = float(norm_type)
    xp = Tensor.wrap(grads[0]).backend.xp
    if norm_type == math.inf:
        total = max(float(xp.abs(g).max()) if g.size else 0.0 for g in grads)
    else:
        norms = xp.stack([xp.linalg.norm(g.ravel(), ord=norm_type) for g in grads])
        total = float(xp.linalg.norm(norms, ord=norm_type))
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(
            f"clip_grad_norm_: the total norm of order {norm_type} of the gradients is {total}, so they cannot be clipped. "
            "Look for the NaN/inf with ts.detect_anomaly(), lower the learning rate, or pass error_if_nonfinite=False"
        )
    scale = min(max_norm / (total + 1e-6), 1.0)
    for g in grads:
        g *= scale
    return total


def clip_grad_value_(params: Tensor | Iterable[Tensor], clip_value: float) -> None:
    """Clamp every gradient element into [-clip_value, clip_value], in place."""
    if clip_value < 0:
        raise ValueError(f"clip_grad_value_: clip_value must be >= 0; got {clip_value}")
    for p in _with_grads(params):
        p.backend.xp.clip(p.grad, -clip_value, clip_value, out=p.grad)
