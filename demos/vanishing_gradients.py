"""Vanishing gradients: subject-verb agreement across k distracting words, for RNN, GRU and LSTM.

Run:  python demos/vanishing_gradients.py    (about 20 seconds)

"the key [to the old cabinets near the door] was ..." - whether the verb is
"was" or "were" depends on the subject, k words back, past distractors that
include nouns of the other number. Each model reads the sentence and predicts
the verb from its last hidden state. Trained on k from 0 to 40, it is then
tested on each k separately: a plain RNN's gradient from the verb back to the
subject vanishes as k grows, so on such data it learns next to nothing (the
long sentences give it no usable signal); the gated cells solve every k.
Prints accuracy against k for the three cells as a table, and writes it as a
plot beside the gradient-flow plot of the three models at initialisation (how
much of the verb's gradient reaches each earlier word).
"""
from __future__ import annotations

import common
import math

import numpy as np

import tinygrad_seq as ts
from tinygrad_seq import nn, viz
from tinygrad_seq.nn import functional as F
from tinygrad_seq import no_grad
from tinygrad_seq.text import Vocabulary, pad_batch

SINGULAR = ["key", "dog", "cat", "boy", "girl", "car", "book", "house"]
PLURAL = ["keys", "dogs", "cats", "boys", "girls", "cars", "books", "houses"]
FILLERS = ["to", "the", "old", "near", "door", "red", "with", "of", "big", "small", "in", "garden"] + SINGULAR + PLURAL
CELLS = {"rnn": "RNN", "gru": "GRU", "lstm": "LSTM"}


def make_examples(n: int, max_distance: int, rng: np.random.Generator, distance: int | None = None):
    """(words, label: 0 for "was", 1 for "were", k) with k distractors between subject and verb."""
    examples = []
    for _ in range(n):
        k = int(rng.integers(0, max_distance + 1)) if distance is None else distance
        plural = int(rng.integers(2))
        subject = (PLURAL if plural else SINGULAR)[rng.integers(8)]
        words = ["the", subject] + [FILLERS[i] for i in rng.integers(0, len(FILLERS), k)]
        examples.append((words, plural, k))
    return examples


class AgreementModel(nn.Module):
    def __init__(self, vocab_size: int, cell: str, hidden: int = 48) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, 16)
        self.rnn = nn.Recurrent(nn.make_cell(cell, 16, hidden))
        self.head = nn.Linear(hidden, 2)

    def forward(self, ids, lengths):
        _, state = self.rnn(self.embedding(ids), lengths=lengths)
        return self.head(self.rnn.cell.output(state))  # the state's a⟨T_x⟩ (an LSTM's state is (a, c): output takes a)


def batch(examples, vocab):
    ids, lengths = pad_batch([vocab.encode(" ".join(words)) for words, _, _ in examples])
    return ids, np.array([label for _, label, _ in examples]), lengths


@no_grad()
def accuracy(model, examples, vocab) -> float:
    ids, labels, lengths = batch(examples, vocab)
    return float((model(ids, lengths).argmax(axis=-1).numpy() == labels).mean())


def main(argv: list[str] | None = None) -> dict[str, list[float]]:
    parser = common.arguments(__doc__.splitlines()[0], out="vanishing_out")
    parser.add_argument("--max-distance", type=common.integer(1), default=40, help="longest k, >= 1 (default 40)")
    args = parser.parse_args(argv)
    out = common.start(args)
    max_k = 4 if args.smoke else args.max_distance
    vocab = Vocabulary(sorted(set(FILLERS) | {"the"}), level="word")
    rng = np.random.default_rng(0)
    train = make_examples(256 if args.smoke else 6000, max_k, rng)
    distances = list(range(0, max_k + 1, max(1, max_k // 10)))
    tests = {k: make_examples(100 if args.smoke else 400, max_k, np.random.default_rng(100 + k), distance=k) for k in distances}
    results, flows = {}, []
    for cell, name in CELLS.items():
        ts.manual_seed(0)
        model = AgreementModel(len(vocab), cell)
        if cell == "lstm":
            nn.init.forget_bias_(model, 1.0)
        # How much of the verb's gradient reaches each earlier word, at initialisation, relative to the last word.
        ids, labels, lengths = batch(tests[max_k][:32], vocab)
        flow = viz.gradient_flow(F.cross_entropy(model(ids, lengths), labels))[("a", 0, "forward")]
        flows.append({("a", 0, "forward"): flow / flow[-1]})
        model.zero_grad()
        # the same batches every epoch, in the order the examples were drawn (already random)
        losses = common.fit(model, lambda epoch: (batch(train[s : s + 64], vocab) for s in range(0, len(train), 64)),
                            lambda m, ids, labels, lengths: F.cross_entropy(m(ids, lengths), labels),
                            epochs=1 if args.smoke else 6, lr=5e-3, progress=False)
        results[name] = [accuracy(model, tests[k], vocab) for k in distances]
        # Two classes: a model that guesses scores ln 2, and one that learned nothing of the agreement stays near it
        print(f"{name}: training loss {losses[0]:.3f} in the first epoch -> {losses[-1]:.3f} in the last "
              f"(guessing scores ln 2 = {math.log(2):.3f})")

    print("\naccuracy on held-out sentences, by the number k of words between subject and verb")
    print("k       " + " ".join(f"{k:>5}" for k in distances))
    for name, row in results.items():
        print(f"{name:<7} " + " ".join(f"{a:>5.0%}" for a in row))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure, axes = plt.subplots(figsize=(6, 3.5))
        # Hollow markers of three shapes and three dash styles: the GRU's and the LSTM's lines lie on each other at 100 %
        for (name, row), (marker, style) in zip(results.items(), (("o", "-"), ("s", "--"), ("^", ":"))):
            axes.plot(distances, row, marker=marker, linestyle=style, markerfacecolor="none", label=name)
        axes.set_xlabel("k, words between subject and verb")
        axes.set_ylabel("accuracy")
        axes.set_ylim(0.4, 1.02)
        axes.grid(alpha=0.3)
        axes.legend()
        figure.tight_layout()
        figure.savefig(out / "accuracy.png", dpi=100)
        plt.close(figure)
        viz.plot_gradient_flow(flows, out / "gradient_flow.png", labels=list(CELLS.values()),
                               title=f"‖∂L/∂a⟨t⟩‖ / ‖∂L/∂a⟨T⟩‖ at initialisation, k = {max_k}")
        print(f"\nplots in {out}/: accuracy.png, gradient_flow.png")
    except ImportError:
        print("(no plots: pip install -e '.[plot]' for matplotlib)")
    return results


if __name__ == "__main__":
    common.run(main)
