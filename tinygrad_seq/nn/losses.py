"""Losses: softmax cross-entropy and sigmoid binary cross-entropy (one fused op each),
negative log-likelihood, mean squared error.

Classes are on the LAST axis everywhere here: logits (..., C), targets (...).
That is the one deliberate difference from PyTorch, which puts them on axis 1;
sequence logits (T, B, C) then need no permute.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import backend_of
from ..ops.elementwise import logistic
from ..tensor import Function, Tensor, as_tensor
from .ids import IGNORE_INDEX, integer_array, out_of_range
from .module import Module

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
    ignore_index: int = IGNORE_INDEX,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Softmax cross-entropy of ``logits`` (..., C) against class ids ``target`` (...).

    Classes are on the LAST axis (PyTorch: axis 1). For sequence logits
    (T, B, C) and targets (T, B), ``cross_entropy(logits, targets)`` equals
    PyTorch's ``F.cross_entropy(logits.permute(0, 2, 1), targets)``.

    Args:
        ignore_index: targets with this value add nothing and are not counted (default
            ``IGNORE_INDEX`` = -100, what padded targets hold).
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


def nll_loss(log_probs: Tensor, target: Any, ignore_index: int = IGNORE_INDEX, reduction: str = "mean") -> Tensor:
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
    """

    __slots__ = ("logits", "target", "weight", "pos_weight", "reduction")
    saved_inputs = (0, 1, 2, 3)

    def forward(self, logits, target, weight, pos_weight, reduction):
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
        return grad_logits, grad_target, None, None


def _softplus(x: Any) -> Any:
    """softplus(x) = log(1 + e^x) on an array, for any x: max(x, 0) + log(1 + e^−|x|)."""
    xp = backend_of(x).xp
    return xp.log1p(xp.exp(-xp.abs(x))) + xp.maximum(x, 0)


def _float_operand(value: Any, logits: Tensor, op: str, what: str) -> Tensor:
    """``value`` as a float Tensor on the logits' backend: arrays, lists and numbers (and int or
    bool tensors) take the logits' dtype; a float Tensor keeps its own (NumPy's promotion applies)."""
    if isinstance(value, Tensor):
        if value.dtype.kind == "f":
            return value
        return Tensor.wrap(value.data.astype(logits.dtype))
    data = value if hasattr(value, "dtype") else np.asarray(value)
    if data.dtype.kind not in "fiub":
        raise TypeError(f"{op}: {what} must be numbers; got an array of dtype {data.dtype}")
    return Tensor.wrap(logits.backend.asarray(data, dtype=logits.dtype))


def binary_cross_entropy_with_logits(
    logits: Tensor,
    target: Any,
    *,
    pos_weight: Any = None,
    reduction: str = "mean",
    weight: Any = None,
) -> Tensor:
    """Binary cross-entropy of σ(``logits``) against ``target`` (probabilities, usually 0 or 1), fused and stable.

    The course's ŷ = σ(z) with L(ŷ, y) = −y log ŷ − (1 − y) log(1 − ŷ), computed from
    z without forming σ(z), so logits of ±1000 give finite losses and gradients.
    The numbers are ``torch.nn.functional.binary_cross_entropy_with_logits``'s.

    Args:
        logits: (...) float, any shape: one logit per binary decision.
        target: the logits' shape; floats in [0, 1] (0/1 labels as ints or bools are
            accepted too, and converted). An array or list takes the logits' dtype.
            A target Tensor that requires grad gets one (as in PyTorch).
        pos_weight: the weight p of the positive term, −p y log σ(z); broadcast against
            the logits from the last axis, so shape (C,) gives one per class of a
            multi-label (..., C) output. p > 1 raises recall, p < 1 precision. It gets no
            gradient: one that requires grad is refused (as in PyTorch).
        reduction: "mean" over all elements (NaN if there are none), "sum", or "none"
            (the logits' shape).
        weight: a weight per element, broadcast against the logits (no gradient either).

    Keyword-only after ``target``, because PyTorch's third positional argument is
    ``weight``, not ``pos_weight``.

    >>> import tinygrad_seq as ts
    >>> from tinygrad_seq.nn import functional as F
    >>> z = ts.Tensor([2.0, -1.0, 1000.0])
    >>> [round(v, 4) for v in F.binary_cross_entropy_with_logits(z, [1, 0, 0], reduction="none").numpy().tolist()]
    [0.1269, 0.3133, 1000.0]
    """
    op = "binary_cross_entropy_with_logits"
    _check_reduction(reduction, op)
    logits = as_tensor(logits)
    if logits.dtype.kind != "f":
        raise TypeError(f"{op}: logits must be floats; got {logits.dtype}. Convert them with .to('float32')")
    target = _float_operand(target, logits, op, "target")
    if target.shape != logits.shape:
        hint = (f"; both hold {logits.data.size} values: reshape the target to {logits.shape} "
                "(or squeeze the logits' last axis)" if target.data.size == logits.data.size else "")
        raise ValueError(f"{op}: target shape {target.shape} must equal the logits' shape {logits.shape}: "
                         f"one target per logit, as PyTorch requires{hint}")
    weights = {}
    for name, value in (("weight", weight), ("pos_weight", pos_weight)):
        if value is None:
            weights[name] = None
            continue
        if isinstance(value, Tensor) and value.requires_grad:
            raise ValueError(f"{op}: {name} requires grad, but the loss has no gradient for it (PyTorch refuses it "
                             f"too); pass {name}.detach()")
        value = _float_operand(value, logits, op, name)
        if _broadcast_shape(value.shape, logits.shape) != logits.shape:
            per_class = f"({logits.shape[-1]},) for one per class on the last axis" if logits.ndim else "()"
            example = per_class if name == "pos_weight" else f"{logits.shape} (one per element) or {per_class}"
            raise ValueError(f"{op}: {name} shape {value.shape} does not broadcast to the logits' shape {logits.shape} "
                             f"(NumPy's rules, aligned on the last axis, without enlarging it); give it a shape such as {example}")
        weights[name] = value
    return BinaryCrossEntropyWithLogits.apply(logits, target, weights["weight"], weights["pos_weight"], reduction=reduction)


def _broadcast_shape(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...] | None:
    try:
        return tuple(np.broadcast_shapes(a, b))
    except ValueError:
        return None


class BCEWithLogitsLoss(Module):
    """:func:`binary_cross_entropy_with_logits` as a module, as ``torch.nn.BCEWithLogitsLoss``.

    ``loss_fn = nn.BCEWithLogitsLoss(pos_weight=ts.Tensor([3.0]))``, then
    ``loss_fn(logits, target)``. Its options are keyword-only (PyTorch's first
    positional option is ``weight``); ``weight`` and ``pos_weight`` are kept as
    given, with no gradient (not parameters).
    """

    def __init__(self, *, weight: Any = None, pos_weight: Any = None, reduction: str = "mean") -> None:
        super().__init__()
        _check_reduction(reduction, "BCEWithLogitsLoss")
        self.weight, self.pos_weight, self.reduction = weight, pos_weight, reduction

    def forward(self, logits: Tensor, target: Any) -> Tensor:
        return binary_cross_entropy_with_logits(logits, target, pos_weight=self.pos_weight, reduction=self.reduction,
                                                weight=self.weight)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}" + ("" if self.pos_weight is None else ", pos_weight=...")
