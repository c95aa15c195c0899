"""Tensor: an n-dimensional array that records the operations applied to it.

This module holds the :class:`Tensor` class (data, version counter, grad,
hooks, host conversion, ``backward``), ``from_numpy`` and ``as_tensor``. The
rest of the core sits around it, each piece in its own module:

==============  ==============================================================
settings.py     the global settings and ``override``
backend.py      NumPy / CuPy
modes.py        no_grad, enable_grad, tags, tag, detect_anomaly; the paths
                (transparent, without_kernels, without_numba)
lazy_grad.py    LazyGrad, its kinds (SliceGrad, OuterGrad, ...), GradientRows
anomaly.py      detect_anomaly's checks, a tensor and a node's place in words
engine.py       the backward pass (backward_iter, topological_order)
tensor.py       Tensor (this module)
function.py     Function and apply, the one place that builds the graph
ops/            every op; ops/methods.py gives Tensor its operators and math
                methods (``x + y``, ``x @ w``, ``x.sum()``, ``x.reshape()``)
==============  ==============================================================

Each module imports only those above it in this table (the engine reads
tensors through their attributes). The names that lived here before the split
still import from here: ``from tinygrad_seq.tensor import Tensor, Function``.
"""
from __future__ import annotations

import operator
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from . import settings
from .anomaly import check_finite_input, describe
from .backend import Backend, backend_named, backend_of, dtype_named, get_backend
from .engine import BackwardStep, backward_iter, topological_order
from .lazy_grad import OUTER_FLUSH_ROWS, LazyGrad, OuterGrad, SliceGrad
from .modes import detect_anomaly, enable_grad, is_grad_enabled, no_grad, tag, tags

if TYPE_CHECKING:  # for type checkers only: function.py imports this module
    from .function import Function

ArrayLike = Any  # a backend array, a nested list or a number

__all__ = [
    "ArrayLike", "BackwardStep", "backend_named", "LazyGrad", "OUTER_FLUSH_ROWS", "OuterGrad", "SliceGrad", "Tensor", "VersionCounter",
    "as_tensor", "backward_iter", "check_finite_input", "describe", "detect_anomaly", "enable_grad", "from_numpy",
    "is_grad_enabled", "no_grad", "tag", "tags", "topological_order",
]


class VersionCounter:
    """How many in-place changes a tensor's memory has seen; shared by the tensors that view one memory.

    Each change also advances the process-wide ``settings.version_clock``;
    the counter keeps the clock readings of its last few changes, so a node
    (which records the clock when it runs) can tell whether a saved tensor
    changed after it, and from which version.
    """

    __slots__ = ("value", "history")
    HISTORY = 8  # changes remembered: enough to name the version a node saw in any realistic mistake

    def __init__(self) -> None:
        self.value = 0
        self.history: list[int] = []  # clock readings of the recent changes, oldest first

    def bump(self) -> None:
        settings.version_clock += 1
        self.value += 1
        self.history.append(settings.version_clock)
        if len(self.history) > self.HISTORY:
            del self.history[0]

    def changed_at(self) -> int:
        """The clock reading of the last change (0 if none)."""
        return self.history[-1] if self.history else 0

    def value_at(self, clock: int) -> tuple[int, bool]:
        """(the version at clock reading ``clock``, whether that is exact or only an upper bound)."""
        later = sum(1 for stamp in self.history if stamp > clock)
        exact = later < len(self.history) or self.value == len(self.history)
        return self.value - later, exact


_PYTORCH_METHODS = {
    "view": "x.reshape(*shape)", "view_as": "x.reshape(*other.shape)",
    "permute": "x.transpose(*axes), the whole permutation as permute takes it",
    "contiguous": "nothing: the ops take any memory layout, so drop the call",
    "clone": "x * 1 for a new tensor in the graph, or ts.Tensor(x.numpy()) for a copy of the values outside it",
    "numel": "x.size, the number of elements (NumPy's; x.size() fails: it is a number, not a method)",
    "dim": "x.ndim",
    "cuda": 'x.to("cupy")', "cpu": 'x.to("numpy")',
    "long": 'x.to("int64")', "int": 'x.to("int32")', "half": 'x.to("float16")', "bool": 'x.to("bool")',
    "expand": "broadcasting: the ops broadcast as NumPy does, so use x as it is",
    "repeat": "ts.concat([x] * n, axis=...)",
    "mm": "x @ w", "matmul": "x @ w",
    "add": "x + y", "sub": "x - y", "mul": "x * y", "div": "x / y",
}
"""PyTorch's names for what a Tensor here spells otherwise (``x.view``): the AttributeError says how."""


class Tensor:
    """An n-dimensional array that records the operations applied to it.

    Args:
        data: backend array, NumPy array, nested list, number or Tensor,
            always copied (``ts.from_numpy`` shares a NumPy array's memory).
            Arrays keep their dtype; Python floats take the default dtype
            (float32, see ``ts.set_default_dtype``), Python ints int64. Host
            arrays are moved to the current backend.
        requires_grad: record operations on it so ``backward`` fills ``.grad``.
            Only float tensors may require grad.
        dtype: a NumPy dtype or its name ("float64").
        name: shown by ``repr`` and in rendered graphs.

    >>> import tinygrad_seq as ts
    >>> x = ts.Tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True, name="x")
    >>> (x * x).sum().backward()
    >>> x.grad
    array([[2., 4.],
           [6., 8.]], dtype=float32)
    """

    __slots__ = ("_data", "_counter", "_grad", "requires_grad", "grad_fn", "name", "_hooks", "_retains_grad", "_own_tags",
                 "_made_by", "__weakref__")  # _made_by: set by Function.apply only (see there); read with getattr
    __array_priority__ = 1000  # ndarray (op) Tensor defers to Tensor's reflected operators

    def __init__(self, data: ArrayLike, requires_grad: bool = False, dtype: Any = None, name: str | None = None) -> None:
        if isinstance(data, Tensor):
            data = data._data
        self._data = get_backend().array(data, None if dtype is None else dtype_named(dtype, "Tensor"))
        self._counter: VersionCounter | None = None
        self._grad = None
        self.grad_fn: Function | None = None
        self.name = name
        self._hooks: list[Callable[[Any], Any]] | None = None
        self._retains_grad = False
        self._own_tags: dict[str, Any] | None = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @staticmethod
    def wrap(array: Any, name: str | None = None) -> Tensor:
        """A leaf Tensor around a backend array as it is: no copy, no dtype or backend change."""
        tensor = Tensor.__new__(Tensor)
        tensor._data = array
        tensor._counter = None
        tensor._grad = None
        tensor.requires_grad = False
        tensor.grad_fn = None
        tensor.name = name
        tensor._hooks = None
        tensor._retains_grad = False
        tensor._own_tags = None
        return tensor

    # ---- the data and its version

    # A property so that assigning ``x.data = ...`` (and ``x.data -= step``, which
    # assigns too) counts as an in-place change; reading stays a C-level getter.
    data = property(operator.attrgetter("_data"), doc="The backend array. Assigning to it bumps the version.")

    @data.setter
    def data(self, array: Any) -> None:
        if not isinstance(array, settings.array_types):
            if isinstance(array, np.generic):  # a NumPy number: a 0-d array of it
                array = np.asarray(array)
            else:  # another library's tensor, a Tensor, a list: the ops would fail on it later, far from here
                kind = type(array)
                raise TypeError(f"data: must be an array of the tensor's backend ({self.backend.name}); got "
                                f"{kind.__module__.split('.')[0]}.{kind.__name__}. Assign one, x.data = "
                                "ts.Tensor(value).data, or write the values into x's own, x.data[...] = np.asarray(value)")
        if array is not self._data and self._counter is not None:
            # New memory: views of the old array keep the old counter (and their values); this tensor's count goes on.
            counter, self._counter = self._counter, VersionCounter()
            self._counter.value = counter.value
        self._data = array
        self._bump_version()

    @property
    def _version(self) -> int:
        """How many in-place changes this tensor's memory has seen, as PyTorch's ``Tensor._version``.

        Bumped by every in-place change the library makes (optimizer steps,
        ``nn.init``, ``load_state_dict``, ``Module.to``, assigning ``x.data``);
        views (reshape, transpose, basic indexing, ``detach``) share their
        base's counter. Writes into ``x.data[...]`` by hand are not seen.
        """
        return 0 if self._counter is None else self._counter.value

    def _write(self, index: Any, values: Any) -> None:
        """``data[index] = values`` in place, recorded as a change of this tensor (how the library's initialisers and
        loaders write into a parameter: a graph that saved the old values must not run backward with these)."""
        self._data[index] = values
        self._bump_version()

    def _bump_version(self) -> None:
        """Record an in-place change of this tensor's memory (library code calls it after writing into ``data``)."""
        self._shared_counter().bump()

    def _shared_counter(self) -> VersionCounter:
        """This tensor's version counter, created on first use, for a view to share."""
        if self._counter is None:
            self._counter = VersionCounter()
        return self._counter

    # ---- basic properties

    @property
    def shape(self) -> tuple[int, ...]:
        return self._data.shape

    @property
    def dtype(self) -> np.dtype:
        return self._data.dtype

    @property
    def ndim(self) -> int:
        return self._data.ndim

    @property
    def size(self) -> int:
        return self._data.size

    def __len__(self) -> int:
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    @property
    def backend(self) -> Backend:
        """The backend whose array holds the data."""
        return backend_of(self._data)

    @property
    def is_leaf(self) -> bool:
        """True for tensors not made by a recorded op (inputs and parameters)."""
        return self.grad_fn is None

    @property
    def tags(self) -> dict[str, Any]:
        """The tags recorded on the node that made this tensor, with those given to it by ``tag`` ({} for others)."""
        found = dict(self.grad_fn.tags) if self.grad_fn is not None else {}
        if self._own_tags:
            found.update(self._own_tags)
        return found

    @property
    def grad(self) -> Any:
        """The gradient as a backend array of this tensor's shape, or None. Assignable."""
        return self._grad

    @grad.setter
    def grad(self, value: Any) -> None:
        if value is not None:
            if isinstance(value, Tensor):
                value = value._data
            value = self.backend.array(value, self.dtype, copy=False)
            if value.shape != self.shape:
                raise ValueError(f"grad: shape {value.shape} does not match the tensor's shape {self.shape}")
        self._grad = value

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        """Set ``requires_grad`` in place (leaves only) and return self."""
        if requires_grad and self.dtype.kind != "f":
            raise TypeError(
                f"only float tensors can require grad; this one is {self.dtype}. "
                "Make it a float first: Tensor(data, dtype='float32', requires_grad=True)"
            )
        if not requires_grad and self.grad_fn is not None:
            raise RuntimeError("requires_grad_(False) on a non-leaf tensor: use .detach() to cut it from the graph")
        self.requires_grad = bool(requires_grad)
        return self

    def numpy(self) -> np.ndarray:
        """The values as a host NumPy array (the data itself on the NumPy backend)."""
        if settings.recording is not None:
            settings.recording.host_reads.append("numpy()")
        return self.backend.to_host(self._data)

    def tolist(self) -> Any:
        return self.numpy().tolist()

    def item(self) -> Any:
        """The single value of a one-element tensor as a Python number."""
        if settings.recording is not None:
            settings.recording.host_reads.append("item() (float(), int() or bool() of a tensor)")
        if self._data.size != 1:
            raise ValueError(f"item(): the tensor has {self._data.size} elements (shape {self.shape}); only one-element tensors convert to a number")
        return self._data.item()

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __bool__(self) -> bool:
        return bool(self.item())

    def __format__(self, spec: str) -> str:
        """A 0-d tensor formats as its number (``f"{norm:.3f}"``), as in PyTorch; others only without a spec."""
        return format(self.item(), spec) if self._data.ndim == 0 else object.__format__(self, spec)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        """The values, for NumPy taking a tensor as an array (``np.asarray(x)``, ``np.tanh(x)``). Refused for one that
        requires grad, as PyTorch refuses it: what NumPy computes from it is outside the graph, and a cell written
        with ``np.tanh(c)`` trained on with no gradient through that term, silently."""
        if self.requires_grad and settings.grad_enabled:
            described = f"a tensor {self.shape}" + (f" ({self.name})" if self.name else "")
            raise RuntimeError(
                f"NumPy took {described} that requires grad as an array: what it computes from it is outside the graph, so "
                "no gradient would flow back through it (np.tanh(x) in a cell's forward, say). Use the tensor's own ops "
                "(x.tanh(), x.exp(), ts.concat([...]), x @ w); for its values, call x.numpy() (x.item() for a number), or "
                "x.detach() to leave the graph"
            )
        array = self.numpy()
        return array if dtype is None else array.astype(dtype)

    def __repr__(self) -> str:
        body = np.array2string(self.numpy(), separator=", ", prefix="Tensor(")
        extras = [f"dtype={self.dtype}"]
        if self.backend.name != "numpy":
            extras.append(f"backend={self.backend.name!r}")
        if self.name is not None:
            extras.append(f"name={self.name!r}")
        if self.grad_fn is not None:
            extras.append(f"grad_fn={self.grad_fn.name}")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return f"Tensor({body}, {', '.join(extras)})"

    __hash__ = object.__hash__  # == is elementwise, so hash by identity

    # ---- graph

    def detach(self) -> Tensor:
        """A new leaf sharing this tensor's data (and version counter), cut from the graph (truncated BPTT uses it)."""
        tensor = Tensor.wrap(self._data, name=self.name)
        tensor._counter = self._shared_counter()
        return tensor

    def retain_grad(self) -> Tensor:
        """Keep this non-leaf tensor's gradient in ``.grad`` after backward."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad() on a tensor that does not require grad: it gets no gradient")
        self._retains_grad = True
        return self

    def register_hook(self, hook: Callable[[Any], Any]) -> Callable[[], None]:
        """Call ``hook(grad_array)`` when this tensor's gradient is complete.

        The hook may return a new array to use instead. Returns a function
        that removes the hook.
        """
        if not self.requires_grad:
            raise RuntimeError("register_hook() on a tensor that does not require grad: it gets no gradient")
        def on_array(grad: Any) -> Any:  # the engine deals in arrays: a Tensor the hook returns gives its array
            replaced = hook(grad)
            return replaced._data if isinstance(replaced, Tensor) else replaced

        if self._hooks is None:
            self._hooks = []
        self._hooks.append(on_array)
        return lambda: self._hooks.remove(on_array)

    def backward(self, grad: ArrayLike | Tensor | None = None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into ``.grad`` of every leaf that requires grad.

        Args:
            grad: the gradient flowing into this tensor, shaped like it; may
                be omitted for a one-element tensor (a loss).
            retain_graph: keep the saved arrays so backward can run again.
        """
        if isinstance(grad, Tensor):
            grad = grad._data
        for _ in backward_iter(self, grad, retain_graph):
            pass


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor that shares ``array``'s memory, as ``torch.from_numpy``: a write to one shows in the other.

    ``ts.Tensor(array)`` copies instead. The tensor keeps the array's dtype
    and lives on the NumPy backend, so the current backend must be NumPy (a
    GPU tensor cannot share host memory: use ``ts.Tensor(array)``, which
    copies it to the GPU). Writes through the NumPy array are not counted
    in the tensor's version, like writes into ``x.data[...]``.

    >>> import numpy as np
    >>> import tinygrad_seq as ts
    >>> a = np.zeros(3)
    >>> t = ts.from_numpy(a)
    >>> a[0] = 5.0
    >>> t.tolist()
    [5.0, 0.0, 0.0]
    """
    if not isinstance(array, np.ndarray):
        raise TypeError(
            f"from_numpy: expects a NumPy ndarray; got {type(array).__name__}. "
            "Use ts.Tensor(data) for lists, numbers and GPU arrays (it copies)"
        )
    if array.dtype.kind not in "biufc":
        raise TypeError(f"from_numpy: an array of dtype {array.dtype} cannot be a tensor; convert it to a float, int or bool array first")
    backend = get_backend()
    if backend.name != "numpy":
        raise RuntimeError(
            f"from_numpy: the tensor would share the NumPy array's host memory, which needs the numpy backend; "
            f"the current backend is {backend.name!r}. Use ts.Tensor(array) to copy the array to the GPU, "
            "or call from_numpy inside `with ts.use_backend('numpy'):`"
        )
    return Tensor.wrap(array)


def int_conversion(ids: Any) -> str:
    """How an error tells the user to make ``ids`` (given as floats) ints: a Tensor has no ``astype``, a list no method."""
    if isinstance(ids, Tensor):
        return '.to("int64")'
    return ".astype(int)" if hasattr(ids, "astype") else "np.asarray(ids, dtype=int)"


def _pytorch_name(name: str, how: str) -> property:
    """An attribute that is PyTorch's name for what a Tensor here spells otherwise: reading it (or calling it) is an
    AttributeError that says how, so ``hasattr`` and ``getattr(x, name, default)`` still see no such attribute."""

    def refuse(self: Tensor) -> Any:
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r} (PyTorch's name); here: {how}")

    return property(refuse, doc=f"Not here (PyTorch's name): {how}.")


for _name, _how in _PYTORCH_METHODS.items():
    setattr(Tensor, _name, _pytorch_name(_name, _how))
del _name, _how


def as_tensor(data: ArrayLike | Tensor, caller: str = "as_tensor") -> Tensor:
    """``data`` as a Tensor, without a copy where it already is an array of the current backend.

    For the library's own operands (a NumPy array in ``x * array``, the input
    of a layer): copying them, as ``Tensor(data)`` does, would cost time and
    protect nothing, since the library never writes into them. ``caller``
    names the layer or function in the error for a recurrent layer's whole
    ``(output, state)`` passed on where its output goes.
    """
    if isinstance(data, Tensor):
        return data
    if isinstance(data, tuple) and any(isinstance(part, Tensor) for part in data):
        raise TypeError(f"{caller}: got a tuple of {len(data)}, not a tensor: a recurrent layer returns (output, state); pass "
                        "the output: out, _ = rnn(x); head(out)")
    return Tensor.wrap(get_backend().array(data, copy=False))


# ---------------------------------------------------------------- old import paths


def __getattr__(name: str) -> Any:
    """``Function`` and ``unbroadcast`` moved to function.py, which builds on Tensor; old imports find them here."""
    if name in ("Function", "unbroadcast"):
        from . import function  # the one import of a higher module: only for code written before the split

        return getattr(function, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
