"""Tensors made from shapes: zeros, ones, full, randn, rand, arange.

Random values are drawn on the host from the generator ``ts.manual_seed``
seeds and then moved to the current backend, so one seed gives the same
numbers on NumPy and CuPy.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from . import settings
from .backend import dtype_named, get_backend
from .checks import int_arguments
from .tensor import Tensor


def _shape(shape: tuple[Any, ...], op: str) -> tuple[int, ...]:
    shape = int_arguments(shape, op)  # not a bool: ts.zeros(True) made shape (1,)
    if any(n < 0 for n in shape):
        raise ValueError(f"{op}: a shape is a sequence of non-negative ints; got {shape}")
    return shape


def _dtype(dtype: Any, op: str) -> np.dtype:
    return settings.default_dtype if dtype is None else dtype_named(dtype, op)


def _leaf(array: Any, requires_grad: bool, name: str | None) -> Tensor:
    tensor = Tensor.wrap(array, name)
    return tensor.requires_grad_(True) if requires_grad else tensor


def zeros(*shape: int | Sequence[int], dtype: Any = None, requires_grad: bool = False, name: str | None = None) -> Tensor:
    """A tensor of zeros: ``ts.zeros(2, 3)`` or ``ts.zeros((2, 3))``."""
    return _leaf(get_backend().xp.zeros(_shape(shape, "zeros"), dtype=_dtype(dtype, "zeros")), requires_grad, name)


def ones(*shape: int | Sequence[int], dtype: Any = None, requires_grad: bool = False, name: str | None = None) -> Tensor:
    """A tensor of ones: ``ts.ones(2, 3)`` or ``ts.ones((2, 3))``."""
    return _leaf(get_backend().xp.ones(_shape(shape, "ones"), dtype=_dtype(dtype, "ones")), requires_grad, name)


def full(shape: Sequence[int], value: float, dtype: Any = None, requires_grad: bool = False, name: str | None = None) -> Tensor:
    """A tensor with every element ``value``."""
    return _leaf(get_backend().xp.full(_shape((shape,), "full"), value, dtype=_dtype(dtype, "full")), requires_grad, name)


def randn(*shape: int | Sequence[int], dtype: Any = None, requires_grad: bool = False, name: str | None = None) -> Tensor:
    """Standard normal samples (seeded by ``ts.manual_seed``, drawn on the host)."""
    host = settings.host_rng.standard_normal(_shape(shape, "randn")).astype(_dtype(dtype, "randn"))
    return _leaf(get_backend().asarray(host), requires_grad, name)


def rand(*shape: int | Sequence[int], dtype: Any = None, requires_grad: bool = False, name: str | None = None) -> Tensor:
    """Uniform samples in [0, 1) (seeded by ``ts.manual_seed``, drawn on the host)."""
    host = settings.host_rng.random(_shape(shape, "rand")).astype(_dtype(dtype, "rand"))
    return _leaf(get_backend().asarray(host), requires_grad, name)


def arange(start: int, stop: int | None = None, step: int = 1, dtype: Any = None) -> Tensor:
    """Evenly spaced values like ``np.arange`` (int64 for int arguments)."""
    array = np.arange(start, stop, step, dtype=dtype)
    if dtype is None and array.dtype.kind == "f":
        array = array.astype(settings.default_dtype)
    return Tensor.wrap(get_backend().asarray(array))
