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
from tinygrad_seq.text import SPECIALS, Vocabulary, pad_batch

SUBJECTS = ["the movie", "this film", "the food", "the service", "the book", "my day", "the hotel", "the show"]
POSITIVE = ["good", "great", "wonderful", "excellent", "fun", "lovely"]
NEGATIVE = ["bad", "terrible", "awful", "boring", "poor", "dull"]
VERBS = {"liked": 1, "loved": 1, "enjoyed": 1, "hated": 0, "disliked": 0}
BASE_FORMS = {"liked": "like", "loved": "love", "enjoyed": "enjoy", "hated": "hate", "disliked": "dislike"}  # "i did not like it"
INTENSIFIERS = ["", "really", "very", "quite"]
ADJECTIVE_CLAUSES = 0.6  # the share of clauses built on an adjective ("the food was good"), the rest on a verb ("i liked it")


def clause(rng: np.random.Generator) -> tuple[list[str], int]:
    """A simple clause and its sentiment (1 positive), negated half the time."""
    negated = rng.random() < 0.5
    if rng.random() < ADJECTIVE_CLAUSES:
        positive = rng.random() < 0.5
        adjectives = POSITIVE if positive else NEGATIVE
        words = SUBJECTS[rng.integers(len(SUBJECTS))].split() + ["was"] + (["not"] if negated else [])
        words += [w for w in [INTENSIFIERS[rng.integers(len(INTENSIFIERS))]] if w] + [adjectives[rng.integers(len(adjectives))]]
    else:
        verb = list(VERBS)[rng.integers(len(VERBS))]
        positive = bool(VERBS[verb])
        words = ["i"] + (["did", "not", BASE_FORMS[verb]] if negated else [verb]) + ["it"]
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


def held_out(n: int, rng: np.random.Generator, seen: set[str]) -> list[tuple[list[str], int]]:
    """``n`` sentences drawn as the training ones are, none of them a training sentence (``seen``): the generator
    repeats itself often (half of 1,000 fresh draws were training sentences word for word), and a test of those would
    measure memory, not what the model learnt."""
    data: list[tuple[list[str], int]] = []
    while len(data) < n:
        data += [(words, label) for words, label in make_sentences(n, rng) if " ".join(words) not in seen][: n - len(data)]
    return data


# Constructions the generator never makes: a double negation, words it never uses ("at all", "and": read as
# <unk>), two intensifiers, two contrasts (the last clause decides, as with one).
TRICKY = [("the movie was not not good", 1), ("the food was not bad at all", 1), ("the show was really very good", 1),
          ("the food was bad but the show was good but my day was awful", 0), ("the movie was good and the food was great", 1),
          ("i did not like it but the hotel was not not lovely", 1)]


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
        # h_n (layers, B, H): each sentence's state at its own last word, a⟨T_x⟩ (lengths stop it there); [-1] is the
        # top layer's (the only one here), not the last time step
        _, h_n = self.rnn(self.embedding(ids), lengths=lengths)
        return self.head(h_n[-1]).squeeze(-1)


def predict(model, ids, lengths) -> tuple[np.ndarray, np.ndarray]:
    """(ŷ = σ(W_ya a⟨T_x⟩ + b_y) for each sentence, 1 where ŷ > 0.5 else 0)."""
    y_hat = model(ids, lengths).sigmoid().numpy()
    return y_hat, (y_hat > 0.5).astype(int)


def batches(data, vocab, size, rng=None):
    for chosen in common.chunks(data, size, rng):
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
    train = make_sentences(300 if args.smoke else 1000, rng)
    test = held_out(200 if args.smoke else 1000, rng, {" ".join(words) for words, _ in train})
    vocab = Vocabulary.from_text([" ".join(words) for words, _ in train], level="word")
    print(f"{len(train)} training sentences, {len(vocab) - len(SPECIALS)} words (and the {len(SPECIALS)} special tokens); "
          "the first three:")
    for words, label in train[:3]:
        print(f"  {'positive' if label else 'negative'}: {' '.join(words)}")
    ts.manual_seed(0)
    model = Classifier(len(vocab))
    history = common.fit(model, lambda epoch: batches(train, vocab, 32, np.random.default_rng(epoch)),
                         lambda m, ids, labels, lengths: F.binary_cross_entropy_with_logits(m(ids, lengths), labels),
                         epochs=1 if args.smoke else 6, lr=1e-2, progress=not args.smoke)
    accuracy, wrong = evaluate(model, test, vocab)
    print(f"\naccuracy on {len(test)} held-out sentences, none of them a training sentence: {accuracy:.1%}")
    print(f"examples it gets wrong ({len(wrong)}):")
    for line in wrong[:6] or ["none"]:
        print(f"  {line}")
    print("\nsentences of constructions the training data never has (each as the model reads it: <unk> for a word it "
          "never saw):")
    for sentence, label in TRICKY:
        ids, lengths = pad_batch([vocab.encode(sentence)])
        with nn.evaluating(model):
            y_hat, predicted = predict(model, ids, lengths)
        print(f"  {'right' if predicted[0] == label else 'WRONG'}: {vocab.decode(ids[:, 0], skip_special=False)!r} called "
              f"{'positive' if predicted[0] else 'negative'} (ŷ = {y_hat[0]:.3f})")
    common.plot_curves({"training loss": history}, out / "loss.png", "binary cross-entropy", "Sentiment, many-to-one")
    print(f"\nthe training loss: {out / 'loss.png'}")
    return accuracy


if __name__ == "__main__":
    common.run(main)
