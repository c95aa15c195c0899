"""Generating text from a language model, scoring a sentence, and measuring the model on held-out text."""
from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from ..nn import evaluating, functional as F
from .. import settings
from ..checks import check_counts, is_real
from ..progress import progress_bar
from .batching import IGNORE_INDEX, check_sequences, language_model_batches, stream_chunks, stream_ids
from .vocab import BOS_ID, EOS_ID, PAD_ID, UNK_ID, UnknownTokensWarning, Vocabulary


def sample(model: Any, vocab: Vocabulary, n: int = 1, max_len: int = 50, temperature: float = 1.0,
           top_k: int | None = None, prime: str = "", seed: int | None = None) -> list[str]:
    """Generate ``n`` texts, each from <bos> (the course's x⟨1⟩ = 0) or ``prime``, one token at a time.

    Each step's distribution is softmax(logits / temperature), restricted to the
    ``top_k`` likeliest tokens when given; the sampled token is fed back in.
    A text ends at <eos> or after ``max_len`` tokens. <unk>, <pad> and <bos>
    are never emitted (their probability is set to zero). ``seed`` makes the
    result reproducible (otherwise the generator ``ts.manual_seed`` seeds is used).
    Characters (or words) of ``prime`` the vocabulary does not know are read as
    <unk>, with an :class:`UnknownTokensWarning` that names them, and kept as
    they are in the texts returned. Each text starts with the prime as the
    vocabulary reads it, at either level: lower-cased with ``lower=True`` (as
    the model saw it), words re-joined as ``decode`` joins them.
    """
    rng = _checked_sampling("sample", model, vocab, n, max_len, temperature, top_k, prime, seed)
    return _sample_batch(model, vocab, n, max_len, temperature, top_k, prime, rng)


def sample_many(model: Any, vocab: Vocabulary, n: int, max_len: int = 50, temperature: float = 1.0,
                top_k: int | None = None, prime: str = "", seed: int | None = None, batch_size: int = 256,
                progress: bool = True) -> Iterator[str]:
    """:func:`sample`'s ``n`` texts, yielded ``batch_size`` at a time, so that memory stays that of one batch
    and the first texts come before the last are drawn; a progress bar counts them when there is more than
    one batch (``progress=False`` hides it). With the same ``seed``, the first ``batch_size`` texts are
    those ``sample`` gives. Stopping early (``break``, Ctrl-C) keeps every text yielded so far.

    >>> import tinygrad_seq as ts
    >>> from tinygrad_seq.models import LanguageModel
    >>> vocab = Vocabulary.from_text("abc")
    >>> model = LanguageModel(vocab_size=len(vocab), embed_dim=4, hidden_size=8, cell="gru")
    >>> texts = list(sample_many(model, vocab, n=5, max_len=3, seed=0, batch_size=2, progress=False))
    >>> len(texts), texts[:2] == sample(model, vocab, n=2, max_len=3, seed=0)
    (5, True)
    """
    check_counts("sample_many", batch_size=batch_size)
    # checked here, at the call, not at the first text
    rng = _checked_sampling("sample_many", model, vocab, n, max_len, temperature, top_k, prime, seed)
    draw = functools.partial(_sample_batch, model, vocab, max_len=max_len, temperature=temperature, top_k=top_k,
                             prime=prime, rng=rng, op="sample_many")  # draw(k): k texts
    return _batches(draw, n, batch_size, progress)


def _batches(draw: Callable[[int], list[str]], n: int, batch_size: int, progress: bool) -> Iterator[str]:
    with progress_bar(total=n, desc="sampling", unit="text", disable=not progress or n <= batch_size, leave=True) as bar:
        for first in range(0, n, batch_size):
            texts = draw(min(batch_size, n - first))
            bar.clear()  # off the terminal while the caller prints the texts, drawn again below them
            yield from texts
            bar.update(len(texts))  # the texts the caller has had


def _checked_sampling(op: str, model: Any, vocab: Vocabulary, n: int, max_len: int, temperature: float, top_k: int | None,
                      prime: str, seed: int | None) -> np.random.Generator:
    """The generator to draw with, once the arguments are checked (the prime's unknown tokens are warned about)."""
    if not isinstance(vocab, Vocabulary):
        swapped = " (the two swapped?)" if isinstance(model, Vocabulary) else ""
        raise TypeError(f"{op}: vocab must be a Vocabulary; got {type(vocab).__name__}{swapped}. Call {op}(model, vocab, ...)")
    _check_sampling(op, n, max_len, temperature, top_k, prime, seed)
    unknown = vocab.unknown(prime)
    if unknown.count:
        warnings.warn(f"prime: {unknown}", UnknownTokensWarning, stacklevel=3)
    _check_vocabulary(op, model, vocab)
    return np.random.default_rng(seed) if seed is not None else settings.host_rng


def _sample_batch(model: Any, vocab: Vocabulary, n: int, max_len: int, temperature: float, top_k: int | None,
                  prime: str, rng: np.random.Generator, op: str = "sample") -> list[str]:
    """``n`` texts drawn side by side, as one batch of the model, with ``rng``; errors name ``op``, the caller."""
    # Scores that overflow are found and named below (a ValueError), not warned about on the way
    with evaluating(model), np.errstate(over="ignore", invalid="ignore"):
        start = [BOS_ID] + vocab.encode(prime)
        tokens = np.tile(np.array(start), (n, 1)).T  # (len(start), n)
        logits, state = model(tokens)
        _check_vocabulary_size(op, logits.shape[-1], vocab)  # any other model, by what it predicts
        step_logits = logits[-1]
        generated: list[list[int]] = [[] for _ in range(n)]
        done = np.zeros(n, dtype=bool)
        for step in range(max_len):
            scores = step_logits.numpy().astype(np.float64)
            if not np.isfinite(scores).all():
                raise ValueError(f"{op}: the model's scores at step {step + 1} hold NaN or inf, so there is no distribution "
                                 "to draw from: its weights are not finite, or so large that the scores overflow, as after a "
                                 "training run that diverged. Check them (np.isfinite, np.abs(w).max()), or sample from a "
                                 "checkpoint saved before")
            scores[:, [UNK_ID, PAD_ID, BOS_ID]] = -np.inf  # never <unk>, <pad> or <bos>
            if top_k is not None and top_k < scores.shape[1]:
                kth = np.sort(scores, axis=1)[:, -top_k][:, None]
                scores[scores < kth] = -np.inf
            # The largest score subtracted before dividing: with a tiny temperature the others' (negative) / T overflows
            # to -inf, and exp gives 0 (dividing first gave inf - inf = NaN)
            with np.errstate(over="ignore"):
                probabilities = np.exp((scores - scores.max(axis=1, keepdims=True)) / temperature)
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
        # The prime as the vocabulary read it (lower-cased with lower=True, as the model saw it), its unknown tokens
        # included (the model read them as <unk>); words re-joined with the text, characters as they are
        read = vocab.tokenize(prime)
        return [vocab.join(read + [vocab.itos[i] for i in ids]) for ids in generated]


Factor = tuple[str, float]  # (token, P(token | the tokens before it)), or its log


def _conditional_log_probabilities(op: str, model: Any, vocab: Vocabulary, sentence: str, stacklevel: int) -> list[Factor]:
    """[(token, log P(y⟨t⟩ | <bos>, y⟨1⟩ … y⟨t−1⟩)) for t = 1 … T_y], the last token <eos>; warns about unknown tokens."""
    _check_vocabulary(op, model, vocab)  # before an id too large reaches the embedding
    unknown = vocab.unknown(sentence)
    if unknown.count:
        warnings.warn(f"sentence: {unknown}", UnknownTokensWarning, stacklevel=stacklevel + 1)  # + this function
    ids = vocab.encode(sentence, bos=True, eos=True)  # [<bos>, y⟨1⟩, …, y⟨T_y⟩ = <eos>]
    with evaluating(model):
        # Step t reads y⟨t−1⟩ (<bos> at t = 1, the course's x⟨1⟩ = 0) and its softmax ŷ⟨t⟩ is P(y⟨t⟩ | what came before):
        # exactly how the model is trained, one sentence as a batch of one.
        logits, _ = model(np.array(ids[:-1])[:, None])
        _check_vocabulary_size(op, logits.shape[-1], vocab)
        cross_entropies = F.cross_entropy(logits, np.array(ids[1:])[:, None], reduction="none")  # −log P(y⟨t⟩ | …), (T_y, 1)
    return [(vocab.itos[i], -float(ce)) for i, ce in zip(ids[1:], cross_entropies.numpy()[:, 0])]


def sentence_log_probability(model: Any, vocab: Vocabulary, sentence: str) -> tuple[float, list[Factor]]:
    """(log P(sentence), its terms [(token, log P(y⟨t⟩ | y⟨1⟩ … y⟨t−1⟩)), ...]): what ``sentence_probability`` exponentiates.

    log P stays finite where P underflows: a float64 P reaches 0.0 below about
    e^−745, some 150 words at a perplexity of 150. Compare or average sentences with this.
    """
    terms = _conditional_log_probabilities("sentence_log_probability", model, vocab, sentence, stacklevel=2)
    return math.fsum(log_p for _, log_p in terms), terms


def sentence_probability(model: Any, vocab: Vocabulary, sentence: str) -> tuple[float, list[Factor]]:
    """P(sentence) under a language model, and its factors, as the course writes it:

        P(y⟨1⟩, …, y⟨T_y⟩) = P(y⟨1⟩) P(y⟨2⟩ | y⟨1⟩) … P(y⟨T_y⟩ | y⟨1⟩, …, y⟨T_y−1⟩)

    The sentence is tokenised as ``vocab.encode`` does (characters or words, lower-cased
    if the vocabulary is) and ends with <eos>, whose probability is the last factor.
    The first token is conditioned on <bos>, which the model reads at step 1 as it
    did in training: P(y⟨1⟩) means P(y⟨1⟩ | <bos>). A token the vocabulary does not
    know is scored as <unk> (the model's probability of *some* rare token there):
    its factor reads "<unk>", and an :class:`UnknownTokensWarning` names the words.
    Runs without recording a graph, in eval mode (dropout off); the model's mode is restored.

    Returns (P, factors): ``factors`` is [(token, P(token | the tokens before it)), ...],
    T_y pairs, <eos> last; P is exp(Σ log factor), the same number as their product but
    computed from the logarithms. For long text P underflows to 0.0: use
    :func:`sentence_log_probability`, which returns log P and the log-factors.
    """
    terms = _conditional_log_probabilities("sentence_probability", model, vocab, sentence, stacklevel=2)
    return math.exp(math.fsum(log_p for _, log_p in terms)), [(token, math.exp(log_p)) for token, log_p in terms]


def _declared_vocabulary_size(model: Any) -> int | None:
    """The vocabulary size a LanguageModel says up front (another model says it by its logits)."""
    config = getattr(model, "config", None)
    return config.get("vocab_size") if isinstance(config, Mapping) else None


def _check_vocabulary(op: str, model: Any, vocab: Vocabulary) -> None:
    """Raise naming ``op`` unless ``vocab`` fits ``model``: its size, and its ids where the model knows the vocabulary
    it was trained with (``model.vocabulary``: a LanguageModel from the Trainer or load_model)."""
    _check_vocabulary_size(op, _declared_vocabulary_size(model), vocab)
    trained = getattr(model, "vocabulary", None)
    if not isinstance(trained, Vocabulary) or trained is vocab or trained == vocab:
        return
    moved = next((i for i, (mine, theirs) in enumerate(zip(vocab.itos, trained.itos)) if mine != theirs), None)
    if moved is not None:
        token = vocab.itos[moved]
        there = f"id {trained.stoi[token]} in the model's" if token in trained.stoi else "not in the model's"
        differs = (f"{token!r} is id {moved} here, {there} (a vocabulary built again from other text orders its ids "
                   "otherwise), so its ids would be read as other tokens")
    elif len(vocab) != len(trained):
        differs = f"it has {len(vocab)} tokens, the model's {len(trained)}, the first {min(len(vocab), len(trained))} alike"
    else:
        options = ("level", "lower", "normalize")  # how text is read into tokens
        differs = (f"it has {', '.join(f'{k}={getattr(vocab, k)!r}' for k in options)}, the model's "
                   f"{', '.join(f'{k}={getattr(trained, k)!r}' for k in options)}, so text would be read otherwise")
    raise ValueError(f"{op}: this vocabulary is not the one the model was trained with: {differs}; use the model's own "
                     "(models.load_model returns both, and model.vocabulary holds it)")


def _check_vocabulary_size(op: str, predicted: int | None, vocab: Vocabulary) -> None:
    if predicted is not None and predicted != len(vocab):
        raise ValueError(f"{op}: the model predicts {predicted} tokens but the vocabulary has {len(vocab)}; "
                         "use the vocabulary the model was trained with (models.load_model returns both)")


def _check_sampling(op: str, n: Any, max_len: Any, temperature: Any, top_k: Any, prime: Any, seed: Any) -> None:
    """Raise naming ``op``, the argument, its value and the fix unless each is one sampling can use."""
    check_counts(op, n=n, max_len=max_len)
    if top_k is not None:
        check_counts(op, top_k=top_k)
    if seed is not None:
        check_counts(op, minimum=0, seed=seed)
    if not is_real(temperature) or not math.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"{op}: temperature must be a finite number > 0; got {temperature!r} (for the likeliest token "
                         "at every step, greedy decoding, use top_k=1)")
    if not isinstance(prime, str):
        raise TypeError(f"{op}: prime must be the text to start from, a str ('' for none); got {type(prime).__name__}")


def perplexity(model: Any, sequences: Sequence[Sequence[int]], batch_size: int = 64) -> tuple[float, float]:
    """(mean cross-entropy per predicted token, its exponential, the perplexity) on ``sequences`` ([<bos>, ..., <eos>] ids)."""
    check_sequences(sequences, "perplexity")
    if len(sequences) == 0:
        raise ValueError("perplexity: no sequences to measure; pass held-out lines encoded as "
                         "vocab.encode(line, bos=True, eos=True)")
    with evaluating(model):
        total, count = 0.0, 0
        for inputs, targets, lengths in language_model_batches(sequences, batch_size):
            logits, _ = model(inputs, lengths=lengths)
            total += F.cross_entropy(logits, targets, reduction="sum").item()
            count += int((targets != IGNORE_INDEX).sum())
        loss = total / count  # every sequence has a target (check_sequences)
        return loss, math.exp(min(loss, 700))


def stream_perplexity(model: Any, ids: Sequence[int], seq_len: int, batch_size: int = 32) -> tuple[float, float]:
    """(loss per token, perplexity) on one long text, read as parallel streams with the state carried between chunks."""
    check_counts("stream_perplexity", seq_len=seq_len, batch_size=batch_size)
    ids = stream_ids(ids, "stream_perplexity")
    if len(ids) < 2:
        raise ValueError(f"stream_perplexity: the text has {len(ids)} token(s); it needs at least two, a token and the "
                         "one that follows it")
    with evaluating(model):
        # As many parallel streams as the text fills with whole chunks (one at least).
        streams = max(1, min(batch_size, (len(ids) - 1) // seq_len))
        total, count, state = 0.0, 0, None
        for inputs, targets in stream_chunks(ids, streams, seq_len):
            logits, state = model(inputs, state)
            total += F.cross_entropy(logits, targets, reduction="sum").item()
            count += targets.size
        loss = total / count
        return loss, math.exp(min(loss, 700))
