"""Gradient clipping, the remedy for exploding gradients: by global norm and by value (PyTorch's rules)."""
from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from ..backend import backend_of
from ..checks import as_real
from ..tensor import Tensor
from .optimizer import parameter_list


def _with_grads(params: Tensor | Iterable[Tensor], op: str) -> list[Tensor]:
    params = parameter_list(params, op)
    for p in params:
        if not isinstance(p, Tensor):
            raise TypeError(f"{op}: takes tensors (model.parameters()); got a {type(p).__name__} among them")
    return [p for p in params if p.grad is not None]


def clip_grad_norm_(
    params: Tensor | Iterable[Tensor],
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
) -> Tensor:
    """Scale all gradients together so their joint norm is at most ``max_norm``; returns the norm before, a 0-d tensor.

    The norm is taken over all gradients as if they were one vector (the
    norm of the per-parameter norms). Every gradient is multiplied in place by
    min(1, max_norm / (norm + 1e-6)), computed in the gradients' dtype as
    PyTorch does. ``norm_type`` may be ``inf`` (largest absolute value).
    Parameters without a gradient are skipped.

    The norm stays on the backend (``float(norm)`` or ``f"{norm:.3f}"`` read
    it): on a GPU nothing waits for the device, unless ``error_if_nonfinite``
    asks to check the norm.
    """
    limit = as_real(max_norm)  # the check only: the value given is what scales (its dtype, as PyTorch's)
    if limit is None or not limit > 0:  # 0 would zero every gradient, -1 turn them all around, NaN poison them
        raise ValueError(f"clip_grad_norm_: max_norm must be a number > 0 (inf: only measure the norm); got {max_norm!r}. "
                         "To train without clipping, leave the call out")
    try:
        norm_type = float(norm_type)
    except (TypeError, ValueError):
        raise ValueError(f"clip_grad_norm_: norm_type must be a number (2.0, 1.0, or math.inf for the largest value); "
                         f"got {norm_type!r}") from None
    grads = [p.grad for p in _with_grads(params, "clip_grad_norm_")]
    if not grads:
        return Tensor(0.0)
    xp = backend_of(grads[0]).xp
    if norm_type == math.inf:
        largest = [xp.abs(g).max() for g in grads if g.size]
        total = xp.stack(largest).max() if largest else xp.zeros((), dtype=grads[0].dtype)
    elif norm_type == 2.0:  # linalg.norm's own arithmetic for ord 2, sqrt(x · x), without its checks around it
        norms = xp.stack([xp.sqrt(flat.dot(flat)) for flat in (g.ravel(order="K") for g in grads)])
        total = xp.sqrt(norms.dot(norms))
    else:
        norms = xp.stack([xp.linalg.norm(g.ravel(), ord=norm_type) for g in grads])
        total = xp.linalg.norm(norms, ord=norm_type)
    total = xp.asarray(total)  # NumPy's reductions give a scalar: a 0-d array for the tensor
    if error_if_nonfinite and not bool(xp.isfinite(total)):
        raise RuntimeError(
            f"clip_grad_norm_: the total norm of order {norm_type} of the gradients is {total.item()}, so they cannot be "
            "clipped. Look for the NaN/inf with ts.detect_anomaly(), lower the learning rate, or pass error_if_nonfinite=False"
        )
    scale = xp.minimum(max_norm / (total + 1e-6), 1.0)  # 1.0 exactly when the norm is within max_norm
    if xp is np and scale == 1.0:
        return Tensor.wrap(total)  # multiplying by 1.0 changes no bit; on a device, asking would wait for it
    for g in grads:
        g *= scale.astype(g.dtype, copy=False)
    return Tensor.wrap(total)


def clip_grad_value_(params: Tensor | Iterable[Tensor], clip_value: float) -> None:
    """Clamp every gradient element into [-clip_value, clip_value], in place."""
    limit = as_real(clip_value)
    if limit is None or not limit >= 0:  # NaN too
        raise ValueError(f"clip_grad_value_: clip_value must be a number >= 0; got {clip_value!r}")
    for p in _with_grads(params, "clip_grad_value_"):
        p.backend.xp.clip(p.grad, -clip_value, clip_value, out=p.grad)
