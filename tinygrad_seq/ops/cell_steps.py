"""The built-in cells' step ops: one graph node per cell step, with a hand-written backward.

A cell is its ``forward``; on the default path its steps are recorded and
replayed (nn/recorded.py). A built-in cell declares a kernel (nn/fused.py)
that runs one of the ops below instead: a step written by hand, faster than
the replay, and proven equal to it and to the transparent path to 1e-10 in
float64 (tests/test_fused.py, ``ts.testing.check_cell``). The inputs of all
time steps are projected in one matmul beforehand (``Kernel.begin``), so a
step receives ``projected`` (T, B, G·H) and its index t, reads
``projected[t]``, and writes that row's gradient into the layer call's
``grad_rows`` (lazy_grad.GradientRows: the rows become the projection's
gradient), or sends a SliceGrad without it (no dense (T, B, G·H) gradient
per step either way).

By the op convention the tensors are positional — ``projected``, the
previous state, ``w_hh`` (G·H, H), ``b_hh`` (G·H,) or None, and the LSTM's
peephole weights (H,) or None — and everything else is a keyword: ``t`` (the
row of ``projected`` to read, or None when ``projected`` is one step's
(B, G·H)), the cell's options (``relu``, ``reset_after``), and ``running``,
a (B, 1) bool mask or None: sequences that have ended keep their previous
state, and their gradient passes straight through to it (PyTorch's
packed-sequence semantics). ``w_hh_t`` optionally gives W_hh^T laid out
contiguously, made once per layer call by the kernel (see
``nn.steps.contiguous_transpose`` for why); ``grad_rows``, the GradientRows
above. Both are layout keywords: the results are the same without them.
"""
from __future__ import annotations

from typing import Any


import numpy as np

from .. import blas, compiled
from ..backend import backend_of
from ..function import Function
from ..lazy_grad import OuterGrad, RowSumGrad, SliceGrad, StepRowsGrad
from .elementwise import logistic


LOOPS = compiled.Loops("tinygrad_seq.ops.loops", "the float32 LSTM and GRU steps run their NumPy equations", [np.float32])
_compiled_loops = LOOPS.on  # ops/loops.py when its loops can run on the arrays given, else None: the NumPy equations run

PRODUCT_IN_LOOP_MACS = 131_072
"""Multiply-adds of a float32 LSTM or GRU step's hidden product (B × G·H × H) up to which the step's compiled
loop computes a⟨t−1⟩ W_hh^T itself (ops/loops.py's lstm_step_forward, gru_step_forward; going back, the gate
gradients times W_hh), instead of calling BLAS for it: a NumPy matmul call costs more than such a product. Up to
here an LSTM step op took 0.44–0.70 of its time forward and 0.59–0.87 back; at 262,144 (B4 H128, B16 H64) the
backward gained nothing or lost (bench/product_in_loop.py; docs/performance.md, "The product in the loop")."""


def product_in_loop(batch: int, w_hh: Any) -> bool:
    """Whether a compiled LSTM or GRU step of ``batch`` rows computes its hidden product itself: a product within
    PRODUCT_IN_LOOP_MACS, by a W_hh the loops take. Going back that is all; going forward the step also needs a
    bias and W_hh^T contiguous (``w_hh_t``, see _loops_multiplying), which the kernels copy for a layer call of
    nn.steps.PRODUCT_IN_LOOP_FROM_STEPS steps or more."""
    return batch * w_hh.size <= PRODUCT_IN_LOOP_MACS and _compiled_loops(w_hh) is not None


def _loops_multiplying(x_t, state_prev, w_hh, b_hh, w_hh_t):
    """ops/loops.py when a step's forward loop is to compute its hidden product too (x_t + b_hh + a⟨t−1⟩ W_hh^T, a⟨t−1⟩
    the last (B, H) of ``state_prev``), else None: BLAS multiplies, and the loop (if it can run) does the rest."""
    if w_hh_t is None or b_hh is None or not product_in_loop(state_prev.shape[-2], w_hh):
        return None
    return _compiled_loops(x_t, state_prev, w_hh_t, b_hh)


def _step_input(projected, t):
    return projected if t is None else projected[t]


def _gate_grads_out(grad_rows, t):
    """(block, row): where a step's backward writes its gate gradients (B, G·H), row t of a block of the layer
    call's GradientRows, when the kernel gave one; (None, None) for a cell called on its own (the op makes its own
    array)."""
    if grad_rows is None or t is None:
        return None, None
    block = grad_rows.row(t)
    return block, block.array[t]


def _input_grad(d_gates, t, shape, block):
    """What the step sends ``projected``: its gate gradients, row t of ``block`` when there is one."""
    if t is None:
        return d_gates
    return SliceGrad((t,), d_gates, shape) if block is None else StepRowsGrad(t, block)


def _hidden_grads(node, d_gates, h_prev, block):
    """(W_hh's OuterGrad, b_hh's RowSumGrad or None) from a step's gate gradients d_gates (B, G·H). When they are
    row t of ``block``'s array, both say so (``source``): the parts of consecutive steps are then read as one view
    of those rows (lazy_grad.joined_rows), not copied."""
    source = None if block is None else (block.array, node.t)
    d_b = RowSumGrad(d_gates, node.w_hh.shape[:1], source) if node.needs_input_grad[3] else None
    return OuterGrad(d_gates, h_prev, node.w_hh.shape, source=source), d_b


def _hidden_matmul(h, w_hh, b_hh, w_hh_t=None, rows=None):
    """h W_hh^T + b_hh (only the gates in ``rows``, a slice, when given), multiplying by ``w_hh_t`` (W_hh^T,
    contiguous) when the kernel made one."""
    if rows is not None:
        w_hh, b_hh = w_hh[rows], None if b_hh is None else b_hh[rows]
        w_hh_t = None if w_hh_t is None else w_hh_t[:, rows]
    out = h @ (w_hh.T if w_hh_t is None else w_hh_t)
    if b_hh is not None:
        out += b_hh
    return out


def _step_threads(node):
    """The BLAS threads of a step op's backward (blas.py): one for a small step on NumPy, else all."""
    return blas.step_threads(node.inputs[1]._data.shape[-2], (node.inputs[2]._data,))


def _blocks(gate_block, count):
    """The ``count`` (B, H) column blocks of a loop's (B, count·H) gate block, as views: what a backward that
    cannot run the loop (a strided gradient arriving, say) reads instead of the gates the NumPy path saves."""
    H = gate_block.shape[1] // count
    return tuple(gate_block[:, k * H : (k + 1) * H] for k in range(count))


def masked(new, old, running, xp):
    """``new`` for the sequences still running (``running``, a (B, 1) bool mask; None: all are), else ``old``."""
    return new if running is None else xp.where(running, new, old)


def split_masked_grad(grad, running, xp):
    """(gradient for the freshly computed state, gradient passed straight to the previous state or None)."""
    if running is None:
        return grad, None
    return xp.where(running, grad, 0), xp.where(running, 0, grad)


class RNNStep(Function):
    """a⟨t⟩ = tanh(x_proj⟨t⟩ + a⟨t−1⟩ W_hh^T + b_hh) (or relu)."""

    __slots__ = ("t", "shape", "h_prev", "h", "w_hh", "relu", "running", "grad_rows")
    saved_inputs = (1, 2)  # h_prev, w_hh
    blas_threads = _step_threads
    layout_keywords = ("w_hh_t", "grad_rows")
    saves_output = True

    def forward(self, projected, h_prev, w_hh, b_hh, *, running, t, relu=False, w_hh_t=None, grad_rows=None):
        xp = backend_of(h_prev).xp
        pre = _hidden_matmul(h_prev, w_hh, b_hh, w_hh_t)
        pre += _step_input(projected, t)
        h = xp.maximum(pre, 0, out=pre) if relu else xp.tanh(pre, out=pre)
        self.t, self.shape, self.h_prev, self.w_hh, self.relu, self.running = t, projected.shape, h_prev, w_hh, relu, running
        self.h, self.grad_rows = h, grad_rows
        return masked(h, h_prev, running, xp)

    def backward(self, grad):
        xp = backend_of(grad).xp
        d_h, d_pass = split_masked_grad(grad, self.running, xp)
        block, row = _gate_grads_out(self.grad_rows, self.t)
        d_pre = xp.multiply(d_h, (self.h > 0) if self.relu else 1 - self.h * self.h, out=row)
        d_h_prev = d_pre @ self.w_hh
        if d_pass is not None:
            d_h_prev += d_pass
        d_w_hh, d_b = _hidden_grads(self, d_pre, self.h_prev, block)
        return _input_grad(d_pre, self.t, self.shape, block), d_h_prev, d_w_hh, d_b


class GRUStep(Function):
    """GRUCell's equations in one node; ``reset_after`` as in GRUCell."""

    __slots__ = ("t", "shape", "h_prev", "w_hh", "running", "r", "z", "n", "gh_n", "rh", "reset_after", "gate_block", "grad_rows")
    saved_inputs = (1, 2)  # h_prev, w_hh
    blas_threads = _step_threads
    layout_keywords = ("w_hh_t", "grad_rows")

    def forward(self, projected, h_prev, w_hh, b_hh, *, running, t, reset_after=True, w_hh_t=None, grad_rows=None):
        xp = backend_of(h_prev).xp
        H = h_prev.shape[1]
        gx = _step_input(projected, t)
        gh = None
        loops = _loops_multiplying(gx, h_prev, w_hh, b_hh, w_hh_t) if reset_after else None
        if loops is None:  # BLAS multiplies; the loop, where it can run, does the rest
            # reset_after=False multiplies Γr ⊙ a⟨t−1⟩ by the candidate's rows of W_hh below: here only Γr's and z's
            gh = _hidden_matmul(h_prev, w_hh, b_hh, w_hh_t, rows=None if reset_after else slice(0, 2 * H))
            loops = _compiled_loops(gx, gh, h_prev) if reset_after else None
        rh = gate_block = None  # rh: Γr ⊙ a⟨t−1⟩ (reset_after=False); gate_block: the loop's [Γr z ã gh_n]
        if loops is not None:  # the same equations, one compiled loop
            gate_block, h = xp.empty((h_prev.shape[0], 4 * H), h_prev.dtype), xp.empty_like(h_prev)
            if gh is None:
                loops.gru_step_forward(gx, b_hh, h_prev, w_hh_t, gate_block, h)
            else:
                loops.gru_forward(gx, gh, h_prev, gate_block, h)
            r = z = n = gh_n = None  # in the block; _blocks gives them to a backward that needs them
        else:
            r = logistic(gx[:, :H] + gh[:, :H])
            z = logistic(gx[:, H : 2 * H] + gh[:, H : 2 * H])
            if reset_after:
                gh_n = gh[:, 2 * H :].copy()  # a copy, so the whole (B, 3H) gh need not be kept for backward
                n = xp.tanh(gx[:, 2 * H :] + r * gh_n)
            else:
                gh_n, rh = None, r * h_prev
                n = xp.tanh(gx[:, 2 * H :] + _hidden_matmul(rh, w_hh, b_hh, w_hh_t, rows=slice(2 * H, None)))
            h = n + z * (h_prev - n)  # = (1 − z) n + z a⟨t−1⟩
        self.t, self.shape, self.h_prev, self.w_hh, self.running = t, projected.shape, h_prev, w_hh, running
        self.r, self.z, self.n, self.gh_n, self.rh, self.reset_after, self.gate_block = r, z, n, gh_n, rh, reset_after, gate_block
        self.grad_rows = grad_rows
        return masked(h, h_prev, running, xp)

    def backward(self, grad):
        xp = backend_of(grad).xp
        d_h, d_pass = split_masked_grad(grad, self.running, xp)
        h_prev, w_hh = self.h_prev, self.w_hh
        H = h_prev.shape[1]
        loops = None if self.gate_block is None else _compiled_loops(d_h, h_prev)
        block, row = _gate_grads_out(self.grad_rows, self.t)
        if loops is not None:  # the same equations, one compiled loop
            d_gh, d_h_prev = xp.empty((len(d_h), 3 * H), d_h.dtype), xp.empty_like(d_h)
            d_gx = xp.empty_like(d_gh) if row is None else row
            loops.gru_backward(d_h, self.gate_block, h_prev, d_gx, d_gh, d_h_prev)
            if product_in_loop(len(d_h), w_hh):
                loops.add_rows_times(d_gh, w_hh, d_h_prev)
            else:
                d_h_prev += d_gh @ w_hh
            d_w_hh = OuterGrad(d_gh, h_prev, w_hh.shape)
        else:
            r, z, n, gh_n = (self.r, self.z, self.n, self.gh_n) if self.gate_block is None else _blocks(self.gate_block, 4)
            d_n_pre = d_h * (1 - z) * (1 - n * n)
            d_z_pre = d_h * (h_prev - n) * z * (1 - z)
            d_h_prev = d_h * z
            if self.reset_after:
                d_r_pre = d_n_pre * gh_n * r * (1 - r)
                d_gh = xp.concatenate([d_r_pre, d_z_pre, d_n_pre * r], axis=1)
                d_h_prev += d_gh @ w_hh
                d_w_hh = OuterGrad(d_gh, h_prev, w_hh.shape)
            else:
                d_rh = d_n_pre @ w_hh[2 * H :]
                d_r_pre = d_rh * h_prev * r * (1 - r)
                d_gh_rz = xp.concatenate([d_r_pre, d_z_pre], axis=1)
                d_h_prev += d_rh * r + d_gh_rz @ w_hh[: 2 * H]
                d_w_hh = [OuterGrad(d_gh_rz, h_prev, w_hh.shape, slice(0, 2 * H)), OuterGrad(d_n_pre, self.rh, w_hh.shape, slice(2 * H, 3 * H))]
                d_gh = xp.concatenate([d_gh_rz, d_n_pre], axis=1)
            d_gx = xp.concatenate([d_r_pre, d_z_pre, d_n_pre], axis=1, out=row)
        if d_pass is not None:
            d_h_prev += d_pass
        d_b = RowSumGrad(d_gh, w_hh.shape[:1]) if self.needs_input_grad[3] else None
        return _input_grad(d_gx, self.t, self.shape, block), d_h_prev, d_w_hh, d_b


class SimplifiedGRUStep(Function):
    """SimplifiedGRUCell's equations in one node."""

    __slots__ = ("t", "shape", "h_prev", "w_hh", "running", "z", "n", "grad_rows")
    saved_inputs = (1, 2)  # h_prev, w_hh
    blas_threads = _step_threads
    layout_keywords = ("w_hh_t", "grad_rows")

    def forward(self, projected, h_prev, w_hh, b_hh, *, running, t, w_hh_t=None, grad_rows=None):
        xp = backend_of(h_prev).xp
        H = h_prev.shape[1]
        gates = _hidden_matmul(h_prev, w_hh, b_hh, w_hh_t)
        gates += _step_input(projected, t)
        z = logistic(gates[:, :H])
        n = xp.tanh(gates[:, H:])
        self.t, self.shape, self.h_prev, self.w_hh, self.running, self.z, self.n = t, projected.shape, h_prev, w_hh, running, z, n
        self.grad_rows = grad_rows
        return masked(n + z * (h_prev - n), h_prev, running, xp)

    def backward(self, grad):
        xp = backend_of(grad).xp
        d_h, d_pass = split_masked_grad(grad, self.running, xp)
        z, n, h_prev = self.z, self.n, self.h_prev
        block, row = _gate_grads_out(self.grad_rows, self.t)
        d_gates = xp.concatenate([d_h * (h_prev - n) * z * (1 - z), d_h * (1 - z) * (1 - n * n)], axis=1, out=row)
        d_h_prev = d_h * z + d_gates @ self.w_hh
        if d_pass is not None:
            d_h_prev += d_pass
        d_w_hh, d_b = _hidden_grads(self, d_gates, h_prev, block)
        return _input_grad(d_gates, self.t, self.shape, block), d_h_prev, d_w_hh, d_b


class LSTMStep(Function):
    """LSTMCell's equations in one node. The state is packed as one (2, B, H) tensor: [a⟨t⟩, c⟨t⟩]."""

    __slots__ = ("t", "shape", "state_prev", "w_hh", "running", "i", "f", "g", "o", "c", "peepholes", "gate_block", "grad_rows")
    saved_inputs = (1, 2, 4, 5, 6)  # the packed state, w_hh and the peephole weights
    blas_threads = _step_threads
    layout_keywords = ("w_hh_t", "grad_rows")
    saves_output = True  # c is a view of the packed result

    def forward(self, projected, state_prev, w_hh, b_hh, w_ci, w_cf, w_co, *, running, t, w_hh_t=None, grad_rows=None):
        xp = backend_of(state_prev).xp
        h_prev, c_prev = state_prev[0], state_prev[1]
        H = h_prev.shape[1]
        x_t = _step_input(projected, t)
        peephole = w_ci is not None
        gates = None
        loops = None if peephole else _loops_multiplying(x_t, state_prev, w_hh, b_hh, w_hh_t)
        if loops is None:  # BLAS multiplies; the loop, where it can run, does the rest
            gates = _hidden_matmul(h_prev, w_hh, b_hh, w_hh_t)
            gates += x_t
            loops = None if peephole else _compiled_loops(gates, c_prev)
        if loops is not None:  # the same equations, one compiled loop
            gate_block, state = xp.empty((h_prev.shape[0], 4 * H), state_prev.dtype), xp.empty_like(state_prev)  # [Γi Γf g̃ Γo], [a, c]
            if gates is None:
                loops.lstm_step_forward(x_t, b_hh, h_prev, w_hh_t, c_prev, gate_block, state)
            else:
                loops.lstm_forward(gates, c_prev, gate_block, state)
            i = f = g = o = None  # in the block; _blocks gives them to part_grads and a backward that needs them
            c = state[1]
        else:
            gate_block = None
            if peephole:
                gates[:, :H] += w_ci * c_prev
                gates[:, H : 2 * H] += w_cf * c_prev
            i = logistic(gates[:, :H])
            f = logistic(gates[:, H : 2 * H])
            g = xp.tanh(gates[:, 2 * H : 3 * H])
            # [a⟨t⟩, c⟨t⟩], written in place (c is saved as a view of it), in the dtype the arithmetic promotes to:
            # an int or lower-precision state must not be cast down into.
            state = xp.empty(state_prev.shape, dtype=xp.result_type(gates, state_prev))
            c = xp.multiply(f, c_prev, out=state[1])
            c += i * g
            o_pre = gates[:, 3 * H :]
            if peephole:
                o_pre = o_pre + w_co * c
            o = logistic(o_pre)
            xp.tanh(c, out=state[0])
            state[0] *= o
        self.t, self.shape, self.state_prev, self.w_hh, self.running = t, projected.shape, state_prev, w_hh, running
        self.i, self.f, self.g, self.o, self.c, self.gate_block = i, f, g, o, c, gate_block
        self.peepholes = (w_ci, w_cf, w_co) if peephole else None
        self.grad_rows = grad_rows
        return masked(state, state_prev, running, xp)

    def part_grads(self, grad):
        """(∂L/∂a⟨t⟩, ∂L/∂c⟨t⟩) in full: to the packed gradient's c part (a⟨t⟩ held fixed) adds what flows
        through a⟨t⟩ = Γo tanh(c⟨t⟩) inside the step. Needs the saved arrays (retain_graph)."""
        xp = backend_of(grad).xp
        d_state, d_pass = split_masked_grad(grad, self.running, xp)
        o = self.o if self.gate_block is None else _blocks(self.gate_block, 4)[3]
        total = d_state[1] + d_state[0] * o * (1 - xp.tanh(self.c) ** 2)
        return grad[0], (total if d_pass is None else total + d_pass[1])

    def backward(self, grad):
        xp = backend_of(grad).xp
        d_state, d_pass = split_masked_grad(grad, self.running, xp)
        d_h, d_c = d_state[0], d_state[1]
        c = self.c
        h_prev, c_prev = self.state_prev[0], self.state_prev[1]
        loops = None if self.gate_block is None else _compiled_loops(d_h, d_c, c_prev)
        block, row = _gate_grads_out(self.grad_rows, self.t)
        if loops is not None:  # the same equations, one compiled loop
            d_gates = xp.empty_like(self.gate_block) if row is None else row
            d_state_prev = xp.empty(d_state.shape, d_h.dtype)
            if product_in_loop(d_h.shape[0], self.w_hh):
                loops.lstm_step_backward(d_h, d_c, self.gate_block, c, c_prev, self.w_hh, d_gates, d_state_prev)
            else:
                loops.lstm_backward(d_h, d_c, self.gate_block, c, c_prev, d_gates, d_state_prev[1])
                xp.matmul(d_gates, self.w_hh, out=d_state_prev[0])
            peephole_grads = (None, None, None)
        else:
            i, f, g, o = (self.i, self.f, self.g, self.o) if self.gate_block is None else _blocks(self.gate_block, 4)
            tanh_c = xp.tanh(c)  # recomputed: cheaper than keeping it for every step
            d_o_pre = d_h * tanh_c * o * (1 - o)
            d_c = d_c + d_h * o * (1 - tanh_c * tanh_c)
            if self.peepholes is not None:
                w_ci, w_cf, w_co = self.peepholes
                d_c = d_c + d_o_pre * w_co
            d_i_pre = d_c * g * i * (1 - i)
            d_f_pre = d_c * c_prev * f * (1 - f)
            d_g_pre = d_c * i * (1 - g * g)
            d_c_prev = d_c * f
            peephole_grads = (None, None, None)
            if self.peepholes is not None:
                d_c_prev += d_i_pre * w_ci + d_f_pre * w_cf
                peephole_grads = ((d_i_pre * c_prev).sum(axis=0), (d_f_pre * c_prev).sum(axis=0), (d_o_pre * c).sum(axis=0))
            d_gates = xp.concatenate([d_i_pre, d_f_pre, d_g_pre, d_o_pre], axis=1, out=row)
            d_state_prev = xp.stack([d_gates @ self.w_hh, d_c_prev])
        if d_pass is not None:
            d_state_prev += d_pass
        d_w_hh, d_b = _hidden_grads(self, d_gates, h_prev, block)
        return (_input_grad(d_gates, self.t, self.shape, block), d_state_prev, d_w_hh, d_b, *peephole_grads)
