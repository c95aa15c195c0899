"""The recorded path: a cell without a hand-written kernel still runs as one graph node per time step.

The first time ``nn.Recurrent`` runs a step of such a cell (outside
``ts.transparent()``), :class:`RecordedSteps` runs the cell's own
``forward`` on tensors, as the transparent path does, while recording its
ops into a tape (nn/tape.py). Later steps run one :class:`RecordedStep`
node each, which replays that tape on raw arrays, forward in order and
backward in reverse. Parameters are read when the step runs, so
``Module.to``, ``load_state_dict`` and re-initialisation are seen. Once a
tape is trusted, the work that does not depend on the state runs once for
all T steps before the loop (nn/time_batching.py); each step's node reads its
row of that projection and writes that row's gradient into one array (a
GradientRows, as a kernel's steps do), which becomes the projection's
gradient. The first calls, which record and check the tape, read x⟨t⟩ and
replay every op.

A tape is keyed by everything that changes the ops (:func:`step_key`):
shapes, dtypes, backend, which inputs require grad, grad mode and
training/eval. It is trusted only after two checks against the transparent
step: the step that records it and the first step that replays it run both
ways and compare the new state and the gradients of a random backward, so
Python-level branching the tape cannot see (a counter, a value read through
``.data``) is caught. A step that cannot be replayed faithfully runs
transparently, with one warning (:class:`RecordingWarning`) naming the
reason:

- it draws random numbers (dropout inside the cell);
- it reads values back to the host (``.item()``, ``float()``, ``.numpy()``);
- a tensor made inside it has a hook or ``retain_grad``;
- it reads a tensor that requires grad but is none of the step's inputs;
- its replay differs from the transparent step (the checks above).

:class:`RecordedStep` is a Function that lives here rather than under ops/
(where every other one does): it is not a primitive with its own equations
but a replay of the tape this layer records from a cell's forward, so it
belongs beside the step object that records the tape and runs it.
"""
from __future__ import annotations

import warnings
import weakref
from typing import Any, NamedTuple

import numpy as np

from .. import blas, settings
from ..backend import backend_of, to_host
from ..callers import callers_level
from ..function import Function
from ..lazy_grad import GradientRows, LazyGrad, OuterGrad, SliceGrad, StepRowsGrad
from ..ops import stack, where
from ..ops.cell_steps import masked, split_masked_grad
from ..tensor import Tensor
from . import roles
from .time_batching import Batching
from .cells import RecurrentCell
from .steps import Step
from .tape import Recording, RecordingWarning, Tape, build_tape


def _stacked(parts: list[Any]) -> Any:
    """The P parts (B, H) as one (P, B, H) array (xp.stack, without its generality's cost on every step)."""
    first, xp = parts[0], backend_of(parts[0]).xp
    out = xp.empty((len(parts), *first.shape), dtype=xp.result_type(*parts))
    for i, part in enumerate(parts):
        out[i] = part
    return out


def _with_factors(dense: Any, factors: list[OuterGrad] | None) -> Any:
    """A gradient in one array: ``dense`` plus any OuterGrad factors sent with it (an op's to a step input: rare)."""
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
    row = backend_of(like).xp.empty(shape[1:], dtype=like.dtype) if block is None else block.array[t]
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
        return masked(new, state, running, backend_of(state).xp)

    def _run_backward(self, grad, likes: list[Any], capture: tuple[int, ...] = ()):
        d_new, d_pass = split_masked_grad(grad, self.running, backend_of(grad).xp)
        seeds = _seeds(self.tape.outputs, [d_new] if self.n_parts == 1 else list(d_new))
        return self.tape.backward(self.fns, likes, seeds, self.tags, capture), d_pass

    def backward(self, grad):
        xp = backend_of(grad).xp
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
        xp = backend_of(grad).xp
        (_, _, captured), d_pass = self._run_backward(grad, self.tape.likes(xp), capture=self.tape.outputs)
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
        xp = backend_of(new_parts[0]._data).xp
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
    """The gradient arriving at each output slot of a tape: one per state part, summed where two parts are one slot."""
    seeds: dict[int, Any] = {}
    for slot, grad in zip(outputs, grads):
        seeds[slot] = grad if slot not in seeds else seeds[slot] + grad
    return seeds


def _total(dense: Any, factors: list | None, like: Tensor) -> Any:
    """``like``'s whole gradient from a tape's backward, as one array: zeros where none arrived."""
    total = _with_factors(dense, factors)
    return backend_of(like._data).xp.zeros(like.shape, dtype=like.dtype) if total is None else total


_base_output = RecurrentCell.output
_base_from_parts = RecurrentCell.from_parts

