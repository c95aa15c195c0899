"""Lazy gradients: a gradient kept in a cheaper form than a dense array, and the protocol the engine uses.

An op's ``backward`` may return a :class:`LazyGrad` instead of an array. Five
kinds exist: :class:`SliceGrad` (zero outside one slice of the input: reading
a time step of a sequence), :class:`HeldSliceGrad` (the same, held until the
input's gradient is complete), :class:`StepRowsGrad` (a step's row written
straight into the array that becomes the input's whole gradient:
:class:`GradientRows`), :class:`OuterGrad` (a weight's gradient
from one use, kept as the two factors of an outer product and summed over all
time steps with one matmul) and :class:`RowSumGrad` (a bias's gradient from
one use, kept as the rows it is the sum of and summed over all time steps at
once). The engine (engine.py), the step tape (nn/tape.py)
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
    - ``dense()``: the gradient as one array (given: zeros, then ``add_into``);
    - ``zeros(shape, dtype=None)``: a zero buffer on its backend (given);
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

    def zeros(self, shape: tuple[int, ...], dtype: Any = None) -> Any:
        """A zero buffer of ``shape`` on this gradient's backend, in its dtype unless given: where parts add into."""
        return backend_of(self.arrays()[0]).xp.zeros(shape, dtype=self.dtype if dtype is None else dtype)

    def dense(self) -> Any:
        buffer = self.zeros(self.shape)
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


def index_text(index: Any) -> str:
    """An index as it is written between brackets: ":, 6:9" for (slice(None), slice(6, 9)), "…" for ..., "mask" for
    a boolean array, "ids" for an array or list of ints (what the pictures and the explorer print)."""
    parts = index if isinstance(index, tuple) else (index,)
    written = []
    for part in parts:
        if isinstance(part, slice):
            step = "" if part.step is None else f":{part.step}"
            written.append(f"{'' if part.start is None else part.start}:{'' if part.stop is None else part.stop}{step}")
        elif part is Ellipsis:
            written.append("…")
        elif part is None:
            written.append("None")
        elif isinstance(part, (int, np.integer, str)):
            written.append(str(part))
        elif getattr(part, "dtype", None) is not None and part.dtype.kind == "b":
            written.append("mask")
        elif getattr(part, "ndim", None) == 0:
            written.append(str(int(part)))
        else:
            written.append("ids")
    return ", ".join(written)


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
        return f"[{index_text(self.index)}]: ", self.values  # only the slice: the rest is zero

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
    def sum_into(parts: list[HeldSliceGrad], shape: tuple[int, ...], buffer: Any = None) -> Any:
        if buffer is None:
            buffer = parts[0].zeros(shape)
        for part in parts:
            part.add_into(buffer)
        return buffer


class GradientRows:
    """Where the T step nodes of one layer call write their input's gradient: row t of one (T, ...) array each.

    A kernel's steps each read one row ``projected[t]`` of the layer's input
    projection. As SliceGrads, their gradients were added into a zeroed
    (T, B, G·H) buffer, row by row; instead each step's backward writes its
    row straight into an array made with ``empty`` (``row(t)`` gives the
    :class:`RowBlock` holding it) and sends a :class:`StepRowsGrad`, and when
    the projection's gradient is complete that array is the gradient: no
    zeroing, no adding. The RNN's, LSTM's and simplified GRU's step ops also
    make it the factor of W_hh's OuterGrad and the bias's RowSumGrad
    (``source``), so each step's gate gradients exist once (the GRU's W_hh
    factor is its hidden product's gradient, another array). A kernel makes
    one per layer call (``Kernel.begin``); the step ops take it as the layout
    keyword ``grad_rows``. The recorded path's steps (nn/recorded.py) write
    their rows of the projection they read into one the same way.

    Each array is handed out once: a row written a second time (another
    backward pass over a retained graph) or after the array became a
    gradient starts a new array, so two passes never share rows; and the
    graph keeps no array that became a gradient.
    """

    __slots__ = ("shape", "dtype", "xp", "block")

    def __init__(self, like: Any) -> None:
        self.shape, self.dtype, self.xp = like.shape, like.dtype, backend_of(like).xp
        self.block: RowBlock | None = None

    def row(self, t: int) -> RowBlock:
        """The block whose row t (``block.array[t]``, (B, ...), C-contiguous) the caller is to write now."""
        block = self.block
        if block is None or block.written[t]:
            block = self.block = RowBlock(self.xp.empty(self.shape, dtype=self.dtype), self)
        block.written[t] = True
        block.count += 1
        return block


class RowBlock:
    """One array of a GradientRows and the rows written into it so far."""

    __slots__ = ("array", "owner", "written", "count")

    def __init__(self, array: Any, owner: GradientRows) -> None:
        self.array, self.owner, self.written, self.count = array, owner, [False] * len(array), 0

    def release(self) -> None:
        """Its array became a gradient: no step writes here again, and the graph (its GradientRows) stops
        holding it."""
        if self.owner.block is self:
            self.owner.block = None


class StepRowsGrad(HeldSliceGrad):
    """A held slice whose values are row t of a GradientRows block. When the input's gradient is complete and
    the rows written into that block are exactly these parts', the block's array itself is the gradient (rows
    no step wrote set to zero); otherwise (parts of two blocks, a dense gradient beside them) each row is
    added in, as held slices are."""

    __slots__ = ("block",)

    def __init__(self, t: int, block: RowBlock) -> None:
        super().__init__((t,), block.array[t], block.array.shape)
        self.block = block

    def astype(self, dtype: Any) -> HeldSliceGrad:
        return self if self.values.dtype == dtype else HeldSliceGrad(self.index, self.values.astype(dtype), self.shape)

    @staticmethod
    def sum_into(parts: list[StepRowsGrad], shape: tuple[int, ...], buffer: Any = None) -> Any:
        block = parts[0].block
        if buffer is not None or block.count != len(parts) or any(p.block is not block for p in parts):
            return HeldSliceGrad.sum_into(parts, shape, buffer)
        block.release()
        if block.count < len(block.written):
            block.array[[t for t, done in enumerate(block.written) if not done]] = 0
        return block.array


def sum_deferred(parts: list[LazyGrad], shape: tuple[int, ...], buffer: Any = None) -> Any:
    """The deferred parts of one tensor's gradient summed (into ``buffer`` when given), each kind by its own
    ``sum_into``: a tensor may receive several kinds. The result may be an array a kind returned as it is
    (StepRowsGrad's block): a caller that hands it out to be changed passes a buffer."""
    kinds: dict[type, list[LazyGrad]] = {}
    for part in parts:
        kinds.setdefault(type(part), []).append(part)
    if buffer is None and len(kinds) > 1:  # a kind may return an array it shares (StepRowsGrad): never add into that
        buffer = parts[0].zeros(shape)
    for kind, group in kinds.items():
        buffer = kind.sum_into(group, shape, buffer)
    return buffer


def joined_rows(parts: list[Any], factor: str) -> tuple[Any, list[Any]]:
    """The ``factor`` arrays of ``parts`` (OuterGrads or RowSumGrads) stacked into one (N, ...) array, and the
    parts in the order of its rows.

    Parts whose ``source`` says their factor is row t of one array, for consecutive t (a layer's steps, in a
    GradientRows block), give a view of those rows: no copy. Any other parts are joined by a concatenate."""
    array = parts[0].source[0] if parts[0].source is not None else None
    if array is not None and all(p.source is not None and p.source[0] is array for p in parts):
        ordered = sorted(parts, key=lambda p: p.source[1])
        first = ordered[0].source[1]
        if [p.source[1] for p in ordered] == list(range(first, first + len(parts))):
            rows = array[first : first + len(parts)]
            return rows.reshape(-1, *rows.shape[2:]), ordered
    return backend_of(getattr(parts[0], factor)).xp.concatenate([getattr(p, factor) for p in parts]), parts


OUTER_FLUSH_ROWS = 512  # deferred OuterGrad rows summed at once: large enough for BLAS, small enough for memory (docs/performance.md)


def holds_enough_rows(parts: list[Any], newest: Any) -> bool:
    """Whether deferred parts that each hold rows like ``newest`` (the last part's factor) reach OUTER_FLUSH_ROWS.

    Asked on every part that arrives, so it counts in O(1): the parts of one tensor come from the steps of
    one batch, each with the newest one's rows (a heuristic either way: exactness buys nothing here)."""
    return len(parts) * newest.shape[0] >= OUTER_FLUSH_ROWS


class OuterGrad(LazyGrad):
    """A weight's gradient from one use, kept as the factors of ``left.T @ right``.

    ``left`` (N, out) and ``right`` (N, in) make an (out, in) gradient, or the
    rows ``rows`` of one when given. A weight shared by T time steps receives
    T of these; the engine sums them with one matmul over the concatenated
    factors when the weight's gradient is complete, instead of T small
    matmuls that each write and re-add a full weight-sized array.
    """

    __slots__ = ("left", "right", "shape", "rows", "source")
    deferred = True

    def __init__(self, left: Any, right: Any, shape: tuple[int, ...], rows: slice | None = None,
                 source: tuple[Any, int] | None = None) -> None:
        """``source``: (array, t) when ``left`` is ``array[t]`` (a GradientRows row): the parts of consecutive
        rows are then multiplied as a view of those rows, not copied into one (``joined_rows``)."""
        self.left, self.right, self.shape, self.rows, self.source = left, right, shape, rows, source

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
        return holds_enough_rows(parts, parts[-1].left)

    @staticmethod
    def sum_into(parts: list[OuterGrad], shape: tuple[int, ...], buffer: Any = None) -> Any:
        """Σ left.T @ right over ``parts`` (grouped by rows), added to ``buffer`` or to zeros."""
        xp = backend_of(parts[0].left).xp
        groups: dict[tuple[Any, Any], list[OuterGrad]] = {}
        for part in parts:
            rows = part.rows
            groups.setdefault((None, None) if rows is None else (rows.start, rows.stop), []).append(part)
        if buffer is None and len(groups) == 1 and (None, None) in groups:
            return OuterGrad._product(groups[(None, None)], xp)
        total = parts[0].zeros(shape) if buffer is None else buffer
        for (start, stop), group in groups.items():
            product = OuterGrad._product(group, xp)
            if start is None and stop is None:
                total += product
            else:
                total[start:stop] += product
        return total

    @staticmethod
    def _product(group: list[OuterGrad], xp: Any) -> Any:
        """Σ left.T @ right over ``group``, as one matmul of the joined factors."""
        left, ordered = joined_rows(group, "left")
        return left.T @ xp.concatenate([p.right for p in ordered])


ROW_SUM_JOIN_ELEMENTS = 4096
"""RowSumGrad parts of at most this many elements each (an LSTM's (B, 4H) at B1 H100 has 400; at B32 H128,
16,384) are joined into one array and summed in one reduction; larger ones are each summed, which costs less
than copying them."""


class RowSumGrad(LazyGrad):
    """A bias's gradient from one use: the sum over the rows of ``rows`` (N, out), kept unsummed.

    A step op adds its bias to every row of a (B, out) block, so the bias's
    gradient is that block's gradient summed over its rows. A bias shared by T
    time steps receives T of these; the engine sums them together when the
    gradient is complete (or every :data:`OUTER_FLUSH_ROWS` rows), instead of
    T small reductions, each added into a running total. At B = 1 that is one
    reduction instead of 25 of one row each.
    """

    __slots__ = ("rows", "shape", "source")
    deferred = True

    def __init__(self, rows: Any, shape: tuple[int, ...], source: tuple[Any, int] | None = None) -> None:
        """``source``: (array, t) when ``rows`` is ``array[t]``, as for OuterGrad."""
        self.rows, self.shape, self.source = rows, shape, source

    def arrays(self) -> tuple[Any, ...]:
        return (self.rows,)

    def astype(self, dtype: Any) -> RowSumGrad:
        return self  # cast once summed, as OuterGrad

    def dense(self) -> Any:
        return self.rows.sum(axis=0)

    def add_into(self, buffer: Any) -> None:
        buffer += self.rows.sum(axis=0)

    def display(self) -> tuple[str, Any]:
        return "Σ rows: ", self.dense()

    @staticmethod
    def flush_now(parts: list[RowSumGrad]) -> bool:
        """Held rows bounded as OuterGrad's factors are (the same arrays, usually: a step's gate gradients)."""
        return holds_enough_rows(parts, parts[-1].rows)

    @staticmethod
    def sum_into(parts: list[RowSumGrad], shape: tuple[int, ...], buffer: Any = None) -> Any:
        """Σ of every part's rows, added to ``buffer`` or returned as a new array."""
        if parts[0].source is not None or parts[0].rows.size <= ROW_SUM_JOIN_ELEMENTS:
            total = joined_rows(parts, "rows")[0].sum(axis=0)
        else:
            total = parts[0].rows.sum(axis=0)
            for part in parts[1:]:
                total += part.rows.sum(axis=0)
        if buffer is None:
            return total
        buffer += total
        return buffer
