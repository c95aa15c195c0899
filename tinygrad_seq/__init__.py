"""tinygrad_seq: a small reverse-mode autograd engine on NumPy or CuPy, for sequence models.

>>> import tinygrad_seq as ts
>>> w = ts.Tensor([[0.5, -0.3]], requires_grad=True, name="W_aa")
>>> a = (w @ ts.Tensor([[1.0], [2.0]])).tanh()
>>> a.backward(ts.ones(1, 1))
>>> w.grad.round(4)
array([[0.9901, 1.9801]], dtype=float32)
"""
from . import ops  # first: ops/methods.py gives Tensor its operators and math methods before other modules load
from . import course, interop, nn, optim, settings, testing
from .backend import (
    Backend,
    BackendError,
    get_backend,
    get_default_dtype,
    manual_seed,
    set_backend,
    set_default_dtype,
    use_backend,
)
from .allocator import keep_freed_memory
from .creation import arange, full, ones, rand, randn, zeros
from .gradcheck import grad_check
from .engine import BackwardStep
from .function import Function
from .modes import detect_anomaly, enable_grad, is_grad_enabled, no_grad, tags, transparent, without_kernels, without_numba
from .ops import maximum, where
from .ops import chunk as _chunk, concat as _concat, split as _split, stack as _stack
from .ops._util import pytorch_keywords

# PyTorch's dim= beside axis=, as its own functions take axis= beside dim=
chunk, concat, split, stack = (pytorch_keywords(f) for f in (_chunk, _concat, _split, _stack))
from .tensor import Tensor, from_numpy

__version__ = "0.2.0"


def _started_as_the_command() -> bool:
    """True while ``tinygrad-seq`` or ``python -m tinygrad_seq`` imports the package: the command reports errors itself."""
    import sys
    from pathlib import Path

    as_module = sys.argv[:1] == ["-m"] and any(arg in ("tinygrad_seq", "tinygrad_seq.cli") for arg in sys.orig_argv)
    return as_module or Path(sys.argv[0]).stem == "tinygrad-seq"


try:
    get_backend()  # TINYGRAD_SEQ_BACKEND is read now, so a bad value fails at import with its fix...
except BackendError:
    if not _started_as_the_command():  # ...except in the command, which says it in one line (tinygrad_seq.cli.main)
        raise

_PYTORCH_SPELLINGS = {
    "cat": "ts.concat([a, b], axis=0)", "concatenate": "ts.concat([a, b], axis=0)",
    "zeros_like": "ts.zeros(*x.shape, dtype=x.dtype)", "ones_like": "ts.ones(*x.shape, dtype=x.dtype)",
    "matmul": "a @ b", "mm": "a @ b", "bmm": "a @ b",
    **{op: f"the tensor's method, x.{op}()" for op in ("tanh", "sigmoid", "exp", "log", "relu", "sqrt", "abs")},
    **{op: f"the tensor's method, x.{op}(axis=...)" for op in ("sum", "mean", "max", "min", "softmax", "log_softmax")},
    "clamp": "the tensor's method, x.clamp(lo, hi)",
}


def __getattr__(name: str) -> object:
    """A PyTorch function this package spells otherwise: the AttributeError says how (``ts.cat`` -> ``ts.concat``)."""
    if name in _PYTORCH_SPELLINGS:
        raise AttributeError(f"module 'tinygrad_seq' has no attribute {name!r} (PyTorch's name); here it is {_PYTORCH_SPELLINGS[name]}")
    raise AttributeError(f"module 'tinygrad_seq' has no attribute {name!r}")


__all__ = [
    "Backend", "BackendError", "BackwardStep", "Function", "Tensor", "__version__", "arange", "chunk", "concat", "course",
    "detect_anomaly", "enable_grad", "from_numpy", "full", "get_backend", "get_default_dtype", "grad_check", "interop", "is_grad_enabled", "keep_freed_memory",
    "manual_seed", "maximum", "nn", "no_grad", "ones", "ops", "optim", "rand", "randn", "set_backend", "set_default_dtype",
    "settings", "split", "stack", "tags", "testing", "transparent", "use_backend", "without_kernels", "without_numba", "where", "zeros",
]
