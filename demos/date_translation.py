"""Many-to-many with different lengths: an encoder-decoder turns human-written dates into ISO dates.

Run:  python demos/date_translation.py    (about a minute)

"3rd of May 1979", "03/05/79", "May 3, 1979", "thursday 3 may 1979" ->
"1979-05-03". The encoder (a GRU) reads the input characters; its final state
a⟨T_x⟩ (taken at each input's own length) initialises the decoder, a second
GRU that writes the output characters. Training uses teacher forcing (the
decoder reads the true previous character); testing decodes greedily (it reads
its own). Prints exact-match accuracy on held-out dates and a few decoded
examples, wrong ones included.
"""
from __future__ import annotations

import datetime

import common
import numpy as np

from tinygrad_seq import nn
from tinygrad_seq.nn import functional as F
from tinygrad_seq.text import BOS_ID, Vocabulary, language_model_batches, pad_batch

MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november", "december"]


def ordinal(day: int) -> str:
    suffix = "th" if 11 <= day <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def human(date: datetime.date, style: int) -> str:
    """One of seven ways people write a date (2-digit years are 1950-2049)."""
    month = MONTHS[date.month - 1]
    return [
        f"{ordinal(date.day)} of {month.capitalize()} {date.year}",
        f"{date.day:02d}/{date.month:02d}/{date.year % 100:02d}",
        f"{month.capitalize()} {date.day}, {date.year}",
        f"{date.strftime('%A').lower()} {date.day} {month} {date.year}",
        f"{date.day} {month[:3]} {date.year}",
        f"{month} {ordinal(date.day)} {date.year}",
        f"{date.day}.{date.month}.{date.year}",
    ][style]


def make_pairs(n: int, rng: np.random.Generator) -> list[tuple[str, str]]:
    start = datetime.date(1950, 1, 1).toordinal()
    days = rng.integers(0, datetime.date(2049, 12, 31).toordinal() - start, n)
    styles = rng.integers(0, 7, n)
    return [(human(datetime.date.fromordinal(start + int(d)), int(s)), datetime.date.fromordinal(start + int(d)).isoformat())
            for d, s in zip(days, styles)]


class Translator(nn.Module):
    """Encoder GRU -> its final state -> decoder GRU -> characters."""

    def __init__(self, source_size: int, target_size: int, hidden: int = 128) -> None:
        super().__init__()
        self.source_embedding = nn.Embedding(source_size, 32)
        self.encoder = nn.GRU(32, hidden)
        self.target_embedding = nn.Embedding(target_size, 16)
        self.decoder = nn.GRU(16, hidden)
        self.head = nn.Linear(hidden, target_size)

    def encode(self, source, source_lengths):
        _, state = self.encoder(self.source_embedding(source), lengths=source_lengths)
        return state  # (1, B, H): each input's state at its own last character

    def forward(self, source, source_lengths, target_inputs):
        outputs, _ = self.decoder(self.target_embedding(target_inputs), self.encode(source, source_lengths))
        return self.head(outputs)

    def translate(self, source, source_lengths, vocab: Vocabulary, max_len: int = 12) -> list[str]:
        with nn.evaluating(self):
            state = self.encode(source, source_lengths)
            token = np.full(source.shape[1], BOS_ID)
            written = []
            for _ in range(max_len):
                outputs, state = self.decoder(self.target_embedding(token[None, :]), state)
                token = self.head(outputs)[0].numpy().argmax(axis=-1)
                written.append(token)
        return common.decode_until_eos(written, vocab)


def main(argv: list[str] | None = None) -> float:
    parser = common.arguments(__doc__.splitlines()[0], out="date_translation_out")
    args = parser.parse_args(argv)
    out = common.start(args)
    rng = np.random.default_rng(0)
    train, test = make_pairs(500 if args.smoke else 12000, rng), make_pairs(100 if args.smoke else 1000, rng)
    source_vocab = Vocabulary.from_text([s for s, _ in train], level="char")
    target_vocab = Vocabulary.from_text("0123456789-", level="char")
    print("training pairs, a date as people write it -> ISO 8601:")
    for source, target in train[:4]:
        print(f"  {source!r:>28} -> {target}")

    def batches(data, size, rng=None):
        for chosen in common.chunks(data, size, rng):
            source, source_lengths = pad_batch([source_vocab.encode(s) for s, _ in chosen])
            # Teacher forcing: the decoder reads [<bos>] + the right answer and predicts the answer + [<eos>], one step
            # ahead (language_model_batches cuts each [<bos>, ..., <eos>] into that input and that target)
            target_in, target_out, _ = next(language_model_batches([target_vocab.encode(t, bos=True, eos=True) for _, t in chosen], len(chosen)))
            yield source, source_lengths, target_in, target_out

    model = Translator(len(source_vocab), len(target_vocab), hidden=32 if args.smoke else 128)
    history = common.fit(model, lambda epoch: batches(train, 64, np.random.default_rng(epoch)),
                         lambda m, s, sl, ti, to: F.cross_entropy(m(s, sl, ti), to),
                         epochs=1 if args.smoke else 12, lr=5e-3, progress=not args.smoke)
    written = []
    for source, source_lengths, _, _ in batches(test, 256):
        written += model.translate(source, source_lengths, target_vocab)
    accuracy = common.report_exact_match([s for s, _ in test], written, [t for _, t in test], "dates")
    path = common.plot_curves({"training loss": history}, out / "loss.png", "cross-entropy per character", "Date translation")
    print(f"\nthe training loss: {path}")
    return accuracy


if __name__ == "__main__":
    common.run(main)
