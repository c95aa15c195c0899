"""The engine's answers to the course's functions: the library's own cells, run forward and backward in float64.

Each function takes what the course's forward function takes plus the
upstream gradients its backward function takes (the same column layouts),
fills the library's cell with the course's parameters
(``nn.load_course_parameters``: nn.RNNCell, nn.LSTMCell, or
nn.GRUCell(reset_after=False) for the course's GRU), unrolls it, and lets
autograd run backward from

    L = Σ_t da⟨t⟩ ⊙ a⟨t⟩   (+ dc_next ⊙ c⟨t⟩ for an LSTM step),

whose gradient with respect to each a⟨t⟩ is exactly the given da⟨t⟩. It returns
one dict with the forward's outputs and every gradient, under the notebook's
names (a_next, yt_pred, ..., dxt, da_prev, dWax, ...), as host float64 arrays
in the course's layout. No hand-written derivative is involved: this is what
``ts.course.check`` compares a learner's functions with.
"""
from __future__ import annotations


import numpy as np

from .. import nn, settings
from ..backend import backend_named
from ..nn.course import course_gradients
from ..modes import no_grad
from ..tensor import Tensor

Answers = dict[str, np.ndarray]


def _engine() -> settings.override:
    """NumPy, grad on, and a private generator for the cells' initial weights (overwritten at once by the course's):
    checking must not move the random stream a learner seeded with ``ts.manual_seed``."""
    return settings.override(backend=backend_named("numpy"), grad_enabled=True, host_rng=np.random.default_rng(0))


def _cell(cell_class: type, parameters: dict[str, np.ndarray], n_x: int, n_a: int, **options: object) -> nn.RecurrentCell:
    return nn.load_course_parameters(cell_class(n_x, n_a, **options).double(), parameters)


def _rows(columns: np.ndarray) -> Tensor:
    """A leaf tensor in the code's layout (examples as rows) from the course's (features, m) or (features, m, T_x)."""
    return Tensor(np.asarray(columns, dtype=np.float64).T, requires_grad=True)


def _columns(array: np.ndarray) -> np.ndarray:
    """Back to the course's layout: (m, features) -> (features, m); (T_x, m, features) -> (features, m, T_x)."""
    return np.array(array.T, dtype=np.float64)


def _prediction(parameters: dict[str, np.ndarray], key: str, a: Tensor) -> np.ndarray:
    """ŷ = softmax(W_y a + b_y) over each column, for a (m, n_a) -> (n_y, m)."""
    with no_grad():
        logits = Tensor(parameters[key]) @ a.T + Tensor(parameters["by"])
        return np.array(logits.softmax(axis=0).numpy(), dtype=np.float64)


def _backward(*pairs: tuple[Tensor, np.ndarray]) -> None:
    """Backward from L = Σ seed ⊙ output: each output (m, n_a) receives its seed (n_a, m) as its gradient."""
    loss = sum((output * Tensor(np.asarray(seed, dtype=np.float64).T)).sum() for output, seed in pairs)
    loss.backward()


def rnn_step(xt: np.ndarray, a_prev: np.ndarray, parameters: dict[str, np.ndarray], da_next: np.ndarray) -> Answers:
    """rnn_cell_forward and rnn_cell_backward: a_next, yt_pred; dxt, da_prev, dWax, dWaa, dba."""
    with _engine():
        cell = _cell(nn.RNNCell, parameters, xt.shape[0], a_prev.shape[0])
        x, a0 = _rows(xt), _rows(a_prev)
        a = cell(x, a0)
        _backward((a, da_next))
        return {"a_next": _columns(a.numpy()), "yt_pred": _prediction(parameters, "Wya", a),
                "dxt": _columns(x.grad), "da_prev": _columns(a0.grad), **course_gradients(cell)}


def gru_step(xt: np.ndarray, a_prev: np.ndarray, parameters: dict[str, np.ndarray], da_next: np.ndarray) -> Answers:
    """gru_cell_forward and gru_cell_backward: a_next, yt_pred; dxt, da_prev, dWu, dbu, dWr, dbr, dWc, dbc."""
    with _engine():
        cell = _cell(nn.GRUCell, parameters, xt.shape[0], a_prev.shape[0], reset_after=False)
        x, a0 = _rows(xt), _rows(a_prev)
        a = cell(x, a0)
        _backward((a, da_next))
        return {"a_next": _columns(a.numpy()), "yt_pred": _prediction(parameters, "Wy", a),
                "dxt": _columns(x.grad), "da_prev": _columns(a0.grad), **course_gradients(cell)}


def lstm_step(xt: np.ndarray, a_prev: np.ndarray, c_prev: np.ndarray, parameters: dict[str, np.ndarray],
              da_next: np.ndarray, dc_next: np.ndarray) -> Answers:
    """lstm_cell_forward and lstm_cell_backward: a_next, c_next, yt_pred; dxt, da_prev, dc_prev, dWf, dbf, ..., dWo, dbo."""
    with _engine():
        cell = _cell(nn.LSTMCell, parameters, xt.shape[0], a_prev.shape[0])
        x, a0, c0 = _rows(xt), _rows(a_prev), _rows(c_prev)
        a, c = cell(x, (a0, c0))
        _backward((a, da_next), (c, dc_next))
        return {"a_next": _columns(a.numpy()), "c_next": _columns(c.numpy()), "yt_pred": _prediction(parameters, "Wy", a),
                "dxt": _columns(x.grad), "da_prev": _columns(a0.grad), "dc_prev": _columns(c0.grad), **course_gradients(cell)}


def rnn_sequence(x: np.ndarray, a0: np.ndarray, parameters: dict[str, np.ndarray], da: np.ndarray) -> Answers:
    """rnn_forward and rnn_backward: a, y_pred; dx, da0, dWax, dWaa, dba. x (n_x, m, T_x), da (n_a, m, T_x)."""
    with _engine():
        cell = _cell(nn.RNNCell, parameters, x.shape[0], a0.shape[0])
        inputs, initial = _rows(x), _rows(a0)  # inputs (T_x, m, n_x)
        states, a = [], initial
        for t in range(x.shape[2]):
            a = cell(inputs[t], a)
            states.append(a)
        _backward(*((a_t, da[:, :, t]) for t, a_t in enumerate(states)))
        return {"a": np.stack([_columns(a_t.numpy()) for a_t in states], axis=-1),
                "y_pred": np.stack([_prediction(parameters, "Wya", a_t) for a_t in states], axis=-1),
                "dx": _columns(inputs.grad), "da0": _columns(initial.grad), **course_gradients(cell)}


def lstm_sequence(x: np.ndarray, a0: np.ndarray, parameters: dict[str, np.ndarray], da: np.ndarray) -> Answers:
    """lstm_forward and lstm_backward from c⟨0⟩ = 0: a, y, c; dx, da0, dWf, dbf, ..., dWo, dbo."""
    with _engine():
        cell = _cell(nn.LSTMCell, parameters, x.shape[0], a0.shape[0])
        inputs, initial = _rows(x), _rows(a0)
        states, state = [], (initial, Tensor(np.zeros(initial.shape)))
        for t in range(x.shape[2]):
            state = cell(inputs[t], state)
            states.append(state)
        _backward(*((a_t, da[:, :, t]) for t, (a_t, _) in enumerate(states)))  # nothing flows into c⟨T_x⟩ from outside
        return {"a": np.stack([_columns(a_t.numpy()) for a_t, _ in states], axis=-1),
                "y": np.stack([_prediction(parameters, "Wy", a_t) for a_t, _ in states], axis=-1),
                "c": np.stack([_columns(c_t.numpy()) for _, c_t in states], axis=-1),
                "dx": _columns(inputs.grad), "da0": _columns(initial.grad), **course_gradients(cell)}
