"""Losses: softmax cross-entropy (one fused op), negative log-likelihood, mean squared error.

Classes are on the LAST axis everywhere here: logits (..., C), targets (...).
That is the one deliberate difference from PyTorch, which puts them on axis 1;
sequence logits (T, B, C) then need no permute.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import backend_of
from ..tensor import Function, Tensor
from .ids import integer_array, out_of_range

REDUCTIONS = ("mean", "sum", "none")


class CrossEntropy(Function):
    """Softmax cross-entropy fused into one node: log-sum-exp forward, softmax - target backward.

    With label smoothing ε the target distribution is q = (1 - ε) one_hot + ε / C,
    and the loss of a row is -Σ_c q_c log softmax(x)_c.
    """

    __slots__ = ("log_probs", "logits_shape", "target", "valid", "count", "reduction", "smoothing")

    def forward(self, logits, target, ignore_index, reduction, label_smoothing):
        xp = backend_of(logits).xp
        classes = logits.shape[-1]
        rows = logits.reshape(-1, classes)
        ids = target.reshape(-1)
        valid = ids != ignore_index
        ids = xp.where(valid, ids, 0)  # any class will do for ignored rows: their loss is zeroed

        log_probs = rows - rows.max(axis=1, keepdims=True)
        log_probs -= xp.log(xp.exp(log_probs).sum(axis=1, keepdims=True))  # log softmax via log-sum-exp
        losses = -log_probs[xp.arange(ids.size), ids]
        if label_smoothing:
            losses = (1 - label_smoothing) * losses - label_smoothing * log_probs.mean(axis=1)
        losses = xp.where(valid, losses, 0)

        self.log_probs, self.logits_shape, self.target, self.valid = log_probs, logits.shape, ids, valid
        self.count, self.reduction, self.smoothing = int(valid.sum()), reduction, label_smoothing
        if reduction == "none":
            return losses.reshape(target.shape)
        total = losses.sum()
        if reduction == "sum":
            return total
        with np.errstate(invalid="ignore", divide="ignore"):  # every target ignored: 0/0 = NaN, as PyTorch
            return total / logits.dtype.type(self.count)

    def backward(self, grad):
        xp = backend_of(grad).xp
        classes = self.log_probs.shape[1]
        # d loss / d logits = softmax - q, for each row that counts
        grad_logits = xp.exp(self.log_probs)
        grad_logits[xp.arange(self.target.size), self.target] -= 1 - self.smoothing
        if self.smoothing:
            grad_logits -= self.smoothing / classes
        if self.reduction == "none":
            row_scale = grad.reshape(-1) * self.valid
        elif self.reduction == "sum" or self.count == 0:  # all ignored: zero gradient, as PyTorch
            row_scale = self.valid * grad
        else:
            row_scale = self.valid * (grad / self.count)
        grad_logits *= row_scale[:, None]
        return grad_logits.reshape(self.logits_shape), None


def _target_array(target: Any, logits: Tensor, op: str) -> Any:
    data = integer_array(target, op, "target class ids")
    if tuple(data.shape) != logits.shape[:-1]:
        raise ValueError(
            f"{op}: target shape {tuple(data.shape)} must be the logits' shape {logits.shape} without the last (class) axis, "
            f"i.e. {logits.shape[:-1]}. Classes go on the last axis here (PyTorch puts them on axis 1)"
        )
    return logits.backend.asarray(data)


def _check_class_ids(target: Any, classes: int, ignore_index: int, op: str) -> None:
    bad = out_of_range(target[target != ignore_index], classes)
    if bad is not None:
        raise IndexError(f"{op}: target {bad} is out of range for {classes} classes (valid: 0..{classes - 1}, or ignore_index={ignore_index})")


def _check_reduction(reduction: str, op: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {', '.join(map(repr, REDUCTIONS))}; got {reduction!r}")


def cross_entropy(
    logits: Tensor,
    target: Any,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Softmax cross-entropy of ``logits`` (..., C) against class ids ``target`` (...).

    Classes are on the LAST axis (PyTorch: axis 1). For sequence logits
    (T, B, C) and targets (T, B), ``cross_entropy(logits, targets)`` equals
    PyTorch's ``F.cross_entropy(logits.permute(0, 2, 1), targets)``.

    Args:
        ignore_index: targets with this value add nothing and are not counted.
        reduction: "mean" over the counted targets (NaN if none), "sum", or
            "none" for a loss per position, shaped like ``target``.
        label_smoothing: ε in [0, 1]; the target becomes (1 - ε) one-hot + ε / C.

    >>> import tinygrad_seq as ts
    >>> from tinygrad_seq.nn import functional as F
    >>> logits = ts.Tensor([[[2.0, 0.0, 0.0]], [[0.0, 0.0, 0.0]]])   # T=2, B=1, C=3
    >>> round(F.cross_entropy(logits, [[0], [2]]).item(), 4)
    0.6691
    """
    op = "cross_entropy"
    _check_reduction(reduction, op)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{op}: label_smoothing must be in [0, 1]; got {label_smoothing}")
    if logits.ndim == 0:
        raise ValueError(f"{op}: logits need a class axis; got a 0-d tensor")
    target = _target_array(target, logits, op)
    _check_class_ids(target, logits.shape[-1], ignore_index, op)
    return CrossEntropy.apply(
        logits, target, ignore_index=ignore_index, reduction=reduction, label_smoothing=float(label_smoothing)
    )


def nll_loss(log_probs: Tensor, target: Any, ignore_index: int = -100, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of class ids ``target`` (...) under ``log_probs`` (..., C), classes last.

    ``nll_loss(x.log_softmax(-1), t)`` equals ``cross_entropy(x, t)``, as two nodes instead of one.
    """
    op = "nll_loss"
    _check_reduction(reduction, op)
    target = _target_array(target, log_probs, op)
    classes = log_probs.shape[-1]
    _check_class_ids(target, classes, ignore_index, op)
    xp = log_probs.backend.xp
    valid = target != ignore_index
    # Pick each row's target entry with a one-hot mask (zero for ignored rows).
    picks = (xp.arange(classes) == xp.where(valid, target, 0)[..., None]) & valid[..., None]
    losses = -(log_probs * Tensor.wrap(picks.astype(log_probs.dtype))).sum(axis=-1)
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        return losses.sum() / int(valid.sum())


def mse_loss(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Mean squared error between two tensors of one shape."""
    op = "mse_loss"
    _check_reduction(reduction, op)
    target_shape = target.shape if isinstance(target, Tensor) else np.shape(target)
    if tuple(target_shape) != input.shape:
        raise ValueError(f"{op}: input {input.shape} and target {tuple(target_shape)} must have one shape; reshape one of them")
    squared = (input - target) ** 2
    if reduction == "none":
        return squared
    return squared.sum() if reduction == "sum" else squared.mean()
