"""One-to-many: a single input, a whole sequence out. A number 0-999 in, its English spelling out.

Run:  python demos/one_to_many.py    (about a minute)

The number (its three digits, one-hot) sets the decoder's initial state
a⟨0⟩ = tanh(W x + b); the decoder, a GRU over characters, then writes the
spelling one character at a time, each output fed back in as the next input
(teacher forcing while training: the true previous character; greedy
decoding at test: its own). Prints exact-match accuracy on numbers it never
saw, and a few of its spellings, wrong ones included.
"""
from __future__ import annotations

import common
import numpy as np

import tinygrad_seq as ts
from tinygrad_seq import nn
from tinygrad_seq.nn import functional as F
from tinygrad_seq.text import BOS_ID, EOS_ID, Vocabulary, language_model_batches

ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def spell(number: int) -> str:
    """42 -> "forty-two", 305 -> "three hundred and five"."""
    hundreds, rest = divmod(number, 100)
    below = ONES[rest] if rest < 20 else TENS[rest // 10] + ("-" + ONES[rest % 10] if rest % 10 else "")
    if not hundreds:
        return below
    return f"{ONES[hundreds]} hundred" + (f" and {below}" if rest else "")


def digits(numbers: np.ndarray) -> np.ndarray:
    """(B, 30): the three digits of each number, one-hot."""
    features = np.zeros((len(numbers), 30), dtype=np.float32)
    for place, divisor in enumerate((100, 10, 1)):
        features[np.arange(len(numbers)), place * 10 + (numbers // divisor) % 10] = 1
    return features


class Speller(nn.Module):
    """a⟨0⟩ = tanh(W x + b) from the digits, then a GRU decoder over characters."""

    def __init__(self, vocab_size: int, hidden: int = 128) -> None:
        super().__init__()
        self.start = nn.Linear(30, hidden)
        self.embedding = nn.Embedding(vocab_size, 32)
        self.decoder = nn.GRU(32, hidden)
        self.head = nn.Linear(hidden, vocab_size)

    def forward(self, numbers, inputs, lengths=None):
        a0 = self.start(ts.Tensor(digits(numbers))).tanh()
        outputs, state = self.decoder(self.embedding(inputs), a0.unsqueeze(0), lengths)
        return self.head(outputs), state

    def spell(self, numbers: np.ndarray, vocab: Vocabulary, max_len: int = 40) -> list[str]:
        """Greedy decoding: each step's likeliest character becomes the next input."""
        with nn.evaluating(self):
            tokens = np.full((1, len(numbers)), BOS_ID)
            logits, state = self.forward(numbers, tokens)
            written = np.zeros((0, len(numbers)), dtype=np.int64)
            for _ in range(max_len):
                token = logits[-1].numpy().argmax(axis=-1)
                written = np.vstack([written, token])
                if np.all((written == EOS_ID).any(axis=0)):
                    break
                outputs, state = self.decoder(self.embedding(token[None, :]), state)
                logits = self.head(outputs)
        return common.decode_until_eos(written, vocab)


def main(argv: list[str] | None = None) -> float:
    parser = common.arguments(__doc__.splitlines()[0], out="one_to_many_out")
    args = parser.parse_args(argv)
    out = common.start(args)
    rng = np.random.default_rng(0)
    numbers = rng.permutation(1000)
    test, train = numbers[:100], numbers[100:]
    vocab = Vocabulary.from_text([spell(n) for n in range(1000)], level="char")
    sequences = {int(n): vocab.encode(spell(int(n)), bos=True, eos=True) for n in range(1000)}

    def batches(epoch: int):
        for chosen in common.chunks(train, 32, np.random.default_rng(epoch)):
            # Teacher forcing: the decoder reads [<bos>] + the spelling and predicts the spelling + [<eos>], one step ahead
            inputs, targets, lengths = next(language_model_batches([sequences[int(n)] for n in chosen], len(chosen)))
            yield np.array(chosen), inputs, targets, lengths

    model = Speller(len(vocab), hidden=32 if args.smoke else 128)
    print(f"{len(train)} numbers to learn from, e.g. {train[0]} -> {spell(int(train[0]))!r}; {len(test)} held out")
    history = common.fit(model, batches, lambda m, n, x, y, lengths: F.cross_entropy(m(n, x, lengths)[0], y),
                         epochs=1 if args.smoke else 150, lr=1e-2, progress=not args.smoke, print_every=10)
    written = model.spell(test, vocab)
    accuracy = common.report_exact_match([int(n) for n in test], written, [spell(int(n)) for n in test], "numbers", width=5)
    path = common.plot_curves({"training loss": history}, out / "loss.png", "cross-entropy per character", "One-to-many: spelling numbers")
    print(f"\nthe training loss: {path}")
    return accuracy


if __name__ == "__main__":
    common.run(main)
