"""The losses' array math, one fused node each: softmax cross-entropy and sigmoid binary cross-entropy.

Classes are on the LAST axis: logits (..., C), targets (...). Checking the
arguments, and the public functions and modules (``cross_entropy``,
``binary_cross_entropy_with_logits``, ``nll_loss``, ``nn.BCEWithLogitsLoss``),
are in nn/losses.py.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import backend_of
from ..function import Function
from .elementwise import logistic


class CrossEntropy(Function):
    """Softmax cross-entropy fused into one node: log-sum-exp forward, softmax - target backward.

    logits (..., C) positional; keywords: target (...) int class ids (checked
    by the caller, on the logits' backend), ignore_index, reduction ("mean",
    "sum", "none": the loss per position, shaped like target), label_smoothing.

    With label smoothing ε the target distribution is q = (1 - ε) one_hot + ε / C,
    and the loss of a row is -Σ_c q_c log softmax(x)_c.
    """

    __slots__ = ("log_probs", "logits_shape", "target", "valid", "count", "reduction", "smoothing")

    def forward(self, logits, *, target, ignore_index, reduction, label_smoothing):
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
        # The count stays an array (on a GPU, reading it would wait for the device), in at least float32:
        # float16 counts exactly only to 2048.
        count_dtype = np.result_type(logits.dtype, np.float32)
        self.count, self.reduction, self.smoothing = valid.sum().astype(count_dtype), reduction, label_smoothing
        if reduction == "none":
            return losses.reshape(target.shape)
        total = losses.sum()
        if reduction == "sum":
            return total
        with np.errstate(invalid="ignore", divide="ignore"):  # every target ignored: 0/0 = NaN, as PyTorch
            return (total / self.count).astype(logits.dtype, copy=False)

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
        elif self.reduction == "sum":
            row_scale = self.valid * grad
        else:  # all ignored: every row's scale is 0, a zero gradient, as PyTorch
            row_scale = self.valid * (grad / xp.maximum(self.count, 1))
        grad_logits *= row_scale[:, None]
        return (grad_logits.reshape(self.logits_shape),)


class BinaryCrossEntropyWithLogits(Function):
    """σ and binary cross-entropy fused into one node, in the form that never overflows.

    For a logit x, a target y in [0, 1], the positive class's weight p (pos_weight)
    and an element's weight w:

        ℓ(x) = −log σ(x) = log(1 + e^−|x|) + max(−x, 0)     softplus(−x): e^ of a large x never appears
        loss = w [(1 − y) x + (1 + (p − 1) y) ℓ(x)]
             = w [−p y log σ(x) − (1 − y) log(1 − σ(x))]    the textbook form, since ℓ(−x) = ℓ(x) + x
        ∂loss/∂x = w [(p y + 1 − y) σ(x) − p y]              σ(x) − y when p = 1
        ∂loss/∂y = w [p ℓ(x) − ℓ(−x)]                        −x when p = 1

    The operations and their order are PyTorch's: float64 results agree within a few units in the last place.

    Positional tensors: logits, target (may require grad), weight and pos_weight
    (None when not given; broadcast against the logits); keyword: reduction.
    """

    __slots__ = ("logits", "target", "weight", "pos_weight", "reduction")
    saved_inputs = (0, 1, 2, 3)

    def forward(self, logits, target, weight, pos_weight, *, reduction):
        if pos_weight is None:
            losses = (1 - target) * logits + _softplus(-logits)  # ℓ(x) = softplus(−x)
        else:
            losses = (1 - target) * logits + (1 + (pos_weight - 1) * target) * _softplus(-logits)
        if weight is not None:
            losses = losses * weight
        self.logits, self.target, self.weight, self.pos_weight, self.reduction = logits, target, weight, pos_weight, reduction
        if reduction == "none":
            return losses
        total = losses.sum()
        if reduction == "sum":
            return total
        with np.errstate(invalid="ignore", divide="ignore"):  # no elements: 0/0 = NaN, as PyTorch
            return total / losses.dtype.type(losses.size)

    def backward(self, grad):
        x, y, w, p = self.logits, self.target, self.weight, self.pos_weight
        if self.reduction == "mean":
            with np.errstate(divide="ignore", invalid="ignore"):  # no elements: an empty gradient all the same
                grad = grad / x.size
        if w is not None:
            grad = grad * w
        grad_logits = grad_target = None
        if self.needs_input_grad[0]:
            if p is None:
                grad_logits = (logistic(x) - y) * grad
            else:
                py = p * y
                grad_logits = ((py + 1 - y) * logistic(x) - py) * grad
        if self.needs_input_grad[1]:
            grad_target = (-x if p is None else p * _softplus(-x) - _softplus(x)) * grad
        return grad_logits, grad_target, None, None  # weight and pos_weight are tensors that get no gradient


def _softplus(x: Any) -> Any:
    """softplus(x) = log(1 + e^x) on an array, for any x: max(x, 0) + log(1 + e^−|x|)."""
    xp = backend_of(x).xp
    return xp.log1p(xp.exp(-xp.abs(x))) + xp.maximum(x, 0)
