"""Loading a course notebook's parameter dictionary into a cell.

The course writes examples as columns, x⟨t⟩ (n_x, m), and gates as one matrix
applied to the stacked vector [a⟨t−1⟩; x⟨t⟩]: W_f (n_a, n_a + n_x), b_f (n_a, 1).
The code (like PyTorch) writes examples as rows, x (m, n_x), and keeps the
input and hidden halves apart: weight_ih (G·n_a, n_x), weight_hh (G·n_a, n_a).
``load_course_parameters`` does the conversion, so a notebook's weights give
the same a⟨t⟩ and c⟨t⟩ here (see docs/notation.md), and ``course_gradients``
converts the cell's gradients back (``ts.course.check`` uses both).

========================  ======================================  ==============================
cell                      course keys                             equations
========================  ======================================  ==============================
RNNCell                   Wax, Waa, ba (Wya, by are the output    a = tanh(Waa a + Wax x + ba)
                          layer's and are ignored)
LSTMCell                  Wf, bf, Wi, bi, Wc, bc, Wo, bo          the notebook's lstm_cell_forward
GRUCell(reset_after=      Wu, bu, Wr, br, Wc, bc                  c̃ = tanh(Wc[Γr*c, x] + bc),
False)                                                            c = Γu c̃ + (1 − Γu) c
SimplifiedGRUCell         Wu, bu, Wc, bc                          c̃ = tanh(Wc[c, x] + bc)
========================  ======================================  ==============================
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .cells import GRUCell, LSTMCell, RecurrentCell, RNNCell, SimplifiedGRUCell


def _split(weight: np.ndarray, n_a: int) -> tuple[np.ndarray, np.ndarray]:
    """A course gate matrix applied to [a; x] as its (input, hidden) halves."""
    return weight[:, n_a:], weight[:, :n_a]


def load_course_parameters(cell: RecurrentCell, parameters: Mapping[str, Any]) -> RecurrentCell:
    """Copy a course notebook's parameter dict into ``cell`` (its dtype and backend kept); returns the cell.

    The update gate Γu of the course's GRUs is 1 − z here; since
    1 − σ(s) = σ(−s), its weights and bias enter z with their sign flipped.
    """
    n_a, n_x = cell.hidden_size, cell.input_size
    kind = type(cell).__name__
    keys = _course_keys(cell, "load_course_parameters")
    missing = [k for k in keys if k not in parameters]
    if missing:
        raise KeyError(f"load_course_parameters({kind}): the dict lacks {', '.join(missing)}; it needs {', '.join(keys)}")
    if cell.bias_ih is None:
        raise ValueError(f"load_course_parameters({kind}): the course's cells have biases; build the cell with bias=True")
    p = {k: np.asarray(parameters[k], dtype=np.float64) for k in keys}
    for k in keys:
        if k.startswith("b"):
            expected = (n_a, 1)
        elif k == "Wax":
            expected = (n_a, n_x)
        elif k == "Waa":
            expected = (n_a, n_a)
        else:
            expected = (n_a, n_a + n_x)
        if p[k].shape != expected:
            raise ValueError(f"load_course_parameters({kind}): {k} has shape {p[k].shape}; a cell with n_x={n_x}, n_a={n_a} needs {expected}")

    if isinstance(cell, RNNCell):
        w_ih, w_hh, b_ih = p["Wax"], p["Waa"], p["ba"].ravel()
    else:
        gates = [(sign * p[f"W{gate}"], sign * p[f"b{gate}"]) for gate, sign in _gates(cell)]
        halves = [_split(w, n_a) for w, _ in gates]
        w_ih = np.concatenate([x_half for x_half, _ in halves])
        w_hh = np.concatenate([a_half for _, a_half in halves])
        b_ih = np.concatenate([b.ravel() for _, b in gates])
    for parameter, value in ((cell.weight_ih, w_ih), (cell.weight_hh, w_hh), (cell.bias_ih, b_ih), (cell.bias_hh, np.zeros_like(b_ih))):
        parameter._write(..., parameter.backend.asarray(value.astype(parameter.dtype)))
    return cell


def course_gradients(cell: RecurrentCell) -> dict[str, np.ndarray]:
    """The gradients of a cell filled by ``load_course_parameters``, in the course's layout and keys.

    Run backward first. Returns host float64 arrays under the keys the
    notebook's backward functions use: dWax (n_a, n_x), dWaa (n_a, n_a),
    dba (n_a, 1) for an RNNCell; dWf (n_a, n_a + n_x), dbf (n_a, 1), ... for
    the gated cells (dWu, dbu of a GRU with the sign of z = 1 − Γu undone).
    The course's bias went into ``bias_ih`` (``bias_hh`` is held at zero), so
    its gradient is ``bias_ih``'s.
    """
    kind = type(cell).__name__
    _course_keys(cell, "course_gradients")  # only a cell the course has parameters for: its keys would be wrong
    parameters = (cell.weight_ih, cell.weight_hh, cell.bias_ih)
    if any(p is None or p.grad is None for p in parameters):
        raise ValueError(f"course_gradients({kind}): the cell has no gradients; load_course_parameters, run it, then call backward")
    d_ih, d_hh, d_b = (p.backend.to_host(p.grad).astype(np.float64) for p in parameters)
    if isinstance(cell, RNNCell):
        return {"dWax": d_ih, "dWaa": d_hh, "dba": d_b[:, None]}
    n_a, grads = cell.hidden_size, {}
    for index, (gate, sign) in enumerate(_gates(cell)):
        rows = slice(index * n_a, (index + 1) * n_a)
        grads[f"dW{gate}"] = sign * np.concatenate([d_hh[rows], d_ih[rows]], axis=1)  # [a⟨t−1⟩; x⟨t⟩] order
        grads[f"db{gate}"] = sign * d_b[rows, None]
    return grads


def _course_keys(cell: RecurrentCell, op: str) -> tuple[str, ...]:
    """The course's parameter keys for ``cell`` (see the module's table), or a TypeError naming ``op`` for a cell the
    course has none for (a peephole LSTM, PyTorch's GRU, a cell of yours)."""
    if isinstance(cell, RNNCell):
        return ("Wax", "Waa", "ba")
    if isinstance(cell, LSTMCell) and not cell.peephole:
        return ("Wf", "bf", "Wi", "bi", "Wc", "bc", "Wo", "bo")
    if isinstance(cell, GRUCell) and not cell.reset_after:
        return ("Wu", "bu", "Wr", "br", "Wc", "bc")
    if isinstance(cell, SimplifiedGRUCell):
        return ("Wu", "bu", "Wc", "bc")
    raise TypeError(f"{op}: the course has no parameters for {cell!r}; it fills RNNCell, LSTMCell (without peepholes), "
                    "GRUCell(reset_after=False) and SimplifiedGRUCell")


def _gates(cell: RecurrentCell) -> list[tuple[str, int]]:
    """The course gate (the letter of its keys: f for Wf, bf) and its sign, in the cell's stacking order."""
    if isinstance(cell, LSTMCell):
        return [("i", 1), ("f", 1), ("c", 1), ("o", 1)]  # PyTorch's order i, f, g, o
    if isinstance(cell, GRUCell):
        return [("r", 1), ("u", -1), ("c", 1)]  # r, z = 1 − Γu, n
    if isinstance(cell, SimplifiedGRUCell):
        return [("u", -1), ("c", 1)]  # z = 1 − Γu, n
    raise TypeError(f"{type(cell).__name__}: not a gated cell of the course")  # _course_keys refused it first
