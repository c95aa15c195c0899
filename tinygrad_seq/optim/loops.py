"""Adam's update as one compiled loop (numba) over a parameter's elements, for NumPy arrays on the CPU.

The NumPy update (optim/adam.py) makes eleven passes over a parameter's
arrays, each a separate call; this loop reads p, g, m and v once and writes
p, m and v once. It does the same IEEE operations in the same order, each
constant already in the arrays' dtype as NumPy's weak scalars are, and no
fast-math: its results are the NumPy update's, bit for bit, in float32 and
in float64 (tests/test_optim.py).
"""
from __future__ import annotations

import math

import numba

from ..compiled import COMPILE


@numba.njit(**COMPILE)
def adam_update(p, g, m, v, one_minus_beta1, beta2, one_minus_beta2, bias_correction2_sqrt, eps, step_size):
    """In place, over flat arrays of one dtype (the scalars in it too):
    m ← m + (1 − β1)(g − m),  v ← β2 v + (1 − β2) g²,  p ← p − step_size · m / (√v / √(1 − β2^t) + eps)."""
    for i in range(p.shape[0]):
        grad = g[i]
        m_i = m[i] + (grad - m[i]) * one_minus_beta1
        v_i = v[i] * beta2 + (grad * grad) * one_minus_beta2
        m[i] = m_i
        v[i] = v_i
        p[i] -= (m_i / (math.sqrt(v_i) / bias_correction2_sqrt + eps)) * step_size
