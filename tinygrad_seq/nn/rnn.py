"""nn.RNN, nn.GRU, nn.LSTM: PyTorch's multi-layer recurrent layers, built from cells and wrappers.

Same constructor, call and return values as PyTorch, same parameter names and
state-dict keys (``weight_ih_l0``, ``bias_hh_l1_reverse``, ...), so weights
move both ways through ``ts.interop``. Inside, each is a
``Stacked([Recurrent(cell) or Bidirectional(Recurrent(cell)), ...])``; the
cells' parameters are also attributes of the layer under PyTorch's names.
"""
from __future__ import annotations

from typing import Any

from ..checks import check_counts
from ..ops import stack
from ..tensor import Tensor
from .cells import GRUCell, LSTMCell, RecurrentCell, RNNCell, StateError, describe_state, describe_value, is_array
from .module import Module
from .recurrent import Bidirectional, Recurrent, Stacked, swap_if_batch_first, checked_call


class RecurrentLayer(Module):
    """Shared machinery of RNN, GRU and LSTM (see their docstrings)."""

    _parent_init = "super().__init__(input_size, hidden_size)"

    cell_class: type[RecurrentCell] = RNNCell

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        **cell_options: Any,
    ) -> None:
        super().__init__()
        # named as the user called it, not as the cells inside it that check their sizes too
        check_counts(type(self).__name__, input_size=input_size, hidden_size=hidden_size, num_layers=num_layers)
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout, self.bidirectional = bias, batch_first, dropout, bidirectional
        self.cell_options = cell_options
        directions = 2 if bidirectional else 1
        layers = []
        for index in range(num_layers):
            layer_input = input_size if index == 0 else hidden_size * directions
            layer: Module = Recurrent(self.cell_class(layer_input, hidden_size, bias=bias, **cell_options), batch_first=batch_first)
            cells = [layer.cell]
            if bidirectional:
                layer = Bidirectional(layer)
                cells.append(layer.backward_layer.cell)
            for cell, suffix in zip(cells, ("", "_reverse")):
                for name, p in cell.named_parameters():
                    p.name = f"{name}_l{index}{suffix}"
                    setattr(self, p.name, p)
            layers.append(layer)
        self.layers = Stacked(layers, dropout, name=type(self).__name__)

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def _cells(self) -> list[RecurrentCell]:
        """Cells in PyTorch's h_n order: layer 0 forward, layer 0 reverse, layer 1 forward, ..."""
        cells = []
        for layer in self.layers.layers:
            if isinstance(layer, Bidirectional):
                cells += [layer.forward_layer.cell, layer.backward_layer.cell]
            else:
                cells.append(layer.cell)
        return cells

    def _check_initial(self, h: Tensor, name: str, batch_size: int) -> None:
        expected = (self.num_layers * self.num_directions, batch_size, self.hidden_size)
        if not isinstance(h, Tensor) or h.shape != expected:
            if isinstance(h, (tuple, list)):  # (h0, c0) given to a layer whose state is one tensor
                got = f"a {type(h).__name__} of {len(h)}: a {type(self).__name__}'s state is one tensor, h0 (only an LSTM takes (h0, c0))"
            elif isinstance(h, Tensor) and self.batch_first and sorted(h.shape) == sorted(expected):
                got = f"{h.shape} ({name} is never batch-first, whatever batch_first says)"
            elif isinstance(h, Tensor):
                got = f"{h.shape}"
            elif is_array(h) and tuple(h.shape) == expected:  # the layers take tensors as states: the shape is not the problem
                raise StateError(f"{type(self).__name__}: {name} must be a Tensor; got {describe_value(h)}: make it one, "
                                 f"ts.Tensor({name})")
            elif is_array(h):
                got = f"{describe_value(h)}: make it a Tensor, ts.Tensor({name})"
            else:
                got = describe_value(h)
            raise StateError(
                f"{type(self).__name__}: {name} must have shape (num_layers * num_directions, batch, hidden_size) = {expected}; "
                f"got {got}"
            )

    def _layer_states(self, parts: list[Tensor] | None) -> list[Any] | None:
        """Initial states per layer from the (L·D, B, H) tensors of hx."""
        if parts is None:
            return None
        states = []
        for index in range(self.num_layers):
            per_direction = []
            for direction in range(self.num_directions):
                row = index * self.num_directions + direction
                step_parts = tuple(p[row] for p in parts)
                per_direction.append(step_parts[0] if len(step_parts) == 1 else step_parts)
            states.append(tuple(per_direction) if self.bidirectional else per_direction[0])
        return states

    def _run(self, x: Tensor, initial: list[Tensor] | None, lengths: Any) -> tuple[Tensor, list[Tensor]]:
        # checked once, the errors naming the layer the user called; the layers inside run on what was checked
        state = None if initial is None else dict(zip(("h0", "c0"), initial))
        x, lengths = checked_call(x, lengths, self.batch_first, self.input_size, type(self).__name__, self.parameters(), state)
        batch_size = x.shape[1]
        if initial is not None:
            for part, h in zip(("h0", "c0"), initial):
                self._check_initial(h, part, batch_size)
        output, states = self.layers.run(x, self._layer_states(initial), lengths)
        output = swap_if_batch_first(output, self.batch_first)
        finals = []  # one state per (layer, direction), PyTorch's order
        for state in states:
            finals += list(state) if self.bidirectional else [state]
        cells = self._cells()
        stacked = [stack([cell.state_parts(s)[k] for cell, s in zip(cells, finals)]) for k in range(len(cells[0].state_names))]
        return output, stacked

    def forward(self, x: Tensor, hx: Tensor | None = None, lengths: Any = None) -> tuple[Tensor, Tensor]:
        """(output, h_n) of a layer whose state is one tensor (RNN, GRU); hx is h0 or None (zeros). The LSTM's takes
        (h0, c0)."""
        output, (h_n,) = self._run(x, None if hx is None else [hx], lengths)
        return output, h_n

    def extra_repr(self) -> str:
        options = [f"{self.input_size}, {self.hidden_size}"]
        for name, default in (("num_layers", 1), ("bias", True), ("batch_first", False), ("dropout", 0.0), ("bidirectional", False)):
            if getattr(self, name) != default:
                options.append(f"{name}={getattr(self, name)}")
        defaults = {"nonlinearity": "tanh", "reset_after": True, "peephole": False}
        options += [f"{k}={v!r}" for k, v in self.cell_options.items() if defaults.get(k) != v]
        return ", ".join(options)


class RNN(RecurrentLayer):
    """Multi-layer Elman RNN, as ``torch.nn.RNN``: a⟨t⟩ = tanh(W_ax x⟨t⟩ + W_aa a⟨t−1⟩ + b) per layer.

    ``output, h_n = RNN(input_size, hidden_size, num_layers=1, bias=True,
    batch_first=False, dropout=0.0, bidirectional=False, nonlinearity="tanh")(x, hx=None, lengths=None)``, hx
    being h0 (None: zeros)

    Shapes: x (T, B, I) or (B, T, I) with batch_first; h0 and h_n (L·D, B, H)
    with D = 2 if bidirectional (layer-major: l0, l0_reverse, l1, ...), never
    batch-first; output (T, B, D·H), zero past each length. Parameters
    weight_ih_l{k} (H, I or D·H), weight_hh_l{k} (H, H), bias_ih_l{k},
    bias_hh_l{k} (H,), and the same with _reverse; U(-1/sqrt(H), 1/sqrt(H)).
    """

    cell_class = RNNCell

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, nonlinearity: str = "tanh") -> None:
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, nonlinearity=nonlinearity)


class GRU(RecurrentLayer):
    """Multi-layer GRU, as ``torch.nn.GRU``; ``reset_after=False`` gives the course's formulation.

    ``output, h_n = GRU(input_size, hidden_size, num_layers=1, bias=True,
    batch_first=False, dropout=0.0, bidirectional=False, reset_after=True)(x, hx=None, lengths=None)``

    Shapes as :class:`RNN`, with weight_ih_l{k} (3H, ·), weight_hh_l{k} (3H, H),
    biases (3H,), gates r, z, n. With reset_after=False the state dict has no
    PyTorch twin (same keys and shapes, different equations).
    """

    cell_class = GRUCell

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, reset_after: bool = True) -> None:
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, reset_after=reset_after)


class LSTM(RecurrentLayer):
    """Multi-layer LSTM, as ``torch.nn.LSTM``; ``peephole=True`` adds Gers and Schmidhuber's peepholes.

    ``output, (h_n, c_n) = LSTM(input_size, hidden_size, num_layers=1, bias=True,
    batch_first=False, dropout=0.0, bidirectional=False, peephole=False)(x, hx=None, lengths=None)``, hx
    being (h0, c0) (None: zeros)

    Shapes as :class:`RNN`, with weight_ih_l{k} (4H, ·), weight_hh_l{k} (4H, H),
    biases (4H,), gates i, f, g, o; c0 and c_n like h0 and h_n. Peepholes
    add weight_ci_l{k}, weight_cf_l{k}, weight_co_l{k} (H,), which PyTorch lacks.
    """

    cell_class = LSTMCell

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, peephole: bool = False) -> None:
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, peephole=peephole)

    def forward(self, x: Tensor, hx: tuple[Tensor, Tensor] | None = None, lengths: Any = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        if hx is not None and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            one = "; an LSTM's state is two tensors: pass (h0, c0)" if isinstance(hx, Tensor) else ""
            raise StateError("LSTM: hx must be None or a pair (h0, c0), each (num_layers * num_directions, batch, hidden_size); "
                             f"got {describe_state(hx)}{one}")
        output, (h_n, c_n) = self._run(x, None if hx is None else list(hx), lengths)
        return output, (h_n, c_n)
