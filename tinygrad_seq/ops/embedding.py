"""Looking up rows of an embedding table by token id: the op behind nn.Embedding (which checks the ids)."""
from __future__ import annotations

from ..backend import backend_of
from ..function import Function


class EmbeddingLookup(Function):
    """weight[ids]; backward adds each output gradient to its id's row (repeats sum), none to padding_idx.

    weight (V, D) positional; keywords: ids, an int array of any shape on the
    weight's backend, each in 0..V-1, and padding_idx (int or None). Result
    (*ids.shape, D).
    """

    __slots__ = ("ids", "weight_shape", "padding_idx")

    def forward(self, weight, *, ids, padding_idx=None):
        self.ids, self.weight_shape, self.padding_idx = ids, weight.shape, padding_idx
        return weight[ids]

    def backward(self, grad):
        backend = backend_of(grad)
        grad_weight = backend.xp.zeros(self.weight_shape, dtype=grad.dtype)
        backend.scatter_add(grad_weight, self.ids.ravel(), grad.reshape(-1, self.weight_shape[1]))
        if self.padding_idx is not None:
            grad_weight[self.padding_idx] = 0
        return (grad_weight,)
