"""Function: one differentiable primitive, and ``Function.apply``, the one place that builds the graph.

Every op is a :class:`Function` subclass in ``ops/`` with ``forward`` and
``backward`` on raw arrays. ``apply`` runs forward and, when some input
requires grad and grad mode is on, attaches the Function instance to the
output as its ``grad_fn``: that instance is a node of the graph, holding its
inputs, its keyword parameters, the arrays its backward needs and the tags in
force when it ran. ``unbroadcast`` is the helper every broadcasting op's
backward shares.
"""
from __future__ import annotations

import inspect
import traceback
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import settings
from .anomaly import check_forward
from .backend import backend_of
from .tensor import Tensor


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
    layout_keywords: tuple[str, ...] = ()
    """Keywords that only lay an operand out for speed (a weight's transpose made for one call), never change
    the result: a recorded cell step drops them, as a copy made for one call would go stale in its tape."""
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
        arrays, needs = [], []
        for arg in args:
            if isinstance(arg, Tensor):
                arrays.append(arg._data)
                needs.append(arg.requires_grad)
            elif arg is None:
                arrays.append(None)
                needs.append(False)
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
            check_forward(cls.__name__, args, out)
        result = Tensor.wrap(out)
        if cls.view_of_input and fn.is_view():
            result._counter = args[0]._shared_counter()  # one memory, one version (as a PyTorch view)
        if settings.grad_enabled and any(needs) and out.dtype.kind in "fc":  # ints and bools have no gradient (a cast to
            # them starts a new graph, as in PyTorch; recorded, their truncated gradient would flow back as zeros)
            if cls._checks_versions:
                fn.recorded_at = settings.version_clock
            fn.inputs = args
            fn.params = params
            fn.needs_input_grad = tuple(needs)
            fn.tags = settings.current_tags
            fn.freed = False
            fn.created_at = traceback.format_stack()[:-1] if settings.anomaly_mode else None
            result.requires_grad = True
            result.grad_fn = fn
        elif settings.grad_enabled and "cell" in settings.current_tags:  # made in a recurrent layer (its tags name the
            result._made_by = cls.__name__  # cell) with no node: a picture names the op ("Concat (no grad)"), not "input"
        if settings.recording is not None:  # a cell step is being recorded (nn.recorded): note every op it runs
            settings.recording.ops.append((cls, args, params, result))
        return result

    def part_grads(self, grad: Any) -> tuple[Any, ...]:
        """For a node whose result packs several parts along axis 0 (a fused step's state [a⟨t⟩, c⟨t⟩]):
        the gradient of each part. A node in which one part also flows into another (the LSTM's c⟨t⟩
        into a⟨t⟩) overrides it to add that flow; ``viz.gradient_flow`` asks every such node this way. None
        for a part no gradient reaches (one that nothing reads, left out of the pictures as on the transparent
        path, where its tensors are not in the graph)."""
        return tuple(grad[i] for i in range(grad.shape[0]))

    def blas_threads(self) -> int | None:
        """How many BLAS threads this node's backward may use; None: all of them. A recurrent step's node
        answers 1 when its products are small (see blas.py); the engine applies it."""
        return None

    def is_view(self) -> bool:
        """For an op with ``view_of_input``: whether this call's result shares its input's memory (after forward)."""
        return True

    def free(self) -> None:
        """Drop the arrays saved for backward; the node's inputs and tags stay."""
        for field in self._saved_fields:
            setattr(self, field, None)
        self.freed = True


def _check_one_backend(op: str, args: Sequence[Any]) -> None:
    names = {backend_of(a._data).name for a in args if a is not None}
    if len(names) > 1:
        shapes = [tuple(a.shape) for a in args if a is not None]
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


def shape_of(operand: Any) -> tuple[int, ...]:
    """An op operand's shape: an array's (any backend's, 0-d included), or () for a Python or NumPy number.
    Operands are never lists (``apply_binary`` makes Tensors of them). ``np.shape`` would make an array of a
    number first, a cost a step replayed on small arrays feels on every op."""
    return getattr(operand, "shape", ())


def unbroadcast(grad: Any, shape: tuple[int, ...]) -> Any:
    """Sum ``grad`` over the axes that broadcasting added or stretched, giving ``shape``."""
    if grad.shape == shape:
        return grad
    leading = grad.ndim - len(shape)
    stretched = tuple(leading + i for i, n in enumerate(shape) if n == 1 and grad.shape[leading + i] != 1)
    return grad.sum(axis=tuple(range(leading)) + stretched).reshape(shape)

