"""Batching over time: the ops of a step tape that do not depend on the state, run once for all T steps.

Once a tape is trusted (nn/recorded.py), the work that does not depend on
the state is taken out of the loop: the ops that read only x⟨t⟩, constants
and parameters, and give on a (T, ...) stack of steps what they give on each
step (x⟨t⟩ W^T + b, a matmul by a weight, elementwise ops whose other
operands broadcast from the right, slices of the last axis). A
:class:`Batching` splits the tape in two: those ops, run before the loop as
ordinary graph ops (``Batching.project``), and the rest, a tape of its own
(``loop``) that each step's node replays, reading its row of the projection.
"""
from __future__ import annotations

import numpy as np

from ..ops import Abs, Add, Cast, Clamp, Div, Exp, GetItem, Linear, Log, MatMul, Maximum, Mul, Neg, Pow, Relu, Sigmoid, Sqrt, Sub, Tanh, concat
from ..tensor import Tensor
from .tape import Tape, TapeOp, slices_last_axis


# Ops that give on a (T, ...) stack of steps what they give on each step alone, provided the operands that
# vary with t carry the time axis in front and the others broadcast from the right (see _batches).
_ELEMENTWISE = frozenset({Add, Sub, Mul, Div, Maximum, Neg, Pow, Exp, Log, Sqrt, Abs, Tanh, Sigmoid, Relu, Clamp, Cast})
# A slot's kind: made from parameters and constants only / varies with x⟨t⟩ but not with the state, and can be
# computed for all steps at once / must be computed in the loop (it depends on the state, or an op that
# cannot be batched lies between it and x⟨t⟩).
_STATIC, _TIMED, _LOOP = "static", "timed", "loop"


def _batches(op: TapeOp, kinds: list[str], shapes: list[tuple], result_shape: tuple) -> bool:
    """Whether ``op``, reading at least one timed slot, computes all T steps at once on (T, ...) stacks."""
    timed = [(pos, slot) for pos, slot in op.tensor_args if kinds[slot] == _TIMED]
    static = [slot for _, slot in op.tensor_args if kinds[slot] == _STATIC]
    if op.cls is Linear:  # x W^T + b: x may vary with t, the weight and bias may not
        return [pos for pos, _ in timed] == [0]
    if op.cls is MatMul:  # x⟨t⟩ @ W for a fixed 2-D W
        return [pos for pos, _ in timed] == [0] and len(shapes[timed[0][1]]) >= 2 and len(static) == 1 and len(shapes[static[0]]) == 2
    if op.cls is GetItem:  # a slice of the last axis (chunk, split)
        return slices_last_axis(op.kwargs["index"], len(shapes[timed[0][1]]))
    if op.cls in _ELEMENTWISE:  # the time axis lines up in front; nothing else reaches it
        ndim = len(result_shape)
        return all(len(shapes[slot]) == ndim for _, slot in timed) and all(len(shapes[slot]) <= ndim for slot in static)
    return False


def _kinds(tape: Tape, n_parts: int) -> list[str]:
    """Each slot's kind (_STATIC, _TIMED, _LOOP); fixed slots are x⟨t⟩, the state's parts, the parameters."""
    kinds = [_TIMED] + [_LOOP] * n_parts + [_STATIC] * (tape.n_fixed - 1 - n_parts + len(tape.constants))
    for j, op in enumerate(tape.ops):
        read = {kinds[slot] for _, slot in op.tensor_args}
        if _LOOP in read:
            kinds.append(_LOOP)
        elif _TIMED in read:
            kinds.append(_TIMED if _batches(op, kinds, tape.shapes, tape.shapes[tape.first_result + j]) else _LOOP)
        else:
            kinds.append(_STATIC)
    return kinds


class Batching:
    """A tape split in two: the ops that depend only on x⟨t⟩, constants and parameters, run once for all
    T steps before the loop (:meth:`project`), and the rest, a tape of their own (``loop``) run per step.

    ``frontier``: the timed slots of the full tape that the loop reads (or returns). The projection holds
    them for all steps: the one value as (T, ...), or several flattened and joined as (T, F); ``layout``
    says where each lies in a step's row (None for one value). The loop tape's fixed slots are the
    frontier values, then the state's parts and the parameters it reads (``params``, indexes among the cell's).
    """

    def __init__(self, tape: Tape, n_parts: int, prefix: list[int], timed: set[int], frontier: list[int], loop: Tape,
                 params: tuple[int, ...]) -> None:
        self.tape, self.n_parts, self.prefix, self.timed, self.frontier = tape, n_parts, prefix, timed, frontier
        self.loop, self.params = loop, params  # params: the indexes of the parameters the loop reads
        self.layout: tuple[tuple[int, int, tuple], ...] | None = None
        if len(frontier) > 1:
            sizes = [int(np.prod(tape.shapes[slot])) for slot in frontier]
            starts = np.cumsum([0] + sizes)
            self.layout = tuple((int(a), int(b), tape.shapes[slot]) for a, b, slot in zip(starts, starts[1:], frontier))

    @staticmethod
    def of(tape: Tape, n_parts: int) -> Batching | None:
        """The split of a trusted ``tape`` (worked out once), or None when it has nothing to batch."""
        if tape.batching is False:
            tape.batching = _split(tape, n_parts)
        return tape.batching

    def project(self, x: Tensor, params: list[Tensor]) -> Tensor:
        """The frontier values of all steps, (T, ...) or (T, F), as graph ops on x (T, B, I) and the parameters."""
        tape = self.tape
        values: dict[int, Tensor] = {0: x}
        values.update((1 + self.n_parts + i, p) for i, p in enumerate(params))
        values.update((tape.n_fixed + i, c) for i, c in enumerate(tape.constants))
        for j in self.prefix:
            op = tape.ops[j]
            args = [None] * op.arity
            for pos, slot in op.tensor_args:
                args[pos] = values[slot]
            kwargs = op.kwargs
            if op.cls is GetItem and j in self.timed:
                kwargs = {**kwargs, "index": (slice(None), *kwargs["index"])}  # the same slice of every step
            values[tape.first_result + j] = op.cls.apply(*args, **kwargs)
        parts = [values[slot] for slot in self.frontier]
        if len(parts) == 1:
            return parts[0]
        return concat([part.reshape(x.shape[0], -1) for part in parts], axis=-1)

    def same_projection(self, other: Batching) -> bool:
        """Whether this split's loop can read ``other``'s projection: the same ops before the loop, the same frontier."""
        if self is other:
            return True
        if self.frontier != other.frontier or self.layout != other.layout or self.prefix != other.prefix or self.params != other.params:
            return False
        return all(_same_op(self.tape.ops[j], other.tape.ops[j]) for j in self.prefix)


def _same_op(a: TapeOp, b: TapeOp) -> bool:
    try:
        return a.cls is b.cls and a.arity == b.arity and a.tensor_args == b.tensor_args and bool(a.kwargs == b.kwargs)
    except (ValueError, TypeError):  # an array among the arguments: not worth comparing
        return False


def _split(tape: Tape, n_parts: int) -> Batching | None:
    """Split ``tape`` into the ops batched before the loop and the loop's own tape; None if nothing batches."""
    kinds = _kinds(tape, n_parts)
    first = tape.first_result
    # The loop computes the ops that depend on the state, and the static ones they read.
    in_loop = [False] * len(kinds)
    for slot in tape.outputs:
        in_loop[slot] = True
    loop_ops = []
    for j in range(len(tape.ops) - 1, -1, -1):
        if kinds[first + j] == _LOOP or (kinds[first + j] == _STATIC and in_loop[first + j]):
            loop_ops.append(j)
            for _, slot in tape.ops[j].tensor_args:
                in_loop[slot] = True
    loop_ops.reverse()
    frontier = [slot for slot, kind in enumerate(kinds) if kind == _TIMED and in_loop[slot]]
    # Before the loop: the timed ops the frontier needs, and the static ones they read.
    needed = [slot in frontier for slot in range(len(kinds))]
    prefix = []
    for j in range(len(tape.ops) - 1, -1, -1):
        if needed[first + j] and kinds[first + j] != _LOOP:
            prefix.append(j)
            for _, slot in tape.ops[j].tensor_args:
                needed[slot] = True
    prefix.reverse()
    timed = {j for j in prefix if kinds[first + j] == _TIMED}
    if not timed or not frontier or len({tape.dtypes[slot] for slot in frontier}) > 1:
        return None  # nothing to batch (the loop reads x⟨t⟩ itself), or values that cannot share one array
    loop, params = _loop_tape(tape, n_parts, loop_ops, frontier)
    return Batching(tape, n_parts, prefix, timed, frontier, loop, params)


def _loop_tape(tape: Tape, n_parts: int, loop_ops: list[int], frontier: list[int]) -> tuple[Tape, tuple[int, ...]]:
    """The tape of ``loop_ops`` alone, and which parameters it reads (their indexes among the cell's).

    Its fixed slots: the frontier values, the state's parts, then the parameters the loop reads (x W_ih^T
    computed before the loop, W_ih is none of them: the step node must not promise it a gradient).
    """
    first_param = 1 + n_parts
    read = {slot for j in loop_ops for _, slot in tape.ops[j].tensor_args}
    params = tuple(i for i in range(tape.n_fixed - first_param) if first_param + i in read)
    fixed = [*frontier, *range(1, first_param), *(first_param + i for i in params)]
    renamed = {slot: i for i, slot in enumerate(fixed)}
    renamed.update((tape.n_fixed + i, len(fixed) + i) for i in range(len(tape.constants)))
    ops = []
    for j in loop_ops:
        op = tape.ops[j]
        ops.append(TapeOp(op.cls, op.arity, tuple((pos, renamed[slot]) for pos, slot in op.tensor_args), op.kwargs))
        renamed[tape.first_result + j] = len(fixed) + len(tape.constants) + len(ops) - 1
    loop = Tape(ops, tape.constants, len(fixed), tuple(renamed[slot] for slot in tape.outputs))
    slots = [*fixed, *range(tape.n_fixed, tape.first_result), *(tape.first_result + j for j in loop_ops)]
    loop.shapes, loop.dtypes = [tape.shapes[slot] for slot in slots], [tape.dtypes[slot] for slot in slots]
    loop.set_needs(tuple(tape.slot_needs[slot] for slot in fixed))
    loop.trust()  # a rearrangement of a trusted tape's ops
    return loop, params
