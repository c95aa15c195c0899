"""Tensor, Function.apply (the one place that builds the graph) and the backward pass.

A :class:`Tensor` wraps one backend array. Every differentiable primitive is a
:class:`Function` subclass in ``ops/`` with ``forward`` and ``backward`` on raw
arrays. ``Function.apply`` runs forward and, when some input requires grad
and grad mode is on, attaches the Function instance to the output as its
``grad_fn``: that instance is a node of the graph, holding its inputs, the
arrays its backward needs, and the tags in force when it ran.

``Tensor.backward`` is a loop over :func:`backward_iter`, a generator that
visits the nodes in reverse topological order (computed with an explicit
stack, so a 10,000-step chain works) and yields one :class:`BackwardStep` per
node. ``viz.backward_steps`` exposes the same generator, so what the stepper
shows is the real backward pass.
"""
from __future__ import annotations

import contextlib
import inspect
import operator
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from . import settings
from .backend import Backend, backend_named, backend_of, get_backend

ArrayLike = Any  # a backend array, a nested list or a number


# ---------------------------------------------------------------- grad mode, tags


class no_grad(settings.override):
    """Record no graph inside the block: results do not require grad.

    >>> import tinygrad_seq as ts
    >>> w = ts.Tensor([1.0, 2.0], requires_grad=True)
    >>> with ts.no_grad():
    ...     y = w * 2
    >>> y.requires_grad
    False
    """

    def __init__(self) -> None:
        super().__init__(grad_enabled=False)


class enable_grad(settings.override):
    """Record the graph inside the block, even within ``no_grad``."""

    def __init__(self) -> None:
        super().__init__(grad_enabled=True)


def is_grad_enabled() -> bool:
    """False inside ``no_grad()``."""
    return settings.grad_enabled


@contextlib.contextmanager
def tags(**new_tags: Any) -> Iterator[dict[str, Any]]:
    """Record ``new_tags`` on every node made inside the block (nested blocks merge).

    The recurrent layers set ``t`` (time step from 1), ``layer`` and
    ``direction``; the graph renderer clusters nodes by them.

    >>> import tinygrad_seq as ts
    >>> x = ts.Tensor([1.0], requires_grad=True)
    >>> with ts.tags(t=1, layer=0):
    ...     y = x.tanh()
    >>> y.tags
    {'t': 1, 'layer': 0}
    """
    with settings.override(current_tags={**settings.current_tags, **new_tags}):
        yield settings.current_tags


def tag(tensor: Tensor, **new_tags: Any) -> Tensor:
    """Add tags to this one tensor (not to the nodes made after it) and return it.

    What a tensor *is* in a recurrent step (its role: a state part, a gate,
    ...) is recorded this way by ``nn.roles``; the tags then show in
    ``tensor.tags``, in ``viz.trace`` and in the backward stepper, also for
    leaves (an initial state) that have no node.
    """
    tensor._own_tags = {**(tensor._own_tags or {}), **new_tags}
    return tensor


class detect_anomaly(settings.override):
    """Inside the block, the first op whose output or gradient holds NaN or inf raises FloatingPointError.

    Going forward, the error names the op, its time step, layer and
    direction, and its inputs. Going backward (for nodes made inside the
    block), it names the op, where it sits in the unrolled graph, the input
    the bad gradient was sent to, and the line of your code that made the op.
    Off by default, and costs nothing when off.
    """

    def __init__(self) -> None:
        super().__init__(anomaly_mode=True)


# ---------------------------------------------------------------- Function


class Function:
    """One differentiable primitive: ``forward`` and ``backward`` on raw arrays.

    The op convention, checked by ``apply``: **tensors positional, everything
    else keyword**. ``Op.apply(x, w, b, axis=1)`` passes each Tensor (or None,
    an optional tensor left out: a Linear without bias) positionally;
    ``forward(x, w, b, *, axis)`` receives their arrays in the same places and
    every other argument (axes, shapes, masks, ids, Python numbers) as the
    keyword-only parameters it names. ``backward(grad)`` returns exactly one
    gradient per positional argument, ``None`` where none is needed (check
    ``self.needs_input_grad[i]`` to skip work); keywords get none.

    A subclass lists in ``__slots__`` what its backward needs; those fields are
    dropped after a backward pass (unless ``retain_graph``), while ``inputs``,
    ``params`` (the keyword arguments) and ``tags`` stay so the graph can
    still be drawn.

    An op that keeps an input's array for backward lists its position in
    ``saved_inputs`` (Mul: ``(0, 1)``), and sets ``saves_output`` when it
    keeps its result (Exp). Backward then refuses to run if one of those
    tensors was changed in place after the op ran (an optimizer step,
    ``nn.init``, ``load_state_dict``): the saved array would hold the new
    values and the gradient would be silently wrong. The node records only
    the in-place-change clock (``settings.version_clock``) when it runs, so
    the check costs one comparison unless something changed in between.
    """

    __slots__ = ("inputs", "params", "needs_input_grad", "tags", "freed", "created_at", "recorded_at")
    _saved_fields: tuple[str, ...] = ()
    saved_inputs: tuple[int, ...] = ()  # positions of the inputs whose arrays backward reads
    saves_output: bool = False  # backward reads the op's own result
    view_of_input: bool = False  # the result may share the first input's memory (see Tensor._version)
    _checks_versions: bool = False  # saved_inputs or saves_output: ops that save no tensor pay nothing

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._saved_fields = tuple(cls.__dict__.get("__slots__", ()))
        cls._checks_versions = bool(cls.saved_inputs or cls.saves_output)

    def forward(self, *args: Any, **params: Any) -> Any:
        raise NotImplementedError

    def backward(self, grad: Any) -> tuple[Any, ...]:
        raise NotImplementedError

    @property
    def name(self) -> str:
        """The op's name, e.g. ``"MatMul"``."""
        return type(self).__name__

    @classmethod
    def apply(cls, *args: Tensor | None, **params: Any) -> Tensor:
        """Run the op on the tensors ``args`` (None: an optional one left out) with the keyword ``params``
        and, when grad is needed, record it as the output's ``grad_fn``."""
        fn = cls.__new__(cls)
        arrays = []
        requires_grad = False
        for arg in args:
            if isinstance(arg, Tensor):
                arrays.append(arg._data)
                requires_grad = requires_grad or arg.requires_grad
            elif arg is None:
                arrays.append(None)
            else:
                raise _positional_error(cls, len(arrays), arg)
        if settings.cupy_loaded:
            _check_one_backend(cls.__name__, args)
        try:
            out = fn.forward(*arrays, **params)
        except (ValueError, IndexError) as error:  # NumPy's shape errors do not say which op failed
            shapes = ", ".join(str(tuple(np.shape(a))) for a in arrays if a is not None)
            hint = "; line the axes up with reshape/unsqueeze so each pair is equal or 1" if "broadcast" in str(error) else ""
            raise type(error)(f"{cls.__name__}: {error} (input shapes {shapes}){hint}") from None
        if not isinstance(out, settings.array_types):
            out = np.asarray(out)  # NumPy ufuncs turn 0-d results into scalars
        if settings.anomaly_mode:
            _check_forward(cls.__name__, args, out)
        result = Tensor.wrap(out)
        if cls.view_of_input and fn.is_view():
            result._counter = args[0]._shared_counter()  # one memory, one version (as a PyTorch view)
        if requires_grad and settings.grad_enabled:
            if cls._checks_versions:
                fn.recorded_at = settings.version_clock
            fn.inputs = args
            fn.params = params
            fn.needs_input_grad = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
            fn.tags = settings.current_tags
            fn.freed = False
            fn.created_at = traceback.format_stack()[:-1] if settings.anomaly_mode else None
            result.requires_grad = True
            result.grad_fn = fn
        if settings.recording is not None:  # a cell step is being recorded (nn.recorded): note every op it runs
            settings.recording.ops.append((cls, args, params, result))
        return result

    def part_grads(self, grad: Any) -> tuple[Any, ...]:
        """For a node whose result packs several parts along axis 0 (a fused step's state [a⟨t⟩, c⟨t⟩]):
        the gradient of each part. A node in which one part also flows into another (the LSTM's c⟨t⟩
        into a⟨t⟩) overrides it to add that flow; ``viz.gradient_flow`` asks every such node this way."""
        return tuple(grad[i] for i in range(grad.shape[0]))

    def is_view(self) -> bool:
        """For an op with ``view_of_input``: whether this call's result shares its input's memory (after forward)."""
        return True

    def free(self) -> None:
        """Drop the arrays saved for backward; the node's inputs and tags stay."""
        for field in self._saved_fields:
            setattr(self, field, None)
        self.freed = True


def _check_one_backend(op: str, args: Sequence[Any]) -> None:
    names = {backend_of(a._data).name for a in args if isinstance(a, Tensor)}
    if len(names) > 1:
        shapes = [tuple(a.shape) for a in args if isinstance(a, Tensor)]
        raise RuntimeError(
            f"{op}: inputs live on two backends ({' and '.join(sorted(names))}; shapes {shapes}). "
            "Move them to one first, e.g. x.to('cupy') or x.to('numpy')"
        )


def _positional_error(cls: type, position: int, arg: Any) -> TypeError:
    """The op convention's error: ``arg``, passed positionally to ``cls.apply``, is neither a Tensor nor None."""
    shown = repr(arg)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    keywords = [name for name, p in inspect.signature(cls.forward).parameters.items() if p.kind is p.KEYWORD_ONLY]
    where = (f"({cls.__name__}.forward's keyword parameters: {', '.join(keywords)})" if keywords
             else f"(declared keyword-only in {cls.__name__}.forward, after a *)")
    return TypeError(
        f"{cls.__name__}.apply: positional argument {position} is the {type(arg).__name__} {shown}, not a tensor; only "
        f"tensors (or None for an optional tensor left out) go positionally. Pass it as a keyword argument {where}, "
        "or, if it is data the op should differentiate, wrap it in ts.Tensor(...)"
    )


def _check_saved_versions(node: Function, tensor: Tensor) -> None:
    """Raise if a tensor whose array ``node`` saved for backward was changed in place after the op ran."""
    saved = [("its input", node.inputs[i]) for i in node.saved_inputs]
    if node.saves_output:
        saved.append(("its own result", tensor))
    for role, saved_tensor in saved:
        counter = saved_tensor._counter if isinstance(saved_tensor, Tensor) else None
        if counter is None or counter.changed_at() <= node.recorded_at:
            continue
        then, exact = counter.value_at(node.recorded_at)
        where = f" at {_where(node.tags)}" if node.tags else ""
        raise RuntimeError(
            f"backward through {node.name}{where}: {role} {describe(saved_tensor)} of shape {saved_tensor.shape} "
            f"was changed in place after {node.name} saved it for backward (version {'' if exact else 'at most '}{then} "
            f"then, {counter.value} now), so the gradient would be computed from the new values. Call backward() before "
            "opt.step() (or nn.init, load_state_dict, any in-place change), or compute the loss again after the change"
        )


def unbroadcast(grad: Any, shape: tuple[int, ...]) -> Any:
    """Sum ``grad`` over the axes that broadcasting added or stretched, giving ``shape``."""
    if grad.shape == shape:
        return grad
    leading = grad.ndim - len(shape)
    stretched = tuple(leading + i for i, n in enumerate(shape) if n == 1 and grad.shape[leading + i] != 1)
    return grad.sum(axis=tuple(range(leading)) + stretched).reshape(shape)


# ---------------------------------------------------------------- Tensor


def _as_array(data: Any, dtype: Any, backend: Backend, copy: bool = True) -> Any:
    """The backend array for Tensor(data, dtype) following DESIGN.md's dtype rules.

    An array is copied (as ``torch.tensor`` does), so later writes to it do
    not reach the tensor behind the engine's back; ``copy=False`` keeps it
    when it already has the dtype and backend (internal use: operands, grads).
    """
    if isinstance(data, settings.array_types):
        if dtype is not None and data.dtype != dtype:
            return backend.adopt(data.astype(dtype))  # astype made a copy already
        adopted = backend.adopt(data)
        return adopted.copy() if copy and adopted is data else adopted
    host = np.asarray(data, dtype=dtype)
    if not isinstance(data, np.generic):  # NumPy scalars keep their dtype like arrays
        if dtype is None and host.dtype.kind == "f":
            host = host.astype(settings.default_dtype)  # Python floats -> default dtype
        elif dtype is None and host.dtype.kind in "iu":
            host = host.astype(np.int64)
    if host.dtype == object:
        raise TypeError(f"Tensor: cannot make a tensor from {type(data).__name__} {data!r:.60}")
    return backend.asarray(host)


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
                 "__weakref__")
    __array_priority__ = 1000  # ndarray (op) Tensor defers to Tensor's reflected operators

    def __init__(self, data: ArrayLike, requires_grad: bool = False, dtype: Any = None, name: str | None = None) -> None:
        if isinstance(data, Tensor):
            data = data._data
        self._data = _as_array(data, None if dtype is None else np.dtype(dtype), get_backend())
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
            value = _as_array(value, self.dtype, self.backend, copy=False)
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

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
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
        if self._hooks is None:
            self._hooks = []
        self._hooks.append(hook)
        return lambda: self._hooks.remove(hook)

    def backward(self, grad: ArrayLike | Tensor | None = None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into ``.grad`` of every leaf that requires grad.

        Args:
            grad: the gradient flowing into this tensor, shaped like it; may
                be omitted for a one-element tensor (a loss).
            retain_graph: keep the saved arrays so backward can run again.
        """
        for _ in backward_iter(self, grad, retain_graph):
            pass

    # ---- conversion

    def to(self, target: str | Backend | Any) -> Tensor:
        """This tensor on another backend ("numpy", "cupy") or with another dtype; differentiable."""
        if isinstance(target, Backend) or target in ("numpy", "cupy"):
            backend = backend_named(target)
            return self if backend is self.backend else ops.ToBackend.apply(self, backend=backend)
        dtype = np.dtype(target)
        return self if dtype == self.dtype else ops.Cast.apply(self, dtype=dtype)

    def double(self) -> Tensor:
        return self.to(np.float64)

    def float(self) -> Tensor:
        return self.to(np.float32)

    # ---- operators: thin wrappers over the functions in ops/

    def __add__(self, other: Any) -> Tensor:
        return ops.add(self, other)

    def __radd__(self, other: Any) -> Tensor:
        return ops.add(other, self)

    def __sub__(self, other: Any) -> Tensor:
        return ops.sub(self, other)

    def __rsub__(self, other: Any) -> Tensor:
        return ops.sub(other, self)

    def __mul__(self, other: Any) -> Tensor:
        return ops.mul(self, other)

    def __rmul__(self, other: Any) -> Tensor:
        return ops.mul(other, self)

    def __truediv__(self, other: Any) -> Tensor:
        return ops.div(self, other)

    def __rtruediv__(self, other: Any) -> Tensor:
        return ops.div(other, self)

    def __matmul__(self, other: Any) -> Tensor:
        return ops.matmul(self, other)

    def __rmatmul__(self, other: Any) -> Tensor:
        return ops.matmul(other, self)

    def __neg__(self) -> Tensor:
        return ops.neg(self)

    def __abs__(self) -> Tensor:
        return ops.abs(self)

    def __pow__(self, exponent: Any) -> Tensor:
        return ops.pow(self, exponent)

    def __getitem__(self, index: Any) -> Tensor:
        return ops.getitem(self, index)

    def __eq__(self, other: Any) -> Tensor:  # type: ignore[override]
        return ops.compare("==", self, other)

    def __ne__(self, other: Any) -> Tensor:  # type: ignore[override]
        return ops.compare("!=", self, other)

    def __lt__(self, other: Any) -> Tensor:
        return ops.compare("<", self, other)

    def __le__(self, other: Any) -> Tensor:
        return ops.compare("<=", self, other)

    def __gt__(self, other: Any) -> Tensor:
        return ops.compare(">", self, other)

    def __ge__(self, other: Any) -> Tensor:
        return ops.compare(">=", self, other)

    def exp(self) -> Tensor:
        return ops.exp(self)

    def log(self) -> Tensor:
        return ops.log(self)

    def sqrt(self) -> Tensor:
        return ops.sqrt(self)

    def abs(self) -> Tensor:
        return ops.abs(self)

    def tanh(self) -> Tensor:
        return ops.tanh(self)

    def sigmoid(self) -> Tensor:
        return ops.sigmoid(self)

    def relu(self) -> Tensor:
        return ops.relu(self)

    def clamp(self, lo: float | None = None, hi: float | None = None) -> Tensor:
        return ops.clamp(self, lo, hi)

    def sum(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        return ops.sum(self, axis, keepdims)

    def mean(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        return ops.mean(self, axis, keepdims)

    def max(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        return ops.max(self, axis, keepdims)

    def min(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        return ops.min(self, axis, keepdims)

    def argmax(self, axis: int | None = None) -> Tensor:
        return ops.argmax(self, axis)

    def softmax(self, axis: int = -1) -> Tensor:
        return ops.softmax(self, axis)

    def log_softmax(self, axis: int = -1) -> Tensor:
        return ops.log_softmax(self, axis)

    def masked_fill(self, mask: Any, value: float) -> Tensor:
        return ops.masked_fill(self, mask, value)

    def reshape(self, *shape: int | Sequence[int]) -> Tensor:
        return ops.reshape(self, *shape)

    def transpose(self, *axes: int | Sequence[int]) -> Tensor:
        return ops.transpose(self, *axes)

    def swapaxes(self, axis1: int, axis2: int) -> Tensor:
        return ops.swapaxes(self, axis1, axis2)

    @property
    def T(self) -> Tensor:
        return ops.transpose(self)

    def unsqueeze(self, axis: int) -> Tensor:
        return ops.unsqueeze(self, axis)

    def squeeze(self, axis: int | tuple[int, ...] | None = None) -> Tensor:
        return ops.squeeze(self, axis)

    def flatten(self) -> Tensor:
        return ops.reshape(self, -1)


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


def as_tensor(data: ArrayLike | Tensor) -> Tensor:
    """``data`` as a Tensor, without a copy where it already is an array of the current backend.

    For the library's own operands (a NumPy array in ``x * array``, the input
    of a layer): copying them, as ``Tensor(data)`` does, would cost time and
    protect nothing, since the library never writes into them.
    """
    if isinstance(data, Tensor):
        return data
    return Tensor.wrap(_as_array(data, None, get_backend(), copy=False))


# ---------------------------------------------------------------- backward


class LazyGrad:
    """A gradient kept in a cheaper form than a dense array: the protocol the engine and the tools use.

    An op's ``backward`` may return one (or a list of them for one input)
    instead of an array. The engine and the renderer never test which kind it
    is; they call these methods, so a new kind is one subclass:

    - ``shape``, ``dtype``: those of the dense gradient;
    - ``dense()``: the gradient as one array;
    - ``arrays()``: the arrays it holds (checked for NaN by ``detect_anomaly``);
    - ``astype(dtype)``: the same gradient in another dtype;
    - ``add_into(buffer)``: add it into a full-size gradient buffer, in place;
    - ``display()``: (a prefix, an array): how a tool shows it in a picture;
    - ``deferred``: True for a kind the engine collects until the gradient is
      complete (or ``flush_now(parts)`` says so) and then sums in one go with
      ``sum_into(parts, shape, buffer)``.
    """

    __slots__ = ()
    deferred: bool = False
    shape: tuple[int, ...]

    @property
    def dtype(self) -> np.dtype:
        return self.arrays()[0].dtype

    def arrays(self) -> tuple[Any, ...]:
        raise NotImplementedError

    def dense(self) -> Any:
        buffer = backend_of(self.arrays()[0]).xp.zeros(self.shape, dtype=self.dtype)
        self.add_into(buffer)
        return buffer

    def astype(self, dtype: Any) -> LazyGrad:
        raise NotImplementedError

    def display(self) -> tuple[str, Any]:
        return "", self.dense()

    def add_into(self, buffer: Any) -> None:
        raise NotImplementedError

    @staticmethod
    def flush_now(parts: list[LazyGrad]) -> bool:
        return False

    @staticmethod
    def sum_into(parts: list[LazyGrad], shape: tuple[int, ...], buffer: Any = None) -> Any:
        raise NotImplementedError


class SliceGrad(LazyGrad):
    """A gradient that is zero outside ``x[index]``: what an op that read one slice of x sends back.

    The engine adds ``values`` into x's gradient buffer in place, so reading
    the T time steps of a (T, ...) tensor one by one costs O(size) in
    backward, not the O(T · size) of T dense gradients. ``index`` must pick
    each element at most once (ints, slices, None, ..., bool masks).
    """

    __slots__ = ("index", "values", "shape")

    def __init__(self, index: Any, values: Any, shape: tuple[int, ...]) -> None:
        self.index, self.values, self.shape = index, values, shape

    def arrays(self) -> tuple[Any, ...]:
        return (self.values,)

    def astype(self, dtype: Any) -> SliceGrad:
        return self if self.values.dtype == dtype else SliceGrad(self.index, self.values.astype(dtype), self.shape)

    def add_into(self, buffer: Any) -> None:
        buffer[self.index] += self.values

    def display(self) -> tuple[str, Any]:
        return f"[{self.index}]: ", self.values  # only the slice: the rest is zero

    def __repr__(self) -> str:
        return f"SliceGrad(index={self.index!r}, values {tuple(self.values.shape)} of {self.shape})"


OUTER_FLUSH_ROWS = 1024  # deferred OuterGrad rows summed at once: large enough for BLAS, small enough for memory


class OuterGrad(LazyGrad):
    """A weight's gradient from one use, kept as the factors of ``left.T @ right``.

    ``left`` (N, out) and ``right`` (N, in) make an (out, in) gradient, or the
    rows ``rows`` of one when given. A weight shared by T time steps receives
    T of these; the engine sums them with one matmul over the concatenated
    factors when the weight's gradient is complete, instead of T small
    matmuls that each write and re-add a full weight-sized array.
    """

    __slots__ = ("left", "right", "shape", "rows")
    deferred = True

    def __init__(self, left: Any, right: Any, shape: tuple[int, ...], rows: slice | None = None) -> None:
        self.left, self.right, self.shape, self.rows = left, right, shape, rows

    def arrays(self) -> tuple[Any, ...]:
        return (self.left, self.right)

    def astype(self, dtype: Any) -> OuterGrad:
        return self  # cast once summed: the sum is in the factors' dtype, then cast as a whole

    def dense(self) -> Any:
        return OuterGrad.sum_into([self], self.shape)

    def add_into(self, buffer: Any) -> None:
        OuterGrad.sum_into([self], self.shape, buffer)

    @staticmethod
    def flush_now(parts: list[OuterGrad]) -> bool:
        """Enough rows for an efficient matmul: sum them now, so memory stays bounded on long sequences."""
        return sum(p.left.shape[0] for p in parts) >= OUTER_FLUSH_ROWS

    @staticmethod
    def sum_into(parts: list[OuterGrad], shape: tuple[int, ...], buffer: Any = None) -> Any:
        """Σ left.T @ right over ``parts`` (grouped by rows), added to ``buffer`` or to zeros."""
        xp = backend_of(parts[0].left).xp
        groups: dict[tuple[Any, Any], list[OuterGrad]] = {}
        for part in parts:
            rows = part.rows
            groups.setdefault((None, None) if rows is None else (rows.start, rows.stop), []).append(part)
        if buffer is None and len(groups) == 1 and (None, None) in groups:
            group = groups[(None, None)]
            return xp.concatenate([p.left for p in group]).T @ xp.concatenate([p.right for p in group])
        total = xp.zeros(shape, dtype=parts[0].dtype) if buffer is None else buffer
        for (start, stop), group in groups.items():
            product = xp.concatenate([p.left for p in group]).T @ xp.concatenate([p.right for p in group])
            if start is None and stop is None:
                total += product
            else:
                total[start:stop] += product
        return total


def _accumulate(grads: dict[int, Any], owned: set[int], key: int, target: Tensor, grad: Any, deferred: dict[int, list] | None = None) -> None:
    """Add ``grad`` (an array or a LazyGrad) to the running gradient of ``target``.

    A gradient received from an op may be shared with other inputs (Add sends
    the same array to both), so it is stored as is and copied only when a
    second one arrives; from then on the buffer is ours and sums in place.
    """
    if isinstance(grad, LazyGrad):
        if grad.deferred:
            parts = deferred.setdefault(key, [])
            parts.append(grad)
            if not grad.flush_now(parts):
                return
            del deferred[key]
            buffer = grads.get(key)
            if buffer is not None and key not in owned:
                buffer = buffer.copy()
            grads[key] = grad.sum_into(parts, target.shape, buffer).astype(target.dtype, copy=False)
            owned.add(key)
            return
        buffer = grads.get(key)
        if buffer is None:
            buffer = grads[key] = backend_of(grad.arrays()[0]).xp.zeros(target.shape, dtype=target.dtype)
            owned.add(key)
        elif key not in owned:
            buffer = grads[key] = buffer.copy()
            owned.add(key)
        grad.add_into(buffer)
    elif key not in grads:
        grads[key] = grad
    elif key in owned:
        grads[key] += grad
    else:
        grads[key] = grads[key] + grad
        owned.add(key)


def _complete(grads: dict[int, Any], owned: set[int], deferred: dict[int, list], key: int, target: Tensor) -> tuple[Any, bool]:
    """Pop a tensor's finished gradient (dense parts plus deferred lazy ones) and whether it is a fresh array."""
    dense = grads.pop(key, None)
    fresh = key in owned
    owned.discard(key)
    parts = deferred.pop(key, None)
    if parts:
        if dense is not None and not fresh:
            dense = dense.copy()
        dense = parts[0].sum_into(parts, target.shape, dense)
        fresh = True
        if dense.dtype != target.dtype:
            dense = dense.astype(target.dtype)
    return dense, fresh


class BackwardStep:
    """One step of the backward pass: a non-leaf tensor's node receives a gradient and sends some on.

    Attributes:
        tensor: the non-leaf tensor whose gradient is complete at this step.
        node: its ``grad_fn`` (the op); ``node.tags`` are the tags it was made under.
        grad: the gradient arriving at the tensor (after its hooks).
        input_grads: one entry per op argument, the gradient sent to it, or
            None where it needs none (constants, tensors not requiring grad).
        partial_grads: the gradients summed so far for tensors still waiting
            for more (keyed by ``id(tensor)``): a shared weight's running total
            lives here until its last use has been visited. Live: it changes
            as the iteration goes on.
    """

    __slots__ = ("tensor", "node", "grad", "input_grads", "partial_grads", "partial_outer")

    def __init__(self, tensor: Tensor, node: Function, grad: Any, input_grads: tuple[Any, ...],
                 partial_grads: dict[int, Any], partial_outer: dict[int, list]) -> None:
        self.tensor = tensor
        self.node = node
        self.grad = grad
        self.input_grads = input_grads
        self.partial_grads = partial_grads
        self.partial_outer = partial_outer

    def running_grad(self, tensor: Tensor) -> Any:
        """A copy of the gradient summed so far for ``tensor`` if it is still waiting for more, else None."""
        dense = self.partial_grads.get(id(tensor))
        parts = self.partial_outer.get(id(tensor))
        if parts:
            return parts[0].sum_into(parts, tensor.shape, None if dense is None else dense.copy())
        return None if dense is None else dense.copy()

    @property
    def op(self) -> str:
        return self.node.name

    @property
    def name(self) -> str | None:
        return self.tensor.name

    @property
    def tags(self) -> dict[str, Any]:
        return self.tensor.tags

    def __repr__(self) -> str:
        shapes = [None if g is None else tuple(g.shape) for g in self.input_grads]
        return f"BackwardStep(op={self.op}, name={self.name!r}, tags={self.tags}, grad {tuple(self.grad.shape)} -> {shapes})"


def topological_order(root: Tensor) -> tuple[list[Tensor], dict[int, int]]:
    """Non-leaf tensors reachable from ``root``, root first, and how many gradients each tensor receives.

    Two passes with explicit stacks (an unrolled RNN is deeper than Python's
    recursion limit): the first counts each tensor's consumers, the second
    releases a tensor once all its consumers are done (Kahn's algorithm). The
    ready tensors form a stack, so backward follows one path as deep as it
    can: through an unrolled RNN it finishes the last time step, then moves
    to the one before. Only edges into tensors that require grad count.
    """
    incoming: dict[int, int] = {}
    seen = {id(root)}
    stack = [root]
    while stack:
        node = stack.pop().grad_fn
        for arg, needs in zip(node.inputs, node.needs_input_grad):
            if needs:
                incoming[id(arg)] = incoming.get(id(arg), 0) + 1
                if arg.grad_fn is not None and id(arg) not in seen:
                    seen.add(id(arg))
                    stack.append(arg)
    order: list[Tensor] = []
    waiting = dict(incoming)
    ready = [root]
    while ready:
        tensor = ready.pop()
        order.append(tensor)
        node = tensor.grad_fn
        for arg, needs in zip(node.inputs, node.needs_input_grad):
            if needs and arg.grad_fn is not None:
                waiting[id(arg)] -= 1
                if waiting[id(arg)] == 0:
                    ready.append(arg)
    return order, incoming


def _accumulate_into_leaf(leaf: Tensor, grad: Any, fresh: bool = False) -> None:
    """Add a leaf's complete gradient to its ``.grad``; ``fresh``: the array is the engine's own, no copy needed."""
    if leaf._hooks:
        grad = _run_hooks(leaf, grad)
        fresh = False
    if leaf._grad is None and fresh and grad.dtype == leaf.dtype:
        leaf._grad = grad
    elif leaf._grad is None:
        # A copy the leaf owns (optimizers write into it), in whatever memory order grad has: cheaper.
        leaf._grad = grad.copy(order="K") if grad.dtype == leaf.dtype else grad.astype(leaf.dtype)
    else:
        leaf._grad += grad


def _run_hooks(tensor: Tensor, grad: Any) -> Any:
    for hook in tensor._hooks:
        replaced = hook(grad)
        if replaced is not None:
            if isinstance(replaced, Tensor):
                replaced = replaced._data
            if replaced.shape != grad.shape:
                raise RuntimeError(f"a hook on tensor {tensor.name or ''} {tensor.shape} returned a gradient of shape {replaced.shape}; it must keep the shape {grad.shape}")
            grad = replaced
    return grad


def _initial_grad(root: Tensor, grad: Any) -> Any:
    if not root.requires_grad:
        raise RuntimeError(
            f"backward() on a tensor {root.shape} that does not require grad: no input of the ops that made it "
            "requires grad (or it was made under no_grad). Create leaves with requires_grad=True"
        )
    if grad is None:
        if root._data.size != 1:
            raise RuntimeError(
                f"backward() on a tensor of shape {root.shape} needs a gradient: only one-element tensors get 1.0 "
                "by default. Pass grad= (an array of that shape) or reduce first, e.g. y.sum().backward()"
            )
        return root.backend.xp.ones(root.shape, dtype=root.dtype)
    if isinstance(grad, Tensor):
        grad = grad._data
    grad = _as_array(grad, root.dtype, root.backend, copy=False)
    if grad.shape != root.shape:
        raise RuntimeError(f"backward(): grad shape {grad.shape} != tensor shape {root.shape}; pass a gradient shaped like the tensor")
    return grad


def backward_iter(root: Tensor, grad: Any = None, retain_graph: bool = False) -> Iterator[BackwardStep]:
    """The backward pass, one :class:`BackwardStep` per non-leaf node, in reverse topological order.

    Gradients reach a step's inputs before the step is yielded; a leaf's
    ``.grad`` is updated once all its gradients have arrived. Stopping the
    iteration early leaves the gradients computed so far.
    """
    grads = {id(root): _initial_grad(root, grad)}
    if root.grad_fn is None:  # backward on a leaf: its gradient is the seed
        _accumulate_into_leaf(root, grads[id(root)])
        return
    order, incoming = topological_order(root)
    owned: set[int] = set()  # gradient buffers allocated here, safe to add into in place
    deferred: dict[int, list] = {}  # deferred lazy gradients (OuterGrad factors), summed when a gradient is complete
    for tensor in order:
        grad, _ = _complete(grads, owned, deferred, id(tensor), tensor)
        if grad is None:
            continue
        if tensor._hooks:
            grad = _run_hooks(tensor, grad)
        if tensor._retains_grad:
            tensor._grad = grad.copy() if tensor._grad is None else tensor._grad + grad
        node = tensor.grad_fn
        if node.freed:
            raise RuntimeError(
                f"backward through {node.name} a second time: its saved arrays were freed by the first backward(). "
                "Pass retain_graph=True to the first backward() to run backward through this graph again"
            )
        if node._checks_versions and node.recorded_at != settings.version_clock:
            _check_saved_versions(node, tensor)  # something changed in place since the op ran: was it saved here?
        input_grads = node.backward(grad)
        if len(input_grads) != len(node.inputs):
            raise RuntimeError(
                f"{node.name}.backward returned {len(input_grads)} gradients for {len(node.inputs)} inputs; "
                "return one per positional (tensor) argument of apply, None where there is none, and none for keywords"
            )
        if not retain_graph:
            node.free()
        for arg, needs, input_grad in zip(node.inputs, node.needs_input_grad, input_grads):
            if not needs:
                continue
            key = id(arg)
            # An op may send one input several OuterGrads (blocks of rows of a weight) as a list.
            for piece in input_grad if type(input_grad) is list else (input_grad,):
                _accumulate(grads, owned, key, arg, _checked_grad(node, arg, piece), deferred)
            if arg.grad_fn is None:
                incoming[key] -= 1
                if incoming[key] == 0:
                    total, fresh = _complete(grads, owned, deferred, key, arg)
                    _accumulate_into_leaf(arg, total, fresh)
        yield BackwardStep(tensor, node, grad, input_grads, grads, deferred)


def _checked_grad(node: Function, arg: Tensor, grad: Any) -> Any:
    """``grad`` as an array or LazyGrad of ``arg``'s shape and dtype; raises naming ``node`` if the shape is wrong."""
    if isinstance(grad, LazyGrad):
        grad = grad.astype(arg._data.dtype)
    else:
        if not isinstance(grad, settings.array_types):
            grad = np.asarray(grad)  # NumPy turns 0-d results into scalars
        if grad.dtype != arg._data.dtype:
            grad = grad.astype(arg._data.dtype)
    if grad.shape != arg._data.shape:
        raise RuntimeError(f"grad shape {grad.shape} != tensor shape {arg._data.shape} in {node.name}")
    if settings.anomaly_mode:
        _check_finite(node, arg, grad)
    return grad


def _finite(array: Any) -> bool:
    return array.dtype.kind != "f" or bool(backend_of(array).xp.isfinite(array).all())


def _where(tags: dict[str, Any]) -> str:
    """ "time step 3, layer 0, forward" from a node's tags ("outside the time loop" without them)."""
    parts = []
    if "t" in tags:
        parts.append(f"time step {tags['t']}")
    if "layer" in tags:
        parts.append(f"layer {tags['layer']}")
    if "direction" in tags:
        parts.append(str(tags["direction"]))
    return ", ".join(parts) or "outside the time loop"


def _at(tags: dict[str, Any]) -> str:
    """ "at time step 3, layer 0, forward", or "outside the time loop"."""
    where = _where(tags)
    return where if not ("t" in tags or "layer" in tags or "direction" in tags) else f"at {where}"


def describe(tensor: Tensor) -> str:
    """A tensor in words for error messages: its name, else its role ("state a", "gate forget"), else "unnamed"."""
    if tensor.name:
        return tensor.name
    tags = tensor.tags
    what = tags.get("part") or ", ".join(tags.get("parts", ())) or tags.get("gate", "")
    return f"{tags['role']} {what}".strip() if "role" in tags else "unnamed"


def _input_names(args: Sequence[Any]) -> str:
    names = [f"{describe(a)} {tuple(a.shape)}" for a in args if isinstance(a, Tensor)]
    return ", ".join(names) or "none"


def _first_non_finite(array: Any) -> tuple[tuple[int, ...], int, float]:
    """(multi-index, flat index, value) of the first NaN or inf in ``array`` (C order)."""
    xp = backend_of(array).xp
    flat = int(xp.argmax(~xp.isfinite(array).ravel()))
    index = tuple(int(i) for i in np.unravel_index(flat, array.shape))
    return index, flat, float(array.ravel()[flat])


def _describe_non_finite(array: Any, time_axis: int | None = None) -> str:
    """ "nan at index (4, 1, 0) (flat index 25), time step 5": where the first NaN or inf of ``array`` is.

    ``time_axis``: the axis of time steps when ``array`` is a sequence
    (counted from 1, as the ``t`` tag of nn.Recurrent).
    """
    index, flat, value = _first_non_finite(array)
    text = f"{value} at index {index} (flat index {flat})"
    if time_axis is not None and array.ndim > time_axis:
        text += f", time step {index[time_axis] + 1}"
    return text


def check_finite_input(tensor: Tensor, op: str, what: str, time_axis: int | None = None) -> None:
    """detect_anomaly's check of what a layer receives (nn.Recurrent's input and state): raise at the first NaN or inf.

    Names the layer, the tensor, the first non-finite element and its time
    step, so a NaN in the data is not blamed on the first op that reads it.
    """
    if _finite(tensor._data):
        return
    raise FloatingPointError(
        f"detect_anomaly: {what} {tensor.name or 'unnamed'} of shape {tensor.shape} given to {op} is already non-finite: "
        f"{_describe_non_finite(tensor._data, time_axis)}. The NaN or inf came in with it; no op of {op} made it. "
        "Check the data, or where this tensor was computed (run that inside detect_anomaly() too)"
    )


def _check_forward(op: str, args: Sequence[Any], out: Any) -> None:
    """detect_anomaly's forward check: the first op whose output holds NaN or inf raises.

    If an input is non-finite already, the message blames that input (its
    name, the first bad element, its time step) rather than the op.
    """
    if _finite(out):
        return
    tags = settings.current_tags
    stack = "".join(traceback.format_stack()[-6:-3])
    for arg in args:
        if isinstance(arg, Tensor) and not _finite(arg._data):
            made = f" (made at time step {arg.tags['t']})" if "t" in arg.tags else ""
            raise FloatingPointError(
                f"detect_anomaly: the input {arg.name or 'unnamed'} of shape {arg.shape}{made} of {op} is already non-finite "
                f"going forward, {_at(tags)}: {_describe_non_finite(arg._data)}. "
                f"The NaN or inf came in with this input; {op} did not make it. Check where that input comes from "
                f"(the data, a parameter, or an op run outside detect_anomaly()). {op} was called at:\n{stack}"
            )
    raise FloatingPointError(
        f"detect_anomaly: {op} produced a non-finite output going forward, {_at(tags)} "
        # time_axis: set by nn.Recurrent on the fused path's input projection, which maps all time steps at once
        f"(tags {tags}): its output of shape {tuple(out.shape)} holds {_describe_non_finite(out, tags.get('time_axis'))}; "
        f"its inputs, all finite: {_input_names(args)}. It was called at:\n{stack}"
    )


def _check_finite(node: Function, arg: Tensor, grad: Any) -> None:
    """detect_anomaly's backward check: the first op that sends a NaN or inf gradient raises."""
    arrays = grad.arrays() if isinstance(grad, LazyGrad) else (grad,)
    if all(_finite(a) for a in arrays):
        return
    where = "".join(node.created_at[-3:]) if node.created_at else "  (made outside detect_anomaly(); wrap the forward pass too to see where)\n"
    raise FloatingPointError(
        f"detect_anomaly: {node.name} (tags {node.tags}) sent a non-finite gradient going backward, at {_where(node.tags)}, "
        f"to its input {arg.name or 'unnamed'} of shape {arg.shape}; the op's inputs: {_input_names(node.inputs)}. "
        f"The op was made at:\n{where}"
    )


from . import ops  # noqa: E402  ops build on Tensor and Function above; imported last to break the cycle
