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

import common

import tinygrad_seq as ts
from tinygrad_seq import viz
from tinygrad_seq.models import TrainConfig, Trainer
from tinygrad_seq.text import language_model_batches, sample

DATA = common.DATA / "dinos.txt"


def main(argv: list[str] | None = None) -> Trainer:
    parser = common.arguments("Train a character-level language model (an LSTM by default) on dinosaur names.", out="char_lm_out")
    parser.add_argument("--cell", choices=["rnn", "gru", "lstm", "simplified_gru"], default="lstm", help="the recurrent cell (default lstm)")
    parser.add_argument("--hidden", type=common.integer(1), default=48, help=">= 1 (default 48)")
    parser.add_argument("--epochs", type=common.integer(1), default=10, help=">= 1 (default 10)")
    args = parser.parse_args(argv)
    out = common.start(args)

    config = TrainConfig(data=str(DATA), level="char", layout="lines", cell=args.cell, embed_dim=32,
                         hidden=16 if args.smoke else args.hidden, epochs=2 if args.smoke else args.epochs,
                         batch_size=32, lr=1e-2, clip=5.0, lower=True, seed=0)
    # The model (Embedding -> the cell's layer -> Linear), the loss (cross-entropy of each next character) and the loop
    # (Adam, clipping, Ctrl-C safe checkpoints) are the library's: models/language_model.py, Trainer.train_step in
    # models/trainer.py. The same run is `tinygrad-seq train --data demos/data/dinos.txt --lower`.
    trainer = Trainer(config)
    vocab = trainer.corpus.vocab
    print(f"{len(trainer.corpus.train)} names to learn from, {len(trainer.corpus.valid)} held out; {vocab}")
    print(f"model: {trainer.model.num_parameters():,} parameters on {ts.get_backend().name}\n")

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
    model = trainer.model
    with ts.transparent():  # every gate; the output layer and the loss step by step, labelled ŷ⟨t⟩ and L⟨t⟩
        outputs, _ = model.rnn(model.embedding(inputs))
        loss = viz.loss_per_step(outputs, model.head, targets)
    path = viz.render(loss, out / f"graph_{name}", params=dict(model.named_parameters()))
    print(f"the unrolled graph of '{name.capitalize()}' ({len(ids) - 1} steps): {path}")
    print(f"sample more: tinygrad-seq sample --checkpoint {out / 'checkpoint'} -n 10 --temperature 0.8")
    return trainer


if __name__ == "__main__":
    common.run(main)
