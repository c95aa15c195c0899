"""Lazy gradients: a gradient kept in a cheaper form than a dense array, and the protocol the engine uses.

An op's ``backward`` may return a :class:`LazyGrad` instead of an array. Three
kinds exist: :class:`SliceGrad` (zero outside one slice of the input: reading
a time step of a sequence), :class:`HeldSliceGrad` (the same, held until the
input's gradient is complete) and :class:`OuterGrad` (a weight's gradient
from one use, kept as the two factors of an outer product and summed over all
time steps with one matmul). The engine (engine.py), the step tape (nn/recorded.py)
and the pictures (viz/) call the protocol's methods and never test the kind.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .backend import backend_of


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
        return self if self.values.dtype == dtype else type(self)(self.index, self.values.astype(dtype), self.shape)

    def add_into(self, buffer: Any) -> None:
        buffer[self.index] += self.values

    def display(self) -> tuple[str, Any]:
        return f"[{self.index}]: ", self.values  # only the slice: the rest is zero

    def __repr__(self) -> str:
        return f"{type(self).__name__}(index={self.index!r}, values {tuple(self.values.shape)} of {self.shape})"


class HeldSliceGrad(SliceGrad):
    """A SliceGrad the engine holds until the input's gradient is complete, then adds in with the rest.

    For an op that sends slices to many inputs at once: ``StackPart`` gives
    each of a layer's T packed states (a, c)⟨t⟩ its a⟨t⟩ slice in one go. As
    plain SliceGrads, each would get its zeroed (2, B, H) buffer then and
    there, T of them alive together; held, each state's buffer is made when
    its step's backward is reached, as the other gradients of that state are.
    """

    __slots__ = ()
    deferred = True

    @staticmethod
    def flush_now(parts: list[LazyGrad]) -> bool:
        return False

    @staticmethod
    def sum_into(parts: list[HeldSliceGrad], shape: tuple[int, ...], buffer: Any = None) -> Any:
        if buffer is None:
            buffer = backend_of(parts[0].values).xp.zeros(shape, dtype=parts[0].dtype)
        for part in parts:
            part.add_into(buffer)
        return buffer


def sum_deferred(parts: list[LazyGrad], shape: tuple[int, ...], buffer: Any = None) -> Any:
    """The deferred parts of one tensor's gradient summed (into ``buffer`` when given), each kind by its own
    ``sum_into``: a tensor may receive several kinds."""
    kinds: dict[type, list[LazyGrad]] = {}
    for part in parts:
        kinds.setdefault(type(part), []).append(part)
    for kind, group in kinds.items():
        buffer = kind.sum_into(group, shape, buffer)
    return buffer


OUTER_FLUSH_ROWS = 512  # deferred OuterGrad rows summed at once: large enough for BLAS, small enough for memory (docs/performance.md)


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
        """Enough rows for an efficient matmul: sum them now, so memory stays bounded on long sequences.

        Asked on every part that arrives, so it counts in O(1): the parts of one weight come from the steps of
        one batch, each with the newest one's rows (a heuristic either way: exactness buys nothing here)."""
        return len(parts) * parts[-1].left.shape[0] >= OUTER_FLUSH_ROWS

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
