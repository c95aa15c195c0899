"""Step objects: how one cell step runs inside ``nn.Recurrent``'s time loop.

``Recurrent`` has one time loop; the step object is the only thing that
varies between the three ways a step can run:

===================  ===========================================================
path                 the step object
===================  ===========================================================
``"transparent"``    :class:`TransparentStep`: the cell's ``forward`` on tensors,
                     every op a graph node (``ts.transparent()``, ``fused=False``)
``"recorded"``       ``recorded.RecordedSteps``: the forward's ops recorded once,
                     then replayed in one node per step (the default)
``"kernel"``         a :class:`Kernel` a cell declares as its ``kernel``
                     (the built-in ones: nn/fused.py): a hand-written node
===================  ===========================================================

A step object carries the state from step to step in its own form: the
cell's structure (a tensor or a tuple) on the transparent path, one tensor
holding every part, stacked (P, B, H), on the other two.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import blas, settings
from ..ops import where
from ..lazy_grad import GradientRows
from ..tensor import Tensor
from . import roles


class Step:
    """What the time loop asks of a step object, for a cell over one sequence (x (T, B, I)).

    - ``begin(x)``: work done once for all steps before the loop (T, B, ...),
      e.g. every step's input projection in one matmul;
    - ``pack(state)`` / ``unpack(carried)``: the state into and out of the
      form carried between steps;
    - ``step(inputs, t, carried, running)``: step t (from 0) on what ``begin``
      returned; ``running`` (B, 1) bool or None marks the sequences that have
      not ended: the others keep their state and pass their gradient straight
      through (PyTorch's packed sequences);
    - ``output(carried)``: a⟨t⟩ (B, H); ``output_part()``: the part of a packed
      state that is a⟨t⟩, when it is one (the loop then gathers them in one node).
    """

    def __init__(self, cell: Any) -> None:
        self.cell = cell

    def begin(self, x: Tensor) -> Tensor:
        return x

    def pack(self, state: Any) -> Any:
        return state

    def unpack(self, carried: Any) -> Any:
        return carried

    def output(self, carried: Any) -> Tensor:
        return self.cell.output(carried)

    def output_part(self) -> int | None:
        """The part of the packed state that ``output`` picks, when it picks one and does nothing else: the
        time loop then stacks that part of every step's state in one node (``ops.stack_part``) instead of a
        slice per step. None: the loop calls ``output`` at each step."""
        return None

    def step(self, inputs: Tensor, t: int | None, carried: Any, running: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.step")


class TransparentStep(Step):
    """The cell's own ``forward``, every op a node: the graph shows each gate."""

    returned_checked = False  # whether what forward returns was checked, on this call's first step

    def step(self, inputs: Tensor, t: int | None, state: Any, running: Any) -> Any:
        x_t = roles.step_input(inputs[t])
        with settings.override(cell_forward=True):  # x += y makes a new tensor there: the state is an earlier output
            new_state = self.cell.forward(x_t, state)
        if not self.returned_checked:  # once per layer call: a forward whose return is no state fails here, saying so
            self.cell.check_returned(new_state, self.cell.state_parts(state)[0].shape[0])
            self.returned_checked = True
        if running is None:
            return new_state
        mask = Tensor.wrap(running)
        parts = zip(self.cell.state_parts(new_state), self.cell.state_parts(state))
        return self.cell.from_parts(tuple(where(mask, new, old) for new, old in parts))


class Kernel(Step):
    """A cell's hand-written step, declared on the cell as ``kernel = MyKernel``.

    Every step's x W_ih^T + b_ih is computed in one matmul first (``begin``:
    the cell's ``input_projection``); ``step(projected, t, carried, running)``
    then runs one op that reads ``projected[t]`` (all of ``projected`` (B, G·H)
    when t is None: the cell called on its own) and sends back its row's
    gradient: written into ``grad_rows`` (lazy_grad.GradientRows) when the op
    takes it, as the built-in ones do, else a SliceGrad.
    The state travels as the state itself; override ``pack``, ``unpack`` and
    ``output`` for a state of several parts (nn/fused.py's LSTMKernel stacks them).
    """

    w_hh_t: Any = None  # W_hh^T, contiguous, for the steps of one layer call (a cell with a weight_hh; see begin)
    grad_rows: GradientRows | None = None  # where the steps write the projection's gradient, row t each (see begin)

    def begin(self, x: Tensor) -> Tensor:
        projected = self.cell.input_projection(x)
        weight = getattr(self.cell, "weight_hh", None)
        self.w_hh_t = None
        if isinstance(weight, Tensor):
            self.w_hh_t = contiguous_transpose(weight._data, x, self.multiplies_in_loop(projected))
        # The steps write their rows of the projection's gradient into one array, which becomes that gradient.
        self.grad_rows = GradientRows(projected._data) if projected.requires_grad and projected.ndim == 3 else None
        return projected

    def multiplies_in_loop(self, projected: Tensor) -> bool:
        """Whether this call's steps compute their hidden product inside their compiled loop, which reads W_hh^T
        row by row (ops/cell_steps.product_in_loop). No here; the LSTM's and the GRU's kernels answer for theirs."""
        return False

    def output(self, carried: Any) -> Tensor:
        return carried if isinstance(carried, Tensor) else carried[0]


def loop_threads(cell: Any, batch: int) -> int | None:
    """The BLAS threads for a layer's time loop on NumPy (blas.py): one when the cell's step products are small.
    Sized by ``weight_hh`` where the cell has one, else by all its matrices."""
    hidden = getattr(cell, "weight_hh", None)
    weights = [hidden] if isinstance(hidden, Tensor) else [p for p in cell.parameters() if p.ndim == 2]
    return blas.step_threads(batch, [w._data for w in weights])


TRANSPOSE_FROM_ROWS = 128
"""Rows (T × B) a layer call multiplies by its hidden weight from which copying W^T contiguous pays: measured
break-even between 26 and 650 rows across B1–64, H64–512 (the copy of a transposed W is slow); generating one
token at a time (T = 1) never copies."""

PRODUCT_IN_LOOP_FROM_STEPS = 8
"""Time steps from which a layer call whose steps multiply by W_hh inside their compiled loop (B1 H100, say)
copies W_hh^T for their forward, below TRANSPOSE_FROM_ROWS. The copy costs what the loop saves over about 2
steps at H100, 6 at H128 and more towards the largest such weight (docs/performance.md, "The product in the
loop")."""


def contiguous_transpose(weight: Any, x: Tensor, multiplied_in_loop: bool = False) -> Any:
    """weight.T copied into its own contiguous array on NumPy, for a call on ``x`` (T, B, I), or one step's
    (B, I), that multiplies its rows by ``weight`` one time step at a time: OpenBLAS multiplies by a transposed
    view up to 2x slower at a step's sizes (docs/performance.md), and a step that multiplies inside its
    compiled loop (``multiplied_in_loop``) reads W^T row by row. None when the copy would not pay for itself
    (fewer than TRANSPOSE_FROM_ROWS rows, or PRODUCT_IN_LOOP_FROM_STEPS steps in the loop's case) or off NumPy
    (cuBLAS reads a transposed operand at full speed); the step then multiplies by weight.T."""
    if type(weight) is not np.ndarray:
        return None
    many_rows = x.size // x.shape[-1] >= TRANSPOSE_FROM_ROWS
    return transposed_copy(weight) if many_rows or (multiplied_in_loop and x.ndim == 3 and len(x) >= PRODUCT_IN_LOOP_FROM_STEPS) else None


TRANSPOSE_BLOCK = 64
"""The side of the tiles transposed_copy copies: 64 × 64 float32 tiles, read and written, stay in L1."""

TRANSPOSE_TILED_FROM = 48 * 1024
"""Elements from which transposed_copy copies tile by tile. Below, NumPy's own copy is faster than the tiles'
Python loop: 21 against 55 µs for an LSTM's W_hh at H100 (400 × 100), 15 against 20 at H64; at H128 (65,536
elements) the tiles win, 84 against 99 µs."""


def transposed_copy(matrix: np.ndarray) -> np.ndarray:
    """matrix.T as a new C-contiguous array, copied tile by tile when it is large.

    NumPy copies a transposed view element by element across the whole
    matrix, and every write lands in another cache line: 5.6 ms for a
    2048 × 512 float32 W_hh (an LSTM's at H512). In 64 × 64 tiles the same
    copy takes 1.5 ms (bench/roofline.py's machine; docs/performance.md).
    """
    rows, columns = matrix.shape
    if rows * columns < TRANSPOSE_TILED_FROM:
        return np.ascontiguousarray(matrix.T)
    out = np.empty((columns, rows), dtype=matrix.dtype)
    step = TRANSPOSE_BLOCK
    for i in range(0, rows, step):
        for j in range(0, columns, step):
            out[j : j + step, i : i + step] = matrix[i : i + step, j : j + step].T
    return out


def path_of(cell: Any) -> str:
    """Which path ``cell``'s steps take here: "transparent", "kernel" or "recorded" (see the module's table)."""
    if settings.transparent or not cell.fused:
        return "transparent"
    if cell.kernel is not None and settings.kernels:
        return "kernel"
    return "recorded"


def running_masks(lengths: np.ndarray | None, steps: int, xp: Any) -> list[Any]:
    """Per time step, the (B, 1) bool mask of the sequences still running, or None when all are.

    Built once per layer call: one upload to the backend, sliced per step.
    """
    if lengths is None:
        return [None] * steps
    alive = lengths[None, :] > np.arange(steps)[:, None]  # (T, B)
    on_backend = xp.asarray(alive[:, :, None])
    return [None if alive[t].all() else on_backend[t] for t in range(steps)]


def label_state(cell: Any, carried: Any) -> None:
    """Give a step's new state its role: each part, or one tensor that packs them all."""
    if isinstance(carried, Tensor) and len(cell.state_names) > 1:
        roles.packed_state(carried, cell.state_names)
    elif isinstance(carried, Tensor):  # one part, carried as itself (a cell that keeps it in a dict gets it unpacked)
        roles.state(carried, cell.state_names[0])
    else:
        for part, symbol in zip(cell.state_parts(carried), cell.state_names):
            roles.state(part, symbol)


