"""Many-to-one: is a sentence positive or negative? Read by a GRU, ŷ = σ(W_ya a⟨T_x⟩ + b_y) from its last hidden state.

Run:  python demos/sentiment.py    (a few seconds)

Sentences are generated with negation and contrast: "the movie was not good"
is negative, "i did not hate it" positive, "it looked bad but it was great"
positive (the last clause decides). Batches are padded, and `lengths` makes
the GRU stop at each sentence's last word, so the state the classifier reads
is never the state after padding. As the course writes it, the output is one
number per sentence, ŷ = σ(W_ya a⟨T_x⟩ + b_y), the probability that it is
positive: the model computes the logit W_ya a⟨T_x⟩ + b_y, trained with
binary_cross_entropy_with_logits (σ and the loss fused, stable for confident
outputs), and a sentence is called positive when ŷ > 0.5. Prints accuracy on
held-out sentences and examples the model gets wrong; writes the loss curve.
"""
from __future__ import annotations

import common
import numpy as np

import tinygrad_seq as ts
from tinygrad_seq import nn
from tinygrad_seq.nn import functional as F
from tinygrad_seq.text import Vocabulary, pad_batch

SUBJECTS = ["the movie", "this film", "the food", "the service", "the book", "my day", "the hotel", "the show"]
POSITIVE = ["good", "great", "wonderful", "excellent", "fun", "lovely"]
NEGATIVE = ["bad", "terrible", "awful", "boring", "poor", "dull"]
VERBS = {"liked": 1, "loved": 1, "enjoyed": 1, "hated": 0, "disliked": 0}
INTENSIFIERS = ["", "really", "very", "quite"]


def clause(rng: np.random.Generator) -> tuple[list[str], int]:
    """A simple clause and its sentiment (1 positive), negated half the time."""
    negated = rng.random() < 0.5
    if rng.random() < 0.6:
        positive = rng.random() < 0.5
        adjective = (POSITIVE if positive else NEGATIVE)[rng.integers(6)]
        words = SUBJECTS[rng.integers(len(SUBJECTS))].split() + ["was"] + (["not"] if negated else [])
        words += [w for w in [INTENSIFIERS[rng.integers(4)]] if w] + [adjective]
    else:
        verb = list(VERBS)[rng.integers(len(VERBS))]
        positive = bool(VERBS[verb])
        words = ["i"] + (["did", "not", {"liked": "like", "loved": "love", "enjoyed": "enjoy", "hated": "hate", "disliked": "dislike"}[verb]] if negated else [verb]) + ["it"]
    return words, int(positive != negated)


def make_sentences(n: int, rng: np.random.Generator) -> list[tuple[list[str], int]]:
    data = []
    for _ in range(n):
        words, label = clause(rng)
        if rng.random() < 0.25:  # contrast: the clause after "but" decides
            second, label = clause(rng)
            words = words + ["but"] + second
        data.append((words, label))
    return data


# Constructions the generator never makes: double negation, "at all", a verb and an adjective together.
TRICKY = [("the movie was not not good", 1), ("the food was not bad at all", 1), ("i did not hate it but the service was not great", 0),
          ("i loved it but my day was awful", 0), ("the show was really very good", 1), ("i did not enjoy it but i liked it", 1)]


class Classifier(nn.Module):
    """Embedding -> GRU -> its final hidden state a⟨T_x⟩ -> the logit W_ya a⟨T_x⟩ + b_y, one per sentence.

    ids (T, B) and lengths (B,) -> logits (B,); ŷ = σ(logit) is P(positive).
    head.weight is W_ya (1, hidden), head.bias is b_y (1,).
    """

    def __init__(self, vocab_size: int, hidden: int = 32) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, 16)
        self.rnn = nn.GRU(16, hidden)
        self.head = nn.Linear(hidden, 1)

    def forward(self, ids, lengths):
        _, h_n = self.rnn(self.embedding(ids), lengths=lengths)  # h_n: each sentence's state at its own last word
        return self.head(h_n[-1]).squeeze(-1)


def predict(model, ids, lengths) -> tuple[np.ndarray, np.ndarray]:
    """(ŷ = σ(W_ya a⟨T_x⟩ + b_y) for each sentence, 1 where ŷ > 0.5 else 0)."""
    y_hat = model(ids, lengths).sigmoid().numpy()
    return y_hat, (y_hat > 0.5).astype(int)


def batches(data, vocab, size, rng=None):
    order = rng.permutation(len(data)) if rng is not None else np.arange(len(data))
    for start in range(0, len(data), size):
        chosen = [data[i] for i in order[start : start + size]]
        ids, lengths = pad_batch([vocab.encode(" ".join(words)) for words, _ in chosen])
        yield ids, np.array([label for _, label in chosen]), lengths


def evaluate(model, data, vocab) -> tuple[float, list[str]]:
    with nn.evaluating(model):
        right, wrong = 0, []
        for ids, labels, lengths in batches(data, vocab, 256):
            _, predicted = predict(model, ids, lengths)
            right += int((predicted == labels).sum())
            for b in np.flatnonzero(predicted != labels):
                wrong.append(f"{'positive' if labels[b] else 'negative'} but called {'positive' if predicted[b] else 'negative'}: "
                             f"{vocab.decode(ids[: lengths[b], b])}")
    return right / len(data), wrong


def main(argv: list[str] | None = None) -> float:
    parser = common.arguments(__doc__.splitlines()[0], out="sentiment_out")
    args = parser.parse_args(argv)
    out = common.start(args)
    rng = np.random.default_rng(0)
    train, test = make_sentences(300 if args.smoke else 1000, rng), make_sentences(200 if args.smoke else 1000, rng)
    vocab = Vocabulary.from_text([" ".join(words) for words, _ in train], level="word")
    print(f"{len(train)} training sentences, {len(vocab)} words; the first three:")
    for words, label in train[:3]:
        print(f"  {'positive' if label else 'negative'}: {' '.join(words)}")
    ts.manual_seed(0)
    model = Classifier(len(vocab))
    history = common.fit(model, lambda epoch: batches(train, vocab, 32, np.random.default_rng(epoch)),
                         lambda m, ids, labels, lengths: F.binary_cross_entropy_with_logits(m(ids, lengths), labels),
                         epochs=1 if args.smoke else 6, lr=1e-2, progress=not args.smoke)
    accuracy, wrong = evaluate(model, test, vocab)
    print(f"\naccuracy on {len(test)} held-out sentences: {accuracy:.1%}")
    print(f"examples it gets wrong ({len(wrong)}):")
    for line in wrong[:6] or ["none"]:
        print(f"  {line}")
    print("\nsentences unlike any in the training data:")
    for sentence, label in TRICKY:
        ids, lengths = pad_batch([vocab.encode(sentence)])
        with nn.evaluating(model):
            y_hat, predicted = predict(model, ids, lengths)
        print(f"  {'right' if predicted[0] == label else 'WRONG'}: {sentence!r} called {'positive' if predicted[0] else 'negative'} "
              f"(ŷ = {y_hat[0]:.3f})")
    common.plot_curves({"training loss": history}, out / "loss.png", "binary cross-entropy", "Sentiment, many-to-one")
    print(f"\nthe training loss: {out / 'loss.png'}")
    return accuracy


if __name__ == "__main__":
    common.run(main)
