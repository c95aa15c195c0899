"""A recurrent language model: Embedding -> stacked recurrent layers of any registered cell -> Linear.

The model the ``tinygrad-seq train`` command and the main demo train:

    e⟨t⟩ = E[x⟨t⟩]                     Embedding(vocab_size, embed_dim)
    a⟨t⟩ = cell(e⟨t⟩, a⟨t−1⟩)           num_layers of Recurrent(cell), dropout between them
    ŷ⟨t⟩ = W_ya a⟨t⟩ + b_y             Linear(hidden_size, vocab_size): logits over the next token
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from .. import nn, settings
from ..callers import callers_level
from ..nn.ids import integer_array
from ..tensor import Tensor
from ..text.vocab import BOS_ID
from .config import TrainingError


class LanguageModel(nn.Module):
    """Next-token prediction over a vocabulary; ``config`` rebuilds the same architecture.

    Shapes: ids (T, B) ints -> logits (T, B, vocab_size); the state is one
    per layer, each with the cell's structure ((B, H), or (a, c) for LSTM).
    """

    def __init__(self, vocab_size: int, embed_dim: int = 32, cell: str = "lstm", hidden_size: int = 64,
                 num_layers: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        self.config = dict(vocab_size=vocab_size, embed_dim=embed_dim, cell=cell, hidden_size=hidden_size,
                           num_layers=num_layers, dropout=dropout)
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        layers = [nn.Recurrent(nn.make_cell(cell, embed_dim if i == 0 else hidden_size, hidden_size)) for i in range(num_layers)]
        self.rnn = nn.Stacked(layers, dropout=dropout, name="LanguageModel")  # its errors name the model the user called
        self.head = nn.Linear(hidden_size, vocab_size)
        # The text.Vocabulary it was trained with, when known (the Trainer's, load_model's): sampling and scoring
        # with another (one built again from other text: the same size, other ids) are refused. Not in the weights.
        self.vocabulary = None

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LanguageModel:
        """The model ``config`` describes (a checkpoint's); its cell must be registered, a user's cell by importing its module."""
        if config["cell"] not in settings.cell_registry:
            registered = ", ".join(sorted(settings.cell_registry))
            raise TrainingError(
                f"the model's cell {config['cell']!r} is not registered here (registered: {registered}); "
                "import the module that registers it first, as at train time (tinygrad-seq: --import MODULE_OR_FILE.py)"
            )
        return cls(**config)

    def forward(self, ids: Any, state: list[Any] | None = None, lengths: Any = None) -> tuple[Tensor, list[Any]]:
        """Logits (T, B, V) for every position, and the final state of each layer."""
        ids = integer_array(ids, "LanguageModel", "ids (token indices)")
        if ids.ndim != 2:
            hint = ": one sequence is ids[:, None], shape (T, 1)" if ids.ndim == 1 else ""
            raise ValueError(f"LanguageModel: ids must be (time, batch) token ids, time-major; got shape {ids.shape}{hint}")
        if isinstance(ids, np.ndarray) and min(ids.shape) > 1 and (ids[:, 0] == BOS_ID).all() and not (ids[0] == BOS_ID).all():
            warnings.warn(f"LanguageModel: ids {ids.shape} look batch-major: every row starts with <bos>, not every column, "
                          "so each row is a sequence; the model reads (time, batch), each column a sequence. Pass ids.T "
                          "(text.pad_batch gives them time-major)", UserWarning, stacklevel=callers_level())
        outputs, state = self.rnn(self.embedding(ids), state, lengths)
        return self.head(outputs), state

    def step(self, tokens: Any, state: list[Any] | None = None) -> tuple[Tensor, list[Any]]:
        """One step for sampling: token ids (B,) -> logits (B, V) and the new state."""
        tokens = integer_array(tokens, "LanguageModel.step", "tokens")
        if tokens.ndim != 1:
            hint = ": one sequence's token is [token]" if tokens.ndim == 0 else ""
            raise ValueError(f"LanguageModel.step: tokens must be (batch,) ids, one per sequence; got shape {tokens.shape}{hint}")
        logits, state = self.forward(tokens[None, :], state)
        return logits[0], state
