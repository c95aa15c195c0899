"""Character- or word-level language model on the same text: vocabulary, <unk>, sequence length, cost per step, loss per word.

    python bench/char_vs_word.py [--steps 20] [--epochs 0]

Both read the lines of demos/data/tinyshakespeare.txt with demos/word_lm.py's
settings (the same lines, held-out split and order; Embedding(V, 64) -> LSTM(128)
-> Linear(-> V), batches of 64 lines, Adam at 3e-3, clipping at 5, float32): the
word model keeps the 2,000 most frequent words of its training lines (the rest
become <unk>), the character model every character. For each level it prints
the vocabulary size, the share of <unk> tokens, tokens per line, and the median
time of one training step (forward, cross-entropy, backward, clipping, Adam) on
the same first --steps batches of lines. With --epochs N it then trains both
for N epochs and compares them on the held-out lines per WORD: the character
model's summed loss divided by the number of word tokens (<eos> counted once
per line in both), which is what its loss per character would be if it
predicted word by word.
"""
from __future__ import annotations

import common

import argparse
import math
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

import tinygrad_seq as ts
from tinygrad_seq import optim
from tinygrad_seq.models import LanguageModel, TrainConfig, Trainer
from tinygrad_seq.models.trainer import load_corpus
from tinygrad_seq.nn import functional as F
from tinygrad_seq.text import UNK_ID, language_model_batches, perplexity

DATA = Path(__file__).resolve().parent.parent / "demos" / "data" / "tinyshakespeare.txt"
SENTENCE = "Cats average 15 hours of sleep a day."


def config(level: str, epochs: int = 1) -> TrainConfig:
    """demos/word_lm.py's configuration, at ``level``."""
    return TrainConfig(data=str(DATA), level=level, layout="lines", cell="lstm", embed_dim=64, hidden=128,
                       max_vocab=2000 if level == "word" else None, epochs=epochs, batch_size=64, lr=3e-3)


def training_steps(corpus, steps: int) -> list:
    """A function per batch: one training step on each of the first ``steps`` + 2 batches of training lines."""
    cfg = config(corpus.vocab.level)
    ts.manual_seed(0)
    model = LanguageModel(len(corpus.vocab), cfg.embed_dim, cfg.cell, cfg.hidden)
    opt = optim.Adam(model.parameters(), lr=cfg.lr)

    def step(inputs, targets, lengths):
        logits, _ = model(inputs, lengths=lengths)
        loss = F.cross_entropy(logits, targets)
        opt.zero_grad()
        loss.backward()
        optim.clip_grad_norm_(model.parameters(), cfg.clip)
        opt.step()

    batches = list(language_model_batches(corpus.train, cfg.batch_size))[: steps + 2]
    return [(lambda batch=batch: step(*batch), batch[0].shape[0]) for batch in batches]


def step_times_ms(corpora, steps: int) -> dict[str, tuple[float, float]]:
    """{level: (median ms of one training step, mean padded length T)}, the levels' steps alternating (so load hits both alike)."""
    runs = {level: training_steps(corpus, steps) for level, corpus in corpora.items()}
    times: dict[str, list[float]] = {level: [] for level in runs}
    for i in range(steps + 2):
        for level, run in runs.items():
            start = time.perf_counter()
            run[i][0]()
            if i >= 2:  # two warm-up steps
                times[level].append(time.perf_counter() - start)
    return {level: (statistics.median(times[level]) * 1e3, float(np.mean([t for _, t in runs[level][2:]]))) for level in runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per level (median)")
    parser.add_argument("--epochs", type=int, default=0, help="then train both this many epochs and compare held-out loss per word")
    args = parser.parse_args()
    print(common.describe_machine())
    print()
    corpora = {level: load_corpus(config(level)) for level in ("char", "word")}
    timings = step_times_ms(corpora, args.steps)
    print("| level | vocabulary | <unk> tokens | tokens per line (mean, max) | the course's sentence | ms per step | mean T of a batch |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for level, corpus in corpora.items():
        tokens = [len(ids) - 2 for ids in corpus.train]  # without <bos> and <eos>
        unknown = sum(ids.count(UNK_ID) for ids in corpus.train) / sum(tokens)
        ms, steps = timings[level]
        print(f"| {level} | {len(corpus.vocab):,} | {unknown:.1%} | {np.mean(tokens):.1f}, {max(tokens)} | "
              f"{len(corpus.vocab.encode(SENTENCE))} | {ms:.1f} | {steps:.1f} |", flush=True)
    if not args.epochs:
        return
    print()
    print("| level | train s per epoch | held-out loss per token | per word | perplexity per word |")
    print("|---|---:|---:|---:|---:|")
    words = sum(len(ids) - 1 for ids in corpora["word"].valid)  # the word tokens and <eos> of the held-out lines
    for level, corpus in corpora.items():
        trainer = Trainer(config(level, args.epochs), corpus)
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as out:
            trainer.run(Path(out) / "checkpoint", progress=False)
        seconds = (time.perf_counter() - start) / args.epochs
        loss, _ = perplexity(trainer.model, corpus.valid)
        per_word = loss * sum(len(ids) - 1 for ids in corpus.valid) / words
        print(f"| {level} | {seconds:.0f} | {loss:.3f} | {per_word:.3f} | {math.exp(per_word):.1f} |", flush=True)


if __name__ == "__main__":
    main()
