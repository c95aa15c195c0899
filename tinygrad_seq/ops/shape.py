"""Ops that move values without changing them: reshape, transpose, indexing, concat, stack.

Their backward routes each gradient value back to where the value came from;
indexing with repeated ids sums (scatter-add), which is how an embedding
table's rows collect gradient from every time step that used them.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..backend import backend_of
from ..checks import check_counts, int_arguments, is_int
from ..function import Function
from ..lazy_grad import HeldSliceGrad, SliceGrad
from ..tensor import as_tensor, int_conversion, Tensor
from ._util import normalize_axes


class Reshape(Function):
    __slots__ = ("in_shape", "views")
    view_of_input = True  # NumPy returns a view whenever the memory layout allows

    def forward(self, x, *, shape):
        self.in_shape = x.shape
        out = x.reshape(shape)
        self.views = bool(backend_of(x).xp.may_share_memory(out, x))  # a layout it cannot view is copied
        return out

    def is_view(self):
        return self.views

    def backward(self, grad):
        return (grad.reshape(self.in_shape),)


def reshape(x: Tensor, *shape: int | Sequence[int]) -> Tensor:
    """The same values in a new shape: ``x.reshape(2, 3)`` or ``x.reshape((2, 3))``; one size may be -1."""
    return Reshape.apply(x, shape=int_arguments(shape, "reshape"))


class Transpose(Function):
    __slots__ = ("axes",)
    view_of_input = True

    def forward(self, x, *, axes):
        self.axes = axes
        return x.transpose(axes)

    def backward(self, grad):
        return (grad.transpose(np.argsort(self.axes)),)


def transpose(x: Tensor, *axes: int | Sequence[int]) -> Tensor:
    """Permute axes like NumPy: no argument reverses them; else ``axes[i]`` is the input axis placed at i."""
    if not axes:  # x.T: the axes reversed, a permutation by construction
        return Transpose.apply(x, axes=tuple(reversed(range(x.ndim))))
    given = int_arguments(axes, "transpose")
    if len(given) != x.ndim or not all(-x.ndim <= a < x.ndim for a in given) or sorted(a % x.ndim for a in given) != list(range(x.ndim)):
        swap = (f"; to swap two axes, as torch.transpose(x, {given[0]}, {given[1]}) does, write x.swapaxes({given[0]}, {given[1]})"
                if len(given) == 2 else "")
        raise ValueError(f"transpose: axes {given} are not a permutation of the {x.ndim} axes of a tensor of shape {x.shape} "
                         f"(each of 0..{x.ndim - 1} once, or counted from the end, -{x.ndim}..-1){swap}")
    order = tuple(a % x.ndim for a in given)
    if x.ndim == 2 and order == (0, 1) and len(axes) == 2:  # torch's x.transpose(0, 1), a swap; NumPy's, no change.
        # A permutation passed as one tuple, transpose((0, 1)), as generic code passes it, is not PyTorch's call.
        warnings.warn(f"transpose{tuple(given)} on a tensor of shape {x.shape} keeps its axes in order: transpose takes the whole "
                      "permutation, as NumPy's does. To swap the two axes, as torch.transpose(x, 0, 1) does, write x.T or "
                      "x.swapaxes(0, 1)", UserWarning, stacklevel=2)
    return Transpose.apply(x, axes=order)


def swapaxes(x: Tensor, axis1: int, axis2: int) -> Tensor:
    """Exchange two axes."""
    axis1, axis2 = normalize_axes((axis1, axis2), x.ndim, "swapaxes")
    axes = list(range(x.ndim))
    axes[axis1], axes[axis2] = axes[axis2], axes[axis1]
    return Transpose.apply(x, axes=tuple(axes))


def flatten(x: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Axes ``start_dim`` to ``end_dim`` (both included) made one, as torch.flatten: ``x.flatten()`` is 1-D, and
    ``x.flatten(1)`` keeps the first axis, (B, ...) -> (B, features)."""
    if x.ndim == 0:
        return reshape(x, 1)
    start, end = normalize_axes((start_dim, end_dim), x.ndim, "flatten")
    if start > end:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} in a tensor of shape {x.shape}")
    return reshape(x, *x.shape[:start], math.prod(x.shape[start : end + 1]), *x.shape[end + 1 :])


def unsqueeze(x: Tensor, axis: int) -> Tensor:
    """Insert a size-1 axis at ``axis`` (-1 appends), as ``np.expand_dims``."""
    if not -x.ndim - 1 <= axis <= x.ndim:
        raise ValueError(f"unsqueeze: axis {axis} is out of range for a tensor with {x.ndim} axes (valid: {-x.ndim - 1}..{x.ndim})")
    axis = axis % (x.ndim + 1)
    return Reshape.apply(x, shape=x.shape[:axis] + (1,) + x.shape[axis:])


def squeeze(x: Tensor, axis: int | tuple[int, ...] | None = None) -> Tensor:
    """Remove size-1 axes: all of them, or the ones named (each must have size 1)."""
    if axis is None:
        axes = tuple(i for i, n in enumerate(x.shape) if n == 1)
    else:
        axes = normalize_axes(axis, x.ndim, "squeeze")
        for a in axes:
            if x.shape[a] != 1:
                raise ValueError(f"squeeze: axis {a} of shape {x.shape} has size {x.shape[a]}; only size-1 axes can be removed")
    return Reshape.apply(x, shape=tuple(n for i, n in enumerate(x.shape) if i not in axes))


_BASIC_PARTS = (int, np.integer, slice, type(None), type(Ellipsis))


def _is_basic(index: Any) -> bool:
    """True when ``index`` has no arrays, so every element is picked at most once."""
    if type(index) is tuple:  # a loop, not all() over a generator: every GetItem and recorded chunk runs this
        for part in index:
            if not isinstance(part, _BASIC_PARTS):
                return False
        return True
    return isinstance(index, _BASIC_PARTS)


class GetItem(Function):
    __slots__ = ("shape", "dtype", "index", "basic", "views")
    view_of_input = True  # for basic indexes only: see is_view

    def forward(self, x, *, index):
        self.shape, self.dtype, self.index = x.shape, x.dtype, index
        self.basic = _is_basic(index)
        out = x[index]
        # ints and slices view x; arrays and masks copy (NumPy's rule), and so does an int for every axis (a scalar)
        self.views = self.basic and not isinstance(out, np.generic)
        return out

    def is_view(self):
        return self.views

    def backward(self, grad):
        backend = backend_of(grad)
        index = self.index
        if self.basic or (getattr(index, "dtype", None) == bool):
            # Each element picked at most once: the engine adds the slice in place.
            return (SliceGrad(index, grad, self.shape),)
        full = backend.xp.zeros(self.shape, dtype=self.dtype)
        if hasattr(index, "dtype"):
            # Rows picked by ids, maybe repeated (embeddings): sum the repeats.
            ids = index.ravel()
            ids = backend.xp.where(ids < 0, ids + self.shape[0], ids)
            backend.scatter_add(full, ids, grad.reshape((ids.size,) + self.shape[1:]))
        else:
            # Arrays mixed with other index parts (x[:, ids], x[rows, cols]): add.at. On a GPU its atomic adds
            # sum repeated positions in a varying order (last-bit differences between runs); x[ids] above does not.
            backend.xp.add.at(full, index, grad)
        return (full,)


def _index_part(part: Any, backend: Any) -> Any:
    """One part of an index, with its arrays on ``backend`` (the indexed tensor's): a host id array is uploaded."""
    given = part
    if isinstance(part, Tensor):
        part = part.data
    elif isinstance(part, list) or (hasattr(part, "dtype") and not isinstance(part.dtype, np.dtype)):  # another library's ids
        part = np.asarray(part)
    if hasattr(part, "dtype") and part.dtype.kind not in "biu":
        raise IndexError(f"getitem: index arrays must hold ints or bools; got {part.dtype}. Convert ids with "
                         f"{int_conversion(given)}")
    if hasattr(part, "shape") and not isinstance(part, np.generic):
        part = backend.adopt(part)  # CuPy refuses host arrays as indices
    return part


def getitem(x: Tensor, index: Any) -> Tensor:
    """``x[index]`` with NumPy's rules: ints, slices, None, ..., int arrays (repeats sum in backward), bool masks.

    Index arrays (NumPy, a list, a Tensor) move to ``x``'s backend first, so
    host ids index a tensor on the GPU.
    """
    backend = x.backend
    if isinstance(index, tuple):
        index = tuple(_index_part(p, backend) for p in index)
    else:
        index = _index_part(index, backend)
    return GetItem.apply(x, index=index)


class Concat(Function):
    __slots__ = ("axis", "boundaries")

    def forward(self, *arrays, axis):
        self.axis = axis
        self.boundaries = np.cumsum([a.shape[axis] for a in arrays])[:-1]
        return backend_of(arrays[0]).xp.concatenate(arrays, axis=axis)

    def backward(self, grad):
        return tuple(backend_of(grad).xp.split(grad, self.boundaries, axis=self.axis))


def concat(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Join tensors along an existing axis; all other axes must match."""
    tensors = [as_tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("concat: got no tensors; pass a non-empty list")
    first = tensors[0]
    (axis,) = normalize_axes(axis, first.ndim, "concat")
    for t in tensors[1:]:
        if t.ndim != first.ndim or any(a != b for i, (a, b) in enumerate(zip(t.shape, first.shape)) if i != axis):
            raise ValueError(
                f"concat: shapes {[t.shape for t in tensors]} differ outside axis {axis}; "
                "every axis but the one joined must match"
            )
    return Concat.apply(*tensors, axis=axis)


class Stack(Function):
    __slots__ = ("axis",)

    def forward(self, *arrays, axis):
        self.axis = axis
        return backend_of(arrays[0]).xp.stack(arrays, axis=axis)

    def backward(self, grad):
        return tuple(backend_of(grad).xp.moveaxis(grad, self.axis, 0))


def stack(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Join same-shaped tensors along a new axis (``stack(outputs)`` builds (T, B, H) from T (B, H) steps)."""
    tensors = [as_tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("stack: got no tensors; pass a non-empty list")
    if any(t.shape != tensors[0].shape for t in tensors):
        raise ValueError(f"stack: all tensors must have one shape; got {[t.shape for t in tensors]}")
    ndim = tensors[0].ndim
    if not -ndim - 1 <= axis <= ndim:
        raise ValueError(f"stack: axis {axis} is out of range for tensors with {ndim} axes (valid: {-ndim - 1}..{ndim})")
    return Stack.apply(*tensors, axis=axis % (ndim + 1))


class StackPart(Function):
    """out[t] = packed_t[part] (0 where running_t is False): one part of every step's packed state, stacked.

    The outputs a⟨1⟩ … a⟨T⟩ of a layer whose state packs several parts, (a, c)⟨t⟩ (P, B, H) each, in one node
    instead of a GetItem and a Where per step: backward sends each step a HeldSliceGrad of its part.
    """

    __slots__ = ("part", "shape", "running")

    def forward(self, *packed, part, running):
        xp = backend_of(packed[0]).xp
        self.part, self.shape, self.running = part, packed[0].shape, running
        out = xp.empty((len(packed),) + packed[0].shape[1:], dtype=packed[0].dtype)
        for t, (state, alive) in enumerate(zip(packed, running)):
            if alive is None:
                out[t] = state[part]
            else:  # sequences past their end output zeros
                out[t] = xp.where(alive, state[part], 0)
        return out

    def backward(self, grad):
        xp = backend_of(grad).xp
        index = (self.part,)
        # Held: each state's gradient buffer is made when its step's backward is reached, not all T now
        return tuple(HeldSliceGrad(index, grad[t] if alive is None else xp.where(alive, grad[t], 0), self.shape)
                     for t, alive in enumerate(self.running))


def stack_part(packed: Sequence[Tensor], part: int, running: Sequence[Any] | None = None) -> Tensor:
    """``stack([where(running[t], packed[t][part], 0) for t ...])`` in one node: (T, B, ...) from T packed (P, B, ...).

    ``running``: per step, a (B, 1) bool mask of the sequences still running, or None when all are.
    """
    packed = [as_tensor(t) for t in packed]
    if not packed:
        raise ValueError("stack_part: got no tensors; pass a non-empty list")
    if any(t.shape != packed[0].shape or t.dtype != packed[0].dtype for t in packed):
        raise ValueError(f"stack_part: all packed states must have one shape and dtype; got "
                         f"{sorted({(t.shape, str(t.dtype)) for t in packed})}")
    if packed[0].ndim < 1 or not -packed[0].shape[0] <= part < packed[0].shape[0]:
        raise ValueError(f"stack_part: part {part} is out of range for packed states of shape {packed[0].shape}")
    running = [None] * len(packed) if running is None else list(running)
    if len(running) != len(packed):
        raise ValueError(f"stack_part: {len(running)} running masks for {len(packed)} packed states; pass one per state (None: all running)")
    backend = packed[0].backend  # a host mask (an array, a list) moves to the states' backend, dtype kept
    running = [None if m is None else backend.array(m.data if isinstance(m, Tensor) else m, copy=False) for m in running]
    mask_shape = packed[0].shape[1:-1] + (1,)  # (B, 1): one flag per sequence, the same for all its features
    for t, mask in enumerate(running):
        if mask is not None and (mask.shape != mask_shape or mask.dtype != bool):
            raise ValueError(f"stack_part: running[{t}] must be a bool mask of shape {mask_shape} (one flag per "
                             f"sequence); got {mask.dtype} {mask.shape}. Reshape a (B,) mask with mask[:, None]")
    return StackPart.apply(*packed, part=part % packed[0].shape[0], running=running)


def split(x: Tensor, split_size_or_sections: int | Sequence[int], axis: int = 0) -> list[Tensor]:
    """Cut ``x`` along ``axis`` into pieces of ``split_size`` (the last may be smaller) or of the listed sizes."""
    (axis,) = normalize_axes(axis, x.ndim, "split")
    length = x.shape[axis]
    if isinstance(split_size_or_sections, (int, np.integer)):
        if split_size_or_sections <= 0:
            raise ValueError(f"split: split_size must be positive; got {split_size_or_sections}")
        sizes = [min(split_size_or_sections, length - start) for start in range(0, length, split_size_or_sections)]
    else:
        sizes = list(split_size_or_sections)
        if not all(is_int(size) and size >= 0 for size in sizes):  # a negative size cut a piece from the end instead
            raise ValueError(f"split: sections must be sizes, ints >= 0; got {sizes}")
        if sum(sizes) != length:
            raise ValueError(f"split: sections {sizes} add up to {sum(sizes)}, but axis {axis} of shape {x.shape} has {length}")
    pieces, start = [], 0
    for size in sizes:
        index = (slice(None),) * axis + (slice(start, start + size),)
        pieces.append(GetItem.apply(x, index=index))
        start += size
    return pieces


def chunk(x: Tensor, chunks: int, axis: int = 0) -> list[Tensor]:
    """Cut ``x`` into ``chunks`` pieces along ``axis`` (as torch.chunk: the last may be smaller)."""
    check_counts("chunk", chunks=chunks)
    (axis,) = normalize_axes(axis, x.ndim, "chunk")
    return split(x, max(1, -(-x.shape[axis] // chunks)), axis)
