"""Loading a course notebook's parameter dictionary into a cell.

The course writes examples as columns, x⟨t⟩ (n_x, m), and gates as one matrix
applied to the stacked vector [a⟨t−1⟩; x⟨t⟩]: W_f (n_a, n_a + n_x), b_f (n_a, 1).
The code (like PyTorch) writes examples as rows, x (m, n_x), and keeps the
input and hidden halves apart: weight_ih (G·n_a, n_x), weight_hh (G·n_a, n_a).
``load_course_parameters`` does the conversion, so a notebook's weights give
the same a⟨t⟩ and c⟨t⟩ here (see docs/notation.md).

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
    if isinstance(cell, RNNCell):
        keys = ("Wax", "Waa", "ba")
    elif isinstance(cell, LSTMCell) and not cell.peephole:
        keys = ("Wf", "bf", "Wi", "bi", "Wc", "bc", "Wo", "bo")
    elif isinstance(cell, GRUCell) and not cell.reset_after:
        keys = ("Wu", "bu", "Wr", "br", "Wc", "bc")
    elif isinstance(cell, SimplifiedGRUCell):
        keys = ("Wu", "bu", "Wc", "bc")
    else:
        raise TypeError(
            f"load_course_parameters: the course has no parameters for {cell!r}; it fills RNNCell, LSTMCell "
            "(without peepholes), GRUCell(reset_after=False) and SimplifiedGRUCell"
        )
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
        if isinstance(cell, LSTMCell):
            gates = [(p["Wi"], p["bi"]), (p["Wf"], p["bf"]), (p["Wc"], p["bc"]), (p["Wo"], p["bo"])]  # PyTorch's order i, f, g, o
        elif isinstance(cell, GRUCell):
            gates = [(p["Wr"], p["br"]), (-p["Wu"], -p["bu"]), (p["Wc"], p["bc"])]  # r, z = 1 − Γu, n
        else:
            gates = [(-p["Wu"], -p["bu"]), (p["Wc"], p["bc"])]  # z = 1 − Γu, n
        halves = [_split(w, n_a) for w, _ in gates]
        w_ih = np.concatenate([x_half for x_half, _ in halves])
        w_hh = np.concatenate([a_half for _, a_half in halves])
        b_ih = np.concatenate([b.ravel() for _, b in gates])
    for parameter, value in ((cell.weight_ih, w_ih), (cell.weight_hh, w_hh), (cell.bias_ih, b_ih), (cell.bias_hh, np.zeros_like(b_ih))):
        parameter.data[...] = parameter.backend.asarray(value.astype(parameter.dtype))
        parameter._bump_version()
    return cell
