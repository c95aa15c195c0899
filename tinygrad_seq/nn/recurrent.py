"""Unrolling cells over time: Recurrent, Bidirectional and Stacked.

Cells are one step; these wrappers own the time loop, so they accept any
cell, the built-in ones and yours. Every step runs inside
``ts.tags(t=..., layer=..., direction=..., cell=...)`` (t counted from 1 along
the sequence, also in the reverse direction; cell is the cell's class name),
and its input and state parts get their roles (``nn.roles``: "input", "state"
with the part's name), so a rendered graph clusters by time step and every
tool finds every cell's states, whatever their names.

Variable lengths follow PyTorch's packed sequences: each sequence stops at its
own length, outputs past it are zero, the final state is the one at its last
valid step, and the reverse direction starts there.
"""
from __future__ import annotations

import copy
import warnings
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from ..ops import concat, stack, stack_part, where
from .. import blas, settings
from ..anomaly import check_finite_input
from ..checks import check_probability
from ..backend import to_host
from ..callers import callers_level
from ..modes import tags
from ..tensor import as_tensor, Tensor
from .cells import RecurrentCell, State, StateError, describe_state
from . import recorded, roles, steps
from .dropout import dropout
from .module import Module

MERGE_MODES = ("concat", "sum", "mul", "ave", None)


def _layout(batch_first: bool) -> str:
    """How a layer reads its input's axes, as its errors say it."""
    return "(batch, time, features)" if batch_first else "(time, batch, features)"


def check_lengths(lengths: Any, batch_size: int, steps: int, op: str, reading: tuple[tuple[int, ...], bool] | None = None
                  ) -> np.ndarray | None:
    """``lengths`` as a host int array of B values in 1..T, or None; raises naming the bad value. ``reading``: the
    input's shape and ``batch_first``, said when the count is wrong ("the input of shape (5, 2, 3) is read as
    (batch, time, features)"), the likeliest cause being data in the other layout."""
    if lengths is None:
        return None
    if isinstance(lengths, Tensor):
        lengths = lengths.data
    values = to_host(lengths)  # checked and turned into masks on the host: one read of a device array
    if values.dtype.kind not in "iu" or values.shape != (batch_size,):
        read = "" if reading is None else f"; the input of shape {reading[0]} is read as {_layout(reading[1])}"
        raise ValueError(f"{op}: lengths must be {batch_size} ints (one per sequence in the batch{read}); got {values.tolist()!r}")
    if values.min() < 1:
        raise ValueError(f"{op}: every length must be at least 1; got {int(values.min())} at index {int(values.argmin())}. Drop empty sequences from the batch")
    if values.max() > steps:
        raise ValueError(f"{op}: length {int(values.max())} at index {int(values.argmax())} is longer than the {steps} time steps "
                         "of the input. A length counts a sequence's real steps: pad the input to the longest sequence")
    return values


def check_steps(x: Any, batch_first: bool, op: str) -> None:
    """Raise naming ``op`` and the shape if the sequence ``x`` has no time steps (T = 0).

    An empty sequence has no output to stack and no last step to return as
    the final state, so every layer refuses it up front, before any step runs.
    """
    if type(x).__name__ == "PackedSequence":  # PyTorch's, whose data NumPy would read as ragged rows
        raise TypeError(f"{op}: got a PyTorch PackedSequence; pass the padded sequences and their lengths instead, "
                        "layer(x, lengths=lengths), which runs each to its own length as a packed sequence does "
                        "(x, lengths = torch.nn.utils.rnn.pad_packed_sequence(packed) gives both)")
    shape = tuple(x.shape) if hasattr(x, "shape") else np.shape(x)
    axis = 1 if batch_first else 0
    if len(shape) == 3 and shape[axis] == 0:
        raise ValueError(
            f"{op}: the input of shape {shape} {_layout(batch_first)} has no time steps (T = 0). Give it at least one step, "
            "or skip the layer for an empty sequence and use the initial state as the final one"
        )


def check_sequence(x: Tensor, batch_first: bool, op: str, input_size: int | None) -> None:
    """Raise naming ``op`` unless x is (T, B, I) (or (B, T, I) with ``batch_first``) with I = ``input_size`` (any I
    when None: a layer of yours that does not say)."""
    if x.ndim != 3:
        raise ValueError(f"{op}: the input must have 3 axes {_layout(batch_first)}; got shape {x.shape}")
    if input_size is not None and x.shape[2] != input_size:
        raise ValueError(f"{op}: the input has {x.shape[2]} features per step; the layer expects input_size={input_size}")


class PrecisionWarning(UserWarning):
    """A layer computes in a wider float than its weights because its input is one: float64 data (NumPy's default,
    np.random.randn) into a float32 model. PyTorch refuses such an input."""


def checked_call(x: Any, lengths: Any, batch_first: bool, input_size: int | None, op: str,
                 weights: Any = (), state: Any = None) -> tuple[Tensor, np.ndarray | None]:
    """A layer call's sequence and lengths, checked once, naming ``op`` (the layer the user called): x as a
    time-major (T, B, I) tensor, lengths as host ints or None. What the wrappers hand their inner layers' ``run``,
    which checks no input again and swaps no axis. A float64 input, or initial ``state`` (tensors, nested in tuples,
    lists or dicts; a dict's keys name its parts, as {"h0": ..., "c0": ...}), into a layer whose ``weights`` (its
    parameters) are narrower gets a PrecisionWarning."""
    check_steps(x, batch_first, op)
    x = as_tensor(x)
    check_sequence(x, batch_first, op, input_size)
    _warn_if_wider(op, x, state, weights)
    if settings.anomaly_mode:  # name a NaN in the data by its time step, before some op reading it is blamed
        check_finite_input(x, op, "the input", time_axis=1 if batch_first else 0)
    reading = (x.shape, batch_first)  # for the lengths' message, written only if they are wrong
    if batch_first:
        x = x.swapaxes(0, 1)
    return x, check_lengths(lengths, x.shape[1], x.shape[0], op, reading)


def _state_tensors(state: Any, path: tuple = ()) -> Iterator[tuple[tuple, Tensor]]:
    """The tensors of a layer's state, however nested, each with its path of keys and indices (``(1, 0)``)."""
    if isinstance(state, Tensor):
        yield path, state
    elif isinstance(state, (dict, tuple, list)):
        for key, part in (state.items() if isinstance(state, dict) else enumerate(state)):
            yield from _state_tensors(part, path + (key,))


def _state_name(path: tuple) -> str:
    """A state part's name for a message: "state[1][0]"; the key of a dict at the top names its part itself ("h0")."""
    if path and isinstance(path[0], str):
        return path[0] + "".join(f"[{key!r}]" for key in path[1:])
    return "state" + "".join(f"[{key!r}]" for key in path)


def _warn_if_wider(op: str, x: Tensor, state: Any, weights: Iterable[Tensor]) -> None:
    """A PrecisionWarning naming ``op`` when the input ``x`` or a tensor of the initial ``state`` is a float wider
    than the layer's ``weights``: NumPy's promotion makes the whole layer compute in it. Float32, the usual, is
    never wider, so nothing is walked but the state's tensors, and no name is written."""
    wide = [(("x",), x)] if _wide(x.dtype) else []
    wide += [(path, part) for path, part in _state_tensors(state) if _wide(part.dtype)]
    weight = next(iter(weights), None) if wide else None
    if weight is None or weight.dtype.kind != "f":
        return
    for path, tensor in wide:
        dtype = tensor.dtype
        if dtype.itemsize > weight.dtype.itemsize:
            name = "x" if tensor is x else _state_name(path)
            what, fix = (("the input", f"Convert the input, x.astype(np.{weight.dtype}) or x.to(\"{weight.dtype}\")")
                         if tensor is x else (name, f"Convert it, {name}.to(\"{weight.dtype}\")"))  # a state has no astype
            warnings.warn(f"{op}: {what} is {dtype} and the weights {weight.dtype}, so the layer computes in {dtype} "
                          f"(NumPy's promotion): more slowly, and its outputs and states are {dtype}. {fix}, or the model "
                          f"to {dtype}, model.to(\"{dtype}\")", PrecisionWarning, stacklevel=callers_level())
            return


def _wide(dtype: np.dtype) -> bool:
    return dtype.kind == "f" and dtype.itemsize >= 8


def detach_state(state: Any) -> Any:
    """``state`` with every tensor in it detached, its structure kept (a tensor; tuples, lists or dicts of them, as
    deep as they go; None stays): what truncated BPTT carries into the next chunk, the values without the graph.
    ``state = nn.detach_state(state)`` fits an RNN's h, an LSTM's (h, c), a LanguageModel's list of them, a
    wrapper's pairs and lists, and a cell of yours."""
    if isinstance(state, Tensor):
        return state.detach()
    if isinstance(state, dict):  # a copy keeps the kind of dict (an OrderedDict, a defaultdict and its factory)
        detached = copy.copy(state)
        for key, part in state.items():
            detached[key] = detach_state(part)
        return detached
    if isinstance(state, tuple) and hasattr(state, "_fields"):  # a namedtuple: built from its fields
        return type(state)(*(detach_state(part) for part in state))
    if isinstance(state, (tuple, list)):
        return type(state)(detach_state(part) for part in state)
    if state is None:
        return None
    raise TypeError(f"detach_state: a state holds tensors, in tuples, lists or dicts; got {type(state).__name__}")


def swap_if_batch_first(outputs: Any, batch_first: bool) -> Any:
    """``outputs`` (a tensor or a pair) with the first two axes swapped when ``batch_first``: time-major (T, B, ...)
    into a batch-first layer's layout, and that layer's (B, T, ...) back to time-major (the swap undoes itself)."""
    if not batch_first:
        return outputs
    if isinstance(outputs, tuple):
        return tuple(out.swapaxes(0, 1) for out in outputs)
    return outputs.swapaxes(0, 1)


class Recurrent(Module):
    """Runs ``cell`` over a sequence: ``outputs, final_state = Recurrent(cell)(x, state, lengths)``.

    Shapes: x (T, B, I), or (B, T, I) with ``batch_first``; state has the
    cell's structure, each part (B, H), zeros when None; lengths B ints in
    1..T. outputs (T, B, H) (batch first if asked), zero past each length;
    final_state has the cell's structure. ``reverse=True`` runs from the end
    of each sequence back to its start.
    """

    _parent_init = "super().__init__(cell)"

    def __init__(self, cell: RecurrentCell, batch_first: bool = False, reverse: bool = False) -> None:
        super().__init__()
        if not isinstance(cell, RecurrentCell):
            raise TypeError(
                f"Recurrent: cell must be an nn.RecurrentCell; got {type(cell).__name__}. "
                "Build one by name with nn.make_cell('lstm', input_size, hidden_size)"
            )
        self.cell = cell
        self.batch_first, self.reverse = batch_first, reverse
        self.layer = 0  # the tag of this layer's nodes; Stacked numbers its layers

    @property
    def input_size(self) -> int:
        return self.cell.input_size

    @property
    def output_size(self) -> int:
        return self.cell.hidden_size

    def check_state(self, state: State, batch_size: int) -> None:
        """A StateError unless ``state`` fits the cell at ``batch_size`` rows."""
        self.cell.check_state(state, batch_size)

    def forward(self, x: Tensor, state: State | None = None, lengths: Any = None) -> tuple[Tensor, State]:
        x, lengths = checked_call(x, lengths, self.batch_first, self.input_size, f"Recurrent({type(self.cell).__name__})",
                                  self.parameters(), state)
        out, state = self.run(x, state, lengths)
        return swap_if_batch_first(out, self.batch_first), state

    def run(self, x: Tensor, state: State | None, lengths: np.ndarray | None) -> tuple[Tensor, State]:
        """``forward`` on an input already checked (``checked_call``): x and the outputs time-major (T, B, ...)
        whatever ``batch_first`` says, lengths host ints or None. How the wrappers run the layers inside them."""
        direction = "reverse" if self.reverse else "forward"
        count, batch_size = x.shape[0], x.shape[1]
        cell = self.cell
        if state is None:
            state = cell.initial_state(batch_size, like=x)
            # The reverse direction starts after the last step: the course's ←a⟨T+1⟩.
            with tags(layer=self.layer, direction=direction, cell=type(cell).__name__, start=count + 1 if self.reverse else 0):
                for part, symbol in zip(cell.state_parts(state), cell.state_names):
                    roles.state(part, symbol)
        else:
            cell.check_state(state, batch_size)
        if settings.anomaly_mode:
            layer_name = f"Recurrent({type(cell).__name__}) (layer {self.layer}, {direction})"
            for part, symbol in zip(cell.state_parts(state), cell.state_names):
                check_finite_input(part, layer_name, f"the initial state {symbol}")
        return self._run(self._step_object(x, state), x, state, lengths, direction)

    def _step_object(self, x: Tensor, state: State) -> steps.Step:
        """The step object of this call's path (nn/steps.py)."""
        path = steps.path_of(self.cell)
        if path == "kernel":
            return self.cell.kernel(self.cell)
        if path == "recorded":
            step = recorded.RecordedSteps(self.cell)
            if step.replays(x, state):  # else this call's shapes are known not to replay (warned about once already)
                return step
        return steps.TransparentStep(self.cell)

    def _run(self, step: steps.Step, x: Tensor, state: State, lengths: np.ndarray | None, direction: str) -> tuple[Tensor, State]:
        """The time loop, whatever the path: outputs (T, B, H) and the final state."""
        cell = self.cell
        count = x.shape[0]
        layer_tags = dict(layer=self.layer, direction=direction, cell=type(cell).__name__)
        with tags(**layer_tags, time_axis=0):  # time_axis: detect_anomaly names the time step of a bad value
            inputs = step.begin(x)  # (T, B, ...): the work of every step that needs no state, e.g. x W_ih^T + b_ih
        carried = step.pack(state)
        if len(cell.state_names) > 1 and isinstance(carried, Tensor) and carried.grad_fn is None:
            with tags(**layer_tags, start=count + 1 if self.reverse else 0):  # the initial state, packed: (a, c)⟨0⟩ or ←(a, c)⟨T+1⟩
                roles.packed_state(carried, cell.state_names)
        masks = steps.running_masks(lengths, count, x.backend.xp)
        part = step.output_part()  # a⟨t⟩ is part `part` of each packed state: gathered after the loop, in one node
        outputs: list[Tensor | None] = [None] * count
        step_tags = tags(**layer_tags)  # and t, set at each step
        with blas.limited(steps.loop_threads(cell, x.shape[1])), step_tags:  # one BLAS thread for a small layer's steps
            for t in (reversed(range(count)) if self.reverse else range(count)):
                step_tags.at_step(t + 1)
                carried = step.step(inputs, t, carried, masks[t])
                # A packed state is one tensor: viz.gradient_flow asks the step op for each part's gradient.
                steps.label_state(cell, carried)
                if part is None:
                    output = step.output(carried)
                    if masks[t] is not None:  # sequences past their end output zeros
                        output = where(Tensor.wrap(masks[t]), output, 0.0)
                outputs[t] = output if part is None else carried
        return (stack(outputs) if part is None else stack_part(outputs, part, masks)), step.unpack(carried)

    def extra_repr(self) -> str:
        options = [f for f, on in (("batch_first=True", self.batch_first), ("reverse=True", self.reverse)) if on]
        return ", ".join(options)


def check_part_state(layer: Module, state: State, batch_size: int, given: str) -> None:
    """``layer.check_state`` on the part of a wrapper's state meant for ``layer``; a StateError then starts with
    ``given``, where in the wrapper's state the part came from ("Stacked(2 layers): state[1] (layer 1)"), since a
    cell alone cannot say which layer it is. Only the state given is checked this way, before anything runs: an
    error inside a layer's steps is not taken for one of the state given. A layer of yours without
    ``check_state`` checks its state itself."""
    check = getattr(layer, "check_state", None)
    if state is None or check is None:
        return
    try:
        check(state, batch_size)
    except StateError as error:
        raise StateError(f"{given}: {error}") from None


def _set_layer(module: Module, index: int) -> None:
    for inner in module.modules():
        if isinstance(inner, Recurrent):
            inner.layer = index


class Bidirectional(Module):
    """Runs a layer forwards and a copy of it (own weights) backwards, and merges the two outputs.

    ``outputs, (forward_state, reverse_state) = Bidirectional(Recurrent(cell))(x, state, lengths)``

    merge_mode: "concat" (last axis: (..., 2H)), "sum", "mul", "ave", or None
    for the pair (forward_outputs, reverse_outputs). ``state`` is None or a
    pair of states, one per direction.
    """

    def __init__(self, layer: Recurrent, merge_mode: str | None = "concat") -> None:
        super().__init__()
        if not isinstance(layer, Recurrent):
            raise TypeError(f"Bidirectional: wraps an nn.Recurrent; got {type(layer).__name__}")
        if merge_mode not in MERGE_MODES:
            raise ValueError(f"Bidirectional: merge_mode must be one of {MERGE_MODES}; got {merge_mode!r}")
        self.merge_mode = merge_mode
        self.forward_layer = layer
        # An independent copy: same cell type and sizes, its own freshly drawn weights.
        backward_cell = copy.deepcopy(layer.cell)
        for p, original in zip(backward_cell.parameters(), layer.cell.parameters()):
            p.name = original.name
            p.grad = None
        backward_cell.reset_parameters()
        self.backward_layer = Recurrent(backward_cell, batch_first=layer.batch_first, reverse=not layer.reverse)
        self.backward_layer.layer = layer.layer

    @property
    def batch_first(self) -> bool:
        return self.forward_layer.batch_first

    @property
    def input_size(self) -> int:
        return self.forward_layer.input_size

    @property
    def output_size(self) -> int:
        return self.forward_layer.output_size * (2 if self.merge_mode == "concat" else 1)

    def _called(self) -> str:
        """The layer a call's errors name: "Bidirectional(Recurrent(LSTMCell))"."""
        return f"Bidirectional(Recurrent({type(self.forward_layer.cell).__name__}))"

    def check_state(self, state: tuple[State, State], batch_size: int) -> None:
        """A StateError unless ``state`` is a pair whose parts (None or a state) fit the two directions."""
        if not isinstance(state, (tuple, list)) or len(state) != 2:
            raise StateError(f"{self._called()}: state must be None or a pair (forward_state, reverse_state); "
                             f"got {describe_state(state)}")
        for i, (layer, direction) in enumerate(((self.forward_layer, "forward"), (self.backward_layer, "reverse"))):
            check_part_state(layer, state[i], batch_size, f"{self._called()}: state[{i}] ({direction})")

    def forward(self, x: Tensor, state: tuple[State, State] | None = None, lengths: Any = None):
        x, lengths = checked_call(x, lengths, self.batch_first, self.input_size, self._called(), self.parameters(), state)
        merged, finals = self.run(x, state, lengths)
        return swap_if_batch_first(merged, self.batch_first), finals

    def run(self, x: Tensor, state: tuple[State, State] | None, lengths: np.ndarray | None):
        """``forward`` on a checked, time-major input (see Recurrent.run)."""
        if state is not None:
            self.check_state(state, x.shape[1])
        forward_state, reverse_state = state if state is not None else (None, None)
        forward_out, forward_final = run_layer(self.forward_layer, x, forward_state, lengths)
        reverse_out, reverse_final = run_layer(self.backward_layer, x, reverse_state, lengths)
        mode = self.merge_mode
        if mode == "concat":
            merged = concat([forward_out, reverse_out], axis=-1)
        elif mode == "sum":
            merged = forward_out + reverse_out
        elif mode == "mul":
            merged = forward_out * reverse_out
        elif mode == "ave":
            merged = (forward_out + reverse_out) * 0.5
        else:
            merged = (forward_out, reverse_out)
        return merged, (forward_final, reverse_final)

    def extra_repr(self) -> str:
        return f"merge_mode={self.merge_mode!r}"


class Stacked(Module):
    """Deep RNN: each layer reads the outputs of the one below.

    ``outputs, states = Stacked([layer0, layer1, ...], dropout=0.0)(x, state, lengths)``
    where ``state`` and ``states`` are lists with one state per layer.
    Dropout (training only) is applied between layers, never after the last.
    Each layer's nodes are tagged with its index.
    """

    def __init__(self, layers: Sequence[Module], dropout: float = 0.0, *, name: str = "Stacked") -> None:
        """``name``: the layer its errors and warnings name (nn.LSTM passes "LSTM")."""
        super().__init__()
        layers = list(layers)
        if not layers:
            raise ValueError(f"{name}: needs at least one layer")
        check_probability(dropout, name, "dropout")  # between the layers
        if dropout and len(layers) == 1:  # PyTorch warns the same: the dropout sits between layers, and there are none
            warnings.warn(f"{name}: dropout={dropout} acts between stacked layers, and one layer has none, so it changes "
                          "nothing; stack layers (num_layers=2 or more) or apply nn.Dropout to the outputs",
                          UserWarning, stacklevel=callers_level())
        for i, (below, above) in enumerate(zip(layers, layers[1:])):
            if above.input_size != below.output_size:
                raise ValueError(f"Stacked: layer {i + 1} expects {above.input_size} inputs but layer {i} gives {below.output_size}")
            if above.batch_first != below.batch_first:
                raise ValueError("Stacked: all layers must agree on batch_first")
        for i, layer in enumerate(layers):
            _set_layer(layer, i)
        self.layers = layers
        self.dropout = dropout
        self.name = name

    @property
    def batch_first(self) -> bool:
        return self.layers[0].batch_first

    @property
    def input_size(self) -> int:
        return self.layers[0].input_size

    @property
    def output_size(self) -> int:
        return self.layers[-1].output_size

    def _called(self) -> str:
        """The layer a call's errors name: ``name`` as given (nn.LSTM's "LSTM"), else "Stacked(2 layers)"."""
        if self.name != "Stacked":
            return self.name
        return f"Stacked({len(self.layers)} layer{'s' if len(self.layers) > 1 else ''})"

    def check_state(self, state: Sequence[State], batch_size: int) -> None:
        """A StateError unless ``state`` is a list of one state (or None) per layer, each fitting its layer."""
        if not isinstance(state, (list, tuple)) or len(state) != len(self.layers):
            raise StateError(f"{self._called()}: state must be a list of one state per layer ({len(self.layers)}); "
                             f"got {describe_state(state)}")
        for i, (layer, part) in enumerate(zip(self.layers, state)):
            check_part_state(layer, part, batch_size, f"{self._called()}: state[{i}] (layer {i})")

    def forward(self, x: Tensor, state: Sequence[State] | None = None, lengths: Any = None) -> tuple[Tensor, list[State]]:
        x, lengths = checked_call(x, lengths, self.batch_first, getattr(self.layers[0], "input_size", None), self._called(),
                                  self.parameters(), state)
        out, states = self.run(x, state, lengths)
        return swap_if_batch_first(out, self.batch_first), states

    def run(self, x: Tensor, state: Sequence[State] | None, lengths: np.ndarray | None) -> tuple[Tensor, list[State]]:
        """``forward`` on a checked, time-major input (see Recurrent.run)."""
        if state is not None:
            self.check_state(state, x.shape[1])
        states = []
        for i, layer in enumerate(self.layers):
            if i > 0 and self.dropout:
                x = dropout(x, self.dropout, self.training)
            x, final = run_layer(layer, x, None if state is None else state[i], lengths)
            states.append(final)
        return x, states

    def extra_repr(self) -> str:
        return f"dropout={self.dropout}" if self.dropout else ""


def run_layer(layer: Module, x: Tensor, state: Any, lengths: np.ndarray | None) -> tuple[Any, Any]:
    """A layer inside a wrapper, on the wrapper's checked, time-major input: through its ``run`` when it is one of
    the wrappers here as written, else called as a user calls it, in the layout it asks for (a layer of yours, or
    a subclass whose own ``forward`` must run)."""
    if type(layer).forward in _CHECKED_ONCE:
        return layer.run(x, state, lengths)
    out, final = layer(swap_if_batch_first(x, layer.batch_first), state, lengths)
    return swap_if_batch_first(out, layer.batch_first), final


_CHECKED_ONCE = (Recurrent.forward, Bidirectional.forward, Stacked.forward)  # the forwards that are checks + run
