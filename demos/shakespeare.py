"""Long text: a 2-layer LSTM (or GRU) learns Shakespeare character by character, with truncated BPTT.

Run:  python demos/shakespeare.py            (about 90 seconds: the first 600,000 characters, 3 epochs)
      python demos/shakespeare.py --long     (the whole 1.1 million characters, 10 epochs)
      python demos/shakespeare.py --cell gru --backend cupy

The text is cut into 32 parallel streams and read in chunks of 64 characters.
The state at the end of a chunk starts the next one, detached: the model sees
far back through its state, but each backward pass stops after 64 steps
(truncated backpropagation through time). Prints the validation loss per
character and samples at three temperatures; writes the loss curve and the
samples to --out.
"""
from __future__ import annotations

import math

import common

from tinygrad_seq.models import TrainConfig, Trainer
from tinygrad_seq.text import sample


def main(argv: list[str] | None = None) -> Trainer:
    parser = common.arguments(__doc__.splitlines()[0], out="shakespeare_out")
    parser.add_argument("--cell", choices=["lstm", "gru"], default="lstm", help="the recurrent cell (default lstm)")
    parser.add_argument("--long", action="store_true", help="the whole text, 10 epochs")
    args = parser.parse_args(argv)
    out = common.start(args)
    chars, epochs = (20_000, 1) if args.smoke else (None, 10) if args.long else (600_000, 3)
    config = TrainConfig(data=str(common.DATA / "tinyshakespeare.txt"), layout="stream", cell=args.cell,
                         embed_dim=32, hidden=32 if args.smoke else 192, layers=2, dropout=0.1, seq_len=64,
                         batch_size=32, epochs=epochs, lr=4e-3, clip=5.0, max_chars=chars, val_fraction=0.05)
    # Truncated BPTT (layout="stream"): the text is read as 32 parallel streams in chunks of 64 characters; after each
    # chunk's update the final state is carried into the next chunk, detached (values kept, graph cut): Trainer.train_step
    # in tinygrad_seq/models/trainer.py, `self.carry = _detach(state)`. docs/language_models.md walks through it.
    trainer = Trainer(config)
    print(f"{len(trainer.corpus.train):,} characters to learn from, {len(trainer.corpus.valid):,} held out; "
          f"{trainer.corpus.vocab}; a 2-layer {args.cell.upper()} with {trainer.model.num_parameters():,} parameters")
    trainer.run(out / "checkpoint", progress=not args.smoke, overwrite=True)  # a rerun replaces its own checkpoint
    final = trainer.history[-1]
    print(f"\nvalidation loss per character after {final['epoch']} epoch(s): {final['valid_loss']:.3f} "
          f"(perplexity {final['valid_perplexity']:.2f}); a uniform guess over {len(trainer.corpus.vocab)} tokens "
          f"would score loss {math.log(len(trainer.corpus.vocab)):.2f}, perplexity {len(trainer.corpus.vocab)}")
    lines = []
    for temperature in (0.5, 0.8, 1.0):
        (text,) = sample(trainer.model, trainer.corpus.vocab, n=1, max_len=40 if args.smoke else 300,
                         temperature=temperature, prime="ROMEO:", seed=1)
        lines.append(f"--- temperature {temperature} ---\n{text}\n")
        print(lines[-1])
    (out / "samples.txt").write_text("\n".join(lines), encoding="utf-8")
    common.plot_curves({"train": [h["train_loss"] for h in trainer.history], "validation": [h["valid_loss"] for h in trainer.history]},
                       out / "loss.png", "loss per character", "Shakespeare, truncated BPTT")
    print(f"figures and samples in {out}/")
    return trainer


if __name__ == "__main__":
    common.run(main)
