"""A word-level language model: a capped vocabulary, sentences ending in <eos>, sentence probabilities.

Run:  python demos/word_lm.py    (about a minute)

Each line of Shakespeare's plays is a sentence [<bos>, words..., <eos>]. The
vocabulary keeps the 2,000 most frequent words; the rest become <unk>. After
training, the model scores a few real lines against the same words shuffled
(log-probability per word: a language model should prefer word order it has
seen), prints the probability of the course's sentence "Cats average 15 hours
of sleep a day." factor by factor, P(y⟨1⟩) P(y⟨2⟩|y⟨1⟩) … P(<eos>|…), with the
words Shakespeare never used scored as <unk>, and samples new lines, which
never contain <unk>.
"""
from __future__ import annotations

import warnings

import common
import numpy as np

from tinygrad_seq.models import TrainConfig, Trainer
from tinygrad_seq.text import UNK, UNK_ID, UnknownTokensWarning, sample, sentence_log_probability, sentence_probability

COURSE_SENTENCE = "Cats average 15 hours of sleep a day."
SENTENCES = ["I will not be a slave to thee .", "What is the matter , my lord ?", "Good night , sweet prince .",
             "The king is dead .", "I pray you , sir , be patient ."]


def log_probability(model, vocab, sentence: str) -> float:
    """log P(sentence) per word under the model, <eos> included."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnknownTokensWarning)  # rare words are <unk>, as in training
        log_p, terms = sentence_log_probability(model, vocab, sentence)
    return log_p / len(terms)


def factor_table(model, vocab, sentence: str) -> list[str]:
    """The lines showing P(sentence) as the course's product of conditional probabilities, <unk> factors named."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnknownTokensWarning)  # the table names the unknown words itself
        p, factors = sentence_probability(model, vocab, sentence)
        log_p, _ = sentence_log_probability(model, vocab, sentence)
    words = vocab.tokenize(sentence) + [None]  # the factors follow the tokens, then <eos>
    lines = [f"P({sentence!r}) = P(y⟨1⟩) P(y⟨2⟩|y⟨1⟩) … P(<eos>|y⟨1⟩…y⟨{len(factors) - 1}⟩), y⟨1⟩ read after <bos>:",
             "   t  y⟨t⟩      P(y⟨t⟩ | y⟨1⟩ … y⟨t−1⟩)"]
    for t, ((token, q), word) in enumerate(zip(factors, words), 1):
        note = f"   ({word!r} is not in the vocabulary)" if token == UNK else ""
        lines.append(f"  {t:2d}  {token:8s}  {q:<9.4g}{note}".rstrip())
    lines.append(f"P(sentence) = {p:.3g} (log P = {log_p:.2f}; {np.exp(log_p / len(factors)):.4f} per token, geometric mean)")
    return lines


def main(argv: list[str] | None = None) -> Trainer:
    parser = common.arguments(__doc__.splitlines()[0], out="word_lm_out")
    args = parser.parse_args(argv)
    out = common.start(args)
    config = TrainConfig(data=str(common.DATA / "tinyshakespeare.txt"), level="word", layout="lines", cell="lstm",
                         embed_dim=16 if args.smoke else 64, hidden=16 if args.smoke else 128, max_vocab=300 if args.smoke else 2000,
                         epochs=1 if args.smoke else 3, batch_size=64, lr=3e-3, max_chars=20_000 if args.smoke else None)
    trainer = Trainer(config)
    vocab = trainer.corpus.vocab
    # each line's ids are [<bos>, words..., <eos>]: its words are len(ids) - 2
    unknown = sum(ids.count(UNK_ID) for ids in trainer.corpus.train) / sum(len(ids) - 2 for ids in trainer.corpus.train)
    print(f"{len(trainer.corpus.train):,} lines; {vocab} ({unknown:.1%} of the words become {UNK})")
    trainer.run(out / "checkpoint", progress=not args.smoke, overwrite=True)  # a rerun replaces its own checkpoint
    final = trainer.history[-1]
    print(f"\nvalidation loss per word: {final['valid_loss']:.3f} (perplexity {final['valid_perplexity']:.1f})\n")

    rng = np.random.default_rng(0)
    report = ["log-probability per word: real line vs the same words shuffled"]
    wins = 0
    for sentence in SENTENCES:
        words = sentence.split()
        shuffled = " ".join(rng.permutation(words[:-1]).tolist() + words[-1:])
        real, mixed = log_probability(trainer.model, vocab, sentence), log_probability(trainer.model, vocab, shuffled)
        wins += real > mixed
        report.append(f"  {real:7.3f}  {sentence}\n  {mixed:7.3f}  {shuffled}")
    report.append(f"the real order is likelier in {wins} of {len(SENTENCES)}\n")
    report += factor_table(trainer.model, vocab, COURSE_SENTENCE)
    report.append("\nsampled lines (never <unk>):")
    report += [f"  {line}" for line in sample(trainer.model, vocab, n=5, max_len=20, temperature=0.8, seed=3)]
    print("\n".join(report))
    (out / "report.txt").write_text("\n".join(report), encoding="utf-8")
    common.plot_curves({"train": [h["train_loss"] for h in trainer.history], "validation": [h["valid_loss"] for h in trainer.history]},
                       out / "loss.png", "loss per word", "Word-level language model")
    print(f"\nthe checkpoint, this report and the loss curves: {out}/ (checkpoint, report.txt, loss.png)")
    return trainer


if __name__ == "__main__":
    common.run(main)
