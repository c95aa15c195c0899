"""The checks of a number given by a user: a count or a size (an int, not a bool, at least some minimum), or a real.

Python counts True as the integer 1, so ``nn.LSTM(3, True)`` would build a
one-unit layer and ``sample(..., n=True)`` draw one sequence; here a bool is
refused wherever a count is expected. NumPy integers count (a size read from
an array's shape, a seed drawn by a generator). Imports nothing of the package:
every layer of it may use this.
"""
from __future__ import annotations

import numbers
from typing import Any

import numpy as np


def is_int(value: Any) -> bool:
    """Whether ``value`` is an integer, Python's or NumPy's, and not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def is_real(value: Any) -> bool:
    """Whether ``value`` is a real number, Python's or NumPy's (np.float32 too), and not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def as_real(value: Any) -> float | None:
    """``value`` as a float when it is one real number: Python's or NumPy's, or a 0-d array (or tensor) of numbers;
    None for anything else (a bool, a string, several values).

    >>> as_real(0.5), as_real(np.array(2)), as_real(True), as_real("1")
    (0.5, 2.0, None, None)
    """
    if is_real(value):
        return float(value)
    dtype = getattr(value, "dtype", None)
    if dtype is not None and np.dtype(dtype).kind in "iuf" and np.ndim(value) == 0:
        return float(value)
    return None


def check_probability(p: Any, op: str, name: str = "p") -> None:
    """Raise a ValueError naming ``op`` and ``name`` unless ``p`` is a probability: a real number in [0, 1] (not a
    bool or a string): dropout's p, label smoothing's ε."""
    if not is_real(p) or not 0.0 <= p <= 1.0:
        raise ValueError(f"{op}: {name} is a probability in [0, 1]; got {p!r}")


def int_arguments(given: tuple[Any, ...], op: str) -> tuple[int, ...]:
    """Sizes or axes given as ``f(2, 3)`` or as one sequence ``f((2, 3))``, as a tuple of Python ints; a TypeError
    naming ``op`` for anything else (a float, a bool, a string). How the creation functions read a shape, and
    reshape and transpose their arguments.

    >>> int_arguments((2, 3), "reshape"), int_arguments(([2, 3],), "reshape")
    ((2, 3), (2, 3))
    """
    if all(type(n) is int for n in given):  # f(2, 3): the usual call, on every reshape
        return given
    if len(given) == 1 and not is_int(given[0]) and hasattr(given[0], "__iter__") and not isinstance(given[0], str):
        given = tuple(given[0])
    if not all(is_int(n) for n in given):
        raise TypeError(f"{op}: takes ints, as {op}(2, 3) or {op}((2, 3)); got {given}")
    return tuple(int(n) for n in given)


def check_counts(op: str, minimum: int = 1, **counts: Any) -> None:
    """Raise a ValueError naming ``op``, the argument and its value unless every one of ``counts`` is an int
    >= ``minimum``.

    >>> check_counts("LSTMCell", input_size=3, hidden_size=0)
    Traceback (most recent call last):
    ValueError: LSTMCell: hidden_size must be an int >= 1; got 0
    """
    for name, value in counts.items():
        if not is_int(value) or value < minimum:
            raise ValueError(f"{op}: {name} must be an int >= {minimum}; got {value!r}")
