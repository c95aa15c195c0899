"""Small unrolled models for the graph tools: what ``tinygrad-seq graph`` and ``bptt`` draw."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import nn
from ..backend import manual_seed
from ..creation import randn
from ..nn import functional as F
from ..modes import tags
from ..tensor import Tensor

BUILT_IN_LAYERS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


@dataclass
class SmallModel:
    """A recurrent model with a per-step output layer and a loss L = Σ_t L⟨t⟩, ready to draw."""

    rnn: nn.Module
    head: nn.Linear
    x: Tensor
    targets: np.ndarray

    def named_parameters(self) -> Iterator[tuple[str, Tensor]]:
        """(module path, parameter) pairs, as a Module's: "rnn.weight_hh_l0", "head.weight", ..."""
        for prefix, module in (("rnn", self.rnn), ("head", self.head)):
            for name, parameter in module.named_parameters():
                yield f"{prefix}.{name}", parameter

    def parameters(self) -> dict[str, Tensor]:
        """The same pairs as a dict, name -> parameter (what the graph tools' ``params`` takes)."""
        return dict(self.named_parameters())

    def loss(self) -> Tensor:
        """Run forward: ŷ⟨t⟩ = W_ya a⟨t⟩ + b_y (logits), L⟨t⟩ = cross-entropy, L = Σ_t L⟨t⟩."""
        outputs, _ = self.rnn(self.x)
        return loss_per_step(outputs, self.head, self.targets)


def loss_per_step(outputs: Tensor, head: Any, targets: Any) -> Tensor:
    """L = Σ_t L⟨t⟩ over a layer's ``outputs`` (T, B, H), built step by step as the course draws it: ŷ⟨t⟩ =
    ``head``(a⟨t⟩) marked as the output and L⟨t⟩ = cross-entropy against ``targets``[t] (T, B ids) as the loss of
    step t, summed over the batch. Its graph labels ŷ⟨t⟩, L⟨t⟩ and the head's weights (W_ya, b_y) in the course's
    notation; the value is the summed cross-entropy (``cross_entropy(head(outputs), targets, reduction="sum")``)."""
    total = None
    for t in range(outputs.shape[0]):
        with tags(t=t + 1, layer="output", direction="forward"):  # the running sum too: it stays in the output row
            y_hat = nn.roles.output(head(outputs[t]))
            step_loss = nn.roles.loss(F.cross_entropy(y_hat, targets[t], reduction="sum"))
            total = step_loss if total is None else total + step_loss
    total.name = "L"
    return total


def small_model(cell: str = "rnn", steps: int = 3, layers: int = 1, bidirectional: bool = False,
                input_size: int = 2, hidden_size: int = 3, classes: int = 2, batch_size: int = 1, seed: int = 0) -> SmallModel:
    """A seeded model over ``steps`` random inputs; built-in cells use nn.RNN/GRU/LSTM, others any registered cell."""
    manual_seed(seed)
    if cell in BUILT_IN_LAYERS:
        rnn = BUILT_IN_LAYERS[cell](input_size, hidden_size, num_layers=layers, bidirectional=bidirectional)
    else:
        stack = []
        for index in range(layers):
            width = input_size if index == 0 else hidden_size * (2 if bidirectional else 1)
            layer = nn.Recurrent(nn.make_cell(cell, width, hidden_size))
            stack.append(nn.Bidirectional(layer) if bidirectional else layer)
        rnn = nn.Stacked(stack)
    head = nn.Linear(hidden_size * (2 if bidirectional else 1), classes)
    x = randn(steps, batch_size, input_size, name="x")
    targets = np.random.default_rng(seed).integers(0, classes, (steps, batch_size))
    return SmallModel(rnn, head, x, targets)
