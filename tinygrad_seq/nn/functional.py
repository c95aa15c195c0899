"""Functions without parameters, as ``torch.nn.functional``: losses, dropout, one_hot.

Classes are on the LAST axis in the losses (see :mod:`tinygrad_seq.nn.losses`).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..tensor import as_tensor, Tensor
from .dropout import dropout
from .embedding import check_ids
from .ids import IGNORE_INDEX
from .losses import binary_cross_entropy_with_logits, cross_entropy, mse_loss, nll_loss


def one_hot(ids: Any, num_classes: int, dtype: Any = np.int64) -> Tensor:
    """(..., num_classes) with a 1 at each id (int64 as PyTorch; pass dtype="float32" for model inputs)."""
    ids = as_tensor(ids)
    data = check_ids(ids, num_classes, f"one_hot(num_classes={num_classes})")
    return Tensor.wrap((data[..., None] == ids.backend.xp.arange(num_classes)).astype(dtype))


__all__ = ["IGNORE_INDEX", "binary_cross_entropy_with_logits", "cross_entropy", "dropout", "mse_loss", "nll_loss", "one_hot"]
