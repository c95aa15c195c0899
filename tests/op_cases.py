"""One table of op cases, used by the gradient checks and the PyTorch comparisons.

Each case gives the tinygrad_seq expression, the same expression in PyTorch,
and how to draw float64 inputs whose values stay away from the op's kinks
(|x| near 0, clamp bounds, ties), where finite differences are meaningless.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

import tinygrad_seq as ts
from tinygrad_seq.ops import stack_part

_fixed = np.random.default_rng(7)
IDS_WITH_REPEATS = np.array([0, 2, 2, 4, 0, 2])
NEGATIVE_IDS = np.array([-1, 0, -1, 3])
ID_GRID = np.array([[1, 3], [3, 0], [1, 1]])
MASK_45 = _fixed.random((4, 5)) > 0.5
MASK_5 = np.array([True, False, True, True, False])
POS_WEIGHT_4 = np.array([0.5, 1.0, 2.0, 3.5])
RUNNING_3 = np.array([[True], [False], [True]])  # (B, 1): the second sequence has ended


def normal(*shape):
    return lambda rng: rng.standard_normal(shape)


def positive(*shape):
    return lambda rng: rng.uniform(0.5, 2.0, shape)


def away_from_zero(*shape):
    return lambda rng: rng.uniform(0.3, 1.5, shape) * rng.choice([-1.0, 1.0], shape)


def distinct(*shape):
    """Values at least 0.05 apart, so a maximum has no near-ties."""
    return lambda rng: rng.permutation(np.linspace(-2.0, 2.0, int(np.prod(shape)))).reshape(shape)


def probabilities(*shape):
    """Targets of a binary cross-entropy: values in (0, 1)."""
    return lambda rng: rng.uniform(0.05, 0.95, shape)


def away_from_bounds(*shape):
    """Values at least 0.1 from the clamp bounds -0.5 and 0.5."""
    return lambda rng: rng.choice([-1.0, 1.0], shape) * rng.choice([rng.uniform(0, 0.4), rng.uniform(0.6, 1.5)], shape)


@dataclass
class OpCase:
    name: str
    ts_fn: Callable
    torch_fn: Callable
    inputs: list[Callable[[np.random.Generator], np.ndarray]] = field(default_factory=list)


def t_index(torch, index):
    """A NumPy-style index with its arrays as torch tensors."""
    if isinstance(index, tuple):
        return tuple(t_index(torch, i) for i in index)
    return torch.as_tensor(index) if isinstance(index, np.ndarray) else index


def summed(outputs):
    """Several outputs (split, chunk) as one tensor to check: sum of each weighted differently."""
    return sum((o * float(i + 1)).sum() for i, o in enumerate(outputs))


CASES = [
    # arithmetic
    OpCase("add", lambda a, b: a + b, lambda a, b: a + b, [normal(3, 4), normal(3, 4)]),
    OpCase("add_broadcast", lambda a, b: a + b, lambda a, b: a + b, [normal(2, 3, 4), normal(3, 1)]),
    OpCase("add_scalar", lambda a: 2.5 + a, lambda a: 2.5 + a, [normal(3)]),
    OpCase("sub", lambda a, b: a - b, lambda a, b: a - b, [normal(4, 1), normal(3)]),
    OpCase("rsub_scalar", lambda a: 1.5 - a, lambda a: 1.5 - a, [normal(2, 3)]),
    OpCase("mul", lambda a, b: a * b, lambda a, b: a * b, [normal(2, 3), normal(2, 3)]),
    OpCase("mul_broadcast", lambda a, b: a * b, lambda a, b: a * b, [normal(4, 1, 3), normal(2, 1)]),
    OpCase("mul_scalar", lambda a: a * -1.5, lambda a: a * -1.5, [normal(3, 2)]),
    OpCase("div", lambda a, b: a / b, lambda a, b: a / b, [normal(2, 3), away_from_zero(2, 3)]),
    OpCase("div_broadcast", lambda a, b: a / b, lambda a, b: a / b, [normal(3, 4), away_from_zero(4)]),
    OpCase("rdiv_scalar", lambda a: 3.0 / a, lambda a: 3.0 / a, [away_from_zero(5)]),
    OpCase("neg", lambda a: -a, lambda a: -a, [normal(2, 3)]),
    OpCase("pow_3", lambda a: a**3, lambda a: a**3, [normal(2, 3)]),
    OpCase("pow_half", lambda a: a**0.5, lambda a: a**0.5, [positive(4)]),
    OpCase("pow_minus_2", lambda a: a**-2, lambda a: a**-2, [away_from_zero(2, 2)]),
    OpCase("matmul", lambda a, b: a @ b, lambda a, b: a @ b, [normal(3, 4), normal(4, 2)]),
    OpCase("matmul_batched", lambda a, b: a @ b, lambda a, b: a @ b, [normal(2, 3, 4), normal(2, 4, 5)]),
    OpCase("matmul_shared_weight", lambda a, b: a @ b, lambda a, b: a @ b, [normal(3, 2, 4), normal(4, 5)]),
    OpCase("matmul_shared_weight_strided", lambda a, b: a.swapaxes(0, 1) @ b, lambda a, b: a.swapaxes(0, 1) @ b, [normal(2, 3, 4), normal(4, 5)]),
    OpCase("matmul_broadcast_batch", lambda a, b: a @ b, lambda a, b: a @ b, [normal(2, 1, 3, 4), normal(3, 4, 2)]),
    OpCase("matmul_vector_left", lambda a, b: a @ b, lambda a, b: a @ b, [normal(4), normal(2, 4, 3)]),
    OpCase("matmul_vector_right", lambda a, b: a @ b, lambda a, b: a @ b, [normal(2, 3, 4), normal(4)]),
    OpCase("matmul_dot", lambda a, b: a @ b, lambda a, b: a @ b, [normal(4), normal(4)]),
    OpCase("linear", lambda x, w, b: ts.ops.linear(x, w, b), lambda x, w, b: _torch().nn.functional.linear(x, w, b), [normal(2, 3, 4), normal(5, 4), normal(5)]),
    OpCase("linear_no_bias", lambda x, w: ts.ops.linear(x, w), lambda x, w: _torch().nn.functional.linear(x, w), [normal(3, 4), normal(2, 4)]),
    # elementwise
    OpCase("exp", lambda a: a.exp(), lambda a: a.exp(), [normal(3, 4)]),
    OpCase("log", lambda a: a.log(), lambda a: a.log(), [positive(3, 4)]),
    OpCase("sqrt", lambda a: a.sqrt(), lambda a: a.sqrt(), [positive(5)]),
    OpCase("abs", lambda a: a.abs(), lambda a: a.abs(), [away_from_zero(3, 3)]),
    OpCase("tanh", lambda a: a.tanh(), lambda a: a.tanh(), [normal(3, 4)]),
    OpCase("sigmoid", lambda a: a.sigmoid(), lambda a: a.sigmoid(), [normal(3, 4)]),
    OpCase("sigmoid_large", lambda a: (a * 20).sigmoid(), lambda a: (a * 20).sigmoid(), [normal(6)]),
    OpCase("relu", lambda a: a.relu(), lambda a: a.relu(), [away_from_zero(3, 4)]),
    OpCase("clamp", lambda a: a.clamp(-0.5, 0.5), lambda a: a.clamp(-0.5, 0.5), [away_from_bounds(4, 4)]),
    OpCase("clamp_lo", lambda a: a.clamp(lo=-0.5), lambda a: a.clamp(min=-0.5), [away_from_bounds(6)]),
    OpCase("clamp_hi", lambda a: a.clamp(hi=0.5), lambda a: a.clamp(max=0.5), [away_from_bounds(6)]),
    # reductions
    OpCase("sum_all", lambda a: a.sum(), lambda a: a.sum(), [normal(3, 4)]),
    OpCase("sum_axis", lambda a: a.sum(1), lambda a: a.sum(1), [normal(2, 3, 4)]),
    OpCase("sum_axes_keepdims", lambda a: a.sum((0, 2), keepdims=True), lambda a: a.sum((0, 2), keepdim=True), [normal(2, 3, 4)]),
    OpCase("sum_negative_axis", lambda a: a.sum(-1), lambda a: a.sum(-1), [normal(3, 4)]),
    OpCase("sum_dim_keepdim", lambda a: a.sum(dim=1, keepdim=True), lambda a: a.sum(dim=1, keepdim=True), [normal(2, 3, 4)]),
    OpCase("max_keepdim", lambda a: a.max(0, keepdim=True), lambda a: a.amax(0, keepdim=True), [distinct(3, 4)]),
    OpCase("log_softmax_dim", lambda a: a.log_softmax(dim=0), lambda a: a.log_softmax(dim=0), [normal(3, 5)]),
    OpCase("mean_all", lambda a: a.mean(), lambda a: a.mean(), [normal(3, 4)]),
    OpCase("mean_axis", lambda a: a.mean(0), lambda a: a.mean(0), [normal(3, 4)]),
    OpCase("mean_axes_keepdims", lambda a: a.mean((1, 2), keepdims=True), lambda a: a.mean((1, 2), keepdim=True), [normal(2, 3, 4)]),
    OpCase("max_all", lambda a: a.max(), lambda a: a.amax(), [distinct(3, 4)]),
    OpCase("max_axis", lambda a: a.max(1), lambda a: a.amax(1), [distinct(3, 4)]),
    OpCase("max_axes_keepdims", lambda a: a.max((0, 2), keepdims=True), lambda a: a.amax((0, 2), keepdim=True), [distinct(2, 3, 4)]),
    OpCase("min_axis", lambda a: a.min(0), lambda a: a.amin(0), [distinct(3, 4)]),
    OpCase("softmax", lambda a: a.softmax(), lambda a: a.softmax(-1), [normal(3, 5)]),
    OpCase("softmax_axis0", lambda a: a.softmax(0), lambda a: a.softmax(0), [normal(3, 2, 4)]),
    OpCase("log_softmax", lambda a: a.log_softmax(), lambda a: a.log_softmax(-1), [normal(3, 5)]),
    OpCase("log_softmax_large", lambda a: (a * 50).log_softmax(1), lambda a: (a * 50).log_softmax(1), [normal(2, 4, 3)]),
    # shapes
    OpCase("reshape", lambda a: a.reshape(4, 3), lambda a: a.reshape(4, 3), [normal(3, 4)]),
    OpCase("reshape_tuple_infer", lambda a: a.reshape((2, -1)), lambda a: a.reshape(2, -1), [normal(3, 4)]),
    OpCase("flatten", lambda a: a.flatten(), lambda a: a.flatten(), [normal(2, 3, 2)]),
    OpCase("flatten_from_1", lambda a: a.flatten(1), lambda a: a.flatten(1), [normal(2, 3, 2)]),
    OpCase("flatten_0_to_1", lambda a: a.flatten(0, 1), lambda a: a.flatten(0, 1), [normal(2, 3, 2)]),
    OpCase("flatten_middle", lambda a: a.flatten(start_dim=1, end_dim=-2), lambda a: a.flatten(start_dim=1, end_dim=-2), [normal(2, 3, 2, 2)]),
    OpCase("transpose_reverse", lambda a: a.transpose(), lambda a: a.permute(2, 1, 0), [normal(2, 3, 4)]),
    OpCase("transpose_axes", lambda a: a.transpose(1, 2, 0), lambda a: a.permute(1, 2, 0), [normal(2, 3, 4)]),
    OpCase("T", lambda a: a.T, lambda a: a.T, [normal(3, 4)]),
    OpCase("swapaxes", lambda a: a.swapaxes(0, -1), lambda a: a.transpose(0, -1), [normal(2, 3, 4)]),
    OpCase("unsqueeze", lambda a: a.unsqueeze(1), lambda a: a.unsqueeze(1), [normal(3, 4)]),
    OpCase("unsqueeze_last", lambda a: a.unsqueeze(-1), lambda a: a.unsqueeze(-1), [normal(3, 4)]),
    OpCase("squeeze_all", lambda a: a.squeeze(), lambda a: a.squeeze(), [normal(3, 1, 4, 1)]),
    OpCase("squeeze_axis", lambda a: a.squeeze(1), lambda a: a.squeeze(1), [normal(3, 1, 4, 1)]),
    OpCase("getitem_slice", lambda a: a[1:, ::2], lambda a: a[1:, ::2], [normal(4, 5)]),
    OpCase("getitem_int", lambda a: a[2], lambda a: a[2], [normal(4, 5)]),
    OpCase("getitem_ellipsis_none", lambda a: a[..., None, 1], lambda a: a[..., None, 1], [normal(2, 3, 4)]),
    OpCase("getitem_ids_repeated", lambda a: a[IDS_WITH_REPEATS], lambda a: a[t_index(_torch(), IDS_WITH_REPEATS)], [normal(5, 3)]),
    OpCase("getitem_ids_negative", lambda a: a[NEGATIVE_IDS], lambda a: a[t_index(_torch(), NEGATIVE_IDS)], [normal(4, 2)]),
    OpCase("getitem_ids_grid", lambda a: a[ID_GRID], lambda a: a[t_index(_torch(), ID_GRID)], [normal(4, 3, 2)]),
    OpCase("getitem_ids_list", lambda a: a[[1, 1, 0]], lambda a: a[[1, 1, 0]], [normal(3, 2)]),
    OpCase("getitem_ids_tensor", lambda a: a[ts.Tensor(IDS_WITH_REPEATS)], lambda a: a[t_index(_torch(), IDS_WITH_REPEATS)], [normal(5)]),
    OpCase("getitem_ids_second_axis", lambda a: a[:, IDS_WITH_REPEATS], lambda a: a[:, t_index(_torch(), IDS_WITH_REPEATS)], [normal(2, 5)]),
    OpCase(
        "getitem_ids_pairs",
        lambda a: a[IDS_WITH_REPEATS[:4] % 3, NEGATIVE_IDS],
        lambda a: a[t_index(_torch(), (IDS_WITH_REPEATS[:4] % 3, NEGATIVE_IDS))],
        [normal(3, 4)],
    ),
    OpCase("getitem_mask", lambda a: a[MASK_45], lambda a: a[t_index(_torch(), MASK_45)], [normal(4, 5)]),
    OpCase("getitem_mask_axis1", lambda a: a[:, MASK_5], lambda a: a[:, t_index(_torch(), MASK_5)], [normal(3, 5)]),
    OpCase("concat", lambda a, b: ts.concat([a, b], axis=1), lambda a, b: _torch().cat([a, b], 1), [normal(2, 3), normal(2, 2)]),
    OpCase("concat_same_tensor", lambda a: ts.concat([a, a * 2], 0), lambda a: _torch().cat([a, a * 2], 0), [normal(2, 3)]),
    OpCase("stack", lambda a, b: ts.stack([a, b]), lambda a, b: _torch().stack([a, b]), [normal(2, 3), normal(2, 3)]),
    OpCase("stack_last", lambda a, b: ts.stack([a, b], -1), lambda a, b: _torch().stack([a, b], -1), [normal(2, 3), normal(2, 3)]),
    # one part of every packed state (P, B, H), stacked: a layer's outputs a⟨t⟩ out of its (a, c)⟨t⟩
    OpCase("stack_part", lambda a, b: stack_part([a, b], 0), lambda a, b: _torch().stack([a[0], b[0]]), [normal(2, 3, 4), normal(2, 3, 4)]),
    OpCase("stack_part_negative", lambda a: stack_part([a, a * 2, a], -1), lambda a: _torch().stack([a[-1], (a * 2)[-1], a[-1]]), [normal(3, 2, 2)]),
    OpCase("stack_part_running", lambda a, b: stack_part([a, b], 1, running=[None, RUNNING_3]),
           lambda a, b: _torch().stack([a[1], _torch().where(t_index(_torch(), RUNNING_3), b[1], 0.0)]), [normal(2, 3, 4), normal(2, 3, 4)]),
    OpCase("split_size", lambda a: summed(ts.split(a, 2, axis=1)), lambda a: summed(_torch().split(a, 2, 1)), [normal(3, 5)]),
    OpCase("split_sections", lambda a: summed(ts.split(a, [1, 3], 0)), lambda a: summed(_torch().split(a, [1, 3], 0)), [normal(4, 2)]),
    OpCase("chunk", lambda a: summed(ts.chunk(a, 4, axis=-1)), lambda a: summed(_torch().chunk(a, 4, -1)), [normal(2, 8)]),
    OpCase("chunk_uneven", lambda a: summed(ts.chunk(a, 3)), lambda a: summed(_torch().chunk(a, 3)), [normal(7, 2)]),
    # selection
    OpCase("where", lambda a, b: ts.where(MASK_45, a, b), lambda a, b: _torch().where(t_index(_torch(), MASK_45), a, b), [normal(4, 5), normal(4, 5)]),
    OpCase("where_broadcast", lambda a, b: ts.where(MASK_5, a, b), lambda a, b: _torch().where(t_index(_torch(), MASK_5), a, b), [normal(3, 5), normal(1)]),
    OpCase("where_scalar", lambda a: ts.where(MASK_45, a, 0.0), lambda a: _torch().where(t_index(_torch(), MASK_45), a, 0.0), [normal(4, 5)]),
    OpCase("maximum", lambda a, b: ts.maximum(a, b), lambda a, b: _torch().maximum(a, b), [distinct(3, 4), distinct(3, 4)]),
    OpCase("maximum_broadcast_scalar", lambda a: ts.maximum(a, 0.25), lambda a: _torch().maximum(a, _torch().tensor(0.25, dtype=a.dtype)), [away_from_bounds(5)]),
    OpCase("masked_fill", lambda a: a.masked_fill(MASK_45, -1.0), lambda a: a.masked_fill(t_index(_torch(), MASK_45), -1.0), [normal(4, 5)]),
    OpCase("masked_fill_broadcast", lambda a: a.masked_fill(MASK_5, 0.0), lambda a: a.masked_fill(t_index(_torch(), MASK_5), 0.0), [normal(3, 5)]),
    # a fused loss with a gradient for its target as well (cross_entropy's integer targets have none)
    OpCase("bce_with_logits", lambda x, y: ts.nn.functional.binary_cross_entropy_with_logits(x, y),
           lambda x, y: _torch().nn.functional.binary_cross_entropy_with_logits(x, y), [lambda rng: 4 * rng.standard_normal((3, 4)), probabilities(3, 4)]),
    OpCase("bce_with_logits_pos_weight",
           lambda x, y: ts.nn.functional.binary_cross_entropy_with_logits(x, y, pos_weight=POS_WEIGHT_4, reduction="none"),
           lambda x, y: _torch().nn.functional.binary_cross_entropy_with_logits(x, y, pos_weight=_torch().tensor(POS_WEIGHT_4), reduction="none"),
           [lambda rng: 4 * rng.standard_normal((2, 3, 4)), probabilities(2, 3, 4)]),
    # a composite: a 2-step RNN from primitives
    OpCase(
        "rnn_two_steps",
        lambda x, w_ax, w_aa: ((x[1] @ w_ax + (x[0] @ w_ax).tanh() @ w_aa).tanh()),
        lambda x, w_ax, w_aa: ((x[1] @ w_ax + (x[0] @ w_ax).tanh() @ w_aa).tanh()),
        [normal(2, 3, 4), normal(4, 5), normal(5, 5)],
    ),
]


def _torch():
    import torch

    return torch


def draw_inputs(case: OpCase, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.asarray(make(rng), dtype=np.float64) for make in case.inputs]
