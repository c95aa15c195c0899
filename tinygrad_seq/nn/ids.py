"""Integer ids: the target id the losses skip, and checking ids (token ids, class targets) before they index anything."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import backend_of
from ..tensor import Tensor, int_conversion

# The target id cross_entropy and nll_loss skip by default (PyTorch's ignore_index), and the one
# text.language_model_batches pads targets with: defined once, here, below both.
IGNORE_INDEX = -100


PAD_INPUTS = "ids, lengths = text.pad_batch(sequences) (time-major, padded with PAD_ID)"
PAD_TARGETS = "targets, _ = text.pad_batch(sequences, pad_id=IGNORE_INDEX) (time-major; the losses skip IGNORE_INDEX)"


def integer_array(value: Any, op: str, what: str, padded: str = PAD_INPUTS) -> Any:
    """The array of an int Tensor, array or list; a TypeError naming ``op`` for anything else. Lists of different
    lengths are a ValueError that says how to pad them: ``padded`` (targets pad with IGNORE_INDEX, not PAD_ID)."""
    data = value.data if isinstance(value, Tensor) else value
    if not isinstance(getattr(data, "dtype", None), np.dtype):  # a list, or another library's tensor (PyTorch's)
        try:
            data = np.asarray(data)
        except ValueError:  # NumPy's "inhomogeneous shape": lists of different lengths
            raise ValueError(f"{op}: {what} must be rectangular; got lists of different lengths. Pad the sequences to one "
                             f"length first: {padded}") from None
        except (TypeError, RuntimeError) as error:  # a GPU tensor of PyTorch's, one that requires grad
            raise TypeError(f"{op}: {what} is a {type(value).__module__.split('.')[0]}.{type(value).__name__}, which NumPy "
                            f"cannot read ({str(error).splitlines()[0]}); pass a NumPy array, e.g. t.cpu().numpy()") from None
    if data.dtype.kind in "US":  # text where ids go
        raise TypeError(f"{op}: {what} must be integers; got text ({np.asarray(data).ravel()[:3].tolist()} ...). Turn "
                        "text into ids with a vocabulary first: vocab.encode(text)")
    if data.dtype.kind not in "iu":
        raise TypeError(f"{op}: {what} must be integers; got {data.dtype}. Convert them with {int_conversion(value)}")
    return data


def out_of_range(data: Any, size: int, ignore: int | None = None) -> int | None:
    """The first value found outside 0..size-1 (the smallest if negative, else the largest), or None.

    Values equal to ``ignore`` are skipped. Checked where ``data`` lives: on
    the host for the host arrays the library uploads after checking (no
    device read), with one read of two numbers for a device array.
    """
    if not data.size:
        return None
    backend = backend_of(data)
    if ignore is not None:
        data = backend.xp.where(data == ignore, 0, data)  # 0 is in range; no boolean-mask index (a device read)
    low, high = (int(v) for v in backend.to_host(backend.xp.stack([data.min(), data.max()])))
    return low if low < 0 else high if high >= size else None
