"""Many-to-many tagging with a bidirectional RNN: which words are part of a person's name?

Run:  python demos/name_tagging.py    (a few seconds)

"Teddy Roosevelt was a great president" / "Teddy bears are on sale": whether
"Teddy" is a name is decided by the word AFTER it. A unidirectional RNN tags
a word having read only what came before, so on such words it can only guess;
a bidirectional one also reads the rest of the sentence. Both are trained on
the same generated sentences; the demo prints token accuracy and accuracy on
the ambiguous words side by side, and renders the bidirectional graph of one
short sentence.
"""
from __future__ import annotations

import common
import numpy as np

import tinygrad_seq as ts
from tinygrad_seq import nn, viz
from tinygrad_seq.nn import functional as F
from tinygrad_seq.text import IGNORE_INDEX, UNK_ID, Vocabulary, pad_batch

# A word that is a first name, or the start of an ordinary noun phrase.
AMBIGUOUS = {"teddy": ["bears", "bear"], "rose": ["gardens", "petals"], "jack": ["rabbits", "knives"],
             "bill": ["payments", "collectors"], "holly": ["bushes", "berries"], "daisy": ["chains", "fields"],
             "amber": ["jewels", "lights"], "ivy": ["leaves", "walls"]}
SURNAMES = ["roosevelt", "smith", "jones", "brown", "taylor", "wilson", "clarke", "evans"]
PERSON_ENDINGS = [["was", "a", "great", "president"], ["gave", "a", "speech"], ["is", "my", "neighbour"], ["wrote", "a", "book"]]
THING_ENDINGS = [["are", "on", "sale"], ["grow", "in", "the", "garden"], ["were", "cheap"], ["need", "water"]]
PREFIXES = [[], ["yesterday"], ["i", "think"], ["they", "said"]]


def make_sentences(n: int, rng: np.random.Generator) -> list[tuple[list[str], list[int]]]:
    """(words, tags) with tag 1 on the words of a person's name."""
    data = []
    for _ in range(n):
        prefix = PREFIXES[rng.integers(len(PREFIXES))]
        first = list(AMBIGUOUS)[rng.integers(len(AMBIGUOUS))]
        if rng.random() < 0.5:
            words = prefix + [first, SURNAMES[rng.integers(len(SURNAMES))]] + PERSON_ENDINGS[rng.integers(len(PERSON_ENDINGS))]
            tags = [0] * len(prefix) + [1, 1] + [0] * (len(words) - len(prefix) - 2)
        else:
            nouns = AMBIGUOUS[first]
            words = prefix + [first, nouns[rng.integers(len(nouns))]] + THING_ENDINGS[rng.integers(len(THING_ENDINGS))]
            tags = [0] * len(words)
        data.append((words, tags))
    return data


class Tagger(nn.Module):
    """Embedding -> GRU (one or two directions) -> Linear to 2 tags, at every position."""

    def __init__(self, vocab_size: int, bidirectional: bool, hidden: int = 32) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, 16)
        self.rnn = nn.GRU(16, hidden, bidirectional=bidirectional)
        self.head = nn.Linear(hidden * (2 if bidirectional else 1), 2)

    def forward(self, ids, lengths):
        outputs, _ = self.rnn(self.embedding(ids), lengths=lengths)
        return self.head(outputs)


def batches(data, vocab, size, rng=None):
    for chosen in common.chunks(data, size, rng):
        ids, lengths = pad_batch([[vocab.stoi[w] for w in words] for words, _ in chosen])
        tags, _ = pad_batch([tags for _, tags in chosen], pad_id=IGNORE_INDEX)
        yield ids, tags, lengths


def evaluate(model, data, vocab) -> tuple[float, float, list[str]]:
    """(token accuracy, accuracy on the ambiguous first words, a few mistakes)."""
    with nn.evaluating(model):
        right = total = ambiguous_right = ambiguous_total = 0
        mistakes = []
        for ids, tags, lengths in batches(data, vocab, 256):
            predicted = model(ids, lengths).argmax(axis=-1).numpy()
            valid = tags != IGNORE_INDEX
            right += int(((predicted == tags) & valid).sum())
            total += int(valid.sum())
            is_ambiguous = np.isin(ids, [vocab.stoi[w] for w in AMBIGUOUS]) & valid
            ambiguous_right += int(((predicted == tags) & is_ambiguous).sum())
            ambiguous_total += int(is_ambiguous.sum())
            for b in range(ids.shape[1]):
                if len(mistakes) < 3 and np.any((predicted[:, b] != tags[:, b]) & valid[:, b]):
                    words = [vocab.itos[i] for i in ids[: lengths[b], b]]
                    shown = [w.upper() if p else w for w, p in zip(words, predicted[: lengths[b], b])]
                    wrong = predicted[: lengths[b], b] != tags[: lengths[b], b]
                    mistakes.append(" ".join(f"[{w}]" if miss else w for w, miss in zip(shown, wrong)))
    return right / total, ambiguous_right / ambiguous_total, mistakes


def main(argv: list[str] | None = None) -> dict[str, tuple[float, float]]:
    parser = common.arguments(__doc__.splitlines()[0], out="name_tagging_out")
    args = parser.parse_args(argv)
    out = common.start(args)
    rng = np.random.default_rng(0)
    train, test = make_sentences(200 if args.smoke else 3000, rng), make_sentences(100 if args.smoke else 1000, rng)
    vocab = Vocabulary(sorted({w for words, _ in train + test for w in words}), level="word")
    print(f"{len(train)} training sentences, e.g. '{' '.join(train[0][0])}' -> {train[0][1]}")
    results, curves = {}, {}
    for name, bidirectional in (("unidirectional", False), ("bidirectional", True)):
        ts.manual_seed(0)
        model = Tagger(len(vocab), bidirectional)
        curves[name] = common.fit(model, lambda epoch: batches(train, vocab, 32, np.random.default_rng(epoch)),
                                  lambda m, ids, tags, lengths: F.cross_entropy(m(ids, lengths), tags),
                                  epochs=1 if args.smoke else 8, lr=1e-2, progress=not args.smoke, label=name)
        results[name] = evaluate(model, test, vocab)
    seen = {" ".join(words) for words, _ in train}
    repeated = sum(" ".join(words) in seen for words, _ in test)
    # Sentences this short repeat: many test sentences are training ones too. That does not flatter either model on
    # the ambiguous words, where a unidirectional one can only guess whatever it remembers: it has not read the next word.
    print(f"\n{len(test)} test sentences, {repeated} of them training sentences too")
    print(f"{'test sentences':<18} {'all tokens':>11} {'ambiguous words':>16}")
    for name, (accuracy, ambiguous, _) in results.items():
        print(f"{name:<18} {accuracy:>11.1%} {ambiguous:>16.1%}")
    print("\nmistakes of the unidirectional model (tagged as names: in capitals; tagged wrong: in [brackets]):")
    for line in results["unidirectional"][2] or ["none"]:
        print(f"  {line}")
    common.plot_curves(curves, out / "loss.png", "training loss", "Name tagging")
    print(f"\nthe two training curves: {out / 'loss.png'}")
    bidirectional = model  # the loop's last model
    sentence = ["teddy", "roosevelt", "spoke"]
    ids, lengths = pad_batch([[vocab.stoi.get(w, UNK_ID) for w in sentence]])
    path = viz.render(bidirectional(ids, lengths).sum(), out / "bidirectional_graph", params=dict(bidirectional.named_parameters()))
    print(f"the bidirectional graph of '{' '.join(sentence)}': {path}")
    return {name: result[:2] for name, result in results.items()}


if __name__ == "__main__":
    common.run(main)
