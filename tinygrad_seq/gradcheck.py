"""Finite-difference gradient checking: the proof that a backward matches its forward."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .backend import backend_of, to_host
from .modes import enable_grad, no_grad
from .tensor import Tensor


def _outputs(result: Any) -> list[Tensor]:
    if isinstance(result, Tensor):
        return [result]
    if isinstance(result, (tuple, list)) and all(isinstance(r, Tensor) for r in result):
        return list(result)
    raise TypeError(f"grad_check: fn must return a Tensor or a tuple of Tensors; got {type(result).__name__}")


def grad_check(
    fn: Callable[..., Any],
    inputs: Sequence[Any],
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
) -> bool:
    """Compare backward's gradients of ``fn(*inputs)`` with float64 central differences.

    Every output is projected on fixed random weights w, so the check covers
    the whole Jacobian: for each input x that requires grad and each element
    i, d(sum(w * fn))/dx[i] from backward must match
    (f(x + eps e_i) - f(x - eps e_i)) / (2 eps) within ``atol + rtol * |numeric|``.

    Returns True, or raises AssertionError naming the input, the element index
    and both derivatives. Inputs that require grad must be float64.

    >>> import tinygrad_seq as ts
    >>> x = ts.Tensor([0.5, -1.0], dtype="float64", requires_grad=True)
    >>> ts.grad_check(lambda x: x.tanh() * x, [x])
    True
    """
    if isinstance(inputs, Tensor):  # listing it would pass its rows as the arguments
        raise TypeError("grad_check: inputs is the list of fn's arguments; got one Tensor. Pass [x] (fn(*inputs) is called)")
    inputs = list(inputs)
    checked = [(i, x) for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError("grad_check: no input requires grad; create the inputs to check with requires_grad=True")
    for i, x in checked:
        if x.dtype != np.float64:
            raise TypeError(
                f"grad_check: input {i} ({x.name or 'unnamed'}, shape {x.shape}) is {x.dtype}; finite differences "
                "need float64. Use x.double() or Tensor(..., dtype='float64')"
            )

    weight_rng = np.random.default_rng(1234)  # its own generator: checking must not move the user's seed
    with enable_grad():
        outputs = _outputs(fn(*inputs))
    weights = [backend_of(o.data).asarray(weight_rng.standard_normal(o.shape)) for o in outputs]

    def projected(outs: list[Tensor]) -> float:
        return float(sum(float((o.data * w).sum()) for o, w in zip(outs, weights)))

    saved_grads = [x._grad for _, x in checked]
    try:
        for _, x in checked:
            x._grad = None
        with enable_grad():
            total = None
            for o, w in zip(outputs, weights):
                if o.requires_grad:
                    term = (o * Tensor.wrap(w)).sum()
                    total = term if total is None else total + term
            if total is not None:
                total.backward()
        analytic = [x._grad if x._grad is not None else backend_of(x.data).xp.zeros_like(x.data) for _, x in checked]
    finally:
        for (_, x), grad in zip(checked, saved_grads):
            x._grad = grad

    for (i, x), grad in zip(checked, analytic):
        grad = to_host(grad)
        original = x.data
        x.data = original.copy()
        try:
            for index in np.ndindex(*x.shape):
                value = x.data[index].item()
                with no_grad():
                    x.data[index] = value + eps
                    plus = projected(_outputs(fn(*inputs)))
                    x.data[index] = value - eps
                    minus = projected(_outputs(fn(*inputs)))
                x.data[index] = value
                numeric = (plus - minus) / (2 * eps)
                if not abs(grad[index] - numeric) <= atol + rtol * abs(numeric):
                    raise AssertionError(
                        f"grad_check: input {i} ({x.name or 'unnamed'}, shape {x.shape}) element {index}: "
                        f"backward gives {grad[index]:.10g}, finite differences give {numeric:.10g}"
                    )
        finally:
            x.data = original
    return True
