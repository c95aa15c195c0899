"""The step tape: a cell without a hand-written kernel still runs as one graph node per time step.

The first time ``nn.Recurrent`` runs a step of such a cell (outside
``ts.transparent()``), it runs the cell's own ``forward`` on tensors, as the
transparent path does, and notes every primitive op it applies
(``Function.apply`` reports to ``settings.recording``). The ops that lead
from the step's inputs (x⟨t⟩, the previous state's parts, the parameters)
to the new state form a :class:`Tape`. :class:`RecordedStep` replays that
op list on raw arrays inside one node: forward in order, backward in
reverse, each recorded op's own ``backward`` accumulating the gradients.
Parameters are read when the step runs, so ``Module.to``, ``load_state_dict``
and re-initialisation are seen.

Once a tape is trusted, the work that does not depend on the state is taken
out of the loop (:class:`Batching`): the ops that read only x⟨t⟩, constants
and parameters, and give on a (T, ...) stack of steps what they give on each
step (x⟨t⟩ W^T + b, a matmul by a weight, elementwise ops whose other operands
broadcast from the right, slices of the last axis), run once for all T steps
in ``RecordedSteps.begin`` as ordinary graph ops; each step's node
reads its row of that projection and writes that row's gradient into one
array (a GradientRows, as a kernel's steps do), which becomes the
projection's gradient. The first calls, which record and check the tape,
read x⟨t⟩ and replay every op.

A tape is keyed by everything that changes the ops (:func:`step_key`):
shapes, dtypes, backend, which inputs require grad, grad mode and
training/eval. It is trusted only after two checks against the transparent
step: the step that records it and the first step that replays it run both
ways and compare the new state and the gradients of a random backward, so
Python-level branching the tape cannot see (a counter, a value read through
``.data``) is caught. A step that cannot be replayed faithfully runs
transparently, with one warning naming the reason:

- it draws random numbers (dropout inside the cell);
- it reads values back to the host (``.item()``, ``float()``, ``.numpy()``);
- a tensor made inside it has a hook or ``retain_grad``;
- it reads a tensor that requires grad but is none of the step's inputs;
- its replay differs from the transparent step (the checks above).

:class:`RecordedStep` is a Function that lives here rather than under ops/
(where every other one does): it is not a primitive with its own equations
but a replay of the tape this layer records from a cell's forward, so it
belongs beside the recording, the Tape and the step object that use it.
"""
from __future__ import annotations

import warnings
import weakref
from typing import Any, NamedTuple

import numpy as np

from .. import blas, settings
from ..backend import backend_of, to_host
from ..callers import callers_level
from ..ops import (Abs, Add, Cast, Clamp, Div, Exp, GetItem, Linear, Log, MatMul, Maximum, Mul, Neg, Pow, Relu, Sigmoid,
                   Sqrt, Sub, Tanh, concat, stack, where)
from ..ops.cell_steps import _masked, _split_masked_grad
from ..anomaly import place
from ..engine import check_input_grads, wrong_grad_shape
from ..function import Function
from ..lazy_grad import GradientRows, LazyGrad, OuterGrad, SliceGrad, StepRowsGrad
from ..tensor import Tensor
from . import roles
from .cells import RecurrentCell
from .steps import Step, contiguous_transpose
from .tape_code import TapeCode


class RecordingWarning(UserWarning):
    """A cell step could not be recorded (or its replay differed) and runs transparently."""


class Recording:
    """What ``Function.apply`` and the host conversions report while a step is being recorded."""

    def __init__(self) -> None:
        self.ops: list[tuple[type, tuple, dict, Tensor]] = []  # (op class, args, keyword params, result)
        self.host_reads: list[str] = []


class TapeOp:
    """One recorded op: its class, its positional arguments (tensors, as slot numbers; None elsewhere) and its
    keyword parameters (everything that is not a tensor: the op convention of ``Function.apply``)."""

    __slots__ = ("cls", "arity", "tensor_args", "kwargs", "needs", "grad_targets", "slots")

    def __init__(self, cls: type, arity: int, tensor_args: tuple[tuple[int, int], ...], kwargs: dict) -> None:
        self.cls, self.arity, self.tensor_args, self.kwargs = cls, arity, tensor_args, kwargs  # arity: how many positional (tensors, Nones)
        self.needs: tuple[bool, ...] = ()  # needs_input_grad for the replayed node, set by Tape.set_needs
        self.grad_targets: tuple[tuple[int, int], ...] = ()  # the (position, slot) of the arguments that need a gradient
        slots: list[int | None] = [None] * arity
        for pos, slot in tensor_args:
            slots[pos] = slot
        self.slots = tuple(slots)  # each positional argument's slot, None for a None argument


class Tape:
    """The primitive ops of one cell step, over numbered slots of arrays.

    Slots: first the fixed inputs (x⟨t⟩, the state's parts, the parameters),
    then the constants (tensors made inside the step from no input, kept by
    reference), then one per op, its result.
    """

    def __init__(self, ops: list[TapeOp], constants: list[Tensor], n_fixed: int, outputs: tuple[int, ...]) -> None:
        self.ops, self.constants, self.n_fixed, self.outputs = ops, constants, n_fixed, outputs
        # The fixed slots (parameters) that Linear ops multiply by: each step's node gets them transposed once per call.
        self.weight_slots = tuple(sorted({op.slots[1] for op in ops if op.cls is Linear and op.slots[1] is not None
                                          and op.slots[1] < n_fixed}))
        self.trusted = False  # True once a replay on new inputs matched the transparent step (see trust)
        self.code: TapeCode | None = None  # the replay as generated Python, once trusted (nn/tape_code.py)
        self.shapes: list[tuple] = []  # each slot's shape and dtype in the recorded step (set by build_tape)
        self.dtypes: list[Any] = []
        self.slot_needs: list[bool] = [False] * n_fixed  # which slots need a gradient (set_needs)
        self._reaching_output: dict[int, set[int]] = {}  # see parts_reaching_output
        self.batching: Batching | None | bool = False  # the split for batching over time, once worked out (Batching.of)
        self._chunked: dict[int, tuple[int, int, int]] | None = None  # see chunked()
        self.chunk_ops: dict[int, list[int]] = {}  # slot -> the ops of its chunks, in order (set by chunked())
        self._likes: list[Any] | None = None  # see likes()

    def __repr__(self) -> str:
        needs = [f"v{slot}" for slot in range(self.n_fixed) if self.slot_needs[slot]]
        return (f"Tape({len(self.ops)} ops: {', '.join(op.cls.__name__ for op in self.ops)}; "
                f"inputs v0-v{self.n_fixed - 1}, of which {', '.join(needs) or 'none'} need a gradient)")

    def transposed_weights(self, params: list[Any], x: Tensor) -> dict[int, Any]:
        """For one layer call on ``x``: each weight slot's array (``params``, the last fixed slots) transposed
        into a contiguous copy where that pays (steps.contiguous_transpose), read by every step."""
        first = self.n_fixed - len(params)
        transposed = {slot: contiguous_transpose(params[slot - first], x) for slot in self.weight_slots if slot >= first}
        return {slot: array for slot, array in transposed.items() if array is not None}

    def likes(self, xp: Any) -> list[Any]:
        """One array per slot with that slot's shape and dtype, on the backend ``xp`` (made once: a tape serves
        one backend, which its key names; zero-stride, so they hold no memory): all that backward reads of a
        step's values. A replayed step hands these to backward instead of keeping its intermediate arrays
        until then; its nodes keep what they saved. ``matches`` checks a tape's values against them."""
        if self._likes is None:
            self._likes = [xp.broadcast_to(xp.zeros((), dtype=dtype), shape) for shape, dtype in zip(self.shapes, self.dtypes)]
        return self._likes

    @property
    def first_result(self) -> int:
        return self.n_fixed + len(self.constants)

    def parts_reaching_output(self, first_part: int) -> set[int]:
        """The state parts (indexes) whose values reach part 0, the output a⟨t⟩, over any number of steps; the
        fixed slots from ``first_part`` on hold the previous state's parts. Worked out once."""
        if first_part not in self._reaching_output:
            sources: list[set[int]] = [{slot} for slot in range(self.first_result)]
            for op in self.ops:
                sources.append(set().union(*(sources[slot] for _, slot in op.tensor_args)))
            reaching, frontier = set(), {0}
            while frontier:
                part = frontier.pop()
                reaching.add(part)
                frontier |= {slot - first_part for slot in sources[self.outputs[part]]
                             if first_part <= slot < first_part + len(self.outputs)} - reaching
            self._reaching_output[first_part] = reaching
        return self._reaching_output[first_part]

    def trust(self) -> None:
        """Mark the tape checked, and write its replay out as Python (TapeCode), which the steps then run."""
        self.trusted = True
        self.code = _generated(self)

    def set_needs(self, fixed_needs: tuple[bool, ...]) -> None:
        """Which slots need a gradient, from which fixed inputs require grad (as Function.apply decides)."""
        needs = list(fixed_needs) + [False] * len(self.constants)
        for op in self.ops:
            flags = [False] * op.arity
            for pos, slot in op.tensor_args:
                flags[pos] = needs[slot]
            op.needs = tuple(flags)
            op.grad_targets = tuple((pos, slot) for pos, slot in op.tensor_args if needs[slot])
            needs.append(any(flags))
        self.slot_needs = needs
        if self.code is not None:  # the generated code has the old needs written in
            self.code = _generated(self)

    def forward(self, fixed: list[Any], tags: dict[str, Any] | None = None,
                transposed: dict[int, Any] | None = None) -> tuple[list[Any], list[Function]]:
        """Every slot's array and the replayed nodes (whose saved arrays backward reads).

        ``transposed``: slot -> that weight's transpose, contiguous (see :meth:`transposed_weights`), for the
        Linear ops that multiply by it.
        """
        if self.code is not None and not settings.anomaly_mode:
            return self.code.forward(fixed, transposed or {})
        # The interpreter: it records and checks new tapes and runs under detect_anomaly; a trusted tape's steps
        # run the generated code above, so this loop is written to be read, not to be fast.
        values = list(fixed) + [c._data for c in self.constants]
        fns = []
        transposed = transposed or {}
        for op in self.ops:
            fn = op.cls.__new__(op.cls)
            args = [None if slot is None else values[slot] for slot in op.slots]
            layout = {"weight_t": transposed[op.slots[1]]} if op.cls is Linear and op.slots[1] in transposed else {}
            out = fn.forward(*args, **op.kwargs, **layout)
            if not isinstance(out, settings.array_types):
                out = np.asarray(out)
            fn.needs_input_grad = op.needs
            if settings.anomaly_mode and out.dtype.kind == "f" and not bool(_xp(out).isfinite(out).all()):
                raise FloatingPointError(
                    f"detect_anomaly: {op.cls.__name__} inside a recorded cell step produced a non-finite output going forward, "
                    f"at {place(tags or {})}. Run the layer inside ts.transparent() to see the step gate by gate"
                )
            values.append(out)
            fns.append(fn)
        return values, fns

    def backward(self, fns: list[Function | None], likes: list[Any], seeds: dict[int, Any],
                 tags: dict[str, Any] | None = None, capture: tuple[int, ...] = ()) -> tuple[list[Any], dict[int, list[OuterGrad]], dict[int, Any]]:
        """Gradients of the fixed slots (dense, or None), the OuterGrads of the parameters kept as factors,
        and the complete gradient of each slot in ``capture`` (for part_grads).

        ``likes``: an array like each slot's value, of its shape, dtype and backend (:meth:`likes`, or the
        step's values). ``seeds``: slot -> gradient arriving at that output. ``fns``: the nodes
        to run backward through, one per op (None for an op whose result needs
        no gradient, and for a chunk of a gate block, which needs no node).
        """
        if self.code is not None and not capture and not settings.anomaly_mode:
            return self.code.backward(self, fns, likes, seeds, tags)
        grads: list[Any] = [None] * len(likes)
        outer: dict[int, list[OuterGrad]] = {}
        owned: set[int] = set()  # slots whose gradient buffer was allocated here, safe to add into in place
        for slot, grad in seeds.items():
            self._add(grads, outer, likes, slot, grad, tags, "the step's output", owned)
        first = self.first_result
        captured = {}
        chunked, chunks = self.chunked(), {}  # chunks: slot -> its chunks' gradients so far, by position
        for j in range(len(self.ops) - 1, -1, -1):
            result = first + j
            if result in chunks:
                self._join(grads, outer, chunks.pop(result), likes, result, tags, owned)
            grad, fn = grads[result], fns[j]
            if result in capture:
                captured[result] = grad
            if grad is None or not self.slot_needs[result]:
                continue
            if j in chunked:  # one chunk of a gate block: its gradient waits for the others, to be joined in one go
                slot, position, count = chunked[j]
                chunks.setdefault(slot, [None] * count)[position] = grad
                continue
            if fn is None:
                continue
            op = self.ops[j]
            input_grads = fn.backward(grad)
            # Held to the engine's rules while the tape is checked (the generated code runs only a checked tape's ops)
            check_input_grads(op.cls.__name__, input_grads, op.arity)
            for pos, slot in op.grad_targets:
                if input_grads[pos] is not None:
                    for piece in input_grads[pos] if type(input_grads[pos]) is list else (input_grads[pos],):
                        if np.shape(piece) != likes[slot].shape:
                            raise wrong_grad_shape(op.cls.__name__, np.shape(piece), likes[slot].shape)
                    self._add(grads, outer, likes, slot, input_grads[pos], tags, op.cls.__name__, owned)
        for slot, pieces in chunks.items():  # chunks of a fixed slot (x⟨t⟩ or a state part cut into pieces)
            self._join(grads, outer, pieces, likes, slot, tags, owned)
        for slot in capture:
            if slot < first:
                captured[slot] = grads[slot]
        return grads[: self.n_fixed], outer, captured

    def chunked(self) -> dict[int, tuple[int, int, int]]:
        """The GetItem ops that cut one slot's last axis into consecutive slices covering it exactly once (a
        gate block's chunks): op index -> (slot, position among the chunks, how many), worked out once.

        Backward never asks these ops: the chunks' gradients, in order, are the block's gradient, joined by
        one concatenate (:meth:`_join`). The generated code (tape_code.py) makes no node for them at all."""
        if self._chunked is None:
            cuts: dict[int, list[tuple[int, int, int]]] = {}
            for j, op in enumerate(self.ops):
                index = op.kwargs.get("index") if op.cls is GetItem else None
                shape = self.shapes[op.slots[0]] if index is not None else ()
                if index is not None and _slices_last_axis(index, len(shape)):
                    start, stop, step = index[-1].indices(shape[-1])
                    if step == 1:
                        cuts.setdefault(op.slots[0], []).append((start, stop, j))
            self._chunked, self.chunk_ops = {}, {}
            for slot, spans in cuts.items():
                spans.sort()
                starts, stops = [start for start, _, _ in spans], [stop for _, stop, _ in spans]
                if starts == [0, *stops[:-1]] and stops[-1] == self.shapes[slot][-1]:
                    self._chunked.update((j, (slot, position, len(spans))) for position, (_, _, j) in enumerate(spans))
                    self.chunk_ops[slot] = [j for _, _, j in spans]  # in order along the axis
        return self._chunked

    def _join(self, grads: list, outer: dict, pieces: list[Any | None], likes: list, slot: int, tags: Any,
              owned: set[int]) -> None:
        """Add the gradients of a slot's chunks (arrays, in order; None for a chunk that got none) to its
        gradient: one concatenate when every chunk has one and nothing else sent any (the usual case), else
        each added into its slice of a buffer."""
        like = likes[slot]
        if grads[slot] is None and all(p is not None and p.dtype == like.dtype for p in pieces):
            _check_finite(tuple(pieces), tags, "GetItem")
            grads[slot] = _xp(like).concatenate(pieces, axis=-1)
            owned.add(slot)
            return
        for piece, j in zip(pieces, self.chunk_ops[slot]):
            if piece is not None:
                self._add(grads, outer, likes, slot, SliceGrad(self.ops[j].kwargs["index"], piece, like.shape), tags, "GetItem", owned)

    def _add(self, grads: list, outer: dict, likes: list, slot: int, grad: Any, tags: Any, op: str, owned: set[int]) -> None:
        pieces = grad if type(grad) is list else [grad]
        for piece in pieces:
            if isinstance(piece, LazyGrad):
                if piece.deferred and slot < self.n_fixed:  # a weight's: the engine sums these over all steps at once
                    outer.setdefault(slot, []).append(piece)
                    continue
                _check_finite(piece.arrays(), tags, op)
                like = likes[slot]
                # A fresh buffer the lazy pieces add into in place.
                buffer = grads[slot]
                if buffer is None or slot not in owned:
                    buffer = _xp(like).zeros(like.shape, dtype=like.dtype) if buffer is None else buffer.copy()
                    owned.add(slot)
                piece.astype(like.dtype).add_into(buffer)
                grads[slot] = buffer
                continue
            if not isinstance(piece, settings.array_types):
                piece = np.asarray(piece)
            if piece.dtype != likes[slot].dtype:
                piece = piece.astype(likes[slot].dtype)
            _check_finite((piece,), tags, op)
            if grads[slot] is None:
                grads[slot] = piece  # maybe shared with another input (Add sends one array to both): not ours to add into
            elif slot in owned:
                grads[slot] += piece
            else:
                grads[slot] = grads[slot] + piece
                owned.add(slot)


def _generated(tape: Tape) -> TapeCode | None:
    """``tape``'s replay as generated code, or None (the interpreter keeps replaying it) if writing it failed,
    which it should not: said once, so that the slower path is not silent."""
    try:
        return TapeCode(tape)
    except Exception as error:  # noqa: BLE001  the interpreter is always there to fall back on
        warnings.warn(f"a recorded cell step could not be written out as code ({type(error).__name__}: {error}); "
                      "it is replayed by the tape's interpreter, which gives the same results, more slowly. "
                      "Please report it", RecordingWarning, stacklevel=callers_level())
        return None


def _check_finite(arrays: tuple[Any, ...], tags: Any, op: str) -> None:
    if settings.anomaly_mode and any(a.dtype.kind == "f" and not bool(_xp(a).isfinite(a).all()) for a in arrays):
        raise FloatingPointError(
            f"detect_anomaly: {op} inside a recorded cell step sent a non-finite gradient going backward, "
            f"at {place(tags or {})}. Run the layer inside ts.transparent() to see the step gate by gate"
        )


def _xp(array: Any) -> Any:
    return backend_of(array).xp


def build_tape(recording: Recording, fixed: list[Tensor], outputs: list[Tensor]) -> Tape | str:
    """The tape of the recorded ops leading to ``outputs``, or the reason the step cannot be replayed."""
    if recording.host_reads:
        return f"it reads values back to the host ({recording.host_reads[0]}), which a replay cannot repeat"
    slot_of = {id(t): i for i, t in enumerate(fixed)}
    produced = {id(result): j for j, (_, _, _, result) in enumerate(recording.ops)}
    needed = [False] * len(recording.ops)
    stack_ = [produced[id(t)] for t in outputs if id(t) in produced and id(t) not in slot_of]
    while stack_:  # the ops the outputs depend on (a debug computation on the side is dropped)
        j = stack_.pop()
        if needed[j]:
            continue
        needed[j] = True
        for arg in recording.ops[j][1]:
            if isinstance(arg, Tensor) and id(arg) in produced and id(arg) not in slot_of:
                stack_.append(produced[id(arg)])
    kept_at = [j for j, keep in enumerate(needed) if keep]
    kept = [recording.ops[j] for j in kept_at]
    constants: list[Tensor] = []
    for _, args, _, result in kept:
        if result._hooks or result._retains_grad:
            return "a tensor made inside it has a hook or retain_grad, which a replay would not call"
        for arg in args:
            if isinstance(arg, Tensor) and id(arg) not in slot_of and id(arg) not in produced and all(arg is not c for c in constants):
                if arg.requires_grad:
                    return (f"it reads a tensor of shape {arg.shape} that requires grad but is neither the input, "
                            "the state nor a parameter of the cell")
                constants.append(arg)
    for c in constants:
        slot_of[id(c)] = len(slot_of)
    ops = []
    for cls, args, kwargs, result in kept:
        tensor_args = tuple((pos, slot_of[id(a)]) for pos, a in enumerate(args) if isinstance(a, Tensor))
        # A weight's transpose made for one call (a built-in cell called inside yours) would go stale in the tape:
        # dropped, as the results are the same without it; the replay makes its own (Tape.transposed_weights).
        kwargs = {name: value for name, value in kwargs.items() if name not in cls.layout_keywords}
        ops.append(TapeOp(cls, len(args), tensor_args, kwargs))
        slot_of[id(result)] = len(slot_of)
    for t in outputs:
        if id(t) not in slot_of:
            if t.requires_grad:
                return "its new state is a tensor that requires grad but was not computed from the step's inputs"
            constants.append(t)  # a constant state part
            slot_of[id(t)] = -1
    if any(slot_of[id(t)] == -1 for t in outputs):
        return "its new state holds a constant tensor"
    tape = Tape(ops, constants, len(fixed), tuple(slot_of[id(t)] for t in outputs))
    tape.kept = kept_at  # which recorded ops it replays (the check runs the transparent step's own nodes backward)
    slots = [*fixed, *constants, *(result for _, _, _, result in kept)]
    tape.shapes, tape.dtypes = [t.shape for t in slots], [t.dtype for t in slots]  # one step's, for batching over time
    return tape


# ---------------------------------------------------------------- batching the state-independent work over time

# Ops that give on a (T, ...) stack of steps what they give on each step alone, provided the operands that
# vary with t carry the time axis in front and the others broadcast from the right (see _batches).
_ELEMENTWISE = frozenset({Add, Sub, Mul, Div, Maximum, Neg, Pow, Exp, Log, Sqrt, Abs, Tanh, Sigmoid, Relu, Clamp, Cast})
# A slot's kind: made from parameters and constants only / varies with x⟨t⟩ but not with the state, and can be
# computed for all steps at once / must be computed in the loop (it depends on the state, or an op that
# cannot be batched lies between it and x⟨t⟩).
_STATIC, _TIMED, _LOOP = "static", "timed", "loop"


def _slices_last_axis(index: Any, ndim: int) -> bool:
    """Whether ``index`` only slices the last of ``ndim`` axes: ``[:, a:b]``, ``[..., a:b]`` (what chunk and split make)."""
    if not isinstance(index, tuple) or not index or not isinstance(index[-1], slice):
        return False
    leading = index[:-1]
    if not all(p is Ellipsis or _is_full_slice(p) for p in leading):  # arrays among them: not a plain slice
        return False
    ellipses = sum(p is Ellipsis for p in leading)
    return ellipses == 1 if ellipses else len(index) == ndim


def _is_full_slice(part: Any) -> bool:
    return isinstance(part, slice) and part == slice(None)


def _batches(op: TapeOp, kinds: list[str], shapes: list[tuple], result_shape: tuple) -> bool:
    """Whether ``op``, reading at least one timed slot, computes all T steps at once on (T, ...) stacks."""
    timed = [(pos, slot) for pos, slot in op.tensor_args if kinds[slot] == _TIMED]
    static = [slot for _, slot in op.tensor_args if kinds[slot] == _STATIC]
    if op.cls is Linear:  # x W^T + b: x may vary with t, the weight and bias may not
        return [pos for pos, _ in timed] == [0]
    if op.cls is MatMul:  # x⟨t⟩ @ W for a fixed 2-D W
        return [pos for pos, _ in timed] == [0] and len(shapes[timed[0][1]]) >= 2 and len(static) == 1 and len(shapes[static[0]]) == 2
    if op.cls is GetItem:  # a slice of the last axis (chunk, split)
        return _slices_last_axis(op.kwargs["index"], len(shapes[timed[0][1]]))
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


def _stacked(parts: list[Any]) -> Any:
    """The P parts (B, H) as one (P, B, H) array (xp.stack, without its generality's cost on every step)."""
    first = parts[0]
    out = _xp(first).empty((len(parts), *first.shape), dtype=_xp(first).result_type(*parts))
    for i, part in enumerate(parts):
        out[i] = part
    return out


def _with_factors(dense: Any, factors: list[OuterGrad] | None) -> Any:
    """A step input's gradient in one array: ``dense`` plus any OuterGrad factors an op sent it (rare)."""
    for factor in factors or ():
        dense = factor.dense() if dense is None else dense + factor.dense()
    return dense


def _read_inputs(row: Any, layout: tuple | None) -> list[Any]:
    """One step's frontier values (or x⟨t⟩) from its row of the projection."""
    if layout is None:
        return [row]
    return [row[start:stop].reshape(shape) for start, stop, shape in layout]


def _inputs_grad(grads: list[Any], layout: tuple | None, t: int, shape: tuple, like: Any,
                 grad_rows: GradientRows | None) -> LazyGrad:
    """The gradient of the source (T, ...) from one step's frontier gradients (None: no op sent one), nonzero
    only at row t: that row of a block of ``grad_rows`` when the layer call made one (as the kernels' steps
    do), else a SliceGrad of a row of its own, or of the one gradient as it is."""
    if grad_rows is None and layout is None and grads[0] is not None:
        return SliceGrad((t,), grads[0], shape)
    block = None if grad_rows is None else grad_rows.row(t)
    row = _xp(like).empty(shape[1:], dtype=like.dtype) if block is None else block.array[t]
    if layout is None:
        row[...] = 0 if grads[0] is None else grads[0]
    else:
        for g, (start, stop, _) in zip(grads, layout):
            row[start:stop] = 0 if g is None else g.reshape(-1)
    return SliceGrad((t,), row, shape) if block is None else StepRowsGrad(t, block)


# ---------------------------------------------------------------- the step node


class RecordedStep(Function):
    """One cell step replayed from its tape: (source, state, *parameters) -> new state.

    ``source`` is x (T, B, I), of which the step reads x[t]; or, when the
    state-independent ops run batched before the loop (:class:`Batching`),
    the projection (T, ...) holding the values the tape's ops read, of which
    the step reads row t (``layout`` places several values in it). The state
    is one (B, H) tensor, or the parts stacked as (P, B, H) for a cell with P
    parts. Keywords: ``t``, the ``tape``, ``n_parts``, ``layout``, and
    ``running`` (B, 1) or None, which masks the sequences that have ended
    (they keep their state, and the gradient passes straight through, as in
    the step ops of ops/cell_steps.py).
    """

    __slots__ = ("t", "source_shape", "tape", "fns", "running", "n_parts", "n_inputs", "layout", "saved", "grad_rows")
    saves_output = False

    @property
    def saved_inputs(self) -> tuple[int, ...]:  # the state and the parameters: their arrays are saved inside the tape's nodes
        return self.saved

    def blas_threads(self) -> int | None:
        """One BLAS thread for a small step on NumPy (blas.py), sized by the matrices among the parameters it reads."""
        return blas.step_threads(self.inputs[1]._data.shape[-2], [p._data for p in self.inputs[2:] if p._data.ndim == 2])

    def forward(self, source, state, *params, running, t, tape, n_parts, layout=None, transposed=None, grad_rows=None):
        inputs = _read_inputs(source[t], layout)
        parts = [state] if n_parts == 1 else [state[i] for i in range(n_parts)]
        values, fns = tape.forward([*inputs, *parts, *params], settings.current_tags, transposed)
        new = values[tape.outputs[0]] if n_parts == 1 else _stacked([values[s] for s in tape.outputs])
        # Only the nodes (fns) stay, holding what each op saved for backward: the step's other arrays go now.
        self.t, self.source_shape, self.tape, self.fns, self.running = t, source.shape, tape, fns, running
        self.n_parts, self.n_inputs, self.layout, self.grad_rows = n_parts, len(inputs), layout, grad_rows
        self.saved = tuple(range(1, 2 + len(params)))
        return _masked(new, state, running, _xp(state))

    def _run_backward(self, grad, likes: list[Any], capture: tuple[int, ...] = ()):
        d_new, d_pass = _split_masked_grad(grad, self.running, _xp(grad))
        outputs = self.tape.outputs
        if self.n_parts == 1:
            seeds = {outputs[0]: d_new}
        else:
            seeds = {}
            for i, slot in enumerate(outputs):
                seeds[slot] = d_new[i] if slot not in seeds else seeds[slot] + d_new[i]
        return self.tape.backward(self.fns, likes, seeds, self.tags, capture), d_pass

    def backward(self, grad):
        xp = _xp(grad)
        likes = self.tape.likes(xp)
        (grads, outer, _), d_pass = self._run_backward(grad, likes)
        n, k = self.n_parts, self.n_inputs
        if outer:  # factors sent to the step's inputs or state parts (rare) are made dense; the weights' stay factors
            grads = [_with_factors(g, outer.get(i)) if i < k + n else g for i, g in enumerate(grads)]
        d_source = None
        if self.needs_input_grad[0]:
            d_source = _inputs_grad(grads[:k], self.layout, self.t, self.source_shape, likes[0], self.grad_rows)
        d_state = None
        if self.needs_input_grad[1]:
            parts = [g if g is not None else xp.zeros(grad.shape[-2:], dtype=grad.dtype) for g in grads[k : k + n]]
            d_state = parts[0] if n == 1 else _stacked(parts)
            if d_pass is not None:
                d_state = d_state + d_pass
        d_params = []
        for i in range(k + n, len(grads)):
            factors = outer.get(i) if outer else None
            if not factors:
                d_params.append(grads[i])
            else:
                pieces = ([] if grads[i] is None else [grads[i]]) + factors
                d_params.append(pieces[0] if len(pieces) == 1 else pieces)
        return (d_source, d_state, *d_params)

    def part_grads(self, grad):
        """∂L/∂part⟨t⟩ in full for each state part, including what flows into it from the step's other parts
        (an LSTM-like a⟨t⟩ = Γo tanh(c⟨t⟩) adds to c's). Needs the saved arrays (retain_graph)."""
        (_, _, captured), d_pass = self._run_backward(grad, self.tape.likes(_xp(grad)), capture=self.tape.outputs)
        xp = _xp(grad)
        full = [captured.get(slot) for slot in self.tape.outputs]
        full = [xp.zeros(grad.shape[-2:], dtype=grad.dtype) if g is None else g for g in full]
        if d_pass is not None:
            full = [g + (d_pass if self.n_parts == 1 else d_pass[i]) for i, g in enumerate(full)]
        # A part that never reaches the output a⟨t⟩ (part 0) gets no gradient on the transparent path, where its
        # tensors are not in the loss's graph at all: None here too, unless the final state sent it one.
        alive = self.tape.parts_reaching_output(self.n_inputs)
        return tuple(g if i in alive or xp.any(g) else None for i, g in enumerate(full))


# ---------------------------------------------------------------- the step object of nn.Recurrent

# cell -> {key: Tape, or the reason (str) the step runs transparently}. A cache beside the cell rather than
# in it: a copy (Bidirectional's reverse direction, deepcopy) or a saved cell starts with none.
_tapes: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_warned: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # cell -> the reasons already warned about (once each)


def recorded_tapes(cell: Any) -> list[Tape]:
    """The tapes ``cell``'s steps replay, one per trusted recording (shapes, dtypes, grad mode, ...): the loop's
    own tape where the input's terms can run batched before the loop (as they do once a layer call finds a
    trusted tape for its input), else the whole step's. ``tape.code.source`` is a tape's code. Works out the
    batching split of a tape that has none yet, as the next layer call would."""
    tapes = [tape for tape in _tapes.get(cell, {}).values() if isinstance(tape, Tape) and tape.trusted]
    splits = [Batching.of(tape, len(cell.state_names)) for tape in tapes]
    return [tape if split is None else split.loop for tape, split in zip(tapes, splits)]


def step_key(x: Tensor, state_shape: tuple, state_dtype: Any, state_grad: bool, params: list[Tensor], cell: Any) -> tuple:
    """Everything that changes a step's ops: shapes, dtypes, backend, which inputs require grad, grad mode, training."""
    return (
        x.shape[1:], x.dtype.str, x.requires_grad, state_shape, np.dtype(state_dtype).str, state_grad,
        tuple((p.shape, p.dtype.str, p.requires_grad) for p in params),
        x.backend.name, settings.grad_enabled, tuple(m.training for m in cell.modules()),
    )


def _without_state(key: tuple) -> tuple:
    """A step key less the state's shape, dtype and grad: the steps of one call share it."""
    return key[:3] + key[6:]


def _allclose(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    a, b = to_host(a), to_host(b)
    if a.shape != b.shape:
        return False
    rtol = 1e-9 if a.dtype == np.float64 and b.dtype == np.float64 else 1e-4
    scale = max(1.0, float(np.max(np.abs(b)))) if b.size else 1.0
    return bool(np.allclose(a, b, rtol=rtol, atol=rtol * scale, equal_nan=True))


class Replay(NamedTuple):
    """What the steps of one layer call replay: the node's source (x, or the batched projection), the
    parameters it reads, the tape, where its inputs lie in a row of the source, and the weights transposed
    for this call (Tape.transposed_weights)."""

    source: Tensor
    params: list[Tensor]
    tape: Tape
    layout: tuple | None = None
    transposed: dict[int, Any] | None = None


class RecordedSteps(Step):
    """The step object of the recorded path, for ``nn.Recurrent``'s time loop (see nn/steps.py); one per layer call.

    The state travels between steps as one tensor: the state itself, or its
    P parts stacked (P, B, H). ``step`` records the cell's step the first
    time a key is seen, checks the first replay, and otherwise runs one
    :class:`RecordedStep` node.
    """

    def __init__(self, cell: Any) -> None:
        super().__init__(cell)
        self.params = list(cell.parameters())
        self.n_parts = len(cell.state_names)
        self.tapes = _tapes.setdefault(cell, {})
        self.keys: dict[tuple, tuple] = {}  # per call: the packed state's (shape, dtype, grad) -> key
        self.x: Tensor | None = None  # this call's input (T, B, I), kept by begin
        self.plan: Batching | None = None  # the split this call's projection was made by, if any
        self.splits: dict[tuple, Batching | None] = {}  # per call: key -> the split whose loop reads the projection
        self.replays_by_state: dict[tuple, Replay] = {}  # per call: the packed state's (shape, dtype, grad) -> find_replay's
        self.grad_rows: GradientRows | None = None  # where the steps reading the projection write its gradient (begin)
        self.returned_checked = False  # whether what the cell's forward returns was checked this call (transparent_step)

    def key(self, x: Tensor, shape: tuple, dtype: Any, grad: bool) -> tuple:
        found = self.keys.get((shape, dtype, grad))
        if found is None:
            found = self.keys[(shape, dtype, grad)] = step_key(x, shape, dtype, grad, self.params, self.cell)
        return found

    def replays(self, x: Tensor, state: Any) -> bool:
        """False when this call's key is known to need the transparent path (warned about once already)."""
        parts = self.cell.state_parts(state)
        shape = parts[0].shape if self.n_parts == 1 else (self.n_parts, *parts[0].shape)
        dtype = np.result_type(*(p.dtype for p in parts))
        return not isinstance(self.tapes.get(self.key(x, shape, dtype, any(p.requires_grad for p in parts))), str)

    # ---- what the time loop asks of a step object

    def begin(self, x: Tensor) -> Tensor:
        """The state-independent values the steps read, for all T steps at once: (T, ...) or (T, F).

        x (T, B, I). Once a trusted tape of this cell shows which of its ops
        depend only on x⟨t⟩, constants and parameters (x W_ih^T + b_ih, say),
        they run here as ordinary graph ops on all steps together, and each
        step reads its row (:class:`Batching`). Until then (the first calls
        record and check the tape) this is x, and each step reads x⟨t⟩.
        """
        self.x = x
        self.plan = self.find_plan(x)
        self.grad_rows = None
        if self.plan is None:
            return x
        projected = roles.projection(self.plan.project(x, self.params), "input")
        # The steps write their rows of the projection's gradient into one array, which becomes that gradient. Any
        # (T, ...) projection will do (a kernel's is (T, B, G·H)): several values joined are (T, F), one row each.
        self.grad_rows = GradientRows(projected._data) if projected.requires_grad else None
        return projected

    def find_plan(self, x: Tensor) -> Batching | None:
        """The split of a trusted tape recorded for inputs like ``x`` (any state), if it batches anything."""
        wanted = _without_state(step_key(x, (), x.dtype, False, self.params, self.cell))
        for key, tape in self.tapes.items():
            if isinstance(tape, Tape) and tape.trusted and _without_state(key) == wanted:
                split = Batching.of(tape, self.n_parts)
                if split is not None:
                    return split
        return None

    def pack(self, state: Any) -> Tensor:
        parts = self.cell.state_parts(state)
        return parts[0] if self.n_parts == 1 else stack(parts)

    def unpack(self, packed: Tensor) -> Any:
        if self.n_parts > 1:
            return self.cell.from_parts(tuple(packed[i] for i in range(self.n_parts)))
        # One part is the state itself, unless the cell keeps it its own way (a dict, say)
        return packed if type(self.cell).from_parts is _base_from_parts else self.cell.from_parts((packed,))

    def output(self, packed: Tensor) -> Tensor:
        if type(self.cell).output is _base_output:
            return packed if self.n_parts == 1 else packed[0]
        return self.cell.output(self.unpack(packed))

    def output_part(self) -> int | None:
        return 0 if self.n_parts > 1 and type(self.cell).output is _base_output else None

    def step(self, projected: Tensor, t: int, packed: Tensor, running: Any) -> Tensor:
        """Step t: one RecordedStep node reading row t of ``projected`` (or x⟨t⟩), or the recording steps."""
        replay = self.replays_by_state.get((packed.shape, packed.dtype, packed.requires_grad))
        if replay is None:
            replay = self.find_replay(projected, t, packed, running)
            if isinstance(replay, Tensor):
                return replay  # the step ran transparently (while recording, or because it cannot be replayed)
        return RecordedStep.apply(replay.source, packed, *replay.params, running=running, t=t, tape=replay.tape,
                                  n_parts=self.n_parts, layout=replay.layout, transposed=replay.transposed,
                                  grad_rows=self.grad_rows if replay.source is projected else None)

    def find_replay(self, projected: Tensor, t: int, packed: Tensor, running: Any) -> Replay | Tensor:
        """What step t replays, kept for this call's later steps once the tape is trusted; or the new state,
        when step t had to run transparently (recording, checking, or a step that cannot be replayed)."""
        x = projected if self.x is None else self.x
        key = self.key(x, packed.shape, packed.dtype, packed.requires_grad)
        entry = self.tapes.get(key)
        if entry is None or (isinstance(entry, Tape) and not entry.trusted):
            entry = self.record_and_check(key, entry, x, t, packed, running)
            if not isinstance(entry, Tape):
                return entry  # the transparent step's result, already computed
            return Replay(x, self.params, entry)  # not kept: the next step checks a new recording on its inputs
        if isinstance(entry, str):
            return self.transparent_step(x, t, packed, running)[0]
        split = self.split_for(key, entry) if self.plan is not None else None
        if split is None:
            source, params, tape, layout = x, self.params, entry, None
        else:  # the loop's own tape, reading this call's projection
            source, params, tape, layout = projected, [self.params[i] for i in split.params], split.loop, split.layout
        replay = Replay(source, params, tape, layout, tape.transposed_weights([p._data for p in params], x))
        self.replays_by_state[(packed.shape, packed.dtype, packed.requires_grad)] = replay
        return replay

    def split_for(self, key: tuple, tape: Tape) -> Batching | None:
        """``tape``'s split if its loop can read this call's projection, else None (the step reads x⟨t⟩)."""
        if key not in self.splits:
            split = Batching.of(tape, self.n_parts)
            self.splits[key] = split if split is not None and split.same_projection(self.plan) else None
        return self.splits[key]

    def transparent_step(self, x: Tensor, t: int, packed: Tensor, running: Any, recording: Recording | None = None):
        """The step as the cell's own ops on tensors: (new packed state, x⟨t⟩, previous parts, new parts)."""
        x_t = roles.step_input(x[t])
        state = self.unpack(packed)
        with settings.override(recording=recording):
            new_state = self.cell.forward(x_t, state)
        if not self.returned_checked:  # once per call: a forward whose return is no state fails here, saying so
            self.cell.check_returned(new_state, packed.shape[-2])
            self.returned_checked = True
        new_parts = self.cell.state_parts(new_state)
        new = self.pack(new_state)
        if running is not None:
            new = where(Tensor.wrap(running), new, packed)
        return new, x_t, self.cell.state_parts(state), new_parts

    def record_and_check(self, key: tuple, tape: Tape | None, x: Tensor, t: int, packed: Tensor, running: Any) -> Tape | Tensor:
        """Run the step transparently while recording it; return the tape to replay, or the transparent result.

        ``tape`` is None the first time (the new recording is checked against
        this step), or the recording to check on this step's new inputs.
        """
        recording = Recording()
        rng = settings.host_rng.bit_generator.state
        global_rng = np.random.get_state()[1].copy()
        draws = x.backend.draws  # the device's generator has no state to compare: its uses are counted
        new, x_t, parts, new_parts = self.transparent_step(x, t, packed, running, recording)
        reason = None
        if (settings.host_rng.bit_generator.state != rng or not np.array_equal(np.random.get_state()[1], global_rng)
                or x.backend.draws != draws):
            reason = "it draws random numbers (dropout inside the cell?), which a replay would repeat, not redraw"
        elif len(new_parts) != self.n_parts or any(not isinstance(p, Tensor) or p.shape != new_parts[0].shape or p.dtype != new_parts[0].dtype
                                                   for p in new_parts):
            reason = "the parts of its new state differ in shape or dtype, so they cannot travel as one tensor"
        fixed = [x_t, *parts, *self.params]
        built = reason or build_tape(recording, fixed, list(new_parts))
        if isinstance(built, str):
            reason = built
        else:
            built.set_needs(tuple(f.requires_grad for f in fixed))
            candidate = built if tape is None else tape
            if not self.matches(candidate, built, recording, fixed, new_parts):
                reason = ("its replay differs from the transparent step: it probably branches in Python on something the "
                          "recording cannot see (a counter, the values of .data, a global)" if tape is not None else
                          "the replay of its recording differs from the transparent step")
        if reason is not None:
            self.tapes[key] = reason
            warned = _warned.setdefault(self.cell, set())
            if reason not in warned:
                warned.add(reason)
                warnings.warn(f"{type(self.cell).__name__}: its steps run transparently (every op a node, slower) because "
                              f"{reason}.", RecordingWarning, stacklevel=callers_level())
            return new
        if tape is None:
            self.tapes[key] = built
            return built
        tape.trust()
        return tape

    def matches(self, tape: Tape, transparent: Tape, recording: Recording, fixed: list[Tensor], new_parts: tuple) -> bool:
        """Whether ``tape``'s replay on this step's inputs gives the transparent step's new state and gradients."""
        if len(tape.outputs) != len(new_parts):
            return False
        tape.set_needs(tuple(f.requires_grad for f in fixed))
        values, fns = tape.forward([f._data for f in fixed])
        if [(v.shape, v.dtype) for v in values] != list(zip(tape.shapes, tape.dtypes)):
            return False  # a replay's backward reads every slot's shape and dtype from the tape (Tape.likes)
        if not all(_allclose(values[s], p._data) for s, p in zip(tape.outputs, new_parts)):
            return False
        if not settings.grad_enabled or not any(p.requires_grad for p in new_parts):
            return True
        rng = np.random.default_rng(0)  # its own generator: checking draws nothing from the user's stream
        xp = _xp(new_parts[0]._data)
        seeds = [xp.asarray(rng.standard_normal(p.shape).astype(p.dtype)) for p in new_parts]
        # The transparent step's own nodes, run backward over its recording (only this step, nothing before it).
        results = [recording.ops[j][3] for j in transparent.kept]
        own_values = [f._data for f in fixed] + [c._data for c in transparent.constants] + [r._data for r in results]
        expected, expected_outer, _ = transparent.backward([r.grad_fn for r in results], own_values, _seeds(transparent.outputs, seeds))
        got, got_outer, _ = tape.backward(fns, tape.likes(xp), _seeds(tape.outputs, seeds))  # as a replay runs it
        for k in range(len(fixed)):
            if fixed[k].requires_grad:
                a = _total(expected[k], expected_outer.get(k), fixed[k])
                b = _total(got[k], got_outer.get(k), fixed[k])
                if not _allclose(b, a):
                    return False
        return True


def _seeds(outputs: tuple[int, ...], grads: list) -> dict[int, Any]:
    seeds: dict[int, Any] = {}
    for slot, grad in zip(outputs, grads):
        seeds[slot] = grad if slot not in seeds else seeds[slot] + grad
    return seeds


def _total(dense: Any, factors: list | None, like: Tensor) -> Any:
    if not factors:
        return dense if dense is not None else _xp(like._data).zeros(like.shape, dtype=like.dtype)
    total = dense.copy() if dense is not None else _xp(like._data).zeros(like.shape, dtype=like.dtype)
    for f in factors:
        total = total + f.dense()
    return total


_base_output = RecurrentCell.output
_base_from_parts = RecurrentCell.from_parts

