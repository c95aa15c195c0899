"""The built-in cells' kernels: the step objects that run one hand-written step op per time step.

A cell is its ``forward``; on the default path its steps are recorded and
replayed (nn/recorded.py). A built-in cell declares one of the kernels below
as ``kernel`` beside its forward. Each runs a step op of ops/cell_steps.py
(RNNStep, GRUStep, SimplifiedGRUStep, LSTMStep: the equations and their
hand-written backward), proven equal to the replay and to the transparent
path to 1e-10 in float64 (tests/test_fused.py, ``ts.testing.check_cell``).
The inputs of all time steps are projected in one matmul beforehand
(``Kernel.begin``); a kernel's ``step`` hands the op that projection, the
time step t, the packed state and ``running``, a (B, 1) bool mask or None
(sequences that have ended keep their previous state).
"""
from __future__ import annotations

from typing import Any

from ..ops import stack
from ..ops.cell_steps import LOOPS, GRUStep, LSTMStep, RNNStep, SimplifiedGRUStep, product_in_loop
from ..tensor import Tensor
from .steps import Kernel

# ---------------------------------------------------------------- the kernels the cells declare


class RNNKernel(Kernel):
    def step(self, projected: Tensor, t: int | None, packed: Tensor, running: Any) -> Tensor:
        cell = self.cell
        return RNNStep.apply(projected, packed, cell.weight_hh, cell.bias_hh, running=running, t=t, relu=cell.nonlinearity == "relu",
                             w_hh_t=self.w_hh_t, grad_rows=self.grad_rows)


class _ProductInLoop(Kernel):
    """A kernel whose compiled steps may multiply by W_hh inside their loop (the LSTM's, the GRU's): small steps
    (ops/cell_steps.product_in_loop) of a cell whose loop can."""

    def multiplies_in_loop(self, projected: Tensor) -> bool:
        return (self.loops_can_multiply() and product_in_loop(projected.shape[-2], self.cell.weight_hh._data)
                and LOOPS.on(projected._data) is not None)

    def loops_can_multiply(self) -> bool:
        """Whether this cell's steps run the loops that multiply: they add the bias in them, so it needs one."""
        return isinstance(getattr(self.cell, "weight_hh", None), Tensor) and isinstance(getattr(self.cell, "bias_hh", None), Tensor)


class GRUKernel(_ProductInLoop):
    def loops_can_multiply(self) -> bool:
        return self.cell.reset_after and super().loops_can_multiply()  # reset_after=False has no compiled loop

    def step(self, projected: Tensor, t: int | None, packed: Tensor, running: Any) -> Tensor:
        cell = self.cell
        return GRUStep.apply(projected, packed, cell.weight_hh, cell.bias_hh, running=running, t=t, reset_after=cell.reset_after,
                             w_hh_t=self.w_hh_t, grad_rows=self.grad_rows)


class SimplifiedGRUKernel(Kernel):
    def step(self, projected: Tensor, t: int | None, packed: Tensor, running: Any) -> Tensor:
        return SimplifiedGRUStep.apply(projected, packed, self.cell.weight_hh, self.cell.bias_hh, running=running, t=t,
                                       w_hh_t=self.w_hh_t, grad_rows=self.grad_rows)


class LSTMKernel(_ProductInLoop):
    """The state (a, c) travels stacked as one (2, B, H) tensor."""

    def loops_can_multiply(self) -> bool:
        return not getattr(self.cell, "peephole", False) and super().loops_can_multiply()  # peepholes: no loop

    def pack(self, state: tuple[Tensor, Tensor]) -> Tensor:
        return stack(state)

    def unpack(self, packed: Tensor) -> tuple[Tensor, Tensor]:
        return packed[0], packed[1]

    def output(self, packed: Tensor) -> Tensor:
        return packed[0]

    def output_part(self) -> int | None:
        return 0 if type(self).output is LSTMKernel.output else None  # a subclass may output something else

    def step(self, projected: Tensor, t: int | None, packed: Tensor, running: Any) -> Tensor:
        cell = self.cell
        peepholes = (cell.weight_ci, cell.weight_cf, cell.weight_co) if cell.peephole else (None, None, None)
        return LSTMStep.apply(projected, packed, cell.weight_hh, cell.bias_hh, *peepholes, running=running, t=t, w_hh_t=self.w_hh_t,
                              grad_rows=self.grad_rows)
