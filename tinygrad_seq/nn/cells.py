"""Recurrent cells: one time step each, ``cell(x, state=None) -> new state``.

A cell owns its weights and nothing else: no time loop, no hidden state kept
between calls. The wrappers in ``recurrent.py`` unroll any cell over time, so
a new cell type is an ``__init__`` and a ``forward`` (see docs/cells.md).

Course notation and the code's names (PyTorch's layout, gates from one matmul):

===========================  ==========================================
course                       code
===========================  ==========================================
x⟨t⟩ (n_x, m) columns        x (B, I) rows, B = m examples, I = n_x
a⟨t⟩ (n_a, m)                a (B, H), H = n_a (PyTorch's h)
W_ax, W_aa, b_a              weight_ih (G·H, I), weight_hh (G·H, H),
                             bias_ih + bias_hh (G·H,); G gates stacked
Γu (GRU update gate)         1 − z   (PyTorch keeps z, the "keep" gate)
Γr (GRU relevance gate)      r
c̃⟨t⟩ (candidate)             n (GRU), g (LSTM)
Γu, Γf, Γo (LSTM)            i, f, o
===========================  ==========================================
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import settings
from ..checks import check_counts
from ..creation import zeros
from ..ops import chunk, linear
from ..tensor import Tensor, as_tensor
from . import fused as kernels
from . import init
from .steps import path_of
from .module import Module, Parameter
from .roles import gate, projection

State = Any  # a Tensor (B, H), or a tuple of them for cells with several state parts


class StateError(ValueError):
    """A state that does not fit its cell or layer (structure or shape): given to it, or returned by a cell's
    ``forward`` as the new state.

    Its own type so that a wrapper (``nn.Stacked``, ``nn.Bidirectional``) can say which of its layers the
    state was given to, without taking any other error for one."""


def describe_state(state: Any) -> str:
    """What was given as a state, for an error: "a Tensor of shape (2, 4)", "a tuple of 1", "a numpy.ndarray of
    shape (2, 4)", "a dict", "None"."""
    if isinstance(state, (tuple, list)):
        return f"a {type(state).__name__} of {len(state)}"
    return describe_value(state)


def describe_value(value: Any) -> str:
    """One value for an error: "a Tensor of shape (2, 4)", "a numpy.ndarray of shape (2, 4)", "a dict", "None"."""
    if value is None:
        return "None"
    if isinstance(value, Tensor):
        return f"a Tensor of shape {value.shape}"
    kind = type(value)
    if is_array(value):
        return f"a {kind.__module__.split('.')[0]}.{kind.__name__} of shape {tuple(value.shape)}"
    return f"a {kind.__name__}"


def is_array(value: Any) -> bool:
    """Whether ``value`` is an array, of a backend (NumPy's, CuPy's) or of another library NumPy reads (a PyTorch
    tensor): what a state or a return must be made a Tensor of."""
    return isinstance(value, settings.array_types) or (
        not isinstance(value, Tensor) and hasattr(value, "__array__") and hasattr(value, "shape") and hasattr(value, "dtype"))


def register_cell(name: str):
    """Class decorator: make a cell type usable by name (``nn.make_cell("lstm", 10, 20)``)."""

    def register(cls: type) -> type:
        if not (isinstance(cls, type) and issubclass(cls, RecurrentCell)):
            raise TypeError(f"register_cell({name!r}): {cls!r} is not a subclass of nn.RecurrentCell")
        settings.cell_registry[name] = cls
        return cls

    return register


def make_cell(name: str, *args: Any, **kwargs: Any) -> RecurrentCell:
    """A new cell of the type registered as ``name``, built with ``args`` and ``kwargs``."""
    if name not in settings.cell_registry:
        raise KeyError(unknown_cell(name, f"register yours with @nn.register_cell({name!r})"))
    return settings.cell_registry[name](*args, **kwargs)


def unknown_cell(name: str, how_to_add: str, what: str = "cell") -> str:
    """Why no cell is registered as ``name``, and the fix: the registered name it is in another letter case
    ("LSTM"), or the registered names and ``how_to_add`` one where the caller is. ``what``: what the caller
    calls the name ("--cell" on the command line)."""
    near = [known for known in settings.cell_registry if known.lower() == name.lower()]
    if near:
        return f"unknown {what} {name!r}; cell names are case-sensitive: {near[0]!r}"
    return f"unknown {what} {name!r}; registered cells are {', '.join(sorted(settings.cell_registry))} ({how_to_add})"


class RecurrentCell(Module):
    """Base class of every cell: one step of a recurrent network.

    Subclasses set ``input_size`` and ``hidden_size`` and define
    ``forward(x, state) -> new state`` for x (B, input_size). The base class
    fixes the rest:

    - ``state_names``: the course names of the state's parts; ("a",) for a
      state that is one (B, H) tensor, ("a", "c") for an (h, c) tuple as LSTM.
    - ``initial_state(batch_size, like)``: zeros of that structure, used when
      the state is None.
    - ``output(state)``: the part of the state that is the step's output,
      a⟨t⟩ (the first part).
    - ``reset_parameters()``: every parameter U(-1/sqrt(H), 1/sqrt(H)), as
      PyTorch's recurrent layers; Bidirectional uses it to give the reverse
      direction its own weights.

    ``forward`` is the step's equations, written once; ``nn.Recurrent`` runs
    it on one of three paths (nn/steps.py): recorded and replayed as one node
    per step (the default), gate by gate (``ts.transparent()``, or
    ``fused = False``), or through a hand-written ``kernel`` (built-in cells).
    """

    _parent_init = "super().__init__(input_size, hidden_size)"  # a cell's parent takes its sizes

    state_names: tuple[str, ...] = ("a",)
    kernel: type | None = None  # a hand-written step (nn/fused.py, ops/cell_steps.py) proven equal to forward; None: record forward
    fused: bool = True  # False: this cell always runs transparently
    forget_gate: int | None = None  # index of the forget gate's block of stacked gate rows, for nn.init.forget_bias_

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        check_counts(type(self).__name__, input_size=input_size, hidden_size=hidden_size)
        self.input_size, self.hidden_size = input_size, hidden_size

    def initial_state(self, batch_size: int, like: Tensor | None = None) -> State:
        """Zeros of the state's structure for ``batch_size`` sequences (dtype and backend of ``like``).

        For an integer ``like`` (ids fed straight in) the dtype is what the
        step's arithmetic promotes to, NumPy's int64 with the weights' float
        dtype, so every cell and both paths carry the same float state.
        """
        dtype = like.dtype if like is not None else settings.default_dtype
        if dtype.kind != "f":
            dtype = np.result_type(dtype, *(p.dtype for p in self.parameters()))
        parts = tuple(zeros(batch_size, self.hidden_size, dtype=dtype) for _ in self.state_names)
        if like is not None and like.backend.name != "numpy":
            parts = tuple(p.to(like.backend) for p in parts)
        return parts[0] if len(parts) == 1 else parts

    def output(self, state: State) -> Tensor:
        """The step's output a⟨t⟩: the state itself, or its first part."""
        return state if isinstance(state, Tensor) else state[0]

    def state_parts(self, state: State) -> tuple[Tensor, ...]:
        """The state as a tuple of tensors, whatever its structure."""
        return (state,) if isinstance(state, Tensor) else tuple(state)

    def from_parts(self, parts: tuple[Tensor, ...]) -> State:
        """Inverse of ``state_parts``."""
        return parts[0] if len(self.state_names) == 1 else tuple(parts)

    def check_state(self, state: State, batch_size: int) -> None:
        """Raise a clear error unless ``state`` has this cell's structure and (batch_size, H) parts."""
        parts, unread = self._read_parts(state)
        expected = f"{len(self.state_names)} tensor(s) ({', '.join(self.state_names)}) of shape ({batch_size}, {self.hidden_size})"
        if parts is None or len(parts) != len(self.state_names):
            fix = ": make it a Tensor, ts.Tensor(array)" if is_array(state) else ""
            if unread:  # the cell's own reader could not: its structure, not the default one, is what is expected
                expected, fix = "what its from_parts makes", f" ({type(self).__name__}.state_parts could not read it: {unread})"
            raise StateError(f"{type(self).__name__}: the state must be {expected}; got {describe_state(state)}{fix}")
        for name, part in zip(self.state_names, parts):
            if not isinstance(part, Tensor):
                raise StateError(f"{type(self).__name__}: the state must be {expected}; got {describe_state(state)} whose "
                                 f"part {name} is {describe_value(part)}: make each part a Tensor"
                                 + (", ts.Tensor(array)" if is_array(part) else ""))
        # every part (B', H) with one B' other than the batch's: a whole state of another batch (one carried on)
        batches = {part.shape[0] if part.ndim == 2 and part.shape[1] == self.hidden_size else None for part in parts}
        other_batch = next(iter(batches)) if len(batches) == 1 and None not in batches else batch_size
        for name, part in zip(self.state_names, parts):
            if part.shape != (batch_size, self.hidden_size):
                why = (f": a state made for a batch of {other_batch}, given with a batch of {batch_size}. A carried state fits "
                       "only a batch of its size: start from state=None when the batch size changes (a last, smaller "
                       "batch)" if other_batch != batch_size else "")
                raise StateError(f"{type(self).__name__}: state part {name} has shape {part.shape}; expected {expected}{why}")

    def _read_parts(self, state: Any) -> tuple[tuple | None, str]:
        """(``state``'s parts as ``state_parts`` reads them, or None when it cannot; why the cell's own
        ``state_parts`` could not, or "")."""
        if type(self).state_parts is RecurrentCell.state_parts:
            return (self.state_parts(state) if isinstance(state, (Tensor, tuple, list)) else None), ""
        try:
            return tuple(self.state_parts(state)), ""
        except Exception as error:  # noqa: BLE001  a state the cell's own reader does not take: said in the error
            return None, f"{type(error).__name__}: {error}"

    def check_returned(self, new_state: Any, batch_size: int | None) -> None:
        """Raise a StateError naming ``forward`` unless what it returned is a new state of this cell: a Tensor
        (B, H) for one part, a tuple of one (B, H) Tensor per name of ``state_names`` for several (B:
        ``batch_size``; its shapes go unchecked when None); for a cell with its own ``state_parts`` or
        ``initial_state``, what ``state_parts`` reads of it, one Tensor of B rows per name.

        Run right after ``forward`` returns, once per layer call: on the first step of a transparent call, on the
        first step that records or checks a tape on the recorded path (a replayed step runs no ``forward``); and
        on every call of the cell on its own. A cell that overrides ``check_state`` has its new state checked by it."""
        if new_state is None or is_array(new_state):  # whatever a check_state of the cell's own would let through
            self._raise_returned(new_state, batch_size, self._returned_problem(new_state, batch_size))
        if type(self).check_state is not RecurrentCell.check_state and batch_size is not None:
            try:  # a cell that says itself which states fit it
                self.check_state(new_state, batch_size)
            except StateError as error:
                raise StateError(f"{type(self).__name__}.forward returned {describe_state(new_state)}, which is not a new "
                                 f"state of the cell: {error}") from None
            except Exception:  # its check_state tripped over the return (unpacking it, say): say what is wrong
                problem = self._returned_problem(new_state, batch_size)
                if problem is not None:
                    self._raise_returned(new_state, batch_size, problem)
                raise
            return
        problem = self._returned_problem(new_state, batch_size)
        if problem is not None:
            self._raise_returned(new_state, batch_size, problem)

    def _raise_returned(self, new_state: Any, batch_size: int | None, problem: str) -> None:
        """Raise check_returned's StateError: what forward returned, what it must return, and ``problem``."""
        names = self.state_names
        rows = "batch" if batch_size is None else batch_size
        if self._own_layout():
            parts = "one part" if len(names) == 1 else f"{len(names)} parts ({', '.join(names)})"
            expected = f"what its from_parts makes of {parts}, each a Tensor of {rows} rows"
        elif len(names) == 1:
            expected = f"one Tensor of shape ({rows}, {self.hidden_size})"
        else:
            expected = f"a tuple of {len(names)} Tensors ({', '.join(names)}), each of shape ({rows}, {self.hidden_size})"
        raise StateError(f"{type(self).__name__}.forward returned {describe_state(new_state)}; it must return the new "
                         f"state, {expected} (state_names = {names!r}): {problem}")

    def _own_layout(self) -> bool:
        """Whether the cell keeps its state its own way: its own state_parts (a dict, say) or initial_state (wider
        parts)."""
        return (type(self).state_parts is not RecurrentCell.state_parts
                or type(self).initial_state is not RecurrentCell.initial_state)

    def _returned_problem(self, new_state: Any, batch_size: int | None) -> str | None:
        """What is wrong with ``forward``'s return value as a new state, said as its fix; None when it fits.

        A cell that overrides ``state_parts`` (a state kept as a dict, say) has its return read by it; one that
        lays its state out its own way (``state_parts`` or ``initial_state`` overridden: a part twice as wide)
        has only the batch size of each part checked, not (batch, hidden_size)."""
        names = self.state_names
        if new_state is None:
            return "add the missing `return` of the new state at the end of forward"
        if is_array(new_state):
            return ("compute the new state with the tensor ops on x and the state (not .numpy(), .data or NumPy calls), "
                    "so that gradients flow through it")
        parts, unread = self._read_parts(new_state)
        if unread:
            return f"its state_parts could not read it ({unread}): return what from_parts makes"
        if parts is None and isinstance(new_state, dict):
            if len(names) == 1:
                return "return the Tensor itself, not a dict"
            return (f"return a tuple of its parts in the order of state_names, ({', '.join(names)}), not a dict (or "
                    "override state_parts and from_parts to keep the state as one)")
        if parts is None:
            return "return the Tensor(s) of the new state"
        if len(parts) != len(names):
            if len(names) == 1:
                return (f"return the Tensor itself, not a {type(new_state).__name__}, or give the cell a name for each "
                        "part in state_names (state_names = ('a', 'c') for two)")
            return (f"return one Tensor per name of state_names, in its order: ({', '.join(names)}); or make "
                    "state_names name each part forward returns")
        for name, part in zip(names, parts):
            if not isinstance(part, Tensor):
                return (f"its part {name} is {describe_value(part)}: compute every part with the tensor ops on x and "
                        "the state (not .numpy(), .data or NumPy calls), so that gradients flow through it")
        if batch_size is None:
            return None
        own_layout = self._own_layout()
        for name, part in zip(names, parts):
            if own_layout and (part.ndim == 0 or part.shape[0] != batch_size):
                return f"its part {name} has shape {part.shape}, not {batch_size} rows, one per sequence of the batch"
            if not own_layout and part.shape == (self.hidden_size,) and len(names) == 1 and batch_size == 2:  # a row: only
                # a batch of two unpacks into two names without an error of Python's
                return (f"its part {name} has shape {part.shape}, one row of the batch: unpacking a state of one tensor "
                        f"(`{name}, c = self.prepare(x, state)`) splits it into its rows. Take it whole, `{name} = "
                        "self.prepare(x, state)`, or name a second part in state_names (('a', 'c') for two)")
            if not own_layout and part.shape != (batch_size, self.hidden_size):
                return (f"its part {name} has shape {part.shape}, not (batch, hidden_size) = {(batch_size, self.hidden_size)} "
                        "(a cell whose state parts have other shapes says so by overriding initial_state and check_state)")
        return None

    def check_input(self, x: Tensor) -> None:
        """Raise a ValueError naming the cell unless x is one step (B, input_size)."""
        if x.ndim != 2 or x.shape[1] != self.input_size:
            raise ValueError(f"{type(self).__name__}: the input must have shape (batch, {self.input_size}); got {x.shape}"
                             f"{self._input_hint(x.shape)}")

    def _input_hint(self, shape: tuple[int, ...]) -> str:
        """What a wrongly shaped step input most likely is, and what to pass instead ("" when nothing fits)."""
        if len(shape) == 3:
            return ("; a cell runs one step: run a whole sequence (time, batch, features) through nn.Recurrent(cell), or "
                    "give the cell one step at a time, x[t]")
        if len(shape) == 1 and shape[0] == self.input_size:
            return "; a single example needs a batch axis: pass x[None], shape (1, features)"
        if len(shape) == 2 and shape[0] == self.input_size:
            return (f"; the course writes x⟨t⟩ as a column per example ({self.input_size}, m); this library puts the "
                    "batch first, as PyTorch: pass x.T")
        return ""

    def as_input(self, x: Any) -> Tensor:
        """x as a Tensor: a Tensor as it is, a NumPy (or CuPy) array or a nested list of numbers as the layers take
        it (``as_tensor``); anything else is a TypeError naming the cell."""
        if isinstance(x, Tensor):
            return x
        dtype = getattr(x, "dtype", None)
        try:
            tensor = None if dtype is not None and dtype.kind not in "biuf" else as_tensor(x)
        except (TypeError, ValueError) as error:
            raise TypeError(f"{type(self).__name__}: the input x must be a Tensor, an array or a nested list of numbers, "
                            f"of shape (batch, {self.input_size}); got {describe_value(x)} ({error})") from None
        if tensor is None or tensor.dtype.kind not in "biuf":  # an array of strings, dates, complex numbers
            raise TypeError(f"{type(self).__name__}: the input x must hold numbers, of shape (batch, {self.input_size}); "
                            f"got {describe_value(x)} of dtype {dtype if tensor is None else tensor.dtype}")
        return tensor

    def _sizes(self, method: str) -> tuple[int, int]:
        """(input_size, hidden_size), or an AttributeError saying to call super().__init__ first: ``method`` ran before it."""
        try:
            return self.input_size, self.hidden_size
        except AttributeError:
            raise AttributeError(
                f"{type(self).__name__}: cannot call {method}() before RecurrentCell.__init__(); "
                "call super().__init__(input_size, hidden_size) first in your __init__"
            ) from None

    def reset_parameters(self) -> None:
        bound = 1 / math.sqrt(self._sizes("reset_parameters")[1])
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    def gate_parameters(self, gates: int, bias: bool) -> None:
        """Create weight_ih (gates·H, I), weight_hh (gates·H, H) and, if ``bias``, bias_ih, bias_hh (gates·H,)."""
        input_size, hidden_size = self._sizes("gate_parameters")
        size = gates * hidden_size
        self.weight_ih = Parameter(zeros(size, input_size))
        self.weight_hh = Parameter(zeros(size, hidden_size))
        self.bias_ih = Parameter(zeros(size)) if bias else None
        self.bias_hh = Parameter(zeros(size)) if bias else None

    def input_projection(self, x: Tensor) -> Tensor:
        """x W_ih^T + b_ih for every gate at once: (..., I) -> (..., G·H)."""
        try:
            return projection(linear(x, self.weight_ih, self.bias_ih), "input")
        except ValueError as error:
            raise self._projection_error("input_projection", "weight_ih", "bias_ih", x, self.input_size, error) from None

    def hidden_projection(self, h: Tensor) -> Tensor:
        """h W_hh^T + b_hh for every gate at once: (B, H) -> (B, G·H)."""
        try:
            return projection(linear(h, self.weight_hh, self.bias_hh), "state")
        except ValueError as error:
            raise self._projection_error("hidden_projection", "weight_hh", "bias_hh", h, self.hidden_size, error) from None

    def _projection_error(self, op: str, weight: str, bias: str, given: Tensor, features: int, error: ValueError) -> ValueError:
        """linear's error, said of what does not fit: the tensor given, when the cell's parameters are as they must be
        (``features`` columns), else the parameter, its shape and the one it needs."""
        w, b = getattr(self, weight), getattr(self, bias, None)
        if w.ndim == 2 and w.shape[1] == features and (b is None or b.shape == w.shape[:1]):
            return ValueError(f"{type(self).__name__}.{op}: {error}. It projects {'x' if weight == 'weight_ih' else 'the state'}"
                              f" of {features} features, (batch, {features}); it was given {given.shape}")
        shapes = f"{weight} is {w.shape}" + (f" and {bias} {b.shape}" if b is not None else "")
        H = self.hidden_size
        return ValueError(f"{type(self).__name__}.{op}: {error}. The cell's {shapes}; they must be (G × {H}, {features}) "
                          f"and (G × {H},), G the number of gates, the same in both, which gate_parameters(gates=G) makes")

    def prepare(self, x: Tensor, state: State | None) -> State:
        """The state ``forward`` starts from: ``state`` checked against x (B, I), or the initial state when None."""
        x = self.as_input(x)
        self.check_input(x)
        if state is None:
            return self.initial_state(x.shape[0], like=x)
        self.check_state(state, x.shape[0])
        return state

    def __call__(self, x: Tensor, state: State | None = None) -> State:
        """One step, ``cell(x, state=None) -> new state``: through the cell's kernel where it runs one, else ``forward``.

        x: a Tensor (B, I), or what the layers take (a NumPy array, a nested list). No state is the initial state:
        ``forward`` is handed it, so a cell whose ``forward`` skips ``self.prepare`` still starts where
        ``cell(x, cell.initial_state(...))`` does. What ``forward`` returns is checked (``check_returned``)."""
        x = self.as_input(x)
        if path_of(self) != "kernel":
            new_state = self.forward(x, self.prepare(x, state) if state is None else state)
            self.check_returned(new_state, x.shape[0] if x.ndim else None)
            return new_state
        state = self.prepare(x, state)
        kernel = self.kernel(self)
        return kernel.unpack(kernel.step(kernel.begin(x), None, kernel.pack(state), None))

    def forward(self, x: Tensor, state: State | None = None) -> State:
        """The step's equations on tensors: x (B, I), state (or None) -> new state. Every cell defines it."""
        raise NotImplementedError(f"{type(self).__name__}: define forward(x, state=None), starting with state = self.prepare(x, state)")

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}"


@register_cell("rnn")
class RNNCell(RecurrentCell):
    """The basic RNN cell (Elman):

        a⟨t⟩ = tanh(W_aa a⟨t−1⟩ + W_ax x⟨t⟩ + b_a)

    Shapes: weight_ih (H, I) = W_ax, weight_hh (H, H) = W_aa, bias_ih and
    bias_hh (H,) (b_a = bias_ih + bias_hh), all U(-1/sqrt(H), 1/sqrt(H)).
    x (B, I), state a (B, H) -> new a (B, H). ``nonlinearity="relu"`` uses
    max(0, ·) instead of tanh.
    """

    kernel = kernels.RNNKernel  # the hand-written step the default path runs; forward below is the reference

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh", fused: bool = True) -> None:
        super().__init__(input_size, hidden_size)
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: nonlinearity must be 'tanh' or 'relu'; got {nonlinearity!r}")
        self.nonlinearity, self.fused = nonlinearity, fused
        self.gate_parameters(1, bias)
        self.reset_parameters()

    def forward(self, x: Tensor, a_prev: Tensor | None = None) -> Tensor:
        a_prev = self.prepare(x, a_prev)
        pre_activation = self.input_projection(x) + self.hidden_projection(a_prev)
        return pre_activation.tanh() if self.nonlinearity == "tanh" else pre_activation.relu()

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + (", nonlinearity='relu'" if self.nonlinearity == "relu" else "")


@register_cell("gru")
class GRUCell(RecurrentCell):
    """The gated recurrent unit (Cho et al.), in PyTorch's formulation:

        Γr = r⟨t⟩ = σ(W_ir x + b_ir + W_hr a⟨t−1⟩ + b_hr)         relevance (reset) gate
        z⟨t⟩     = σ(W_iz x + b_iz + W_hz a⟨t−1⟩ + b_hz)         Γu = 1 − z, the update gate
        c̃⟨t⟩ = n = tanh(W_in x + b_in + r ⊙ (W_hn a⟨t−1⟩ + b_hn))      reset_after=True (PyTorch, cuDNN)
                 = tanh(W_in x + b_in + W_hn (r ⊙ a⟨t−1⟩) + b_hn)      reset_after=False (the course)
        a⟨t⟩ = (1 − z) ⊙ c̃⟨t⟩ + z ⊙ a⟨t−1⟩  =  Γu ⊙ c̃⟨t⟩ + (1 − Γu) ⊙ a⟨t−1⟩

    Shapes: weight_ih (3H, I), weight_hh (3H, H), bias_ih and bias_hh (3H,),
    gates stacked in the order r, z, n; all U(-1/sqrt(H), 1/sqrt(H)).
    """

    kernel = kernels.GRUKernel  # the hand-written step the default path runs; forward below is the reference

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, reset_after: bool = True, fused: bool = True) -> None:
        super().__init__(input_size, hidden_size)
        self.reset_after, self.fused = reset_after, fused
        self.gate_parameters(3, bias)
        self.reset_parameters()

    def forward(self, x: Tensor, a_prev: Tensor | None = None) -> Tensor:
        a_prev = self.prepare(x, a_prev)
        x_r, x_z, x_n = chunk(self.input_projection(x), 3, axis=-1)
        H = self.hidden_size
        if self.reset_after:
            h_r, h_z, h_n = chunk(self.hidden_projection(a_prev), 3, axis=-1)
            r = gate((x_r + h_r).sigmoid(), "reset")
            z = gate((x_z + h_z).sigmoid(), "update", complement=True)  # z = 1 − Γu
            n = gate((x_n + r * h_n).tanh(), "candidate")
        else:
            # r must multiply a⟨t−1⟩ before the candidate's matmul, so W_hh is used in two parts.
            h_rz = a_prev @ self.weight_hh[: 2 * H].T
            if self.bias_hh is not None:
                h_rz = h_rz + self.bias_hh[: 2 * H]
            h_r, h_z = chunk(h_rz, 2, axis=-1)
            r = gate((x_r + h_r).sigmoid(), "reset")
            z = gate((x_z + h_z).sigmoid(), "update", complement=True)  # z = 1 − Γu
            h_n = (r * a_prev) @ self.weight_hh[2 * H :].T
            if self.bias_hh is not None:
                h_n = h_n + self.bias_hh[2 * H :]
            n = gate((x_n + h_n).tanh(), "candidate")
        return gate(1 - z, "update") * n + z * a_prev  # 1 − z is Γu: drawn and named as the update gate

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.reset_after else ", reset_after=False")


@register_cell("simplified_gru")
class SimplifiedGRUCell(RecurrentCell):
    """The course's first, simplified GRU: an update gate and a candidate, no relevance gate.

        z⟨t⟩ = σ(W_iz x + b_iz + W_hz a⟨t−1⟩ + b_hz)               Γu = 1 − z
        c̃⟨t⟩ = n = tanh(W_in x + b_in + W_hn a⟨t−1⟩ + b_hn)
        a⟨t⟩ = (1 − z) ⊙ c̃⟨t⟩ + z ⊙ a⟨t−1⟩

    Shapes: weight_ih (2H, I), weight_hh (2H, H), bias_ih and bias_hh (2H,),
    gates stacked in the order z, n.
    """

    kernel = kernels.SimplifiedGRUKernel  # the hand-written step the default path runs; forward below is the reference

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, fused: bool = True) -> None:
        super().__init__(input_size, hidden_size)
        self.fused = fused
        self.gate_parameters(2, bias)
        self.reset_parameters()

    def forward(self, x: Tensor, a_prev: Tensor | None = None) -> Tensor:
        a_prev = self.prepare(x, a_prev)
        x_z, x_n = chunk(self.input_projection(x), 2, axis=-1)
        h_z, h_n = chunk(self.hidden_projection(a_prev), 2, axis=-1)
        z = gate((x_z + h_z).sigmoid(), "update", complement=True)  # z = 1 − Γu
        n = gate((x_n + h_n).tanh(), "candidate")
        return gate(1 - z, "update") * n + z * a_prev  # 1 − z is Γu: drawn and named as the update gate


@register_cell("lstm")
class LSTMCell(RecurrentCell):
    """Long short-term memory (Hochreiter and Schmidhuber), PyTorch's formulation:

        Γu = σ(W_ii x + b_ii + W_hi a⟨t−1⟩ + b_hi [+ w_ci ⊙ c⟨t−1⟩])     update gate (PyTorch's input gate i)
        Γf = σ(W_if x + b_if + W_hf a⟨t−1⟩ + b_hf [+ w_cf ⊙ c⟨t−1⟩])     forget gate
        c̃⟨t⟩ = tanh(W_ig x + b_ig + W_hg a⟨t−1⟩ + b_hg)                  candidate
        c⟨t⟩ = Γf ⊙ c⟨t−1⟩ + Γu ⊙ c̃⟨t⟩
        Γo = σ(W_io x + b_io + W_ho a⟨t−1⟩ + b_ho [+ w_co ⊙ c⟨t⟩])       output gate
        a⟨t⟩ = Γo ⊙ tanh(c⟨t⟩)

    The bracketed peephole terms (Gers and Schmidhuber) are there with
    ``peephole=True``: the input and forget gates see c⟨t−1⟩, the output gate
    sees c⟨t⟩ (the course lets all three see c⟨t−1⟩).

    Shapes: weight_ih (4H, I), weight_hh (4H, H), bias_ih and bias_hh (4H,),
    gates stacked in the order i, f, g, o; peephole weight_ci, weight_cf,
    weight_co (H,); all U(-1/sqrt(H), 1/sqrt(H)). State (a, c), each (B, H).
    """

    state_names = ("a", "c")

    kernel = kernels.LSTMKernel  # the hand-written step the default path runs; forward below is the reference
    forget_gate = 1  # the gate blocks stack as i, f, g, o

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, peephole: bool = False, fused: bool = True) -> None:
        super().__init__(input_size, hidden_size)
        self.peephole, self.fused = peephole, fused
        self.gate_parameters(4, bias)
        if peephole:
            self.weight_ci = Parameter(zeros(hidden_size))
            self.weight_cf = Parameter(zeros(hidden_size))
            self.weight_co = Parameter(zeros(hidden_size))
        self.reset_parameters()

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        a_prev, c_prev = self.prepare(x, state)
        gates = self.input_projection(x) + self.hidden_projection(a_prev)
        i, f, g, o = chunk(gates, 4, axis=-1)
        if self.peephole:
            i = i + self.weight_ci * c_prev
            f = f + self.weight_cf * c_prev
        i = gate(i.sigmoid(), "update")  # PyTorch's input gate i is the course's Γu
        f = gate(f.sigmoid(), "forget")
        g = gate(g.tanh(), "candidate")
        c = f * c_prev + i * g
        if self.peephole:
            o = o + self.weight_co * c
        o = gate(o.sigmoid(), "output")
        return o * c.tanh(), c

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + (", peephole=True" if self.peephole else "") + ("" if self.fused else ", fused=False")
