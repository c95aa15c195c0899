"""Batches for sequence models: padded batches with lengths, and streams for truncated BPTT."""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from ..checks import check_counts, is_int
from ..nn.ids import IGNORE_INDEX
from .vocab import PAD_ID

IGNORE = IGNORE_INDEX  # the earlier name of the target id cross_entropy skips, kept for code that uses it


def check_sequences(sequences: Sequence[Sequence[int]], op: str) -> None:
    """Raise naming ``op`` unless ``sequences`` is a list of id sequences, each of two ids at least (a token and the
    one that follows it), as ``vocab.encode(line, bos=True, eos=True)`` gives them: checked at the call, not when
    the batch that holds a bad one comes."""
    encoded = "vocab.encode(line, bos=True, eos=True) gives <bos> ... <eos>"
    if isinstance(sequences, str) or not hasattr(sequences, "__len__"):
        raise TypeError(f"{op}: takes a list of id sequences, one per line ({encoded}); got {type(sequences).__name__}")
    for i, ids in enumerate(sequences):
        if isinstance(ids, str) or not hasattr(ids, "__len__"):
            raise TypeError(f"{op}: sequence {i} is a {type(ids).__name__}, not a sequence of ids; encode each line first "
                            f"({encoded})")
        if len(ids) < 2:
            raise ValueError(f"{op}: sequence {i} has {len(ids)} id(s); each needs at least two, a token and the one that "
                             f"follows it ({encoded})")


def stream_ids(ids: Sequence[int], op: str) -> np.ndarray:
    """One long text's ids as a 1-D int64 array, or an error naming ``op`` (text not encoded, ids of several texts)."""
    if isinstance(ids, str):
        raise TypeError(f"{op}: takes the text's token ids, vocab.encode(text); got the text itself")
    array = np.asarray(ids)
    if array.ndim != 1 or (array.size and array.dtype.kind not in "iu"):
        raise ValueError(f"{op}: takes one text's token ids, a 1-D sequence of ints (vocab.encode(text)); got shape "
                         f"{array.shape}, dtype {array.dtype}")
    return array.astype(np.int64, copy=False)


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int = PAD_ID) -> tuple[np.ndarray, np.ndarray]:
    """Time-major ids (T, B) padded with ``pad_id``, and the B lengths."""
    if not sequences or any(len(s) == 0 for s in sequences):
        raise ValueError("pad_batch: needs at least one sequence, and no empty ones")
    lengths = np.array([len(s) for s in sequences])
    ids = np.full((lengths.max(), len(sequences)), pad_id, dtype=np.int64)
    for b, sequence in enumerate(sequences):
        ids[: len(sequence), b] = sequence
    return ids, lengths


def language_model_batches(
    sequences: Sequence[Sequence[int]], batch_size: int, rng: np.random.Generator | np.random.RandomState | int | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(inputs (T, B), targets (T, B), lengths) for next-token prediction on whole sequences.

    Each sequence is [<bos>, tokens..., <eos>]: the inputs are all but its last
    id, the targets all but its first; padded targets are IGNORE_INDEX. Shuffled by
    ``rng`` when given (a Generator or a RandomState, or a seed for a Generator).
    """
    check_counts("language_model_batches", batch_size=batch_size)
    check_sequences(sequences, "language_model_batches")
    if rng is not None and not hasattr(rng, "permutation"):  # a Generator, or NumPy's legacy RandomState
        if not is_int(rng):
            raise TypeError(f"language_model_batches: rng must be a np.random.Generator, a seed (an int >= 0) or None "
                            f"for no shuffling; got {type(rng).__name__}")
        check_counts("language_model_batches", minimum=0, rng=rng)
        rng = np.random.default_rng(rng)
    order = rng.permutation(len(sequences)) if rng is not None else np.arange(len(sequences))
    return _padded_batches(sequences, order, batch_size)


def _padded_batches(sequences: Sequence[Sequence[int]], order: np.ndarray,
                    batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    for start in range(0, len(order), batch_size):
        chosen = [sequences[i] for i in order[start : start + batch_size]]
        inputs, lengths = pad_batch([s[:-1] for s in chosen])
        targets, _ = pad_batch([s[1:] for s in chosen], pad_id=IGNORE_INDEX)
        yield inputs, targets, lengths


def stream_chunks(ids: Sequence[int], batch_size: int, seq_len: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """A long text as B parallel streams, cut into chunks of T steps for truncated BPTT.

    The ids are split into B equal streams side by side (column b continues
    where it left off in the next chunk), so the state a model reaches at the
    end of one chunk is the right start for the next: carry it over,
    detached. Returns [(inputs (T, B), targets (T, B)), ...], targets shifted by one.
    """
    check_counts("stream_chunks", batch_size=batch_size, seq_len=seq_len)
    ids = stream_ids(ids, "stream_chunks")
    per_stream = (len(ids) - 1) // batch_size
    if per_stream < 1:
        raise ValueError(f"stream_chunks: {len(ids)} tokens are too few for {batch_size} streams; "
                         f"they need batch_size + 1 = {batch_size + 1} at least (one per stream, and one more to predict)")
    inputs = ids[: per_stream * batch_size].reshape(batch_size, per_stream).T
    targets = ids[1 : per_stream * batch_size + 1].reshape(batch_size, per_stream).T
    return [(inputs[s : s + seq_len], targets[s : s + seq_len]) for s in range(0, per_stream, seq_len)]
