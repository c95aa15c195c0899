"""Generating text from a language model, and measuring it on held-out text."""
from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..nn import functional as F
from ..tensor import no_grad
from .. import settings
from .batching import language_model_batches, stream_chunks
from .vocab import BOS_ID, EOS_ID, UNK_ID, UnknownTokensWarning, Vocabulary


@no_grad()
def sample(model: Any, vocab: Vocabulary, n: int = 1, max_len: int = 50, temperature: float = 1.0,
           top_k: int | None = None, prime: str = "", seed: int | None = None) -> list[str]:
    """Generate ``n`` texts, each from <bos> (the course's x⟨1⟩ = 0) or ``prime``, one token at a time.

    Each step's distribution is softmax(logits / temperature), restricted to the
    ``top_k`` likeliest tokens when given; the sampled token is fed back in.
    A text ends at <eos> or after ``max_len`` tokens. <unk>, <pad> and <bos>
    are never emitted (their probability is set to zero). ``seed`` makes the
    result reproducible (otherwise the generator ``ts.manual_seed`` seeds is used).
    Characters (or words) of ``prime`` the vocabulary does not know are read as
    <unk>, with an :class:`UnknownTokensWarning` that names them.
    """
    if temperature <= 0:
        raise ValueError(f"sample: temperature must be positive; got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"sample: top_k must be at least 1; got {top_k}")
    unknown = vocab.unknown(prime)
    if unknown.count:
        warnings.warn(f"prime: {unknown}", UnknownTokensWarning, stacklevel=3)
    rng = np.random.default_rng(seed) if seed is not None else settings.host_rng
    was_training = model.training
    model.eval()
    try:
        start = [BOS_ID] + vocab.encode(prime)
        tokens = np.tile(np.array(start), (n, 1)).T  # (len(start), n)
        logits, state = model(tokens)
        step_logits = logits[-1]
        generated: list[list[int]] = [[] for _ in range(n)]
        done = np.zeros(n, dtype=bool)
        for _ in range(max_len):
            scores = step_logits.numpy().astype(np.float64) / temperature
            scores[:, [UNK_ID, 0, BOS_ID]] = -np.inf  # never <unk>, <pad> or <bos>
            if top_k is not None and top_k < scores.shape[1]:
                kth = np.sort(scores, axis=1)[:, -top_k][:, None]
                scores[scores < kth] = -np.inf
            probabilities = np.exp(scores - scores.max(axis=1, keepdims=True))
            probabilities /= probabilities.sum(axis=1, keepdims=True)
            choice = np.array([rng.choice(len(p), p=p) for p in probabilities])
            for i, token in enumerate(choice):
                if not done[i]:
                    if token == EOS_ID:
                        done[i] = True
                    else:
                        generated[i].append(int(token))
            if done.all():
                break
            step_logits, state = model.step(choice, state)
        return [prime + vocab.decode(ids) if vocab.level == "char" else vocab.decode(vocab.encode(prime) + ids) for ids in generated]
    finally:
        model.train(was_training)


@no_grad()
def perplexity(model: Any, sequences: Sequence[Sequence[int]], batch_size: int = 64) -> tuple[float, float]:
    """(mean cross-entropy per predicted token, its exponential, the perplexity) on ``sequences`` ([<bos>, ..., <eos>] ids)."""
    was_training = model.training
    model.eval()
    try:
        total, count = 0.0, 0
        for inputs, targets, lengths in language_model_batches(sequences, batch_size):
            logits, _ = model(inputs, lengths=lengths)
            total += F.cross_entropy(logits, targets, reduction="sum").item()
            count += int((targets != -100).sum())
        loss = total / max(count, 1)
        return loss, math.exp(min(loss, 700))
    finally:
        model.train(was_training)


@no_grad()
def stream_perplexity(model: Any, ids: Sequence[int], seq_len: int, batch_size: int = 32) -> tuple[float, float]:
    """(loss per token, perplexity) on one long text, read as parallel streams with the state carried between chunks."""
    if len(ids) < 2:
        return math.nan, math.nan
    was_training = model.training
    model.eval()
    try:
        # As many parallel streams as the text fills with whole chunks (one at least).
        streams = max(1, min(batch_size, (len(ids) - 1) // seq_len))
        total, count, state = 0.0, 0, None
        for inputs, targets in stream_chunks(ids, streams, seq_len):
            logits, state = model(inputs, state)
            total += F.cross_entropy(logits, targets, reduction="sum").item()
            count += targets.size
        loss = total / count
        return loss, math.exp(min(loss, 700))
    finally:
        model.train(was_training)
