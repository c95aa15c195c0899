"""The LSTM and GRU steps' elementwise work as compiled loops (numba), for float32 arrays on the CPU.

Between its matrix products, a step of the NumPy kernel makes about 30
passes over (B, H) arrays, each a separate NumPy call with its own
temporary. Here each direction of a step is one loop over the batch's
elements: every gate, the new state and every gradient computed in
registers, each array read and written once. A training step takes 0.71–0.90
of its time without them (docs/performance.md, "The compiled loops").

The loops vectorise (in AVX2 registers on the machine of those figures)
because nothing in them calls out: tanh is a rational function, clamped
where it reaches ±1 (the [13/6] approximation Eigen uses for float), and σ(x) = (1 + tanh(x/2)) / 2. Over every float32, tanh is within
4.1e-7 of the exact value (at x = ±5.83; NumPy's own float32 tanh: 6e-8) and
σ within 2.3e-7. σ is accurate in absolute terms only: its relative error
grows as σ shrinks (1e-4 at x = −8, 1 % at −12), and below −15.81 it is 0,
so a gate driven that far gets no gradient where the exact one is below
1.4e-7 times the gradient reaching it. NaN goes in, NaN comes out. No
fast-math: the arithmetic is IEEE's, in the order written.

For the smallest steps (a one-row batch, say: up to
``cell_steps.PRODUCT_IN_LOOP_MACS`` multiply-adds in the hidden product) the
loop also does the step's matrix product, a⟨t−1⟩ W_hh^T going forward and
the gate gradients times W_hh going back (``lstm_step_forward``,
``lstm_step_backward``, ``gru_step_forward``, and ``add_rows_times`` after
``gru_backward``): one call instead of a BLAS call, a bias add and the loop,
which for an LSTM step at B1 H100 takes 0.6 of the time forward and 0.75
back. The product adds W's rows
scaled by the input's values in order of k, four rows a pass, each output
summed in that order (a BLAS sums in blocks of its own).

``ops/cell_steps.py`` runs these loops when ``_compiled_loops`` says so
(float32 C-contiguous NumPy arrays, numba installed, ``settings.numba_loops``)
and its NumPy equations otherwise: float64 (gradient checks, the PyTorch
comparisons to 1e-10), CuPy, the peephole LSTM, the GRU's
``reset_after=False`` form, and inside ``ts.without_numba()``.
tests/test_loops.py holds the two equal.
"""
from __future__ import annotations

import numba
import numpy as np

from ..compiled import COMPILE

_TANH_LIMIT = np.float32(7.90531110763549805)  # where the approximation below reaches ±1
_ONE, _HALF = np.float32(1.0), np.float32(0.5)
# tanh(x) ≈ x · p(x²) / q(x²) on [−limit, limit]
_P = tuple(np.float32(c) for c in (-2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11,
                                   5.12229709037114e-08, 1.48572235717979e-05, 6.37261928875436e-04,
                                   4.89352455891786e-03))
_Q = tuple(np.float32(c) for c in (1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03,
                                   4.89352518554385e-03))


@numba.njit(inline="always", **COMPILE)
def tanh32(x):
    x = _TANH_LIMIT if x > _TANH_LIMIT else x  # written as comparisons, not min/max, so NaN passes through
    x = -_TANH_LIMIT if x < -_TANH_LIMIT else x
    x2 = x * x
    p = _P[0]
    for c in _P[1:]:
        p = p * x2 + c
    q = _Q[0]
    for c in _Q[1:]:
        q = q * x2 + c
    return x * p / q


@numba.njit(inline="always", **COMPILE)
def sigmoid32(x):
    return _HALF + _HALF * tanh32(_HALF * x)


@numba.njit(**COMPILE)
def lstm_forward(gates, c_prev, act, state):
    """gates (B, 4H) pre-activations [i f g o], c_prev (B, H) -> act (B, 4H) [Γi Γf g̃ Γo], state (2, B, H) [a, c]."""
    H = c_prev.shape[1]
    for b in range(c_prev.shape[0]):
        # one row's blocks as 1-D views: contiguous loads the compiler can vectorise
        z_i, z_f, z_g, z_o = gates[b, :H], gates[b, H : 2 * H], gates[b, 2 * H : 3 * H], gates[b, 3 * H :]
        a_i, a_f, a_g, a_o = act[b, :H], act[b, H : 2 * H], act[b, 2 * H : 3 * H], act[b, 3 * H :]
        c_before, h, c_now = c_prev[b], state[0, b], state[1, b]
        for j in range(H):
            i, f, g, o = sigmoid32(z_i[j]), sigmoid32(z_f[j]), tanh32(z_g[j]), sigmoid32(z_o[j])
            c = f * c_before[j] + i * g
            a_i[j], a_f[j], a_g[j], a_o[j] = i, f, g, o
            c_now[j] = c
            h[j] = o * tanh32(c)


@numba.njit(**COMPILE)
def lstm_backward(d_h, d_c, act, c, c_prev, d_gates, d_c_prev):
    """∂L/∂a⟨t⟩, ∂L/∂c⟨t⟩ (B, H) -> ∂L/∂gates (B, 4H), ∂L/∂c⟨t−1⟩ (B, H); tanh(c) recomputed, not stored."""
    H = c.shape[1]
    for b in range(c.shape[0]):
        a_i, a_f, a_g, a_o = act[b, :H], act[b, H : 2 * H], act[b, 2 * H : 3 * H], act[b, 3 * H :]
        d_i, d_f, d_g, d_o = d_gates[b, :H], d_gates[b, H : 2 * H], d_gates[b, 2 * H : 3 * H], d_gates[b, 3 * H :]
        d_h_row, d_c_row, c_row, c_before, d_c_before = d_h[b], d_c[b], c[b], c_prev[b], d_c_prev[b]
        for j in range(H):
            i, f, g, o = a_i[j], a_f[j], a_g[j], a_o[j]
            tanh_c = tanh32(c_row[j])
            dh = d_h_row[j]
            dc = d_c_row[j] + dh * o * (_ONE - tanh_c * tanh_c)
            d_o[j] = dh * tanh_c * o * (_ONE - o)
            d_i[j] = dc * g * i * (_ONE - i)
            d_f[j] = dc * c_before[j] * f * (_ONE - f)
            d_g[j] = dc * i * (_ONE - g * g)
            d_c_before[j] = dc * f


@numba.njit(**COMPILE)
def gru_forward(gx, gh, h_prev, saved, h):
    """gx, gh (B, 3H) the input's and the state's pre-activations [r z n], h_prev (B, H) -> saved (B, 4H)
    [Γr z ã (h W_hn^T + b_hn)], h (B, H). PyTorch's form: ã = tanh(x_n + Γr ⊙ (h W_hn^T + b_hn))."""
    H = h_prev.shape[1]
    for b in range(h_prev.shape[0]):
        x_r, x_z, x_n = gx[b, :H], gx[b, H : 2 * H], gx[b, 2 * H :]
        h_r, h_z, h_n = gh[b, :H], gh[b, H : 2 * H], gh[b, 2 * H :]
        s_r, s_z, s_n, s_hn = saved[b, :H], saved[b, H : 2 * H], saved[b, 2 * H : 3 * H], saved[b, 3 * H :]
        h_before, h_row = h_prev[b], h[b]
        for j in range(H):
            r = sigmoid32(x_r[j] + h_r[j])
            z = sigmoid32(x_z[j] + h_z[j])
            hn = h_n[j]
            n = tanh32(x_n[j] + r * hn)
            s_r[j], s_z[j], s_n[j], s_hn[j] = r, z, n, hn
            h_row[j] = n + z * (h_before[j] - n)


@numba.njit(**COMPILE)
def gru_backward(d_h, saved, h_prev, d_gx, d_gh, d_h_prev):
    """∂L/∂a⟨t⟩ (B, H) -> ∂L/∂gx, ∂L/∂gh (B, 3H), and the direct part of ∂L/∂a⟨t−1⟩ (B, H), d_h ⊙ z."""
    H = h_prev.shape[1]
    for b in range(h_prev.shape[0]):
        s_r, s_z, s_n, s_hn = saved[b, :H], saved[b, H : 2 * H], saved[b, 2 * H : 3 * H], saved[b, 3 * H :]
        dx_r, dx_z, dx_n = d_gx[b, :H], d_gx[b, H : 2 * H], d_gx[b, 2 * H :]
        dh_r, dh_z, dh_n = d_gh[b, :H], d_gh[b, H : 2 * H], d_gh[b, 2 * H :]
        d_h_row, h_before, d_h_before = d_h[b], h_prev[b], d_h_prev[b]
        for j in range(H):
            r, z, n, dh = s_r[j], s_z[j], s_n[j], d_h_row[j]
            d_n_pre = dh * (_ONE - z) * (_ONE - n * n)
            d_z_pre = dh * (h_before[j] - n) * z * (_ONE - z)
            d_r_pre = d_n_pre * s_hn[j] * r * (_ONE - r)
            dx_r[j], dx_z[j], dx_n[j] = d_r_pre, d_z_pre, d_n_pre
            dh_r[j], dh_z[j], dh_n[j] = d_r_pre, d_z_pre, d_n_pre * r
            d_h_before[j] = dh * z


@numba.njit(**COMPILE)
def add_rows_times(x, w, out):
    """out (B, N) += x (B, K) @ w (K, N): each row of out gains w's rows scaled by x's, in order of k."""
    K = x.shape[1]
    for b in range(x.shape[0]):
        row, x_row = out[b], x[b]
        k = 0
        while k + 4 <= K:  # four of w's rows a pass: out's row is read and written a quarter as often
            x0, x1, x2, x3 = x_row[k], x_row[k + 1], x_row[k + 2], x_row[k + 3]
            w0, w1, w2, w3 = w[k], w[k + 1], w[k + 2], w[k + 3]
            for n in range(row.shape[0]):
                row[n] = row[n] + x0 * w0[n] + x1 * w1[n] + x2 * w2[n] + x3 * w3[n]
            k += 4
        while k < K:
            x_k, w_k = x_row[k], w[k]
            for n in range(row.shape[0]):
                row[n] = row[n] + x_k * w_k[n]
            k += 1


@numba.njit(**COMPILE)
def lstm_step_forward(x_t, b_hh, h_prev, w_hh_t, c_prev, act, state):
    """lstm_forward on the pre-activations x_t (B, 4H) + b_hh (4H,) + h_prev (B, H) @ w_hh_t (H, 4H), made here."""
    gates = np.empty_like(act)
    for b in range(gates.shape[0]):
        for n in range(gates.shape[1]):
            gates[b, n] = x_t[b, n] + b_hh[n]
    add_rows_times(h_prev, w_hh_t, gates)
    lstm_forward(gates, c_prev, act, state)


@numba.njit(**COMPILE)
def gru_step_forward(gx, b_hh, h_prev, w_hh_t, saved, h):
    """gru_forward on the state's pre-activations gh = b_hh (3H,) + h_prev (B, H) @ w_hh_t (H, 3H), made here."""
    gh = np.empty((h_prev.shape[0], b_hh.shape[0]), gx.dtype)
    for b in range(gh.shape[0]):
        for n in range(gh.shape[1]):
            gh[b, n] = b_hh[n]
    add_rows_times(h_prev, w_hh_t, gh)
    gru_forward(gx, gh, h_prev, saved, h)


@numba.njit(**COMPILE)
def lstm_step_backward(d_h, d_c, act, c, c_prev, w_hh, d_gates, d_state_prev):
    """lstm_backward into d_gates and d_state_prev[1] (∂L/∂c⟨t−1⟩), then d_state_prev[0] = ∂L/∂a⟨t−1⟩ = d_gates @ w_hh
    (4H, H)."""
    lstm_backward(d_h, d_c, act, c, c_prev, d_gates, d_state_prev[1])
    d_state_prev[0] = 0
    add_rows_times(d_gates, w_hh, d_state_prev[0])
