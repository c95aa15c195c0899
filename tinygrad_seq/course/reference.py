"""The course notebook's functions, written from the equations in plain NumPy: the library's own answers.

Same signatures, layouts and dictionary keys as the notebook, so a learner can
compare line by line. One example per **column**: x⟨t⟩ is (n_x, m), a⟨t⟩ is
(n_a, m); a sequence x is (n_x, m, T_x) and a is (n_a, m, T_x), time on the
last axis. The gated cells' matrices act on the stacked vector [a⟨t−1⟩; x⟨t⟩],
so W_f is (n_a, n_a + n_x); biases are columns, b_f (n_a, 1).

Parameter keys: RNN Wax (n_a, n_x), Waa (n_a, n_a), ba (n_a, 1), Wya (n_y, n_a),
by (n_y, 1); LSTM Wf, bf, Wi, bi, Wc, bc, Wo, bo, Wy, by; GRU Wu, bu, Wr, br,
Wc, bc, Wy, by. The prediction is ŷ⟨t⟩ = softmax(W_ya a⟨t⟩ + b_y), a softmax
over each column.

The backward functions take ``da_next``, the *whole* gradient arriving at
a⟨t⟩, and return the gradients the notebook names (dxt, da_prev, dWax, ...).
The sequence versions take ``da`` (n_a, m, T_x), the gradient of the loss with
respect to every a⟨t⟩ from outside the recurrence (from ŷ⟨t⟩); each step adds
the gradient coming back from step t + 1. Gradients of the shared weights are
summed over the time steps. In the LSTM the gradient of c⟨T_x⟩ starts at zero.

``ts.course.check`` proves these against the engine, and the test suite also
against finite differences; the derivations are in the comments.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> parameters = {"Wax": rng.standard_normal((5, 3)), "Waa": rng.standard_normal((5, 5)), "ba": np.zeros((5, 1)),
...               "Wya": rng.standard_normal((2, 5)), "by": np.zeros((2, 1))}
>>> a, y_pred, caches = rnn_forward(rng.standard_normal((3, 4, 7)), np.zeros((5, 4)), parameters)
>>> a.shape, y_pred.shape, len(caches[0])
((5, 4, 7), (2, 4, 7), 7)
>>> gradients = rnn_backward(rng.standard_normal(a.shape), caches)
>>> {key: value.shape for key, value in gradients.items()}
{'dx': (3, 4, 7), 'da0': (5, 4), 'dWax': (5, 3), 'dWaa': (5, 5), 'dba': (5, 1)}
"""
from __future__ import annotations

import numpy as np

Parameters = dict[str, np.ndarray]
Gradients = dict[str, np.ndarray]


def sigmoid(z: np.ndarray) -> np.ndarray:
    """σ(z) = 1 / (1 + e^−z), elementwise."""
    return 1 / (1 + np.exp(-z))


def softmax(z: np.ndarray) -> np.ndarray:
    """Softmax over each column of z (n_y, m): the column's classes sum to 1."""
    e = np.exp(z - z.max(axis=0, keepdims=True))  # shifting by the column's max changes nothing but avoids overflow
    return e / e.sum(axis=0, keepdims=True)


# ---------------------------------------------------------------- the basic RNN


def rnn_cell_forward(xt: np.ndarray, a_prev: np.ndarray, parameters: Parameters) -> tuple[np.ndarray, np.ndarray, tuple]:
    """One step: a⟨t⟩ = tanh(W_aa a⟨t−1⟩ + W_ax x⟨t⟩ + b_a), ŷ⟨t⟩ = softmax(W_ya a⟨t⟩ + b_y).

    xt (n_x, m), a_prev (n_a, m) -> a_next (n_a, m), yt_pred (n_y, m),
    cache = (a_next, a_prev, xt, parameters).
    """
    Wax, Waa, Wya, ba, by = (parameters[key] for key in ("Wax", "Waa", "Wya", "ba", "by"))
    a_next = np.tanh(Waa @ a_prev + Wax @ xt + ba)
    yt_pred = softmax(Wya @ a_next + by)
    cache = (a_next, a_prev, xt, parameters)
    return a_next, yt_pred, cache


def rnn_forward(x: np.ndarray, a0: np.ndarray, parameters: Parameters) -> tuple[np.ndarray, np.ndarray, tuple[list, np.ndarray]]:
    """The RNN over a sequence: x (n_x, m, T_x), a0 (n_a, m) -> a (n_a, m, T_x), y_pred (n_y, m, T_x), caches.

    caches = (list of the T_x steps' caches, x).
    """
    n_x, m, T_x = x.shape
    n_y, n_a = parameters["Wya"].shape
    a, y_pred, caches = np.zeros((n_a, m, T_x)), np.zeros((n_y, m, T_x)), []
    a_next = a0
    for t in range(T_x):
        a_next, yt_pred, cache = rnn_cell_forward(x[:, :, t], a_next, parameters)
        a[:, :, t], y_pred[:, :, t] = a_next, yt_pred
        caches.append(cache)
    return a, y_pred, (caches, x)


def rnn_cell_backward(da_next: np.ndarray, cache: tuple) -> Gradients:
    """One step back: da_next (n_a, m) is all of ∂L/∂a⟨t⟩; returns dxt, da_prev, dWax, dWaa, dba.

    With z = W_aa a⟨t−1⟩ + W_ax x⟨t⟩ + b_a and a⟨t⟩ = tanh(z):
    ∂L/∂z = (1 − a⟨t⟩²) ⊙ da_next, and z is linear in everything else.
    """
    a_next, a_prev, xt, parameters = cache
    Wax, Waa = parameters["Wax"], parameters["Waa"]
    dtanh = (1 - a_next ** 2) * da_next  # tanh' = 1 − tanh², and tanh(z) is a⟨t⟩ itself
    return {
        "dxt": Wax.T @ dtanh,
        "da_prev": Waa.T @ dtanh,
        "dWax": dtanh @ xt.T,
        "dWaa": dtanh @ a_prev.T,
        "dba": dtanh.sum(axis=1, keepdims=True),  # b_a is added to every example's column
    }


def rnn_backward(da: np.ndarray, caches: tuple[list, np.ndarray]) -> Gradients:
    """Backpropagation through time: da (n_a, m, T_x) from the outputs -> dx, da0, dWax, dWaa, dba.

    Steps run from T_x down to 1; the gradient reaching a⟨t⟩ is da⟨t⟩ plus
    what step t + 1 sends back (da_prev). W_ax, W_aa and b_a are shared by every
    step, so their gradients are summed over the steps.
    """
    caches, x = caches
    n_a, m, T_x = da.shape
    n_x = x.shape[0]
    dx = np.zeros((n_x, m, T_x))
    dWax, dWaa, dba = np.zeros((n_a, n_x)), np.zeros((n_a, n_a)), np.zeros((n_a, 1))
    da_prevt = np.zeros((n_a, m))  # nothing comes back from beyond the last step
    for t in reversed(range(T_x)):
        gradients = rnn_cell_backward(da[:, :, t] + da_prevt, caches[t])
        dx[:, :, t] = gradients["dxt"]
        da_prevt = gradients["da_prev"]
        dWax += gradients["dWax"]
        dWaa += gradients["dWaa"]
        dba += gradients["dba"]
    return {"dx": dx, "da0": da_prevt, "dWax": dWax, "dWaa": dWaa, "dba": dba}


# ---------------------------------------------------------------- the LSTM


def lstm_cell_forward(xt: np.ndarray, a_prev: np.ndarray, c_prev: np.ndarray,
                      parameters: Parameters) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple]:
    """One step of the LSTM.

        Γf = σ(W_f [a⟨t−1⟩; x⟨t⟩] + b_f)      forget gate
        Γu = σ(W_i [a⟨t−1⟩; x⟨t⟩] + b_i)      update gate (the notebook's it)
        c̃⟨t⟩ = tanh(W_c [a⟨t−1⟩; x⟨t⟩] + b_c)
        c⟨t⟩ = Γf ⊙ c⟨t−1⟩ + Γu ⊙ c̃⟨t⟩
        Γo = σ(W_o [a⟨t−1⟩; x⟨t⟩] + b_o)      output gate
        a⟨t⟩ = Γo ⊙ tanh(c⟨t⟩)
        ŷ⟨t⟩ = softmax(W_y a⟨t⟩ + b_y)

    xt (n_x, m), a_prev and c_prev (n_a, m) -> a_next, c_next (n_a, m),
    yt_pred (n_y, m), cache = (a_next, c_next, a_prev, c_prev, ft, it, cct, ot, xt, parameters).
    """
    concat = np.concatenate([a_prev, xt])  # [a⟨t−1⟩; x⟨t⟩], (n_a + n_x, m)
    ft = sigmoid(parameters["Wf"] @ concat + parameters["bf"])
    it = sigmoid(parameters["Wi"] @ concat + parameters["bi"])
    cct = np.tanh(parameters["Wc"] @ concat + parameters["bc"])
    c_next = ft * c_prev + it * cct
    ot = sigmoid(parameters["Wo"] @ concat + parameters["bo"])
    a_next = ot * np.tanh(c_next)
    yt_pred = softmax(parameters["Wy"] @ a_next + parameters["by"])
    cache = (a_next, c_next, a_prev, c_prev, ft, it, cct, ot, xt, parameters)
    return a_next, c_next, yt_pred, cache


def lstm_forward(x: np.ndarray, a0: np.ndarray,
                 parameters: Parameters) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[list, np.ndarray]]:
    """The LSTM over a sequence from c⟨0⟩ = 0: x (n_x, m, T_x), a0 (n_a, m) -> a, y, c, caches.

    a and c (n_a, m, T_x), y (n_y, m, T_x); caches = (list of the steps' caches, x).
    """
    n_x, m, T_x = x.shape
    n_y, n_a = parameters["Wy"].shape
    a, c, y, caches = np.zeros((n_a, m, T_x)), np.zeros((n_a, m, T_x)), np.zeros((n_y, m, T_x)), []
    a_next, c_next = a0, np.zeros((n_a, m))
    for t in range(T_x):
        a_next, c_next, yt, cache = lstm_cell_forward(x[:, :, t], a_next, c_next, parameters)
        a[:, :, t], c[:, :, t], y[:, :, t] = a_next, c_next, yt
        caches.append(cache)
    return a, y, c, (caches, x)


def lstm_cell_backward(da_next: np.ndarray, dc_next: np.ndarray, cache: tuple) -> Gradients:
    """One step back through the LSTM: da_next, dc_next (n_a, m) -> dxt, da_prev, dc_prev, dWf, dbf, ..., dWo, dbo.

    dot, dcct, dit, dft are, as in the notebook, gradients with respect to the
    gates' pre-activations (what σ or tanh is applied to).
    """
    a_next, c_next, a_prev, c_prev, ft, it, cct, ot, xt, parameters = cache
    n_a = a_next.shape[0]
    tanh_c = np.tanh(c_next)
    dot = da_next * tanh_c * ot * (1 - ot)  # a = Γo ⊙ tanh(c), σ' = σ(1 − σ)
    dc = dc_next + da_next * ot * (1 - tanh_c ** 2)  # all of ∂L/∂c⟨t⟩: from step t + 1 and through a⟨t⟩
    dcct = dc * it * (1 - cct ** 2)
    dit = dc * cct * it * (1 - it)
    dft = dc * c_prev * ft * (1 - ft)

    concat = np.concatenate([a_prev, xt])
    gradients = {}
    for gate, dgate in (("f", dft), ("i", dit), ("c", dcct), ("o", dot)):
        gradients[f"dW{gate}"] = dgate @ concat.T
        gradients[f"db{gate}"] = dgate.sum(axis=1, keepdims=True)
    dconcat = (parameters["Wf"].T @ dft + parameters["Wi"].T @ dit
               + parameters["Wc"].T @ dcct + parameters["Wo"].T @ dot)  # every gate read [a⟨t−1⟩; x⟨t⟩]
    return {
        "dxt": dconcat[n_a:],
        "da_prev": dconcat[:n_a],
        "dc_prev": dc * ft,  # c⟨t⟩ = Γf ⊙ c⟨t−1⟩ + ...: only Γf stands between them
        **gradients,
    }


def lstm_backward(da: np.ndarray, caches: tuple[list, np.ndarray]) -> Gradients:
    """Backpropagation through time in the LSTM: da (n_a, m, T_x) -> dx, da0, dWf, dbf, dWi, dbi, dWc, dbc, dWo, dbo.

    As rnn_backward, with a second gradient carried back: dc, zero beyond the last step.
    """
    caches, x = caches
    n_a, m, T_x = da.shape
    n_x = x.shape[0]
    dx = np.zeros((n_x, m, T_x))
    sums = {f"d{kind}{gate}": np.zeros((n_a, n_a + n_x) if kind == "W" else (n_a, 1)) for gate in "fico" for kind in "Wb"}
    da_prevt, dc_prevt = np.zeros((n_a, m)), np.zeros((n_a, m))
    for t in reversed(range(T_x)):
        gradients = lstm_cell_backward(da[:, :, t] + da_prevt, dc_prevt, caches[t])
        dx[:, :, t] = gradients["dxt"]
        da_prevt, dc_prevt = gradients["da_prev"], gradients["dc_prev"]
        for key in sums:
            sums[key] += gradients[key]
    return {"dx": dx, "da0": da_prevt, **sums}


# ---------------------------------------------------------------- the GRU, in the course's form


def gru_cell_forward(xt: np.ndarray, a_prev: np.ndarray, parameters: Parameters) -> tuple[np.ndarray, np.ndarray, tuple]:
    """One step of the full GRU of the lectures, where the memory cell is the activation (c⟨t⟩ = a⟨t⟩).

        Γu = σ(W_u [c⟨t−1⟩; x⟨t⟩] + b_u)             update gate
        Γr = σ(W_r [c⟨t−1⟩; x⟨t⟩] + b_r)             relevance gate
        c̃⟨t⟩ = tanh(W_c [Γr ⊙ c⟨t−1⟩; x⟨t⟩] + b_c)
        c⟨t⟩ = Γu ⊙ c̃⟨t⟩ + (1 − Γu) ⊙ c⟨t−1⟩
        ŷ⟨t⟩ = softmax(W_y c⟨t⟩ + b_y)

    xt (n_x, m), a_prev (n_a, m) -> a_next (n_a, m), yt_pred (n_y, m),
    cache = (a_next, a_prev, ut, rt, cct, xt, parameters).
    """
    concat = np.concatenate([a_prev, xt])
    ut = sigmoid(parameters["Wu"] @ concat + parameters["bu"])
    rt = sigmoid(parameters["Wr"] @ concat + parameters["br"])
    cct = np.tanh(parameters["Wc"] @ np.concatenate([rt * a_prev, xt]) + parameters["bc"])
    a_next = ut * cct + (1 - ut) * a_prev
    yt_pred = softmax(parameters["Wy"] @ a_next + parameters["by"])
    cache = (a_next, a_prev, ut, rt, cct, xt, parameters)
    return a_next, yt_pred, cache


def gru_cell_backward(da_next: np.ndarray, cache: tuple) -> Gradients:
    """One step back through the GRU: da_next (n_a, m) -> dxt, da_prev, dWu, dbu, dWr, dbr, dWc, dbc.

    a⟨t−1⟩ reaches a⟨t⟩ three ways: directly through (1 − Γu), through the
    gates' [a⟨t−1⟩; x⟨t⟩], and through Γr ⊙ a⟨t−1⟩ inside c̃; da_prev sums them.
    dut, drt, dcct are gradients with respect to the pre-activations.
    """
    a_next, a_prev, ut, rt, cct, xt, parameters = cache
    n_a = a_next.shape[0]
    dcct = da_next * ut * (1 - cct ** 2)
    dut = da_next * (cct - a_prev) * ut * (1 - ut)  # ∂a⟨t⟩/∂Γu = c̃⟨t⟩ − a⟨t−1⟩

    d_reset_input = parameters["Wc"].T @ dcct  # through c̃'s [Γr ⊙ a⟨t−1⟩; x⟨t⟩]
    d_reset_a = d_reset_input[:n_a]  # ∂L/∂(Γr ⊙ a⟨t−1⟩)
    drt = d_reset_a * a_prev * rt * (1 - rt)

    concat = np.concatenate([a_prev, xt])
    dconcat = parameters["Wu"].T @ dut + parameters["Wr"].T @ drt  # through the gates' [a⟨t−1⟩; x⟨t⟩]
    return {
        "dxt": dconcat[n_a:] + d_reset_input[n_a:],
        "da_prev": da_next * (1 - ut) + d_reset_a * rt + dconcat[:n_a],
        "dWu": dut @ concat.T,
        "dbu": dut.sum(axis=1, keepdims=True),
        "dWr": drt @ concat.T,
        "dbr": drt.sum(axis=1, keepdims=True),
        "dWc": dcct @ np.concatenate([rt * a_prev, xt]).T,
        "dbc": dcct.sum(axis=1, keepdims=True),
    }
