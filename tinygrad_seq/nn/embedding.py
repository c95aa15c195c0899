"""nn.Embedding: a lookup table of vectors, one row per token id."""
from __future__ import annotations

from typing import Any

from ..checks import check_counts, is_int
from ..creation import zeros
from ..ops.embedding import EmbeddingLookup
from ..tensor import Tensor
from . import init
from .ids import integer_array, out_of_range
from .module import Module, Parameter


def check_ids(ids: Any, vocabulary_size: int, op: str) -> Any:
    """The array of integer ``ids``, each checked to lie in 0..vocabulary_size-1."""
    data = integer_array(ids, op, "ids (token indices)")
    bad = out_of_range(data, vocabulary_size)
    if bad is not None:
        raise IndexError(
            f"{op}: id {bad} is out of range for a vocabulary of size {vocabulary_size} (valid ids: 0..{vocabulary_size - 1}). "
            "Map unknown tokens to <unk> or build the layer with a larger num_embeddings"
        )
    return data


class Embedding(Module):
    """Maps token ids to vectors: ``Embedding(V, D)(ids)`` has shape ``ids.shape + (D,)``.

    Shapes:
        weight (num_embeddings, embedding_dim), N(0, 1) as PyTorch; the row
        ``padding_idx`` (if given) starts at zero and never receives gradient.
        ids: int array or int Tensor of any shape -> (*ids.shape, embedding_dim).
    """

    _parent_init = "super().__init__(num_embeddings, embedding_dim)"

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None) -> None:
        super().__init__()
        check_counts("Embedding", num_embeddings=num_embeddings)
        check_counts("Embedding", minimum=0, embedding_dim=embedding_dim)
        if padding_idx is not None:
            if not is_int(padding_idx):
                raise ValueError(f"Embedding: padding_idx must be an int or None; got {padding_idx!r}")
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"Embedding: padding_idx {padding_idx} is outside the vocabulary of size {num_embeddings}")
            padding_idx %= num_embeddings
        self.num_embeddings, self.embedding_dim, self.padding_idx = num_embeddings, embedding_dim, padding_idx
        self.weight = init.normal_(Parameter(zeros(num_embeddings, embedding_dim)))
        if padding_idx is not None:
            self.weight._write(padding_idx, 0)

    def forward(self, ids: Any) -> Tensor:
        data = check_ids(ids, self.num_embeddings, f"Embedding({self.num_embeddings}, {self.embedding_dim})")
        return EmbeddingLookup.apply(self.weight, ids=self.weight.backend.asarray(data), padding_idx=self.padding_idx)

    def extra_repr(self) -> str:
        padding = f", padding_idx={self.padding_idx}" if self.padding_idx is not None else ""
        return f"{self.num_embeddings}, {self.embedding_dim}{padding}"
