"""Losses: softmax cross-entropy and sigmoid binary cross-entropy (one fused op each, in
ops/losses.py), negative log-likelihood, mean squared error: the arguments checked here.

Classes are on the LAST axis everywhere here: logits (..., C), targets (...).
That is the one deliberate difference from PyTorch, which puts them on axis 1;
sequence logits (T, B, C) then need no permute.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..checks import check_probability
from ..ops.losses import BinaryCrossEntropyWithLogits, CrossEntropy
from ..tensor import as_tensor, Tensor
from .ids import IGNORE_INDEX, PAD_TARGETS, integer_array, out_of_range
from .module import Module

REDUCTIONS = ("mean", "sum", "none")


def _target_array(target: Any, logits: Tensor, op: str) -> Any:
    data = integer_array(target, op, "target class ids", PAD_TARGETS)
    if tuple(data.shape) != logits.shape[:-1]:
        raise ValueError(
            f"{op}: target shape {tuple(data.shape)} must be the logits' shape {logits.shape} without the last (class) axis, "
            f"i.e. {logits.shape[:-1]}. Classes go on the last axis here (PyTorch puts them on axis 1)"
        )
    return data


def _check_class_ids(target: Any, classes: int, ignore_index: int, op: str) -> None:
    bad = out_of_range(target, classes, ignore=ignore_index)
    if bad is not None:
        raise IndexError(f"{op}: target {bad} is out of range for {classes} classes (valid: 0..{classes - 1}, or ignore_index={ignore_index})")


def _check_reduction(reduction: str, op: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {', '.join(map(repr, REDUCTIONS))}; got {reduction!r}")


def _checked_scores(scores: Any, op: str, name: str, class_axis: bool = True) -> Tensor:
    """A loss's scores (logits, log-probabilities) as a float tensor, with a class axis last when ``class_axis``; an
    error naming ``op`` otherwise."""
    scores = as_tensor(scores, op)
    if scores.dtype.kind != "f":
        raise TypeError(f"{op}: {name} must be floats; got {scores.dtype}. Convert them with .to('float32')")
    if class_axis and scores.ndim == 0:
        raise ValueError(f"{op}: {name} need a class axis (classes last: (..., C)); got a 0-d tensor")
    return scores


def cross_entropy(
    logits: Tensor,
    target: Any,
    ignore_index: int = IGNORE_INDEX,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Softmax cross-entropy of ``logits`` (..., C) against class ids ``target`` (...), or against probabilities
    ``target`` (..., C), floats shaped like the logits (one-hot rows, soft labels), as PyTorch takes either.

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
    check_probability(label_smoothing, op, "label_smoothing")  # ε: the target is (1 - ε) one-hot + ε / C
    logits = _checked_scores(logits, op, "logits")
    probabilities = _probability_target(target, logits)
    if probabilities is not None:
        return _soft_cross_entropy(logits, probabilities, ignore_index, reduction, float(label_smoothing))
    target = _target_array(target, logits, op)
    _check_class_ids(target, logits.shape[-1], ignore_index, op)  # on the host for host targets, before the upload
    return CrossEntropy.apply(
        logits, target=logits.backend.adopt(target), ignore_index=ignore_index, reduction=reduction, label_smoothing=float(label_smoothing)
    )


def _probability_target(target: Any, logits: Tensor) -> Any:
    """``target`` when it is a distribution per position (PyTorch's probability targets: floats shaped like the
    logits), as a Tensor or an array NumPy reads (a list, another library's tensor: read once, here); else None."""
    if not isinstance(target, Tensor) and not isinstance(getattr(target, "dtype", None), np.dtype):
        try:  # a list, or another library's tensor (PyTorch's): as NumPy reads it
            target = np.asarray(target)
        except (ValueError, TypeError, RuntimeError):  # ragged lists, a GPU tensor: the class-id path says what is wrong
            return None
    return target if tuple(target.shape) == logits.shape and target.dtype.kind == "f" else None


def _soft_cross_entropy(logits: Tensor, target: Any, ignore_index: int, reduction: str, smoothing: float) -> Tensor:
    """−Σ_c q_c log softmax(x)_c per position, q = (1 − ε) p + ε / C, as PyTorch's cross_entropy with probability
    targets (``target``: a Tensor or an array, from :func:`_probability_target`): the "mean" is over the positions.
    Built of differentiable ops, so a target that requires grad gets its gradient, −(1 − ε) log softmax(x), as in
    PyTorch."""
    if ignore_index >= 0:  # a negative one names no class: ignored, as PyTorch ignores it
        raise ValueError(f"cross_entropy: ignore_index={ignore_index} applies to class ids; these targets are probabilities "
                         f"(floats shaped like the logits, {logits.shape}), where no position is ignored (PyTorch refuses it too)")
    probabilities = _float_operand(target, logits, "cross_entropy", "target probabilities")
    if probabilities.dtype != logits.dtype:  # the loss in the logits' dtype, whatever the target's (an array's already is)
        probabilities = probabilities.to(logits.dtype)
    if smoothing:
        probabilities = probabilities * (1 - smoothing) + smoothing / logits.shape[-1]
    losses = -(logits.log_softmax(-1) * probabilities).sum(-1)
    if reduction == "none":
        return losses
    return losses.sum() if reduction == "sum" else losses.mean()


def nll_loss(log_probs: Tensor, target: Any, ignore_index: int = IGNORE_INDEX, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of class ids ``target`` (...) under ``log_probs`` (..., C), classes last.

    ``nll_loss(x.log_softmax(-1), t)`` equals ``cross_entropy(x, t)``, as two nodes instead of one.
    """
    op = "nll_loss"
    _check_reduction(reduction, op)
    log_probs = _checked_scores(log_probs, op, "log_probs")
    target = _target_array(target, log_probs, op)
    classes = log_probs.shape[-1]
    _check_class_ids(target, classes, ignore_index, op)
    target = log_probs.backend.adopt(target)
    xp = log_probs.backend.xp
    valid = target != ignore_index
    # Pick each row's target entry with a one-hot mask (zero for ignored rows).
    picks = (xp.arange(classes) == xp.where(valid, target, 0)[..., None]) & valid[..., None]
    losses = -(log_probs * Tensor.wrap(picks.astype(log_probs.dtype))).sum(axis=-1)
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    # The count stays on the device. Every target ignored: the loss is NaN and the gradient zero, as PyTorch's.
    count = xp.asarray(valid.sum())
    empty = xp.where(count == 0, np.nan, 0.0).astype(log_probs.dtype)
    return losses.sum() / Tensor.wrap(xp.maximum(count, 1).astype(log_probs.dtype)) + Tensor.wrap(empty)


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
    logits = _checked_scores(logits, op, "logits", class_axis=False)
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
        given = [f"{name}=..." for name in ("weight", "pos_weight") if getattr(self, name) is not None]
        return ", ".join([f"reduction={self.reduction!r}", *given])
