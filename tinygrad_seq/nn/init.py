"""Weight initialisation, in place, with PyTorch's formulas and names.

Values are drawn on the host from the generator ``ts.manual_seed`` seeds and
then copied into the tensor, so one seed gives the same weights on NumPy and
CuPy. For a weight of shape (out, in, ...): fan_in = in x receptive field,
fan_out = out x receptive field.

>>> import numpy as np
>>> import tinygrad_seq as ts
>>> from tinygrad_seq import nn
>>> w = nn.init.orthogonal_(nn.Parameter(ts.zeros(3, 4)))
>>> np.allclose((w @ w.T).numpy(), np.eye(3), atol=1e-6)
True
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import settings
from ..tensor import Tensor


def _fill(tensor: Tensor, host_values: np.ndarray) -> Tensor:
    tensor._write(..., tensor.backend.asarray(np.asarray(host_values, dtype=tensor.dtype)))
    return tensor


def fans(tensor: Tensor) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight shaped (out, in, *receptive_field)."""
    if tensor.ndim < 2:
        raise ValueError(f"init: fan in and fan out need a weight with at least 2 axes; got shape {tensor.shape}")
    receptive = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    """Fill with U(a, b)."""
    return _fill(tensor, settings.host_rng.uniform(a, b, tensor.shape))


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    """Fill with N(mean, std²)."""
    return _fill(tensor, settings.host_rng.normal(mean, std, tensor.shape))


def constant_(tensor: Tensor, value: float) -> Tensor:
    """Fill with ``value``."""
    return _fill(tensor, np.full(tensor.shape, value))


def zeros_(tensor: Tensor) -> Tensor:
    """Fill with 0."""
    return constant_(tensor, 0.0)


def ones_(tensor: Tensor) -> Tensor:
    """Fill with 1."""
    return constant_(tensor, 1.0)


def xavier_uniform_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    """Glorot: U(-b, b) with b = gain * sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = fans(tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound)


def xavier_normal_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    """Glorot: N(0, std²) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = fans(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def kaiming_uniform_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in") -> Tensor:
    """He (leaky ReLU of slope a): U(-b, b) with b = sqrt(2 / (1 + a²)) * sqrt(3 / fan)."""
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"kaiming_uniform_: mode must be 'fan_in' or 'fan_out' (as PyTorch's); got {mode!r}")
    fan_in, fan_out = fans(tensor)
    fan = {"fan_in": fan_in, "fan_out": fan_out}[mode]
    bound = math.sqrt(2.0 / (1 + a * a)) * math.sqrt(3.0 / fan)
    return uniform_(tensor, -bound, bound)


def orthogonal_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    """A (semi-)orthogonal matrix from the QR decomposition of a normal one (Saxe et al.), times gain."""
    if tensor.ndim < 2:
        raise ValueError(f"orthogonal_: needs a weight with at least 2 axes; got shape {tensor.shape}")
    rows = tensor.shape[0]
    cols = tensor.size // rows
    flat = settings.host_rng.standard_normal((rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q *= np.sign(np.diag(r))  # makes the decomposition unique, so q is uniformly distributed
    if rows < cols:
        q = q.T
    return _fill(tensor, gain * q.reshape(tensor.shape))


def forget_bias_(module: Any, value: float = 1.0) -> Any:
    """Set the forget-gate bias of every LSTM cell in ``module`` (an LSTMCell, nn.LSTM or any model) to ``value``.

    b_if = value and b_hf = 0, so the gate starts at σ(value) ≈ 0.73 for 1.0:
    the cell remembers by default, the usual remedy for vanishing gradients
    early in training (Jozefowicz et al., 2015). A cell of yours with a forget
    gate takes part by declaring ``forget_gate``, the index of that gate's
    block of rows in its stacked gate parameters (LSTMCell: 1, of i, f, g, o).
    """
    cells = [m for m in module.modules() if getattr(m, "forget_gate", None) is not None]
    if not cells:
        raise TypeError(f"forget_bias_: {type(module).__name__} holds no cell with a forget gate; it applies to nn.LSTMCell, "
                        "nn.LSTM, models containing them and cells that declare forget_gate")
    for cell in cells:
        if cell.bias_ih is None:
            raise ValueError(f"forget_bias_: the {type(cell).__name__} was built with bias=False, so it has no forget-gate bias")
        forget = slice(cell.forget_gate * cell.hidden_size, (cell.forget_gate + 1) * cell.hidden_size)
        cell.bias_ih._write(forget, value)
        cell.bias_hh._write(forget, 0.0)
    return module
