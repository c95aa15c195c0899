"""The main demo: a character-level LSTM learns to make up dinosaur names.

Run:  python demos/char_lm.py                 (about 5 seconds on 2 CPU cores)
      python demos/char_lm.py --backend cupy  (the same on a GPU)
      python demos/char_lm.py --smoke         (a few seconds, for the tests)

Each name is a sequence [<bos>, characters..., <eos>]; the model reads one
character at a time and predicts the next (Embedding -> LSTM -> Linear,
cross-entropy, Adam, gradient clipping). Every few epochs it samples new
names, starting from <bos> and feeding each sampled character back in. At
the end it renders the unrolled graph of one short name to SVG, and saves a
checkpoint that `tinygrad-seq sample --checkpoint ...` can read. Ctrl-C stops
after the current step and keeps the checkpoint.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import tinygrad_seq as ts
from tinygrad_seq import viz
from tinygrad_seq.models import TrainConfig, Trainer
from tinygrad_seq.nn import functional as F
from tinygrad_seq.text import language_model_batches, sample

DATA = Path(__file__).resolve().parent / "data" / "dinos.txt"


def main(argv: list[str] | None = None) -> Trainer:
    parser = argparse.ArgumentParser(description="Train a character-level LSTM on dinosaur names.")
    parser.add_argument("--backend", choices=["numpy", "cupy"], default="numpy")
    parser.add_argument("--cell", default="lstm", help="rnn, gru, lstm or simplified_gru")
    parser.add_argument("--hidden", type=int, default=48)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--out", default="char_lm_out", help="folder for the checkpoint and the graph")
    parser.add_argument("--smoke", action="store_true", help="a tiny run, for the tests")
    args = parser.parse_args(argv)
    ts.set_backend(args.backend)
    out = Path(args.out)

    config = TrainConfig(data=str(DATA), level="char", layout="lines", cell=args.cell, embed_dim=32,
                         hidden=16 if args.smoke else args.hidden, epochs=2 if args.smoke else args.epochs,
                         batch_size=32, lr=1e-2, clip=5.0, lower=True, seed=0)
    trainer = Trainer(config)
    vocab = trainer.corpus.vocab
    print(f"{len(trainer.corpus.train)} names to learn from, {len(trainer.corpus.valid)} held out; {vocab}")
    print(f"model: {trainer.model.num_parameters():,} parameters on {args.backend}\n")

    def show_samples(trainer: Trainer) -> None:
        if trainer.epoch % (1 if args.smoke else 5) == 0 or trainer.epoch == config.epochs:
            names = sample(trainer.model, vocab, n=6, max_len=20, temperature=0.8, seed=trainer.epoch)
            print("   new names:", ", ".join(name.capitalize() for name in names))

    finished = trainer.run(out / "checkpoint", progress=not args.smoke, on_epoch_end=show_samples,
                           overwrite=True)  # the demo's own folder: a rerun replaces its checkpoint
    history = trainer.history
    if history:
        print(f"\nvalidation loss per character: {history[0]['valid_loss']:.3f} after epoch 1 -> {history[-1]['valid_loss']:.3f} "
              f"after epoch {history[-1]['epoch']} (perplexity {history[-1]['valid_perplexity']:.2f})")
    if not finished:
        print(f"stopped early; checkpoint in {out / 'checkpoint'}")
        return trainer

    # The unrolled graph of one short name, gate by gate.
    name = "rex"
    ids = vocab.encode(name, bos=True, eos=True)
    inputs, targets, lengths = next(language_model_batches([ids], 1))
    with ts.transparent():
        logits, _ = trainer.model(inputs)
        loss = F.cross_entropy(logits, targets)
    path = viz.render(loss, out / f"graph_{name}", params=dict(trainer.model.named_parameters()))
    print(f"the unrolled graph of '{name.capitalize()}' ({len(ids) - 1} steps): {path}")
    print(f"sample more: tinygrad-seq sample --checkpoint {out / 'checkpoint'} -n 10 --temperature 0.8")
    return trainer


if __name__ == "__main__":
    main()
