"""The step tape: the primitive ops of one cell step, recorded once, replayed on raw arrays.

The first time ``nn.Recurrent`` runs a step of a cell without a kernel
(outside ``ts.transparent()``), it runs the cell's own ``forward`` on
tensors, as the transparent path does, and notes every primitive op it
applies (``Function.apply`` reports to ``settings.recording``, a
:class:`Recording`). :func:`build_tape` keeps the ops that lead from the
step's inputs (x⟨t⟩, the previous state's parts, the parameters) to the new
state: a :class:`Tape`, over numbered slots of arrays. ``Tape.forward``
replays it in order, ``Tape.backward`` in reverse, each recorded op's own
``backward`` accumulating the gradients: an interpreter, written to be read,
which replays a new tape while nn/recorded.py checks it, and every step under
``detect_anomaly``. A trusted tape's steps run it written out as Python
instead (nn/tape_code.py).

Which tapes are trusted, and the node that replays one per time step, are
nn/recorded.py's; the split of a tape into the work batched over time and
the loop's own tape is nn/time_batching.py's.
"""
from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import settings
from ..anomaly import place
from ..backend import backend_of
from ..callers import callers_level
from ..engine import check_input_grads, wrong_grad_shape
from ..function import Function
from ..lazy_grad import LazyGrad, OuterGrad, SliceGrad
from ..ops import GetItem, Linear
from ..tensor import Tensor
from .steps import contiguous_transpose
from .tape_code import TapeCode

if TYPE_CHECKING:  # a tape keeps its split (Tape.batching), which time_batching.py makes from it
    from .time_batching import Batching


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
        self.kept: list[int] = []  # which of a recording's ops the tape replays (set by build_tape; read by the check)
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
        # The interpreter: it replays new tapes while they are checked, and every step under detect_anomaly; a trusted
        # tape's steps run the generated code above, so this loop is written to be read, not to be fast.
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
                if index is not None and slices_last_axis(index, len(shape)):
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
        """Add ``grad`` (an array, a LazyGrad, or a list of them) to ``slot``'s gradient by the engine's rule
        (engine._accumulate): the first array is kept as it is, the buffer copied when a second arrives, then summed
        in place. Unlike the engine's, a weight's deferred parts go to ``outer`` for the engine to sum over all
        steps, and a step input's lazy parts are added at once: its gradient is complete when the replay ends."""
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
    tape.kept = kept_at  # the check runs the transparent step's own nodes backward, these ops'
    slots = [*fixed, *constants, *(result for _, _, _, result in kept)]
    tape.shapes, tape.dtypes = [t.shape for t in slots], [t.dtype for t in slots]  # one step's, for batching over time
    return tape


def slices_last_axis(index: Any, ndim: int) -> bool:
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
